//! The `db` engine: sessions in Django's `django_session` table, on SQLite,
//! PostgreSQL or MySQL / MariaDB.
//!
//! Every store here runs the same statements against the same table, so a
//! Django app and a Rust service can share it:
//!
//! - `load` and `exists` select only rows with `expire_date > now`;
//! - `load` reads `expire_date` through an expression of the dialect's
//!   (`Syntax::read_expire`), so a value another app wrote (PostgreSQL's
//!   `'infinity'`, a MySQL date with day 0, a blob in SQLite) is clamped or
//!   reported as corrupt, never a panic or a backend error;
//! - `create` is a plain `INSERT` (a primary-key violation is a key collision);
//! - `save` is an `UPDATE` guarded by the `session_data` it last read (the
//!   record's [`Version`](super::Version) is that text), and never inserts;
//! - `now` is always the application's UTC clock, passed as a parameter, never
//!   the database's `now()` (Django does the same: on SQLite `expire_date` is
//!   text and the comparison is a text comparison).
//!
//! This module holds what the dialects share: the statements, identifier
//! quoting and time truncation.

use sesame_codec::{DB_SALT, SessionMap, Signer};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::Version;
use super::list::{LIST_PAGE, parse_listed};
use crate::{Result, SessionKey};

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// The name of the `expire_date` index Django's migration `sessions.0001_initial`
/// creates on `django_session`.
const DJANGO_EXPIRE_INDEX: &str = "django_session_expire_date_a5c62663";

/// The name of the `expire_date` index for `table`: Django's own for
/// `django_session`, a derived one for any other table.
fn expire_index_name(table: &str) -> String {
    if table == sesame_codec::DB_TABLE {
        DJANGO_EXPIRE_INDEX.to_owned()
    } else {
        format!("{table}_expire_date_idx")
    }
}

/// `at` in UTC, cut to whole microseconds: the precision Django and every
/// database here keep, so what we write is exactly what we read back.
fn to_stored_time(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(UtcOffset::UTC);
    at - Duration::nanoseconds(i64::from(at.nanosecond() % 1_000))
}

/// `session_data` as Django's `db` engine writes it: the session signed with
/// `SECRET_KEY` under the `SessionStore` salt, compressed when that is shorter.
fn encode(signer: &Signer, data: &SessionMap) -> String {
    signer.dumps_session(data, DB_SALT, OffsetDateTime::now_utc())
}

/// Reads `session_data` written by Django or by us, under `SECRET_KEY` or any
/// fallback key; the `db` engine puts no age limit on the signature.
fn decode(signer: &Signer, stored: &str) -> Result<SessionMap> {
    Ok(signer.loads_session(stored, DB_SALT, None, OffsetDateTime::now_utc())?)
}

/// The guard a `save` puts on the row it updates.
enum Condition<'a> {
    /// `record.version` is `None`: write whatever is stored.
    Unconditional,
    /// Write only while `session_data` is still exactly this text.
    DataIs(&'a str),
    /// The record's version is not text, so no stored `session_data` can
    /// match it: the save is a conflict (or missing) without writing.
    NeverMatches,
}

impl<'a> Condition<'a> {
    /// The guard for a record read at `version`.
    fn of(version: Option<&'a Version>) -> Self {
        match version {
            None => Self::Unconditional,
            Some(version) => version.as_str().map_or(Self::NeverMatches, Self::DataIs),
        }
    }
}

/// How one SQL dialect spells identifiers and parameters.
struct Syntax {
    /// Quotes an identifier.
    quote: fn(&str) -> String,
    /// The `n`-th (1-based) bind parameter.
    param: fn(usize) -> String,
    /// Wraps a parameter so that comparing `session_data` with it is byte for
    /// byte (MySQL's default collations ignore case and trailing spaces).
    exact: fn(String) -> String,
    /// What `load` selects to read `expire_date`: an expression that turns
    /// every value the column can hold into one the store decodes without
    /// panicking (the `time` crate stops at year 9999, a database may not).
    read_expire: &'static str,
}

/// The statements a store runs, built once per table.
///
/// Parameter order (each statement binds in this order):
///
/// | statement | parameters |
/// |---|---|
/// | `load`, `exists` | key, now |
/// | `insert` | key, data, expire |
/// | `update_if` | data, expire, key, expected data, now |
/// | `update` | data, expire, key, now |
/// | `touch` | expire, key, now |
/// | `delete` | key |
/// | `clear_expired` | now |
/// | `list`, `list_records` | after (a key), now |
#[derive(Debug)]
struct Statements {
    load: String,
    exists: String,
    insert: String,
    update_if: String,
    update: String,
    touch: String,
    delete: String,
    clear_expired: String,
    /// One page of live keys after a key, in key order ([`LIST_PAGE`] rows).
    list: String,
    /// The same page with each row's data and expiry, in `load`'s column
    /// order (`session_data`, expiry, then `session_key`).
    list_records: String,
}

impl Statements {
    fn new(table: &str, syntax: &Syntax) -> Self {
        let t = (syntax.quote)(table);
        let p = syntax.param;
        let live = |key: usize, now: usize| {
            format!("session_key = {} AND expire_date > {}", p(key), p(now))
        };
        Self {
            load: format!(
                "SELECT session_data, {} FROM {t} WHERE {}",
                syntax.read_expire,
                live(1, 2)
            ),
            exists: format!("SELECT 1 FROM {t} WHERE {}", live(1, 2)),
            insert: format!(
                "INSERT INTO {t} (session_key, session_data, expire_date) VALUES ({}, {}, {})",
                p(1),
                p(2),
                p(3)
            ),
            update_if: format!(
                "UPDATE {t} SET session_data = {}, expire_date = {} \
                 WHERE session_key = {} AND session_data = {} AND expire_date > {}",
                p(1),
                p(2),
                p(3),
                (syntax.exact)(p(4)),
                p(5)
            ),
            update: format!(
                "UPDATE {t} SET session_data = {}, expire_date = {} WHERE {}",
                p(1),
                p(2),
                live(3, 4)
            ),
            touch: format!("UPDATE {t} SET expire_date = {} WHERE {}", p(1), live(2, 3)),
            delete: format!("DELETE FROM {t} WHERE session_key = {}", p(1)),
            clear_expired: format!("DELETE FROM {t} WHERE expire_date < {}", p(1)),
            list: format!(
                "SELECT session_key FROM {t} WHERE session_key > {} AND expire_date > {} \
                 ORDER BY session_key LIMIT {LIST_PAGE}",
                p(1),
                p(2)
            ),
            list_records: format!(
                "SELECT session_data, {}, session_key FROM {t} \
                 WHERE session_key > {} AND expire_date > {} ORDER BY session_key LIMIT {LIST_PAGE}",
                syntax.read_expire,
                p(1),
                p(2)
            ),
        }
    }
}

/// One page of listed rows: the session keys among `raw` (other names
/// skipped) and the key to list after next, `None` once a page is short.
fn list_page<K: AsRef<[u8]>>(raw: Vec<K>) -> (Vec<SessionKey>, Option<K>) {
    let full = raw.len() >= LIST_PAGE;
    let keys = raw
        .iter()
        .filter_map(|k| parse_listed(k.as_ref()))
        .collect();
    (keys, if full { raw.into_iter().last() } else { None })
}

/// One page of listed rows with their records: the sessions among them
/// (rows whose key is not a session key skipped) and the key to list after
/// next, `None` once a page is short. `record` reads one row; a
/// [`Corrupt`](crate::Error::Corrupt) row is listed with its error, any
/// other error fails the page.
fn records_page<K: AsRef<[u8]>, R>(
    rows: Vec<(K, R)>,
    mut record: impl FnMut(R) -> Result<super::Record>,
) -> Result<(Vec<super::Listed>, Option<K>)> {
    let full = rows.len() >= LIST_PAGE;
    let mut listed = Vec::with_capacity(rows.len());
    let mut last = None;
    for (raw, row) in rows {
        if let Some(key) = parse_listed(raw.as_ref()) {
            match record(row) {
                Ok(r) => listed.push((key, Ok(Some(r)))),
                Err(e @ crate::Error::Corrupt(_)) => listed.push((key, Err(e))),
                Err(e) => return Err(e),
            }
        }
        last = Some(raw);
    }
    Ok((listed, if full { last } else { None }))
}

/// Reads an `expire_date` as text: Django's layout on SQLite (which
/// `SqliteStore` writes too), and MySQL's `CAST(expire_date AS CHAR)`.
///
/// Anything else is [`Datetime`](sesame_codec::Error::Datetime): another
/// layout, an impossible date (MySQL keeps `2099-02-30` or `2099-00-00` when
/// its `sql_mode` allows them), or garbage.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn parse_datetime(text: &str) -> Result<OffsetDateTime, sesame_codec::Error> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, FORMAT)
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|_| sesame_codec::Error::Datetime)
}

/// Quotes an identifier the ANSI way (SQLite, PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn quote_ansi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How long [`connect_pool`] waits for the first connection.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A pool on `url` with sqlx's default options, once one connection has
/// been made: an unreachable server, a refused login or a server that never
/// answers fails within [`CONNECT_TIMEOUT`] with its own error, where
/// sqlx's `Pool::connect` retries for 30 s and reports only "pool timed out".
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn connect_pool<DB: sqlx::Database>(url: &str) -> Result<sqlx::Pool<DB>> {
    use sqlx::{ConnectOptions, Connection};

    let options: <DB::Connection as Connection>::Options =
        url.parse().map_err(crate::Error::backend)?;
    let first = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| {
            crate::Error::backend(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the database did not answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ))
        })?
        .map_err(crate::Error::backend)?;
    // A session store opens its connections as requests need them; the
    // first one only proved the server is there.
    drop(first);
    Ok(sqlx::pool::PoolOptions::<DB>::new().connect_lazy_with(options))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn stored_time_is_utc_and_whole_microseconds() {
        let at = datetime!(2026-12-09 17:33:41.313_745_999 +01:00);
        assert_eq!(
            to_stored_time(at),
            datetime!(2026-12-09 16:33:41.313_745 UTC)
        );
        assert_eq!(to_stored_time(at).offset(), UtcOffset::UTC);
    }

    #[test]
    fn django_table_keeps_django_index_name() {
        assert_eq!(
            expire_index_name("django_session"),
            "django_session_expire_date_a5c62663"
        );
        assert_eq!(expire_index_name("sessions"), "sessions_expire_date_idx");
    }

    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    #[test]
    fn stored_datetimes_parse_back() {
        for (text, at) in [
            // Django on SQLite: microseconds only when not 0.
            (
                "2026-12-09 16:33:41.313745",
                datetime!(2026-12-09 16:33:41.313_745 UTC),
            ),
            ("2023-11-28 22:13:20", datetime!(2023-11-28 22:13:20 UTC)),
            // MySQL's `CAST(datetime(6) AS CHAR)`: always six digits.
            (
                "2099-06-01 12:00:00.000000",
                datetime!(2099-06-01 12:00:00 UTC),
            ),
            (
                "9999-12-31 23:59:59.999999",
                datetime!(9999-12-31 23:59:59.999_999 UTC),
            ),
        ] {
            assert_eq!(parse_datetime(text), Ok(at), "{text}");
        }
    }

    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    #[test]
    fn impossible_or_foreign_datetimes_are_corrupt() {
        for text in [
            "2023-11-28T22:13:20Z",
            "tomorrow",
            "",
            // MySQL's zero date and zero-in-date, and an invalid day
            // (`sql_mode` without NO_ZERO_DATE, NO_ZERO_IN_DATE, or with
            // ALLOW_INVALID_DATES).
            "0000-00-00 00:00:00.000000",
            "2099-00-00 00:00:00.000000",
            "2099-02-30 12:00:00.000000",
            // Past what a date holds.
            "10000-01-01 00:00:00",
        ] {
            assert_eq!(
                parse_datetime(text),
                Err(sesame_codec::Error::Datetime),
                "{text}"
            );
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ansi("django_session"), "\"django_session\"");
        assert_eq!(quote_ansi("a\"b"), "\"a\"\"b\"");
    }
}
