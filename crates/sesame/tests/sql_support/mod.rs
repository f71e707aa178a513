//! Store makers and shared cases for the SQL store tests.
//!
//! PostgreSQL and MySQL tests share one server with each other and with other
//! test runs, so each maker hands out a store on a fresh table of its own
//! (`sesame_t_<unix time>_<random>`); the SQLite maker, a fresh file in
//! `$TMPDIR/sesame-tests/`. Tables and files older than ten minutes are
//! removed when a new one is made: left over by an earlier run, never in use
//! (a case times out long before).

#![allow(dead_code, reason = "each test crate uses a subset of the makers")]

use sesame::SessionKey;
use time::OffsetDateTime;

/// Prefix of every table (or schema, or database) a test makes.
pub(crate) const PREFIX: &str = "sesame_t_";

/// Reads `SESAME_TEST_<STORE>_URL`; unset or empty prints the skip line.
pub(crate) fn env_url(store: &str) -> Option<String> {
    let var = format!("SESAME_TEST_{}_URL", store.to_ascii_uppercase());
    match std::env::var(&var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("SKIP {}: {var} unset", store.to_ascii_lowercase());
            None
        }
    }
}

/// `SECRET_KEY` of the golden vectors Django made
/// (`sesame-codec/testdata/django-5.2.19-vectors.json`, `settings`).
pub(crate) const DJANGO_SECRET_KEY: &str =
    "djcompat-primary-secret-key-do-not-use-in-production-0123456789";

/// `session_data` Django 5.2 wrote for `{"counter": 1}` under
/// [`DJANGO_SECRET_KEY`] (the vectors' `db_new_default` row).
pub(crate) const DJANGO_SESSION_DATA: &str =
    "eyJjb3VudGVyIjoxfQ:1r31eq:d8XQC3mWk7Ma5dmoLwxC09f-LtnEv_rDL7wOdhv59Ek";

/// The signer every SQL test uses: the golden vectors' `SECRET_KEY` (a test
/// value, never a real secret), so rows Django made load as they are.
pub(crate) fn signer() -> sesame::Signer {
    sesame::Signer::new(DJANGO_SECRET_KEY)
}

/// A name no other test uses: `sesame_t_<unix time>_<random>`.
pub(crate) fn fresh_name() -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let random = SessionKey::generate();
    format!("{PREFIX}{now}_{}", &random.as_str()[..12])
}

/// Whether a name [`fresh_name`] made is over ten minutes old.
pub(crate) fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let made = rest.split('_').next().and_then(|t| t.parse::<i64>().ok());
    made.is_some_and(|t| OffsetDateTime::now_utc().unix_timestamp() - t > 600)
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use sesame::backends::SqliteStore;

    use super::{fresh_name, is_stale};

    /// A migrated store on a fresh database file (WAL, writer and readers).
    pub(crate) async fn store() -> Option<SqliteStore> {
        let dir = std::env::temp_dir().join("sesame-tests");
        std::fs::create_dir_all(&dir).expect("create the test directory");
        for entry in std::fs::read_dir(&dir).expect("list the test directory") {
            let path = entry.expect("a directory entry").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_stale)
            {
                let _ = std::fs::remove_file(path);
            }
        }
        let store = SqliteStore::open(
            dir.join(format!("{}.sqlite3", fresh_name())),
            super::signer(),
        )
        .expect("open the database");
        store.migrate().await.expect("migrate");
        Some(store)
    }
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    use sesame::backends::PostgresStore;
    use sqlx::postgres::{PgPool, PgPoolOptions};

    use super::{env_url, fresh_name, is_stale};

    /// A pool on `SESAME_TEST_POSTGRES_URL`, or `None` (skip) when unset.
    pub(crate) async fn pool() -> Option<PgPool> {
        let url = env_url("postgres")?;
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connect to SESAME_TEST_POSTGRES_URL");
        Some(pool)
    }

    /// A migrated store on a fresh table, or `None` (skip).
    pub(crate) async fn store() -> Option<PostgresStore> {
        let pool = pool().await?;
        drop_stale_tables(&pool).await;
        let store = PostgresStore::new(pool, super::signer()).with_table(fresh_name());
        store.migrate().await.expect("migrate");
        Some(store)
    }

    async fn drop_stale_tables(pool: &PgPool) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables \
             WHERE schemaname = current_schema() AND tablename LIKE 'sesame\\_t\\_%'",
        )
        .fetch_all(pool)
        .await
        .expect("list tables");
        for name in names.iter().filter(|n| is_stale(n)) {
            let _ = sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{name}\""))
                .execute(pool)
                .await;
        }
    }

    /// Drops the table of a store [`store`] made.
    pub(crate) async fn drop_table(store: &PostgresStore) {
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{}\"", store.table()))
            .execute(store.pool())
            .await
            .expect("drop table");
    }
}

#[cfg(feature = "mysql")]
pub(crate) mod mysql {
    use sesame::backends::MySqlStore;
    use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

    use super::{env_url, fresh_name, is_stale};

    /// A pool on `SESAME_TEST_MYSQL_URL`, or `None` (skip) when unset.
    pub(crate) async fn pool() -> Option<MySqlPool> {
        let url = env_url("mysql")?;
        let pool = MySqlPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connect to SESAME_TEST_MYSQL_URL");
        Some(pool)
    }

    /// A migrated store on a fresh table, or `None` (skip).
    pub(crate) async fn store() -> Option<MySqlStore> {
        let pool = pool().await?;
        drop_stale_tables(&pool).await;
        let store = MySqlStore::new(pool, super::signer()).with_table(fresh_name());
        store.migrate().await.expect("migrate");
        Some(store)
    }

    async fn drop_stale_tables(pool: &MySqlPool) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name LIKE 'sesame\\_t\\_%'",
        )
        .fetch_all(pool)
        .await
        .expect("list tables");
        for name in names.iter().filter(|n| is_stale(n)) {
            let _ = sqlx::raw_sql(&format!("DROP TABLE IF EXISTS `{name}`"))
                .execute(pool)
                .await;
        }
    }

    /// Drops the table of a store [`store`] made.
    pub(crate) async fn drop_table(store: &MySqlStore) {
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS `{}`", store.table()))
            .execute(store.pool())
            .await
            .expect("drop table");
    }
}
