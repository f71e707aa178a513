//! `PostgresStore`: the `db` engine on PostgreSQL, through sqlx.

use std::fmt;
use std::sync::Arc;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;

use super::{
    Condition, Statements, Syntax, decode, encode, expire_index_name, quote_ansi, to_stored_time,
};
use crate::backends::list::paged;
use crate::backends::{ListSessions, Listed, Record, Saved, SessionStore, Version, create_unique};
use crate::{Error, Result, SessionKey, Signer, codec};

/// The advisory lock `migrate` holds, so concurrent migrations (several
/// replicas starting at once) do not race on `CREATE TABLE IF NOT EXISTS`.
const MIGRATE_LOCK: i64 = 0x5345_5341_4d45; // "SESAME"

/// Sessions in Django's `django_session` table in PostgreSQL.
///
/// `expire_date` is a `timestamp with time zone`, compared with the
/// application's clock (passed as a parameter), so a Django app can share the
/// table. Cloning is cheap and clones share the pool.
///
/// `session_data` is Django's: the session signed with the [`Signer`] the
/// store was built with (see [`Settings::signer`](crate::Settings::signer)),
/// so a Django app with the same `SECRET_KEY` shares the table both ways.
///
/// A row's `expire_date` may hold what no Rust date can: `'infinity'` (an
/// admin's "never expires") or a year past 9999. Such a row is live, and
/// loads with [`Record::expires_at`] clamped to the last microsecond of year
/// 9999 (UTC); saving or touching it writes a real date. A row at
/// `'-infinity'` is expired like any past date: never loaded, removed by
/// [`clear_expired`](SessionStore::clear_expired).
///
/// A `session_data` the server cannot send as UTF-8 (bytes another app
/// wrote into a `SQL_ASCII` database) loads as [`Error::Corrupt`]: the
/// session layer starts an empty session and its next save replaces the row.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Signer;
/// use sesame::backends::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://app@localhost/app", Signer::new("SECRET_KEY")).await?;
/// store.migrate().await?; // no-op when Django's migration created the table
/// # Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.db"` with a
/// PostgreSQL `DATABASES` entry.
#[doc(alias = "db")]
#[doc(alias = "django.contrib.sessions.backends.db")]
#[doc(alias = "postgresql")]
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: Arc<str>,
    sql: Arc<Statements>,
    signer: Signer,
}

impl PostgresStore {
    /// A store on an existing pool, using the table `django_session`.
    #[must_use]
    pub fn new(pool: PgPool, signer: Signer) -> Self {
        let table = sesame_codec::DB_TABLE;
        Self {
            pool,
            table: table.into(),
            sql: Arc::new(Statements::new(table, &SYNTAX)),
            signer,
        }
    }

    /// Connects a pool with sqlx's default options to `url`
    /// (`postgres://user:password@host/database`).
    ///
    /// # Errors
    ///
    /// A backend error if the URL is invalid, or the server cannot be
    /// reached, refuses the login or does not answer within 5 s (the error
    /// says which). Once connected, the pool opens connections as requests
    /// need them.
    pub async fn connect(url: &str, signer: Signer) -> Result<Self> {
        let pool = super::connect_pool(url).await?;
        Ok(Self::new(pool, signer))
    }

    /// Uses the table `name` instead of Django's `django_session` (Django's
    /// `SessionStore.get_model_class()` with a custom `db_table`).
    ///
    /// The name is quoted, never interpolated raw; it names a table in the
    /// connection's `search_path`.
    #[must_use]
    pub fn with_table(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.sql = Arc::new(Statements::new(&name, &SYNTAX));
        self.table = name.into();
        self
    }

    /// The name of the session table.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the session table and its indexes if they do not exist, with
    /// the DDL Django's migration `sessions.0001_initial` emits on
    /// PostgreSQL. Safe to run on every start, from several processes at
    /// once, and on a table Django created.
    ///
    /// # Errors
    ///
    /// A backend error if the statements fail.
    pub async fn migrate(&self) -> Result<()> {
        let table = &*self.table;
        let like_index = if table == sesame_codec::DB_TABLE {
            "django_session_session_key_c0390e0f_like".to_owned()
        } else {
            format!("{table}_session_key_like")
        };
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
             \"session_data\" text NOT NULL, \"expire_date\" timestamp with time zone NOT NULL);\n\
             CREATE INDEX IF NOT EXISTS {like} ON {t} (\"session_key\" varchar_pattern_ops);\n\
             CREATE INDEX IF NOT EXISTS {expire} ON {t} (\"expire_date\");",
            t = quote_ansi(table),
            like = quote_ansi(&like_index),
            expire = quote_ansi(&expire_index_name(table)),
        );
        let mut tx = self.pool.begin().await.map_err(Error::backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(Error::backend)?;
        sqlx::raw_sql(&ddl)
            .execute(&mut *tx)
            .await
            .map_err(Error::backend)?;
        tx.commit().await.map_err(Error::backend)
    }

    async fn is_live(&self, key: &SessionKey, now: OffsetDateTime) -> Result<bool> {
        let row = sqlx::query(&self.sql.exists)
            .bind(key.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(row.is_some())
    }
}

const SYNTAX: Syntax = Syntax {
    quote: quote_ansi,
    param: |n| format!("${n}"),
    exact: |p| p,
    // `timestamptz` reaches year 294276 and `'infinity'`; sqlx's decoder
    // panics past `time`'s year 9999 (sqlx-postgres 0.8.6,
    // types/time/datetime.rs). `load` only returns rows later than now, so
    // only the upper end needs a bound (`'-infinity'` is never selected).
    read_expire: "LEAST(expire_date, TIMESTAMPTZ '9999-12-31 23:59:59.999999+00')",
};

fn is_key_taken(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// The row holds bytes the server cannot convert to the connection's
/// encoding (SQLSTATE 22021, `character_not_in_repertoire`).
fn is_not_in_client_encoding(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.code().as_deref() == Some("22021"))
}

impl fmt::Debug for PostgresStore {
    // The pool's options hold the password; only harmless facts are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The record a `load` or `list_records` row holds (`session_data`,
    /// the clamped `expire_date`, …).
    fn record_of(&self, row: &PgRow) -> Result<Record> {
        let stored: String = row.try_get(0).map_err(Error::backend)?;
        let expires_at: OffsetDateTime = row.try_get(1).map_err(Error::backend)?;
        Ok(Record {
            data: decode(&self.signer, &stored)?.into(),
            expires_at,
            version: Some(Version::new(stored)),
        })
    }

    /// One page of keys after `after`, as `session_keys` lists them.
    async fn key_page(&self, after: String) -> Result<(Vec<SessionKey>, Option<String>)> {
        let raw: Vec<String> = sqlx::query_scalar(&self.sql.list)
            .bind(after)
            .bind(OffsetDateTime::now_utc())
            .fetch_all(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(super::list_page(raw))
    }

    /// One page of sessions after `after`, with their records. A page
    /// holding a row the server cannot send as UTF-8 fails as a whole
    /// (SQLSTATE 22021): that page's keys are then loaded one by one, so
    /// only the bad row is listed as corrupt. (A `session_key` that is not
    /// UTF-8 fails the keys' query too: the listing ends with that error.)
    async fn session_page(&self, after: String) -> Result<(Vec<Listed>, Option<String>)> {
        let rows = sqlx::query(&self.sql.list_records)
            .bind(&after)
            .bind(OffsetDateTime::now_utc())
            .fetch_all(&self.pool)
            .await;
        match rows {
            Ok(rows) => {
                let rows = rows
                    .into_iter()
                    .map(|row| Ok((row.try_get::<String, _>(2).map_err(Error::backend)?, row)))
                    .collect::<Result<Vec<_>>>()?;
                super::records_page(rows, |row| self.record_of(&row))
            }
            Err(e) if is_not_in_client_encoding(&e) => {
                let (keys, next) = self.key_page(after).await?;
                let mut listed = Vec::with_capacity(keys.len());
                for key in keys {
                    match self.load(&key).await {
                        Ok(record) => listed.push((key, Ok(record))),
                        Err(e @ Error::Corrupt(_)) => listed.push((key, Err(e))),
                        Err(e) => return Err(e),
                    }
                }
                Ok((listed, next))
            }
            Err(e) => Err(Error::backend(e)),
        }
    }
}

/// Lists live rows by primary key, 500 per query (with their data, for
/// [`sessions`](ListSessions::sessions)).
impl ListSessions for PostgresStore {
    fn session_keys(&self) -> impl futures_util::Stream<Item = Result<SessionKey>> + Send + '_ {
        paged(String::new(), move |after| self.key_page(after))
    }

    fn sessions(&self) -> impl futures_util::Stream<Item = Result<Listed>> + Send + '_ {
        paged(String::new(), move |after| self.session_page(after))
    }
}

impl SessionStore for PostgresStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let row = sqlx::query(&self.sql.load)
            .bind(key.as_str())
            .bind(OffsetDateTime::now_utc())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| {
                if is_not_in_client_encoding(&e) {
                    Error::Corrupt(codec::Error::Malformed("session_data is not UTF-8"))
                } else {
                    Error::backend(e)
                }
            })?;
        row.map(|row| self.record_of(&row)).transpose()
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let data = encode(&self.signer, &record.data);
        let expire = to_stored_time(record.expires_at);
        create_unique(|key| {
            let data = &data;
            async move {
                match sqlx::query(&self.sql.insert)
                    .bind(key.as_str())
                    .bind(data)
                    .bind(expire)
                    .execute(&self.pool)
                    .await
                {
                    Ok(_) => Ok(Saved {
                        key,
                        version: Version::new(data.clone()),
                    }),
                    Err(e) if is_key_taken(&e) => Err(Error::KeyCollision),
                    Err(e) => Err(Error::backend(e)),
                }
            }
        })
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let data = encode(&self.signer, &record.data);
        let expire = to_stored_time(record.expires_at);
        let now = OffsetDateTime::now_utc();
        let condition = Condition::of(record.version.as_ref());
        let updated = match condition {
            Condition::Unconditional => {
                sqlx::query(&self.sql.update)
                    .bind(&data)
                    .bind(expire)
                    .bind(key.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await
            }
            Condition::DataIs(old) => {
                sqlx::query(&self.sql.update_if)
                    .bind(&data)
                    .bind(expire)
                    .bind(key.as_str())
                    .bind(old)
                    .bind(now)
                    .execute(&self.pool)
                    .await
            }
            Condition::NeverMatches => Ok(Default::default()),
        }
        .map_err(Error::backend)?
        .rows_affected();
        if updated > 0 {
            return Ok(Saved {
                key: key.clone(),
                version: Version::new(data),
            });
        }
        if matches!(condition, Condition::Unconditional) || !self.is_live(key, now).await? {
            return Err(Error::Missing);
        }
        Err(Error::Conflict)
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        sqlx::query(&self.sql.delete)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        self.is_live(key, OffsetDateTime::now_utc()).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let updated = sqlx::query(&self.sql.touch)
            .bind(to_stored_time(until))
            .bind(key.as_str())
            .bind(OffsetDateTime::now_utc())
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?
            .rows_affected();
        if updated == 0 {
            return Err(Error::Missing);
        }
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64> {
        let deleted = sqlx::query(&self.sql.clear_expired)
            .bind(OffsetDateTime::now_utc())
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?
            .rows_affected();
        Ok(deleted)
    }
}
