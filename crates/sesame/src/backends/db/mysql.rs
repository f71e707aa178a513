//! `MySqlStore`: the `db` engine on MySQL or MariaDB, through sqlx.

use std::fmt;
use std::sync::Arc;

use sqlx::Row;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlRow};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{
    Condition, Statements, Syntax, decode, encode, expire_index_name, parse_datetime,
    to_stored_time,
};
use crate::backends::list::paged;
use crate::backends::{ListSessions, Listed, Record, Saved, SessionStore, Version, create_unique};
use crate::{Error, Result, SessionKey, Signer, codec};

/// MySQL's `ER_DUP_KEYNAME`: the index exists (a concurrent `migrate` made it).
const ER_DUP_KEYNAME: u16 = 1061;

/// Sessions in Django's `django_session` table in MySQL or MariaDB.
///
/// `expire_date` is a `datetime(6)` holding UTC, as Django writes it with
/// `USE_TZ = True`; values are bound as plain UTC datetimes, so the
/// connection's `time_zone` does not matter. Cloning is cheap and clones
/// share the pool.
///
/// A `sql_mode` without `NO_ZERO_IN_DATE` (MariaDB's default), or with
/// `ALLOW_INVALID_DATES`, lets another app store dates that do not exist,
/// such as `2099-00-00` or `2099-02-30`. MySQL compares them digit by
/// digit, so one in a future year is live: [`exists`](SessionStore::exists)
/// is `true`, [`load`](SessionStore::load) is an [`Error::Corrupt`] (the
/// session layer starts a fresh session and logs on `sesame::security`), and
/// an unconditional save overwrites the row with a real date. The zero date
/// `0000-00-00` sorts before every date: expired, never loaded, removed by
/// [`clear_expired`](SessionStore::clear_expired).
///
/// `save` relies on `UPDATE` reporting the rows it *matched*, not only those
/// it changed: sqlx always connects with `CLIENT_FOUND_ROWS`, so saving a
/// session unchanged is a success, not a missing row.
///
/// `session_data` is Django's: the session signed with the [`Signer`] the
/// store was built with (see [`Settings::signer`](crate::Settings::signer)),
/// so a Django app with the same `SECRET_KEY` shares the table both ways.
/// A `session_data` column altered to a binary type (`longblob`) works too;
/// bytes in it that are not UTF-8 load as [`Error::Corrupt`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Signer;
/// use sesame::backends::MySqlStore;
///
/// let store = MySqlStore::connect("mysql://app@localhost/app", Signer::new("SECRET_KEY")).await?;
/// store.migrate().await?; // no-op when Django's migration created the table
/// # Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.db"` with a MySQL or
/// MariaDB `DATABASES` entry.
#[doc(alias = "db")]
#[doc(alias = "django.contrib.sessions.backends.db")]
#[doc(alias = "mariadb")]
#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    table: Arc<str>,
    sql: Arc<Statements>,
    signer: Signer,
}

impl MySqlStore {
    /// A store on an existing pool, using the table `django_session`.
    #[must_use]
    pub fn new(pool: MySqlPool, signer: Signer) -> Self {
        let table = sesame_codec::DB_TABLE;
        Self {
            pool,
            table: table.into(),
            sql: Arc::new(Statements::new(table, &SYNTAX)),
            signer,
        }
    }

    /// Connects a pool with sqlx's default options to `url`
    /// (`mysql://user:password@host/database`).
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
    /// The name is quoted, never interpolated raw.
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
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Creates the session table and its `expire_date` index if they do not
    /// exist, with the DDL Django's migration `sessions.0001_initial` emits
    /// on MySQL. Safe to run on every start, from several processes at once,
    /// and on a table Django created.
    ///
    /// # Errors
    ///
    /// A backend error if the statements fail.
    pub async fn migrate(&self) -> Result<()> {
        let table = &*self.table;
        let index = expire_index_name(table);
        let create_table = format!(
            "CREATE TABLE IF NOT EXISTS {} (`session_key` varchar(40) NOT NULL PRIMARY KEY, \
             `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)",
            quote(table)
        );
        sqlx::raw_sql(&create_table)
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?;

        // MySQL has no `CREATE INDEX IF NOT EXISTS` (MariaDB has): look first,
        // and accept losing a race to another migrating process.
        let has_index = sqlx::query(
            "SELECT 1 FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
        )
        .bind(table)
        .bind(&index)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::backend)?
        .is_some();
        if has_index {
            return Ok(());
        }
        let create_index = format!(
            "CREATE INDEX {} ON {} (`expire_date`)",
            quote(&index),
            quote(table)
        );
        match sqlx::raw_sql(&create_index).execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|e| e.number() == ER_DUP_KEYNAME) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::backend(e)),
        }
    }

    async fn is_live(&self, key: &SessionKey, now: PrimitiveDateTime) -> Result<bool> {
        let row = sqlx::query(&self.sql.exists)
            .bind(key.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(row.is_some())
    }
}

/// Quotes an identifier MySQL's way.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

const SYNTAX: Syntax = Syntax {
    quote,
    param: |_| "?".to_owned(),
    // MySQL's default collations ignore case and trailing spaces; the
    // version check must compare bytes.
    exact: |p| format!("CAST({p} AS BINARY)"),
    // As text, so a date that does not exist (day 0, February 30) is parsed
    // to a `Corrupt` error here rather than failing in sqlx's decoder as a
    // backend error (which the session layer would treat as an outage).
    read_expire: "CAST(expire_date AS CHAR)",
};

/// `at` as a `datetime(6)` value: UTC wall-clock time, whole microseconds.
fn to_datetime(at: OffsetDateTime) -> PrimitiveDateTime {
    let at = to_stored_time(at);
    PrimitiveDateTime::new(at.date(), at.time())
}

fn now() -> PrimitiveDateTime {
    to_datetime(OffsetDateTime::now_utc())
}

fn is_key_taken(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl fmt::Debug for MySqlStore {
    // The pool's options hold the password; only harmless facts are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("table", &self.table)
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl MySqlStore {
    /// The record a `load` or `list_records` row holds (`session_data`,
    /// `CAST(expire_date AS CHAR)`, …).
    fn record_of(&self, row: &MySqlRow) -> Result<Record> {
        // As bytes: a column altered to a binary type may hold anything.
        let stored: &[u8] = row.try_get(0).map_err(Error::backend)?;
        let stored = String::from_utf8(stored.to_vec())
            .map_err(|_| Error::Corrupt(codec::Error::Malformed("session_data is not UTF-8")))?;
        let expire_date: String = row.try_get(1).map_err(Error::backend)?;
        Ok(Record {
            data: decode(&self.signer, &stored)?.into(),
            expires_at: parse_datetime(&expire_date)?,
            version: Some(Version::new(stored)),
        })
    }
}

/// Lists live rows by primary key, 500 per query (with their data, for
/// [`sessions`](ListSessions::sessions)).
impl ListSessions for MySqlStore {
    fn session_keys(&self) -> impl futures_util::Stream<Item = Result<SessionKey>> + Send + '_ {
        paged(String::new(), move |after| async move {
            let raw: Vec<String> = sqlx::query_scalar(&self.sql.list)
                .bind(after)
                .bind(now())
                .fetch_all(&self.pool)
                .await
                .map_err(Error::backend)?;
            Ok(super::list_page(raw))
        })
    }

    fn sessions(&self) -> impl futures_util::Stream<Item = Result<Listed>> + Send + '_ {
        paged(String::new(), move |after| async move {
            let rows = sqlx::query(&self.sql.list_records)
                .bind(after)
                .bind(now())
                .fetch_all(&self.pool)
                .await
                .map_err(Error::backend)?;
            let rows = rows
                .into_iter()
                .map(|row| Ok((row.try_get::<String, _>(2).map_err(Error::backend)?, row)))
                .collect::<Result<Vec<_>>>()?;
            super::records_page(rows, |row| self.record_of(&row))
        })
    }
}

impl SessionStore for MySqlStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let row = sqlx::query(&self.sql.load)
            .bind(key.as_str())
            .bind(now())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?;
        row.map(|row| self.record_of(&row)).transpose()
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let data = encode(&self.signer, &record.data);
        let expire = to_datetime(record.expires_at);
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
        let expire = to_datetime(record.expires_at);
        let now = now();
        let condition = Condition::of(record.version.as_ref());
        // With CLIENT_FOUND_ROWS (always set by sqlx) `rows_affected` counts
        // matched rows, so an UPDATE that writes identical values still
        // reports 1; `identical_save_is_not_missing` in tests/sql_stores.rs
        // guards this.
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
        self.is_live(key, now()).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let updated = sqlx::query(&self.sql.touch)
            .bind(to_datetime(until))
            .bind(key.as_str())
            .bind(now())
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
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?
            .rows_affected();
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn datetimes_are_utc_wall_clock() {
        assert_eq!(
            to_datetime(datetime!(2026-12-09 17:33:41.313_745_9 +01:00)),
            datetime!(2026-12-09 16:33:41.313_745)
        );
    }

    #[test]
    fn version_check_compares_bytes() {
        let sql = Statements::new("django_session", &SYNTAX);
        assert!(
            sql.update_if.contains("session_data = CAST(? AS BINARY)"),
            "{}",
            sql.update_if
        );
        assert_eq!(quote("a`b"), "`a``b`");
    }
}
