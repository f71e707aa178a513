//! `SqliteStore`: the `db` engine on an SQLite file, through rusqlite.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi, params};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{Condition, Statements, Syntax, expire_index_name, quote_ansi, to_stored_time};
use crate::backends::{Record, Saved, SessionStore, Version, create_unique};
use crate::{Error, Result, SessionKey};

/// How long a connection waits for a lock another process holds (a Django
/// app sharing the file, a backup) before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sessions in Django's `django_session` table in an SQLite database: the
/// embedded default store.
///
/// The store is built for many concurrent requests on one file:
///
/// - the database runs in WAL mode with `synchronous=NORMAL`, so readers never
///   wait for the writer and a commit costs no `fsync`;
/// - every write goes through **one** writer connection, so writers never
///   contend for SQLite's lock and "database is locked" cannot reach a request
///   (a lock held by another process is waited for up to 5 seconds);
/// - reads go to a small pool of reader connections;
/// - each call runs on Tokio's blocking pool (`spawn_blocking`), with cached
///   prepared statements.
///
/// Cloning is cheap and clones share the connections.
///
/// `expire_date` is stored as Django stores it on SQLite: UTC text in the
/// form `YYYY-MM-DD HH:MM:SS[.ffffff]`, so a Django app can share the table.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::backends::{Record, SessionStore, SqliteStore};
/// use time::{Duration, OffsetDateTime};
///
/// let store = SqliteStore::open_in_memory()?; // or SqliteStore::open("sessions.sqlite3")?
/// store.migrate().await?;
///
/// let record = Record::new(Default::default(), OffsetDateTime::now_utc() + Duration::hours(1));
/// let saved = store.create(&record).await?;
/// assert!(store.exists(&saved.key).await?);
/// # Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.db"` with an SQLite
/// `DATABASES` entry.
#[doc(alias = "db")]
#[doc(alias = "django.contrib.sessions.backends.db")]
#[derive(Clone)]
pub struct SqliteStore {
    conns: Arc<Connections>,
    table: Arc<str>,
    sql: Arc<Statements>,
}

struct Connections {
    /// Every `INSERT`, `UPDATE` and `DELETE` runs here.
    writer: Mutex<Connection>,
    /// `SELECT`s run here; empty when the writer also serves reads.
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// The path or `:memory:`, for `Debug`.
    location: String,
}

impl SqliteStore {
    /// A store over one connection the caller configured: every read and
    /// write uses it, and its settings are left as they are.
    ///
    /// [`open`](Self::open) is the fast choice for a file; this one suits a
    /// connection set up with custom options.
    #[must_use]
    pub fn new(conn: Connection) -> Self {
        let location = conn.path().unwrap_or(":memory:").to_owned();
        Self::from_connections(Connections {
            writer: Mutex::new(conn),
            readers: Box::new([]),
            next_reader: AtomicUsize::new(0),
            location,
        })
    }

    /// Opens (creating if needed) the SQLite database at `path`, in WAL mode,
    /// with one writer connection and a few reader connections.
    ///
    /// Run [`migrate`](Self::migrate) once to create the table if no Django
    /// migration has.
    ///
    /// # Errors
    ///
    /// A backend error if the file cannot be opened or switched to WAL mode.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let writer = Connection::open(path).map_err(Error::backend)?;
        configure(&writer).map_err(Error::backend)?;
        // WAL mode is a property of the file: set once by the writer, every
        // later connection uses it.
        writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(Error::backend)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(Error::backend)?;

        let count = std::thread::available_parallelism()
            .map_or(2, NonZeroUsize::get)
            .clamp(2, 4);
        let readers = (0..count)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<Box<[_]>>>()
            .map_err(Error::backend)?;

        Ok(Self::from_connections(Connections {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            location: path.display().to_string(),
        }))
    }

    /// A store in a private in-memory database, for tests and examples: its
    /// sessions vanish with the last clone.
    ///
    /// # Errors
    ///
    /// A backend error if SQLite cannot allocate the database.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(Error::backend)?;
        Ok(Self::new(conn))
    }

    /// Opens the database a URL names: `sqlite://PATH`, `sqlite:PATH`, a bare
    /// path, or `sqlite::memory:` (also `:memory:`) for an in-memory database.
    ///
    /// A query string (`?mode=rwc`) is ignored: the file is always created
    /// if missing. Runs [`open`](Self::open) on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// let store = sesame::backends::SqliteStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A backend error if the URL names no path or the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self> {
        match parse_url(url) {
            Target::Memory => Self::open_in_memory(),
            Target::File(path) => {
                let path = path.to_owned();
                blocking(move || Self::open(path)).await
            }
            Target::Invalid => Err(Error::backend("an SQLite URL must name a path or :memory:")),
        }
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

    /// Creates the session table and its `expire_date` index if they do not
    /// exist, with the DDL Django's migration `sessions.0001_initial` emits
    /// on SQLite. Safe to run on every start, and on a table Django created.
    ///
    /// # Errors
    ///
    /// A backend error if the statements fail.
    pub async fn migrate(&self) -> Result<()> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
             \"session_data\" text NOT NULL, \"expire_date\" datetime NOT NULL);\n\
             CREATE INDEX IF NOT EXISTS {i} ON {t} (\"expire_date\");",
            t = quote_ansi(&self.table),
            i = quote_ansi(&expire_index_name(&self.table)),
        );
        let conns = Arc::clone(&self.conns);
        blocking(move || {
            let mut conn = conns.writer();
            let tx = conn.transaction().map_err(Error::backend)?;
            tx.execute_batch(&ddl).map_err(Error::backend)?;
            tx.commit().map_err(Error::backend)
        })
        .await
    }

    fn from_connections(conns: Connections) -> Self {
        let table = sesame_codec::DB_TABLE;
        Self {
            conns: Arc::new(conns),
            table: table.into(),
            sql: Arc::new(Statements::new(table, &SYNTAX)),
        }
    }

    /// Runs `f` on a reader connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Statements) -> rusqlite::Result<T> + Send + 'static,
    {
        let conns = Arc::clone(&self.conns);
        let sql = Arc::clone(&self.sql);
        blocking(move || f(&conns.reader(), &sql).map_err(Error::backend)).await
    }

    /// Runs `f` on the writer connection, on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Statements) -> Result<T> + Send + 'static,
    {
        let conns = Arc::clone(&self.conns);
        let sql = Arc::clone(&self.sql);
        blocking(move || f(&conns.writer(), &sql)).await
    }
}

impl Connections {
    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// A free reader if there is one, else waits for the next in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.writer();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return conn,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.readers[start % n])
    }
}

/// Locks a connection. A panic while it was held cannot leave it half-used:
/// statements reset when dropped and a transaction rolls back, so a poisoned
/// lock is still safe to use.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Runs blocking SQLite work on Tokio's blocking pool, or in place outside a
/// Tokio runtime.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn_blocking(f).await.map_err(Error::backend)?,
        Err(_) => f(),
    }
}

const SYNTAX: Syntax = Syntax {
    quote: quote_ansi,
    param: |n| format!("?{n}"),
    exact: |p| p,
};

enum Target<'a> {
    Memory,
    File(&'a str),
    Invalid,
}

fn parse_url(url: &str) -> Target<'_> {
    let path = match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(rest) => rest.split_once('?').map_or(rest, |(path, _)| path),
        None => url,
    };
    match path {
        "" => Target::Invalid,
        ":memory:" => Target::Memory,
        path => Target::File(path),
    }
}

/// `at` as Django writes a datetime on SQLite: UTC, `YYYY-MM-DD HH:MM:SS`,
/// then `.ffffff` unless the microseconds are 0 (Python's `str(datetime)`).
fn format_datetime(at: OffsetDateTime) -> String {
    let at = to_stored_time(at);
    let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
    let (hour, minute, second, micro) = at.to_hms_micro();
    if micro == 0 {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micro:06}")
    }
}

/// Reads an `expire_date` Django (or [`format_datetime`]) wrote.
fn parse_datetime(text: &str) -> Result<OffsetDateTime, sesame_codec::Error> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(text, FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| sesame_codec::Error::Datetime)
}

fn is_key_taken(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn now() -> String {
    format_datetime(OffsetDateTime::now_utc())
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.conns.location)
            .field("table", &self.table)
            .field("readers", &self.conns.readers.len())
            .finish()
    }
}

impl SessionStore for SqliteStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let key = *key;
        let now = now();
        let row = self
            .read(move |conn, sql| {
                conn.prepare_cached(&sql.load)?
                    .query_row(params![key.as_str(), now], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                    })
                    .optional()
            })
            .await?;
        let Some((stored, expire_date)) = row else {
            return Ok(None);
        };
        Ok(Some(Record {
            data: sesame_codec::decode_session_data(&stored)?,
            expires_at: parse_datetime(&expire_date)?,
            version: Some(Version::new(stored)),
        }))
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let data = sesame_codec::encode_session_data(&record.data);
        let expire = format_datetime(record.expires_at);
        create_unique(|key| {
            let (data, expire) = (data.clone(), expire.clone());
            self.write(move |conn, sql| {
                let mut insert = conn.prepare_cached(&sql.insert).map_err(Error::backend)?;
                match insert.execute(params![key.as_str(), data, expire]) {
                    Ok(_) => Ok(Saved {
                        key,
                        version: Version::new(data),
                    }),
                    Err(e) if is_key_taken(&e) => Err(Error::KeyCollision),
                    Err(e) => Err(Error::backend(e)),
                }
            })
        })
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let key = *key;
        let data = sesame_codec::encode_session_data(&record.data);
        let expire = format_datetime(record.expires_at);
        let version = record.version.clone();
        let now = now();
        self.write(move |conn, sql| {
            let k = key.as_str();
            let condition = Condition::of(version.as_ref());
            let updated = match condition {
                Condition::Unconditional => conn
                    .prepare_cached(&sql.update)
                    .and_then(|mut s| s.execute(params![data, expire, k, now])),
                Condition::DataIs(old) => conn
                    .prepare_cached(&sql.update_if)
                    .and_then(|mut s| s.execute(params![data, expire, k, old, now])),
                Condition::NeverMatches => Ok(0),
            }
            .map_err(Error::backend)?;
            if updated > 0 {
                return Ok(Saved {
                    key,
                    version: Version::new(data),
                });
            }
            if matches!(condition, Condition::Unconditional) {
                return Err(Error::Missing);
            }
            // Same connection, same lock: no write can slip in between.
            let live = conn
                .prepare_cached(&sql.exists)
                .and_then(|mut s| s.exists(params![k, now]))
                .map_err(Error::backend)?;
            Err(if live {
                Error::Conflict
            } else {
                Error::Missing
            })
        })
        .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        let key = *key;
        self.write(move |conn, sql| {
            conn.prepare_cached(&sql.delete)
                .and_then(|mut s| s.execute(params![key.as_str()]))
                .map(drop)
                .map_err(Error::backend)
        })
        .await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        let key = *key;
        let now = now();
        self.read(move |conn, sql| {
            conn.prepare_cached(&sql.exists)?
                .exists(params![key.as_str(), now])
        })
        .await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let key = *key;
        let expire = format_datetime(until);
        let now = now();
        self.write(move |conn, sql| {
            let updated = conn
                .prepare_cached(&sql.touch)
                .and_then(|mut s| s.execute(params![expire, key.as_str(), now]))
                .map_err(Error::backend)?;
            if updated == 0 {
                return Err(Error::Missing);
            }
            Ok(())
        })
        .await
    }

    async fn clear_expired(&self) -> Result<u64> {
        let now = now();
        self.write(move |conn, sql| {
            conn.prepare_cached(&sql.clear_expired)
                .and_then(|mut s| s.execute(params![now]))
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
                .map_err(Error::backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn datetimes_are_written_as_django_writes_them_on_sqlite() {
        assert_eq!(
            format_datetime(datetime!(2026-12-09 16:33:41.313_745 UTC)),
            "2026-12-09 16:33:41.313745"
        );
        assert_eq!(
            format_datetime(datetime!(2023-11-28 22:13:20 UTC)),
            "2023-11-28 22:13:20"
        );
        assert_eq!(
            format_datetime(datetime!(2023-11-28 23:13:20.000_001_9 +01:00)),
            "2023-11-28 22:13:20.000001"
        );
        // Nanoseconds below a microsecond are dropped, not rounded up into
        // a microsecond that was never written.
        assert_eq!(
            format_datetime(datetime!(2023-11-28 22:13:20.000_000_999 UTC)),
            "2023-11-28 22:13:20"
        );
    }

    #[test]
    fn django_datetimes_parse_back() {
        for (text, at) in [
            (
                "2026-12-09 16:33:41.313745",
                datetime!(2026-12-09 16:33:41.313_745 UTC),
            ),
            ("2023-11-28 22:13:20", datetime!(2023-11-28 22:13:20 UTC)),
        ] {
            assert_eq!(parse_datetime(text), Ok(at));
            assert_eq!(format_datetime(at), text);
        }
        assert!(parse_datetime("2023-11-28T22:13:20Z").is_err());
        assert!(parse_datetime("tomorrow").is_err());
    }

    #[test]
    fn text_order_is_time_order() {
        // SQLite compares `expire_date > ?` as text; the layout must sort
        // like the instants it encodes, with and without microseconds.
        let times = [
            datetime!(2023-11-28 22:13:19.999_999 UTC),
            datetime!(2023-11-28 22:13:20 UTC),
            datetime!(2023-11-28 22:13:20.000_001 UTC),
            datetime!(2023-11-28 22:13:20.5 UTC),
            datetime!(2023-11-28 22:13:21 UTC),
        ];
        for pair in times.windows(2) {
            assert!(
                format_datetime(pair[0]) < format_datetime(pair[1]),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn urls_name_a_path_or_memory() {
        assert!(matches!(parse_url("sqlite::memory:"), Target::Memory));
        assert!(matches!(parse_url(":memory:"), Target::Memory));
        assert!(matches!(
            parse_url("sqlite:///var/db/s.sqlite3"),
            Target::File("/var/db/s.sqlite3")
        ));
        assert!(matches!(
            parse_url("sqlite://s.sqlite3?mode=rwc"),
            Target::File("s.sqlite3")
        ));
        assert!(matches!(
            parse_url("sqlite:s.sqlite3"),
            Target::File("s.sqlite3")
        ));
        assert!(matches!(
            parse_url("data/s.sqlite3"),
            Target::File("data/s.sqlite3")
        ));
        assert!(matches!(parse_url("sqlite://"), Target::Invalid));
    }
}
