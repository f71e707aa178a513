//! `SqliteStore`: the `db` engine on an SQLite file, through rusqlite.

use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi, params};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::{
    Condition, Statements, Syntax, decode, encode, expire_index_name, parse_datetime, quote_ansi,
    to_stored_time,
};
use crate::backends::list::paged;
use crate::backends::{ListSessions, Listed, Record, Saved, SessionStore, Version, create_unique};
use crate::{Error, Result, SessionKey, Signer};

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
/// - reads go to a few reader connections, in turn;
/// - each connection is owned by a thread of its own that runs the calls sent
///   to it, with cached prepared statements: an async task never blocks on
///   SQLite, and no call waits for a blocking-pool thread or a lock.
///
/// Cloning is cheap and clones share the connections; the threads end when
/// the last clone is dropped. The store needs no particular async runtime.
///
/// `session_data` is Django's: the session signed with the [`Signer`] the
/// store was built with (make it with [`Settings::signer`](crate::Settings::signer)
/// from `SECRET_KEY` and `SECRET_KEY_FALLBACKS`), compressed when shorter.
/// Rows signed with a fallback key load; every write uses `SECRET_KEY`.
///
/// `expire_date` is stored as Django stores it on SQLite: UTC text in the
/// form `YYYY-MM-DD HH:MM:SS[.ffffff]`, so a Django app can share the table.
///
/// Like Django, the store compares `expire_date` with now as text, and
/// SQLite lets another app store anything in it. A row whose `expire_date`
/// sorts after now but is not that layout (`"tomorrow"`, ISO 8601 with a
/// `T`, February 30), is not UTF-8, or is a blob (which sorts after all
/// text) is live but unreadable: [`exists`](SessionStore::exists) is `true`,
/// [`load`](SessionStore::load) is an [`Error::Corrupt`] (the session layer
/// starts a fresh session and logs on `sesame::security`), and an
/// unconditional save overwrites the row. A row whose `expire_date` sorts
/// before now (a number, a five-digit year) is expired: never loaded, removed
/// by [`clear_expired`](SessionStore::clear_expired). A `session_data` that
/// is not text is corrupt as well.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Signer;
/// use sesame::backends::{Record, SessionStore, SqliteStore};
/// use time::{Duration, OffsetDateTime};
///
/// let store = SqliteStore::open_in_memory(Signer::new("SECRET_KEY"))?; // or ::open("sessions.sqlite3", signer)?
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
    signer: Signer,
}

impl SqliteStore {
    /// A store over one connection the caller configured: every read and
    /// write uses it, and its settings are left as they are.
    ///
    /// [`open`](Self::open) is the fast choice for a file; this one suits a
    /// connection set up with custom options.
    ///
    /// # Errors
    ///
    /// A backend error if the connection's thread cannot be started.
    pub fn new(conn: Connection, signer: Signer) -> Result<Self> {
        let location = conn.path().unwrap_or(":memory:").to_owned();
        Ok(Self::from_connections(
            Connections {
                writer: Worker::spawn(conn, "sesame-sqlite")?,
                readers: Box::new([]),
                next_reader: AtomicUsize::new(0),
                location,
            },
            signer,
        ))
    }

    /// Opens (creating if needed) the SQLite database at `path`, in WAL mode,
    /// with one writer connection and a few reader connections. The path
    /// `:memory:` opens [an in-memory database](Self::open_in_memory).
    ///
    /// Run [`migrate`](Self::migrate) once to create the table if no Django
    /// migration has.
    ///
    /// # Errors
    ///
    /// A backend error if the file cannot be opened or switched to WAL mode.
    pub fn open(path: impl AsRef<Path>, signer: Signer) -> Result<Self> {
        let path = path.as_ref();
        if path.as_os_str() == ":memory:" {
            // Each connection to ":memory:" is a database of its own: readers
            // would never see the writer's rows.
            return Self::open_in_memory(signer);
        }
        let writer = Connection::open(path).map_err(Error::backend)?;
        configure(&writer).map_err(Error::backend)?;
        // WAL mode is a property of the file: set once by the writer, every
        // later connection uses it. SQLite answers with the mode it is in,
        // which stays the old one where WAL is impossible (some network
        // file systems); readers would then block the writer.
        let mode = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(Error::backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::backend(format!(
                "SQLite could not switch {} to WAL mode (journal_mode is {mode})",
                path.display()
            )));
        }
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
                Ok(conn)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::backend)?
            .into_iter()
            .map(|conn| Worker::spawn(conn, "sesame-sqlite-reader"))
            .collect::<Result<Box<[_]>>>()?;

        Ok(Self::from_connections(
            Connections {
                writer: Worker::spawn(writer, "sesame-sqlite-writer")?,
                readers,
                next_reader: AtomicUsize::new(0),
                location: path.display().to_string(),
            },
            signer,
        ))
    }

    /// A store in a private in-memory database, for tests and examples: its
    /// sessions vanish with the last clone.
    ///
    /// # Errors
    ///
    /// A backend error if SQLite cannot allocate the database.
    pub fn open_in_memory(signer: Signer) -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(Error::backend)?;
        Self::new(conn, signer)
    }

    /// Opens the database a URL names: `sqlite://PATH`, `sqlite:PATH`, a bare
    /// path, or `sqlite::memory:` (also `:memory:`) for an in-memory database.
    ///
    /// A query string (`?mode=rwc`) is ignored: the file is always created
    /// if missing. Opening runs on Tokio's blocking pool when called inside a
    /// Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// let signer = sesame::Signer::new("SECRET_KEY");
    /// let store = sesame::backends::SqliteStore::connect("sqlite::memory:", signer).await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A backend error if the URL names no path or the database cannot be opened.
    pub async fn connect(url: &str, signer: Signer) -> Result<Self> {
        match parse_url(url) {
            Target::Memory => Self::open_in_memory(signer),
            Target::File(path) => {
                // Opening touches the file system: keep it off the async
                // workers when there is a Tokio runtime to lend a thread.
                let path = path.to_owned();
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => runtime
                        .spawn_blocking(move || Self::open(path, signer))
                        .await
                        .map_err(Error::backend)?,
                    Err(_) => Self::open(path, signer),
                }
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
        self.conns
            .writer
            .run(move |conn| {
                let tx = conn.transaction().map_err(Error::backend)?;
                tx.execute_batch(&ddl).map_err(Error::backend)?;
                tx.commit().map_err(Error::backend)
            })
            .await
    }

    fn from_connections(conns: Connections, signer: Signer) -> Self {
        let table = sesame_codec::DB_TABLE;
        Self {
            conns: Arc::new(conns),
            table: table.into(),
            sql: Arc::new(Statements::new(table, &SYNTAX)),
            signer,
        }
    }

    /// Runs `f` on a reader connection's thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Statements) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = Arc::clone(&self.sql);
        self.conns
            .reader()
            .run(move |conn| f(conn, &sql).map_err(Error::backend))
            .await
    }

    /// Runs `f` on the writer connection's thread.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Statements) -> Result<T> + Send + 'static,
    {
        let sql = Arc::clone(&self.sql);
        self.conns.writer.run(move |conn| f(conn, &sql)).await
    }
}

/// The threads that own the store's connections.
struct Connections {
    /// Every `INSERT`, `UPDATE` and `DELETE` runs on this one.
    writer: Worker,
    /// `SELECT`s run on these, in turn; empty when the writer also reads.
    readers: Box<[Worker]>,
    next_reader: AtomicUsize,
    /// The path or `:memory:`, for `Debug`.
    location: String,
}

/// Work for a connection thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A thread that owns one connection and runs the jobs sent to it, in order.
///
/// The thread ends, closing its connection, when the last store clone (and
/// with it the sender) is dropped.
struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    fn spawn(mut conn: Connection, name: &str) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panicking job drops its reply sender, so its caller
                    // gets an error; the connection and thread carry on
                    // (statements reset when dropped, transactions roll back).
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(Error::backend)?;
        Ok(Self { jobs })
    }

    /// Runs `f` on this worker's connection and waits for its result
    /// without blocking the async runtime.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                // The caller may have gone (a cancelled request): nothing to do.
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| Error::backend(WorkerGone))?;
        result.await.map_err(|_| Error::backend(WorkerGone))?
    }
}

/// A connection thread is gone: it can only have panicked outside a job.
#[derive(Debug)]
struct WorkerGone;

impl fmt::Display for WorkerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the SQLite connection thread has stopped")
    }
}

impl std::error::Error for WorkerGone {}

impl Connections {
    fn reader(&self) -> &Worker {
        if self.readers.is_empty() {
            return &self.writer;
        }
        let next = self.next_reader.fetch_add(1, Ordering::Relaxed);
        &self.readers[next % self.readers.len()]
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

const SYNTAX: Syntax = Syntax {
    quote: quote_ansi,
    param: |n| format!("?{n}"),
    exact: |p| p,
    // Read as stored; `load` parses the text itself.
    read_expire: "expire_date",
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

/// A column's value if it is UTF-8 text. SQLite lets another app store any
/// type in any column (a blob, a number); `load` reports that as corrupt
/// rather than as a backend error.
fn text(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok().map(str::to_owned),
        _ => None,
    })
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

/// Lists live rows by primary key, 500 per query, on a reader connection
/// (with their data, for [`sessions`](ListSessions::sessions)).
impl ListSessions for SqliteStore {
    fn session_keys(&self) -> impl futures_util::Stream<Item = Result<SessionKey>> + Send + '_ {
        paged(Vec::new(), move |after: Vec<u8>| async move {
            let now = now();
            let raw: Vec<Option<Vec<u8>>> = self
                .read(move |conn, sql| {
                    conn.prepare_cached(&sql.list)?
                        .query_map(params![TextBytes(after), now], |row| key_bytes(row, 0))?
                        .collect()
                })
                .await?;
            // A blob key sorts after every text one: the text keys end there.
            let ended = raw.iter().any(Option::is_none);
            let (keys, next) = super::list_page(raw.into_iter().flatten().collect());
            Ok((keys, next.filter(|_| !ended)))
        })
    }

    fn sessions(&self) -> impl futures_util::Stream<Item = Result<Listed>> + Send + '_ {
        paged(Vec::new(), move |after: Vec<u8>| async move {
            let now = now();
            let rows: Vec<StoredRow> = self
                .read(move |conn, sql| {
                    conn.prepare_cached(&sql.list_records)?
                        .query_map(params![TextBytes(after), now], |row| {
                            Ok((key_bytes(row, 2)?, (text(row, 0)?, text(row, 1)?)))
                        })?
                        .collect()
                })
                .await?;
            let ended = rows.iter().any(|(key, _)| key.is_none());
            let rows = rows
                .into_iter()
                .filter_map(|(key, row)| Some((key?, row)))
                .collect();
            let (listed, next) =
                super::records_page(rows, |(stored, expire)| self.record_of(stored, expire))?;
            Ok((listed, next.filter(|_| !ended)))
        })
    }
}

/// A `session_key`'s bytes when SQLite holds it as text, UTF-8 or not (text
/// another app wrote need not be): such a key is skipped, but the listing
/// goes on after it. `None` for a blob, which sorts after every text.
fn key_bytes(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) => Some(bytes.to_vec()),
        _ => None,
    })
}

/// Bytes bound as TEXT: a listing cursor, the last key read, which may not
/// be UTF-8.
struct TextBytes(Vec<u8>);

impl rusqlite::ToSql for TextBytes {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(
            &self.0,
        )))
    }
}

/// A row's `session_key` (its bytes when text) and its `session_data` and
/// `expire_date` (each when UTF-8 text).
type StoredRow = (Option<Vec<u8>>, (Option<String>, Option<String>));

impl SqliteStore {
    /// The record of a row's `session_data` and `expire_date`, each read as
    /// text when it is text.
    fn record_of(&self, stored: Option<String>, expire_date: Option<String>) -> Result<Record> {
        // Not text: nothing a signature could have been checked against.
        let stored = stored.ok_or(sesame_codec::Error::BadSignature)?;
        let data = decode(&self.signer, &stored)?;
        let expire_date = expire_date.ok_or(sesame_codec::Error::Datetime)?;
        Ok(Record {
            data: data.into(),
            expires_at: parse_datetime(&expire_date)?,
            version: Some(Version::new(stored)),
        })
    }
}

impl SessionStore for SqliteStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let key = key.clone();
        let now = now();
        let row = self
            .read(move |conn, sql| {
                conn.prepare_cached(&sql.load)?
                    .query_row(params![key.as_str(), now], |row| {
                        Ok((text(row, 0)?, text(row, 1)?))
                    })
                    .optional()
            })
            .await?;
        row.map(|(stored, expire_date)| self.record_of(stored, expire_date))
            .transpose()
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let data = encode(&self.signer, &record.data);
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
        let key = key.clone();
        let data = encode(&self.signer, &record.data);
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
        let key = key.clone();
        self.write(move |conn, sql| {
            conn.prepare_cached(&sql.delete)
                .and_then(|mut s| s.execute(params![key.as_str()]))
                .map(drop)
                .map_err(Error::backend)
        })
        .await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        let key = key.clone();
        let now = now();
        self.read(move |conn, sql| {
            conn.prepare_cached(&sql.exists)?
                .exists(params![key.as_str(), now])
        })
        .await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let key = key.clone();
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
