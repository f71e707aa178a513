//! `FileStore`: Django's `file` engine, one file per session in a directory.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant, SystemTime};

use futures_util::stream::{self, Stream, TryStreamExt as _};
use sesame_codec::{
    DB_SALT, ExpiryValue, MAX_SESSION_DATA_LEN, SESSION_COOKIE_AGE, SESSION_COOKIE_NAME,
    SESSION_EXPIRY_KEY, SessionMap, Signer,
};
use time::{Duration, OffsetDateTime};

use super::base::{Record, Saved, SessionStore, Version, create_unique};
use super::list::{ListSessions, parse_listed};
use crate::{Error, KeyKind, Result, SessionKey};

/// Temporary files older than this are left over from a crash and removed
/// by [`FileStore::clear_expired`].
const STALE_AFTER: StdDuration = StdDuration::from_secs(60 * 60);

/// How long a writer waits for another process's lock before failing. The
/// lock is held only for a read, a compare and a rename.
const LOCK_WAIT: StdDuration = StdDuration::from_secs(5);

/// Lock stripes: a session's lock is one of this many, chosen by its file
/// name, both in the process (a mutex) and in the directory (a file).
const STRIPES: usize = 64;

/// In-process lock stripes, shared by every `FileStore` of the process, so
/// writers in one process queue here instead of polling the lock file.
static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];

/// The directory's lock files, `.sesame-lock-00` … `.sesame-lock-63`: made
/// once, never removed, and locked with `flock`, which the kernel releases
/// when the holder exits, however it exits.
const LOCK_FILE_PREFIX: &str = ".sesame-lock-";

/// Sessions in files, one per session, in a directory: Django's `file` engine.
///
/// Files are named and written as Django names and writes them, so a Django
/// app with `SESSION_ENGINE = "django.contrib.sessions.backends.file"` and the
/// same `SESSION_FILE_PATH`, `SESSION_COOKIE_NAME`, `SESSION_COOKIE_AGE` and
/// `SECRET_KEY` shares the sessions:
///
/// - the file of key `k` is `<dir>/<SESSION_COOKIE_NAME>k` (`sessionidk`), and
///   a path is built only from a validated `[a-z0-9]{8,40}` key;
/// - its content is the session signed with `SECRET_KEY` under the
///   `django.contrib.sessions.SessionStore` salt, as the `db` engine's
///   `session_data` (files signed with a fallback key load too).
///
/// # Expiry: the file's modification time
///
/// A file holds no expiry date. As in Django, a session expires at
///
/// - its `_session_expiry` when that is a date (`set_expiry(datetime)`);
/// - else the file's mtime + `_session_expiry` seconds when that is a
///   non-zero number (`set_expiry(300)`: idle seconds since the last write);
/// - else the file's mtime + `SESSION_COOKIE_AGE` ([`with_max_age`](Self::with_max_age)).
///
/// When writing, the store sets the file's mtime so that this rule yields the
/// record's [`expires_at`](Record::expires_at): mtime = `expires_at` − the age
/// that applies (for the date case, the time of writing). A session saved
/// with the default expiry therefore gets the write time as mtime, exactly as
/// Django's files; an explicit expiry shows as an mtime in the past or future.
///
/// # Concurrency
///
/// - [`create`](SessionStore::create) makes the file with `O_CREAT|O_EXCL`
///   (an existing file is [`Error::KeyCollision`]), then fills it by rename.
/// - Every write goes to a temporary file in the same directory, is
///   `fsync`ed, and is renamed over the session file: readers see the old or
///   the new content, never a part. (The directory itself is not `fsync`ed:
///   after a power loss a session may be back at its previous state.)
/// - [`save`](SessionStore::save) is a compare-and-swap: the
///   [`Version`] is the file's bytes, and the read, the comparison and the
///   rename run under a per-session lock: an in-process mutex plus an
///   advisory lock (`flock`) on one of 64 lock files in the directory
///   (`.sesame-lock-00` … `.sesame-lock-63`, chosen by the session's file
///   name), so several processes sharing the directory exclude each other
///   too, and a process that dies holding the lock releases it. The lock is
///   not held while the temporary file is written and synced; a writer waits
///   for it at most 5 s, then fails with a backend error.
///   [`delete`](SessionStore::delete) takes the same lock, so a save never
///   re-creates a deleted session.
/// - Django takes no lock: a Django process writing the same session at the
///   same moment can still overwrite a Sesame write (last write wins).
///
/// Disk errors (full disk, read-only directory, permissions) are returned as
/// backend errors, never ignored; so is a session path that holds something
/// other than a regular file (a directory, a FIFO, a device): it is never
/// read.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Signer;
/// use sesame::backends::{FileStore, Record, SessionStore};
/// use time::{Duration, OffsetDateTime};
///
/// let dir = std::env::temp_dir().join(format!("sesame-doc-{}", std::process::id()));
/// let store = FileStore::new(&dir, Signer::new("SECRET_KEY"));
/// store.migrate().await?; // creates the directory
///
/// let record = Record::new(Default::default(), OffsetDateTime::now_utc() + Duration::hours(1));
/// let saved = store.create(&record).await?;
/// assert!(dir.join(format!("sessionid{}", saved.key.as_str())).is_file());
/// store.delete(&saved.key).await?;
/// assert!(!store.exists(&saved.key).await?);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.file"` with
/// `SESSION_FILE_PATH`. Differences: Django swallows write errors (the
/// session is silently lost) where this store returns them; Django never
/// expires a session whose `_session_expiry` is a number of seconds, where
/// this store expires it that many seconds after the file's last write;
/// Django's `load` deletes an expired file, where this store leaves that to
/// [`clear_expired`](SessionStore::clear_expired); and when
/// `SESSION_FILE_PATH` is unset Django uses the system's temporary directory,
/// where this store always takes a directory.
#[doc(alias = "file")]
#[doc(alias = "django.contrib.sessions.backends.file")]
#[doc(alias = "SESSION_FILE_PATH")]
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    dir: PathBuf,
    prefix: String,
    max_age: i64,
    signer: Signer,
}

/// A session file as read: its bytes and modification time.
struct Stored {
    bytes: Vec<u8>,
    mtime: SystemTime,
}

impl FileStore {
    /// A store keeping sessions in `dir` (Django's `SESSION_FILE_PATH`),
    /// signing them with `signer` (make it with
    /// [`Settings::signer`](crate::Settings::signer)).
    ///
    /// Nothing is touched until the first call; [`migrate`](Self::migrate)
    /// creates the directory.
    #[doc(alias = "SESSION_FILE_PATH")]
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, signer: Signer) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                prefix: SESSION_COOKIE_NAME.to_owned(),
                max_age: SESSION_COOKIE_AGE,
                signer,
            }),
        }
    }

    /// Sets the file-name prefix: Django uses `SESSION_COOKIE_NAME`
    /// (default `sessionid`).
    ///
    /// # Panics
    ///
    /// Panics when `name` is empty, starts with `.`, or holds a path
    /// separator or NUL: it could not be a cookie name, and would put session
    /// files elsewhere or mix them with the store's own temporary files.
    #[doc(alias = "SESSION_COOKIE_NAME")]
    #[must_use]
    pub fn with_cookie_name(mut self, name: &str) -> Self {
        assert!(
            !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']),
            "a FileStore cookie name must be non-empty, not start with '.', and hold no '/', '\\' or NUL"
        );
        Arc::make_mut(&mut self.inner).prefix = name.to_owned();
        self
    }

    /// Sets `SESSION_COOKIE_AGE`, in seconds (default two weeks): how long
    /// after its last write a session without its own expiry lives.
    #[doc(alias = "SESSION_COOKIE_AGE")]
    #[must_use]
    pub fn with_max_age(mut self, seconds: i64) -> Self {
        Arc::make_mut(&mut self.inner).max_age = seconds;
        self
    }

    /// The directory sessions are kept in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of the file that holds (or would hold) the session `key`, or
    /// `None` for a key that is not a random `[a-z0-9]{8,40}` key.
    #[must_use]
    pub fn path_of(&self, key: &SessionKey) -> Option<PathBuf> {
        self.inner
            .file_name(key)
            .map(|name| self.inner.dir.join(name))
    }

    /// Creates the directory (and its parents) if missing and its 64 lock
    /// files (`.sesame-lock-00` … `.sesame-lock-63`), then proves that a
    /// session file can be made there by creating and removing a temporary
    /// file. Safe to run on every start.
    ///
    /// Run it at start-up: a directory that the process cannot write (or
    /// whose lock files it cannot open, such as another user's) then fails
    /// here instead of in every request.
    ///
    /// # Errors
    ///
    /// A backend error if the directory cannot be created, a lock file
    /// cannot be opened (a directory in its place), or no file can be created in the
    /// directory (read-only file system, no permission).
    pub async fn migrate(&self) -> Result<()> {
        self.blocking(Inner::migrate).await
    }

    /// Runs `f` on Tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(Error::backend)?
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.dir)
            .field("cookie_name", &self.inner.prefix)
            .field("max_age", &self.inner.max_age)
            .finish_non_exhaustive()
    }
}

/// The age an expiry is measured from the file's mtime with, or the fixed
/// date it has.
enum Basis {
    Age(i64),
    At(OffsetDateTime),
}

impl Inner {
    /// `<prefix><key>`, only for a random key (re-checked: the name becomes a path).
    fn file_name(&self, key: &SessionKey) -> Option<String> {
        if key.kind() != KeyKind::Random {
            return None;
        }
        let key = key.as_str();
        SessionKey::from_bytes(key.as_bytes()).ok()?;
        Some(format!("{}{key}", self.prefix))
    }

    fn basis(&self, data: &SessionMap) -> Basis {
        match data
            .get(SESSION_EXPIRY_KEY)
            .and_then(ExpiryValue::from_json)
        {
            Some(ExpiryValue::At(at)) => Basis::At(at),
            Some(ExpiryValue::Seconds(s)) if s != 0 => Basis::Age(s),
            _ => Basis::Age(self.max_age),
        }
    }

    /// When a file with this data and mtime expires (Django's `_expiry_date`).
    fn expires_at(&self, data: &SessionMap, mtime: SystemTime) -> OffsetDateTime {
        match self.basis(data) {
            Basis::At(at) => at,
            Basis::Age(s) => from_system_time(mtime).saturating_add(Duration::seconds(s)),
        }
    }

    /// The mtime that makes a file with `data` expire at `expires_at`.
    ///
    /// An age so long that `expires_at` − age is out of range (a session
    /// kept for millennia, whose expiry was capped at year 9999) gets the
    /// time of writing: it then expires at the same capped date.
    fn mtime_for(&self, data: &SessionMap, expires_at: OffsetDateTime) -> SystemTime {
        let now = OffsetDateTime::now_utc();
        let at = match self.basis(data) {
            Basis::At(_) => now,
            Basis::Age(s) => expires_at.checked_sub(Duration::seconds(s)).unwrap_or(now),
        };
        to_system_time(at)
            .or_else(|| to_system_time(now))
            .unwrap_or_else(SystemTime::now)
    }

    /// Decodes a file's content; an empty file is Django's placeholder, an
    /// empty session.
    fn decode(&self, bytes: &[u8]) -> Result<SessionMap, sesame_codec::Error> {
        if bytes.is_empty() {
            return Ok(SessionMap::new());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| sesame_codec::Error::Malformed("a session file is not ASCII"))?;
        self.signer
            .loads_session(text, DB_SALT, None, OffsetDateTime::now_utc())
    }

    /// Whether a stored file is a live session. A file that does not decode
    /// is an empty session to Django, which expires by mtime alone.
    fn is_live(&self, stored: &Stored, now: OffsetDateTime) -> bool {
        let data = self.decode(&stored.bytes).unwrap_or_default();
        self.expires_at(&data, stored.mtime) > now
    }

    fn load(&self, name: &str) -> Result<Option<Record>> {
        let Some(stored) = read(&self.dir.join(name)).map_err(Error::backend)? else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        match self.decode(&stored.bytes) {
            Ok(data) => {
                let expires_at = self.expires_at(&data, stored.mtime);
                Ok((expires_at > now).then(|| Record {
                    data: data.into(),
                    expires_at,
                    version: Some(Version::new(stored.bytes)),
                }))
            }
            // Expired is expired, readable or not (Django: `{}` aged by mtime).
            Err(_) if self.expires_at(&SessionMap::new(), stored.mtime) <= now => Ok(None),
            Err(e) => Err(Error::Corrupt(e)),
        }
    }

    /// Django's `save(must_create=True)`: an `O_EXCL` placeholder, then the
    /// content by rename.
    fn create(&self, key: SessionKey, bytes: &[u8], mtime: SystemTime) -> Result<Saved> {
        let name = self.file_name(&key).ok_or(Error::KeyCollision)?;
        let path = self.dir.join(&name);
        match new_file(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::KeyCollision),
            Err(e) => return Err(Error::backend(e)),
        }
        let filled = self
            .write_temp(&name, bytes, mtime)
            .and_then(|temp| rename_or_remove(&temp, &path));
        if let Err(e) = filled {
            // Leave no empty placeholder behind for a session that was never made.
            let _ = fs::remove_file(&path);
            return Err(Error::backend(e));
        }
        Ok(Saved {
            key,
            version: Version::new(bytes.to_vec()),
        })
    }

    fn save(
        &self,
        name: &str,
        bytes: &[u8],
        mtime: SystemTime,
        expected: Option<&Version>,
    ) -> Result<()> {
        let path = self.dir.join(name);
        let temp = self
            .write_temp(name, bytes, mtime)
            .map_err(Error::backend)?;
        let result = self.locked(name, || {
            let current = read(&path)
                .map_err(Error::backend)?
                .filter(|stored| self.is_live(stored, OffsetDateTime::now_utc()))
                .ok_or(Error::Missing)?;
            if expected.is_some_and(|v| v.as_bytes() != current.bytes.as_slice()) {
                return Err(Error::Conflict);
            }
            fs::rename(&temp, &path).map_err(Error::backend)
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Moves the expiry of the live session file `name` to `until` by
    /// setting its mtime, under its lock; the bytes, so the version, stay.
    /// With `expected`, a file whose bytes differ is [`Error::Conflict`].
    ///
    /// A session whose `_session_expiry` is a date expires then whatever
    /// the mtime says: the mtime is set to now, as a save would set it.
    fn touch(&self, name: &str, until: OffsetDateTime, expected: Option<&Version>) -> Result<()> {
        let path = self.dir.join(name);
        self.locked(name, || {
            let now = OffsetDateTime::now_utc();
            let stored = read(&path).map_err(Error::backend)?.ok_or(Error::Missing)?;
            let data = match self.decode(&stored.bytes) {
                Ok(data) => data,
                // Expired is expired, readable or not, as `load` says.
                Err(_) if self.expires_at(&SessionMap::new(), stored.mtime) <= now => {
                    return Err(Error::Missing);
                }
                Err(e) => return Err(Error::Corrupt(e)),
            };
            if self.expires_at(&data, stored.mtime) <= now {
                return Err(Error::Missing);
            }
            if expected.is_some_and(|v| v.as_bytes() != stored.bytes.as_slice()) {
                return Err(Error::Conflict);
            }
            let mtime = self.mtime_for(&data, until);
            // Opened only to set the time (without blocking, as `read`
            // opens): setting it needs ownership, not write access.
            let mut options = OpenOptions::new();
            options.read(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
            match options
                .open(&path)
                .and_then(|file| file.set_modified(mtime))
            {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    // Only a file's owner may set its time (a Django process
                    // under another user wrote it): the same bytes, renamed
                    // over it with the new mtime, leave the version as it is.
                    let temp = self
                        .write_temp(name, &stored.bytes, mtime)
                        .map_err(Error::backend)?;
                    rename_or_remove(&temp, &path).map_err(Error::backend)
                }
                other => other.map_err(Error::backend),
            }
        })
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        self.locked(name, || {
            remove_if_present(&path).map(drop).map_err(Error::backend)
        })
    }

    fn clear_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(Error::backend)? {
            let entry = entry.map_err(Error::backend)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.file_type().map_err(Error::backend)?.is_file() {
                continue;
            }
            let is_session = name
                .strip_prefix(&self.prefix)
                .is_some_and(|key| SessionKey::from_bytes(key.as_bytes()).is_ok());
            if is_session {
                let path = entry.path();
                // Most files are live: only an expired one is worth the lock,
                // under which it is read again (a save may have just revived it).
                let expired = read(&path)
                    .map_err(Error::backend)?
                    .is_some_and(|stored| !self.is_live(&stored, now));
                if !expired {
                    continue;
                }
                let gone = self.locked(&name, || match read(&path).map_err(Error::backend)? {
                    Some(stored) if !self.is_live(&stored, now) => {
                        remove_if_present(&path).map_err(Error::backend)
                    }
                    _ => Ok(false),
                })?;
                removed += u64::from(gone);
            } else if self.is_stale_leftover(&name, &entry.path()) {
                tracing::debug!(file = %name, "removing a stale temporary session file");
                remove_if_present(&entry.path()).map_err(Error::backend)?;
            }
        }
        Ok(removed)
    }

    /// The keys of the directory's session files, expired ones included
    /// (telling them apart means reading each). A directory that does not
    /// exist is an error, as for `clear_expired`: a mistyped path must not
    /// read as "no sessions".
    fn session_keys(&self) -> Result<Vec<SessionKey>> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(Error::backend)? {
            let entry = entry.map_err(Error::backend)?;
            let name = entry.file_name();
            let key = name
                .to_str()
                .and_then(|name| name.strip_prefix(&self.prefix))
                .and_then(|key| parse_listed(key.as_bytes()));
            if let Some(key) = key
                && entry.file_type().map_err(Error::backend)?.is_file()
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// See [`FileStore::migrate`].
    fn migrate(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(Error::backend)?;
        for stripe in 0..STRIPES {
            open_lock_file(&self.lock_path(stripe)).map_err(Error::backend)?;
        }
        // A temporary file as a save writes one (a crash leaves it to
        // `clear_expired`, as any other temporary file).
        let name = format!("{}{}", self.prefix, SessionKey::generate().as_str());
        let probe = self
            .write_temp(&name, b"", SystemTime::now())
            .map_err(Error::backend)?;
        fs::remove_file(probe).map_err(Error::backend)
    }

    /// The lock file of lock stripe `stripe`.
    fn lock_path(&self, stripe: usize) -> PathBuf {
        self.dir.join(format!("{LOCK_FILE_PREFIX}{stripe:02}"))
    }

    /// Whether `name` is a temporary or lock file (ours, or a Django temp
    /// file `<prefix><key>_out_…`) left over for over an hour.
    fn is_stale_leftover(&self, name: &str, path: &Path) -> bool {
        let Some(rest) = name.strip_prefix('.') else {
            // Django's `tempfile.mkstemp(prefix=<file>_out_)`: its mtime is
            // its creation, never set.
            return name
                .strip_prefix(&self.prefix)
                .and_then(|rest| rest.split_once("_out_"))
                .is_some_and(|(key, _)| SessionKey::from_bytes(key.as_bytes()).is_ok())
                && older_than(path, STALE_AFTER);
        };
        let Some(rest) = rest.strip_prefix(&self.prefix) else {
            return false;
        };
        if let Some(key) = rest.strip_suffix(".lock") {
            // A per-session lock file of earlier builds, which locked with `O_EXCL`.
            return SessionKey::from_bytes(key.as_bytes()).is_ok() && older_than(path, STALE_AFTER);
        }
        // `.<prefix><key>.<unix seconds>.<random>.tmp`: its mtime is set to
        // the session's, so its age is in its name.
        let mut parts = rest.split('.');
        let (Some(key), Some(secs), Some(_), Some("tmp"), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let Ok(secs) = secs.parse::<u64>() else {
            return false;
        };
        // A name from the directory, not necessarily ours: a time past what
        // `SystemTime` holds is no temp file of ours either.
        let Some(made) = SystemTime::UNIX_EPOCH.checked_add(StdDuration::from_secs(secs)) else {
            return false;
        };
        SessionKey::from_bytes(key.as_bytes()).is_ok()
            && SystemTime::now()
                .duration_since(made)
                .is_ok_and(|age| age > STALE_AFTER)
    }

    /// Writes `bytes` to a new temporary file beside the session file `name`,
    /// with the mtime it must have, and syncs it.
    fn write_temp(&self, name: &str, bytes: &[u8], mtime: SystemTime) -> io::Result<PathBuf> {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A fresh random key is a handy nonce: 32 characters, no dots.
        let nonce = SessionKey::generate();
        let path = self
            .dir
            .join(format!(".{name}.{secs}.{}.tmp", nonce.as_str()));
        let mut file = new_file(&path)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_modified(mtime))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Runs `f` holding the lock of session file `name`.
    fn locked<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let stripe = stripe_of(name);
        // Keyed by the directory too, so stores on different directories
        // rarely queue behind each other in one process.
        let mut hasher = DefaultHasher::new();
        (&self.dir, stripe).hash(&mut hasher);
        #[allow(clippy::cast_possible_truncation)] // the remainder is below STRIPES
        let in_process = (hasher.finish() % STRIPES as u64) as usize;
        let _in_process = LOCKS[in_process]
            .lock()
            // The mutex guards no data, only turns: a panic cannot break it.
            .unwrap_or_else(PoisonError::into_inner);
        let _lock = lock_file(&self.lock_path(stripe))?;
        f()
    }
}

/// The lock stripe of session file `name`: the same in every process and
/// build (FNV-1a, not std's hasher, whose output may change between Rust
/// releases), so processes sharing a directory agree on it.
fn stripe_of(name: &str) -> usize {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash as usize % STRIPES
}

/// Opens (creating if needed) and locks the lock file at `path`; the lock
/// lasts as long as the returned file is open. Another process holding it
/// is waited for, at most [`LOCK_WAIT`].
fn lock_file(path: &Path) -> Result<File> {
    let file = open_lock_file(path).map_err(Error::backend)?;
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = StdDuration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(Error::backend(e)),
        }
        if Instant::now() >= deadline {
            return Err(Error::backend(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "session lock {} held by another process for over {} s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                ),
            )));
        }
        // Only another process holds it: in-process writers queue on the
        // mutex. This runs on the blocking pool, never on a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(pause);
        pause = (pause * 2).min(StdDuration::from_millis(50));
    }
}

/// Opens the lock file at `path`, creating it if missing; never truncates
/// it. It is readable by all (it holds nothing), and a lock file another
/// user made (`sesame migrate` run as root or a deploy user) is opened
/// read-only: `flock` needs no write access.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path),
        other => other,
    }
}

/// Creates a new file that must not exist (`O_CREAT|O_EXCL`), readable by
/// its owner only, as Django's `mkstemp` makes them.
fn new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Reads a session file; `None` when there is none. Anything but a regular
/// file there (a FIFO, a device, a directory) is an error, never read: it
/// is opened without blocking, so a FIFO cannot hold the thread.
fn read(path: &Path) -> io::Result<Option<Stored>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mtime = metadata.modified()?;
    // No more than the decoder accepts, plus one byte so that a larger file
    // still fails to decode (as too large) rather than being read whole.
    let mut bytes = Vec::new();
    file.take(MAX_SESSION_DATA_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(Stored { bytes, mtime }))
}

fn rename_or_remove(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to).inspect_err(|_| {
        let _ = fs::remove_file(from);
    })
}

/// Removes `path`; `Ok(false)` when it was already gone.
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn older_than(path: &Path, age: StdDuration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|mtime| {
            SystemTime::now()
                .duration_since(mtime)
                .is_ok_and(|d| d > age)
        })
}

fn from_system_time(at: SystemTime) -> OffsetDateTime {
    let signed = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => Duration::try_from(d).ok(),
        Err(e) => Duration::try_from(e.duration()).ok().map(|d| -d),
    };
    signed
        .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d))
        .unwrap_or(if at < SystemTime::UNIX_EPOCH {
            OffsetDateTime::UNIX_EPOCH.saturating_sub(Duration::MAX)
        } else {
            OffsetDateTime::UNIX_EPOCH.saturating_add(Duration::MAX)
        })
}

fn to_system_time(at: OffsetDateTime) -> Option<SystemTime> {
    let d = at - OffsetDateTime::UNIX_EPOCH;
    if d.is_negative() {
        SystemTime::UNIX_EPOCH.checked_sub(d.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH.checked_add(d.unsigned_abs())
    }
}

/// Lists the directory's session files, read in one pass on Tokio's
/// blocking pool when the stream is first read; a directory that does not
/// exist is a backend error (`NotFound`).
impl ListSessions for FileStore {
    fn session_keys(&self) -> impl Stream<Item = Result<SessionKey>> + Send + '_ {
        stream::once(self.blocking(Inner::session_keys))
            .map_ok(|keys| stream::iter(keys.into_iter().map(Ok)))
            .try_flatten()
    }
}

impl SessionStore for FileStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let Some(name) = self.inner.file_name(key) else {
            return Ok(None);
        };
        self.blocking(move |inner| inner.load(&name)).await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let inner = &self.inner;
        let bytes: Arc<[u8]> = inner
            .signer
            .dumps_session(&record.data, DB_SALT, OffsetDateTime::now_utc())
            .into_bytes()
            .into();
        let mtime = inner.mtime_for(&record.data, record.expires_at);
        create_unique(|key| {
            let bytes = Arc::clone(&bytes);
            self.blocking(move |inner| inner.create(key, &bytes, mtime))
        })
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let name = self.inner.file_name(key).ok_or(Error::Missing)?;
        let inner = &self.inner;
        let bytes = inner
            .signer
            .dumps_session(&record.data, DB_SALT, OffsetDateTime::now_utc())
            .into_bytes();
        let mtime = inner.mtime_for(&record.data, record.expires_at);
        let expected = record.version.clone();
        let bytes = self
            .blocking(move |inner| {
                inner.save(&name, &bytes, mtime, expected.as_ref())?;
                Ok(bytes)
            })
            .await?;
        Ok(Saved {
            key: key.clone(),
            version: Version::new(bytes),
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        let Some(name) = self.inner.file_name(key) else {
            return Ok(());
        };
        self.blocking(move |inner| inner.delete(&name)).await
    }

    /// Moves the expiry by setting the file's mtime (under the session's
    /// lock), without rewriting it: the version stays, so a touch never
    /// makes a concurrent save conflict. A session whose `_session_expiry`
    /// is a date keeps that date (the file's mtime cannot move it).
    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let name = self.inner.file_name(key).ok_or(Error::Missing)?;
        self.blocking(move |inner| inner.touch(&name, until, None))
            .await
    }

    /// Removes expired session files, and temporary or lock files left over
    /// for over an hour by a crash (not counted).
    async fn clear_expired(&self) -> Result<u64> {
        self.blocking(Inner::clear_expired).await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn system_times_convert_both_ways() {
        for at in [
            datetime!(2026-11-25 18:00:00.123_456_789 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
        ] {
            assert_eq!(from_system_time(to_system_time(at).unwrap()), at);
        }
    }

    #[test]
    fn expiry_follows_django_rules_and_mtime_is_its_inverse() {
        let store = FileStore::new("/nonexistent", Signer::new("k")).with_max_age(100);
        let inner = &store.inner;
        let expires = datetime!(2030-01-01 00:00:00 UTC);
        let mut data = SessionMap::new();
        let mtime = inner.mtime_for(&data, expires);
        assert_eq!(from_system_time(mtime), datetime!(2029-12-31 23:58:20 UTC));
        assert_eq!(inner.expires_at(&data, mtime), expires);
        data.insert(SESSION_EXPIRY_KEY.into(), 0.into());
        assert_eq!(inner.expires_at(&data, mtime), expires);
        data.insert(SESSION_EXPIRY_KEY.into(), 30.into());
        let mtime = inner.mtime_for(&data, expires);
        assert_eq!(inner.expires_at(&data, mtime), expires);
        data.insert(
            SESSION_EXPIRY_KEY.into(),
            "2031-01-01T00:00:00+00:00".into(),
        );
        assert_eq!(
            inner.expires_at(&data, mtime),
            datetime!(2031-01-01 00:00:00 UTC)
        );
    }

    #[test]
    fn lock_stripes_are_the_same_in_every_build() {
        // FNV-1a of the name, mod 64: processes built apart must agree.
        assert_eq!(stripe_of("sessionid0123456789abcdefghijklmnopqrstuv"), 58);
        assert!((0..1000).all(|i| stripe_of(&format!("sessionid{i}")) < STRIPES));
    }

    #[test]
    fn an_age_past_every_date_gets_the_write_time_as_mtime() {
        let store = FileStore::new("/nonexistent", Signer::new("k"));
        let mut data = SessionMap::new();
        data.insert(SESSION_EXPIRY_KEY.into(), i64::MAX.into());
        let capped = datetime!(9999-12-31 23:59:59.999_999 UTC);
        let mtime = store.inner.mtime_for(&data, capped);
        let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
        assert!(age < StdDuration::from_secs(60), "{age:?}");
        assert_eq!(store.inner.expires_at(&data, mtime).year(), 9999);
    }

    #[test]
    fn only_random_keys_name_files() {
        let store = FileStore::new("/s", Signer::new("k")).with_cookie_name("sid");
        let key = SessionKey::generate();
        assert_eq!(
            store.path_of(&key),
            Some(PathBuf::from(format!("/s/sid{}", key.as_str())))
        );
        let signed = SessionKey::from_signed_bytes(b"eyJhIjoxfQ:1r31eq:abc_-").unwrap();
        assert_eq!(store.path_of(&signed), None);
    }

    #[test]
    #[should_panic(expected = "cookie name")]
    fn a_cookie_name_with_a_slash_is_refused() {
        let _ = FileStore::new("/s", Signer::new("k")).with_cookie_name("../x");
    }
}
