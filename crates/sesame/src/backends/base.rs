//! The store boundary: what every session store does, and the rules it keeps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sesame_codec::SessionMap;
use time::OffsetDateTime;

use crate::{Error, KeyKind, Result, SessionKey};

/// How many fresh keys [`create_unique`] tries before giving up.
pub const CREATE_ATTEMPTS: usize = 8;

/// A stored session: its contents, when it expires, and the version it was read at.
#[derive(Clone, PartialEq)]
pub struct Record {
    /// The session's contents (including `_session_expiry` when set).
    ///
    /// Shared, copy-on-write: handing a record between a session and a store
    /// (as [`MemoryStore`](crate::backends::MemoryStore) does) copies no data
    /// until one side changes it (`Arc::make_mut`). Stores that encode read it
    /// through `&record.data` as a plain `&SessionMap`.
    pub data: Arc<SessionMap>,
    /// When the record stops being loadable.
    pub expires_at: OffsetDateTime,
    /// The version the record was loaded at; `None` for a record built in memory.
    /// [`SessionStore::save`] writes only while the stored version still equals it.
    pub version: Option<Version>,
}

impl Record {
    /// A new record, not yet stored.
    #[must_use]
    pub fn new(data: SessionMap, expires_at: OffsetDateTime) -> Self {
        Self {
            data: Arc::new(data),
            expires_at,
            version: None,
        }
    }

    /// The contents for changing, copied first if a session or a store
    /// still shares them (`Arc::make_mut`).
    ///
    /// ```
    /// use sesame::backends::Record;
    /// use time::OffsetDateTime;
    ///
    /// let mut record = Record::new(Default::default(), OffsetDateTime::now_utc());
    /// let shared = record.clone();
    /// record.data_mut().insert("n".into(), 1.into());
    /// assert_eq!(record.data.len(), 1);
    /// assert!(shared.data.is_empty(), "the clone still reads the old contents");
    /// ```
    pub fn data_mut(&mut self) -> &mut SessionMap {
        Arc::make_mut(&mut self.data)
    }

    /// Whether the record has expired at `now`.
    #[must_use]
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

impl fmt::Debug for Record {
    // Session data never reaches a log line through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("data", &format_args!("<{} keys>", self.data.len()))
            .field("expires_at", &self.expires_at)
            .field("version", &self.version.as_ref().map(|_| ".."))
            .finish()
    }
}

/// What a request reads of a stored session: its contents and the version
/// they were read at, not its expiry ([`SessionStore::load_contents`]).
///
/// [`Session`](crate::Session) works a session's expiry out from its data
/// and the settings, as Django does, and never reads the stored one.
#[derive(Clone, PartialEq)]
pub struct Contents {
    /// The session's contents, as in [`Record::data`].
    pub data: Arc<SessionMap>,
    /// The version they were read at, as in [`Record::version`].
    pub version: Option<Version>,
}

impl From<Record> for Contents {
    fn from(record: Record) -> Self {
        Self {
            data: record.data,
            version: record.version,
        }
    }
}

impl fmt::Debug for Contents {
    // Session data never reaches a log line through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contents")
            .field("data", &format_args!("<{} keys>", self.data.len()))
            .field("version", &self.version.as_ref().map(|_| ".."))
            .finish()
    }
}

/// An opaque token for the state a record was read in: a compare-and-swap version.
///
/// Each store derives it from what it read: the stored `session_data` for SQL,
/// a counter for memory, a CAS token for Memcached.
#[derive(Clone)]
pub struct Version(Repr);

/// Counters are kept inline: a version costs no allocation on the hot path
/// of in-memory stores.
#[derive(Clone)]
enum Repr {
    Inline([u8; 8]),
    Shared(Bytes),
}

impl Version {
    /// A version made of these bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(Repr::Shared(bytes.into()))
    }

    /// A version made of a counter.
    #[must_use]
    pub fn from_u64(n: u64) -> Self {
        Self(Repr::Inline(n.to_be_bytes()))
    }

    /// The token's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(b) => b,
            Repr::Shared(b) => b,
        }
    }

    /// The token as text, when it is UTF-8 (as stored `session_data` is).
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }
}

// Equal bytes are equal versions, however they are held.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version(<{} bytes>)", self.as_bytes().len())
    }
}

/// What a successful write returns: the key the record is stored under and its new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The key the record now lives under.
    pub key: SessionKey,
    /// The version a later conditional save must present.
    pub version: Version,
}

/// A place sessions are kept: Django's `SessionBase` storage methods.
///
/// Every store passes the `sesame-conformance` suites unchanged; these are
/// the rules they check.
///
/// - [`load`](Self::load) never returns an expired record, and fills
///   [`Record::version`]; [`load_contents`](Self::load_contents) reads the
///   same record without its expiry.
/// - [`create`](Self::create) stores under a fresh key and **never
///   overwrites** an existing record (Django's `save(must_create=True)`):
///   use the store's insert-if-absent and [`create_unique`] for retries.
/// - [`save`](Self::save) writes only if the stored version still equals
///   `record.version` (`None` writes unconditionally): a mismatch is
///   [`Error::Conflict`], a record that no longer exists (deleted or expired)
///   is [`Error::Missing`] — a save never re-creates a record.
/// - [`delete`](Self::delete) is idempotent.
/// - [`clear_expired`](Self::clear_expired) removes only expired records and
///   returns how many (stores with native expiry return 0).
///
/// Shown with `async fn`; implementations may write `async fn` directly.
///
/// # Django
///
/// `SessionBase.load`, `create`, `save`, `delete`, `exists` and
/// `clear_expired`; the dict-like half of `SessionBase` is [`Session`](crate::Session).
#[doc(alias = "SessionBase")]
pub trait SessionStore: Send + Sync + 'static {
    /// What this store's keys look like: random server-side keys (the
    /// default) or signed values that carry the session themselves.
    fn key_kind(&self) -> KeyKind {
        KeyKind::Random
    }

    /// The longest one call of this store can take, when the store bounds
    /// its calls itself (`RedisStore`: each call, waiting for a connection
    /// included, within its timeout).
    ///
    /// A [`Session`](crate::Session) arms no timer of its own around a call
    /// to a store whose bound is within
    /// [`Settings::store_timeout`](crate::Settings::store_timeout): one timer
    /// a call, not two. The default, `None`, says the store does not bound
    /// its calls, and the session's timer applies.
    fn call_timeout(&self) -> Option<Duration> {
        None
    }

    /// Loads the live record stored under `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the stored data cannot be decoded, or a
    /// backend error when the store fails.
    fn load(&self, key: &SessionKey) -> impl Future<Output = Result<Option<Record>>> + Send;

    /// Loads the contents and version of the live record under `key`,
    /// without its expiry: all a request reads (see [`Contents`]).
    ///
    /// The default calls [`load`](Self::load). A store that pays for the
    /// stored expiry separately overrides it: `RedisStore` reads one `GET`
    /// here (as Django's `cache` engine does) instead of `GET` + `PTTL`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    fn load_contents(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Contents>>> + Send {
        async move { Ok(self.load(key).await?.map(Contents::from)) }
    }

    /// Stores `record` under a fresh key, never overwriting.
    ///
    /// # Errors
    ///
    /// [`Error::KeyCollision`] if no free key was found, or a backend error.
    fn create(&self, record: &Record) -> impl Future<Output = Result<Saved>> + Send;

    /// Replaces the record stored under `key`, if its version still matches.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] on a version mismatch, [`Error::Missing`] when no
    /// live record exists under `key`, or a backend error.
    fn save(&self, key: &SessionKey, record: &Record)
    -> impl Future<Output = Result<Saved>> + Send;

    /// Deletes the record under `key`; deleting a missing record succeeds.
    ///
    /// # Errors
    ///
    /// A backend error when the store fails.
    fn delete(&self, key: &SessionKey) -> impl Future<Output = Result<()>> + Send;

    /// Whether a live record exists under `key`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    fn exists(&self, key: &SessionKey) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(self.load(key).await?.is_some()) }
    }

    /// Moves the expiry of the record under `key` to `until` without changing its data.
    ///
    /// The default loads and saves with the loaded version; stores override
    /// it with a single in-place update (`UPDATE … SET expire_date`, `EXPIRE`).
    /// [`Session`](crate::Session) never calls it on a [`KeyKind::Signed`]
    /// store, whose key carries its expiry: it saves (re-signs) instead.
    ///
    /// # Errors
    ///
    /// [`Error::Missing`] when no live record exists, [`Error::Conflict`]
    /// when the default implementation races a concurrent save, or a backend error.
    fn touch(
        &self,
        key: &SessionKey,
        until: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let mut record = self.load(key).await?.ok_or(Error::Missing)?;
            record.expires_at = until;
            self.save(key, &record).await.map(|_| ())
        }
    }

    /// Removes every expired record and returns how many were removed.
    ///
    /// # Errors
    ///
    /// A backend error when the store fails.
    #[doc(alias = "clearsessions")]
    fn clear_expired(&self) -> impl Future<Output = Result<u64>> + Send {
        async { Ok(0) }
    }
}

/// Runs `attempt` with fresh random keys until one is not taken.
///
/// `attempt` must insert only if the key is absent and return
/// [`Error::KeyCollision`] otherwise; any other error ends the loop.
///
/// # Errors
///
/// [`Error::KeyCollision`] after [`CREATE_ATTEMPTS`] collisions, or the first
/// other error `attempt` returns.
///
/// # Django
///
/// The retry loop of `SessionStore.create()` around `CreateError`.
pub async fn create_unique<F, Fut>(mut attempt: F) -> Result<Saved>
where
    F: FnMut(SessionKey) -> Fut,
    Fut: Future<Output = Result<Saved>>,
{
    for _ in 0..CREATE_ATTEMPTS {
        match attempt(SessionKey::generate()).await {
            Err(Error::KeyCollision) => {}
            other => return other,
        }
    }
    Err(Error::KeyCollision)
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe twin of [`SessionStore`], so `Session` need not be generic.
pub(crate) trait ErasedStore: Send + Sync + 'static {
    fn key_kind(&self) -> KeyKind;
    fn call_timeout(&self) -> Option<Duration>;
    fn load_contents<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Option<Contents>>>;
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<Saved>>;
    fn save<'a>(&'a self, key: &'a SessionKey, record: &'a Record) -> BoxFuture<'a, Result<Saved>>;
    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<()>>;
    fn touch<'a>(&'a self, key: &'a SessionKey, until: OffsetDateTime)
    -> BoxFuture<'a, Result<()>>;
}

impl<S: SessionStore> ErasedStore for S {
    fn key_kind(&self) -> KeyKind {
        SessionStore::key_kind(self)
    }
    fn call_timeout(&self) -> Option<Duration> {
        SessionStore::call_timeout(self)
    }
    fn load_contents<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Option<Contents>>> {
        Box::pin(SessionStore::load_contents(self, key))
    }
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<Saved>> {
        Box::pin(SessionStore::create(self, record))
    }
    fn save<'a>(&'a self, key: &'a SessionKey, record: &'a Record) -> BoxFuture<'a, Result<Saved>> {
        Box::pin(SessionStore::save(self, key, record))
    }
    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::delete(self, key))
    }
    fn touch<'a>(
        &'a self,
        key: &'a SessionKey,
        until: OffsetDateTime,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::touch(self, key, until))
    }
}

/// A shared, type-erased store handle.
pub(crate) type DynStore = Arc<dyn ErasedStore>;

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(key: SessionKey) -> Result<Saved> {
        Ok(Saved {
            key,
            version: Version::from_u64(1),
        })
    }

    #[tokio::test]
    async fn a_taken_key_is_retried_with_a_fresh_one() {
        let mut tried = Vec::new();
        let result = create_unique(|key| {
            tried.push(key.clone());
            let taken = tried.len() < 3;
            async move {
                if taken {
                    Err(Error::KeyCollision)
                } else {
                    saved(key)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(tried.len(), 3);
        assert_eq!(
            result.key, tried[2],
            "the key of the attempt that succeeded"
        );
        assert!(tried[0] != tried[1] && tried[1] != tried[2] && tried[0] != tried[2]);
    }

    #[tokio::test]
    async fn collisions_give_up_after_create_attempts_and_other_errors_at_once() {
        let mut attempts = 0;
        let result = create_unique(|_| {
            attempts += 1;
            async { Err(Error::KeyCollision) }
        })
        .await;
        assert!(matches!(result, Err(Error::KeyCollision)));
        assert_eq!(attempts, CREATE_ATTEMPTS);

        let mut attempts = 0;
        let result = create_unique(|_| {
            attempts += 1;
            async { Err(Error::Missing) }
        })
        .await;
        assert!(matches!(result, Err(Error::Missing)));
        assert_eq!(attempts, 1);
    }
}
