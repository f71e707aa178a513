//! Test doubles: a store that is down, one that counts calls, one that is
//! slow, one that can be switched off and on.
//!
//! Plain types implementing `SessionStore`, no mocking framework: a test
//! states what it needs by picking a double, and a double that forwards
//! passes the store suite like any store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sesame::backends::{Record, Saved, SessionStore};
use sesame::{Error, KeyKind, Result, SessionKey};
use time::OffsetDateTime;

/// The error inside every [`FailingStore`] failure: a stand-in for a refused
/// connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outage;

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session store unavailable (FailingStore)")
    }
}

impl std::error::Error for Outage {}

/// A store that is down: every call fails with `Error::Backend(Outage)`.
///
/// Use it to test the outage policy: the middleware's 503, and that no error
/// text reaches a response body. `clear_expired`, `exists` and `touch` fail
/// too, rather than falling back to the trait's defaults.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sesame::SessionKey;
/// use sesame::backends::SessionStore;
/// use sesame_conformance::FailingStore;
///
/// let err = FailingStore::new().load(&SessionKey::generate()).await.unwrap_err();
/// assert!(err.is_outage());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FailingStore {
    _private: (),
}

impl FailingStore {
    /// A store whose every call fails.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

fn outage<T>() -> Result<T> {
    Err(Error::backend(Outage))
}

impl SessionStore for FailingStore {
    async fn load(&self, _key: &SessionKey) -> Result<Option<Record>> {
        outage()
    }

    async fn create(&self, _record: &Record) -> Result<Saved> {
        outage()
    }

    async fn save(&self, _key: &SessionKey, _record: &Record) -> Result<Saved> {
        outage()
    }

    async fn delete(&self, _key: &SessionKey) -> Result<()> {
        outage()
    }

    async fn exists(&self, _key: &SessionKey) -> Result<bool> {
        outage()
    }

    async fn touch(&self, _key: &SessionKey, _until: OffsetDateTime) -> Result<()> {
        outage()
    }

    async fn clear_expired(&self) -> Result<u64> {
        outage()
    }
}

/// How many times each store method was called: a snapshot taken by
/// [`CountingStore::calls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Calls to `load`.
    pub load: u64,
    /// Calls to `create`.
    pub create: u64,
    /// Calls to `save`.
    pub save: u64,
    /// Calls to `delete`.
    pub delete: u64,
    /// Calls to `exists`.
    pub exists: u64,
    /// Calls to `touch`.
    pub touch: u64,
    /// Calls to `clear_expired`.
    pub clear_expired: u64,
}

impl Calls {
    /// Every call: the store round trips made.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.lookups() + self.writes() + self.clear_expired
    }

    /// Calls that read a record: `load` and `exists`.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.load + self.exists
    }

    /// Calls that write a record: `create`, `save`, `delete` and `touch`.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.create + self.save + self.delete + self.touch
    }
}

#[derive(Debug, Default)]
struct Counters {
    load: AtomicU64,
    create: AtomicU64,
    save: AtomicU64,
    delete: AtomicU64,
    exists: AtomicU64,
    touch: AtomicU64,
    clear_expired: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Wraps a store and counts the calls made to it, per method.
///
/// Proves claims such as "a request that never touches its session makes
/// zero store round trips" or "at most two lookups". Each call is forwarded
/// to the same method of the wrapped store (its own `exists` and `touch`,
/// not the trait's defaults), and counted once however the wrapped store
/// implements it. Clones share the counts.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sesame::SessionKey;
/// use sesame::backends::{MemoryStore, SessionStore};
/// use sesame_conformance::CountingStore;
///
/// let store = CountingStore::new(MemoryStore::new());
/// assert_eq!(store.calls().total(), 0);
/// store.load(&SessionKey::generate()).await.unwrap();
/// store.clone().exists(&SessionKey::generate()).await.unwrap();
/// assert_eq!(store.calls().lookups(), 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CountingStore<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S> CountingStore<S> {
    /// Wraps `inner`, with every count at zero.
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// The calls made so far, per method.
    #[must_use]
    pub fn calls(&self) -> Calls {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Calls {
            load: get(&c.load),
            create: get(&c.create),
            save: get(&c.save),
            delete: get(&c.delete),
            exists: get(&c.exists),
            touch: get(&c.touch),
            clear_expired: get(&c.clear_expired),
        }
    }

    /// Sets every count back to zero (for this store and its clones).
    pub fn reset(&self) {
        let c = &self.counters;
        for counter in [
            &c.load,
            &c.create,
            &c.save,
            &c.delete,
            &c.exists,
            &c.touch,
            &c.clear_expired,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The wrapped store, to inspect or seed it without counting.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: SessionStore> SessionStore for CountingStore<S> {
    fn key_kind(&self) -> KeyKind {
        self.inner.key_kind()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        bump(&self.counters.load);
        self.inner.load(key).await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        bump(&self.counters.create);
        self.inner.create(record).await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        bump(&self.counters.save);
        self.inner.save(key, record).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        bump(&self.counters.delete);
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        bump(&self.counters.exists);
        self.inner.exists(key).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        bump(&self.counters.touch);
        self.inner.touch(key, until).await
    }

    async fn clear_expired(&self) -> Result<u64> {
        bump(&self.counters.clear_expired);
        self.inner.clear_expired().await
    }
}

/// Wraps a store and waits a fixed delay (`tokio::time::sleep`) before
/// forwarding each call.
///
/// Use it to test store timeouts and the outage policy for a store that is
/// up but too slow, ideally on a paused tokio clock so the test takes no
/// real time. Clones share nothing but the wrapped store.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
///
/// use sesame::SessionKey;
/// use sesame::backends::{MemoryStore, SessionStore};
/// use sesame_conformance::SlowStore;
///
/// let store = SlowStore::new(MemoryStore::new(), Duration::from_millis(1));
/// assert_eq!(store.delay(), Duration::from_millis(1));
/// assert!(store.load(&SessionKey::generate()).await.unwrap().is_none());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SlowStore<S> {
    inner: S,
    delay: Duration,
}

impl<S> SlowStore<S> {
    /// Wraps `inner`, delaying each call by `delay`.
    #[must_use]
    pub fn new(inner: S, delay: Duration) -> Self {
        Self { inner, delay }
    }

    /// The delay before each call.
    #[must_use]
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The wrapped store, to inspect or seed it without waiting.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }
}

impl<S: SessionStore> SessionStore for SlowStore<S> {
    fn key_kind(&self) -> KeyKind {
        self.inner.key_kind()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.wait().await;
        self.inner.load(key).await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        self.wait().await;
        self.inner.create(record).await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        self.wait().await;
        self.inner.save(key, record).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.wait().await;
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        self.wait().await;
        self.inner.exists(key).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        self.wait().await;
        self.inner.touch(key, until).await
    }

    async fn clear_expired(&self) -> Result<u64> {
        self.wait().await;
        self.inner.clear_expired().await
    }
}

/// Wraps a store that can be switched off and on: while stopped, every call
/// fails as [`FailingStore`]'s do (`Error::Backend(Outage)`); once started
/// again, calls reach the wrapped store, whose records are intact.
///
/// Use it to take the store under test down in the middle of a scenario
/// (after a session was saved, or between a handler's load and the save).
/// For a real network outage, see [`ToggleProxy`](crate::ToggleProxy).
/// Clones share the switch.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sesame::SessionKey;
/// use sesame::backends::{MemoryStore, SessionStore};
/// use sesame_conformance::ToggleStore;
///
/// let store = ToggleStore::new(MemoryStore::new());
/// store.stop();
/// assert!(store.load(&SessionKey::generate()).await.unwrap_err().is_outage());
/// store.start();
/// assert!(store.load(&SessionKey::generate()).await.unwrap().is_none());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ToggleStore<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S> ToggleStore<S> {
    /// Wraps `inner`, started.
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: Arc::default(),
        }
    }

    /// Makes every call fail from now on (this store and its clones).
    pub fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// Lets calls through to the wrapped store again.
    pub fn start(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Whether calls fail now.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// The wrapped store, reachable whatever the switch says.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<()> {
        if self.is_stopped() { outage() } else { Ok(()) }
    }
}

impl<S: SessionStore> SessionStore for ToggleStore<S> {
    fn key_kind(&self) -> KeyKind {
        self.inner.key_kind()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.check()?;
        self.inner.load(key).await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        self.check()?;
        self.inner.create(record).await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        self.check()?;
        self.inner.save(key, record).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        self.check()?;
        self.inner.exists(key).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        self.check()?;
        self.inner.touch(key, until).await
    }

    async fn clear_expired(&self) -> Result<u64> {
        self.check()?;
        self.inner.clear_expired().await
    }
}

#[cfg(test)]
mod tests {
    use sesame::backends::MemoryStore;
    use time::Duration;

    use super::*;

    fn record() -> Record {
        Record::new(
            sesame::codec::SessionMap::new(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        )
    }

    #[tokio::test]
    async fn failing_store_fails_every_call_as_an_outage() {
        let store = FailingStore::new();
        let key = SessionKey::generate();
        let until = OffsetDateTime::now_utc();
        assert!(store.load(&key).await.unwrap_err().is_outage());
        assert!(store.create(&record()).await.unwrap_err().is_outage());
        assert!(store.save(&key, &record()).await.unwrap_err().is_outage());
        assert!(store.delete(&key).await.unwrap_err().is_outage());
        assert!(store.exists(&key).await.unwrap_err().is_outage());
        assert!(store.touch(&key, until).await.unwrap_err().is_outage());
        assert!(store.clear_expired().await.unwrap_err().is_outage());
    }

    #[tokio::test]
    async fn failing_store_keeps_its_error_as_the_source() {
        let err = FailingStore::new().delete(&SessionKey::generate()).await;
        let source = std::error::Error::source(&err.unwrap_err()).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("session store unavailable (FailingStore)")
        );
    }

    #[test]
    fn wrappers_forward_the_key_kind() {
        let signed = sesame::backends::SignedCookieStore::new(sesame::Signer::new("k"));
        assert_eq!(
            CountingStore::new(signed.clone()).key_kind(),
            KeyKind::Signed
        );
        assert_eq!(
            SlowStore::new(signed, std::time::Duration::from_millis(1)).key_kind(),
            KeyKind::Signed
        );
        assert_eq!(
            CountingStore::new(MemoryStore::new()).key_kind(),
            KeyKind::Random
        );
    }

    #[tokio::test]
    async fn counting_store_counts_each_method_once_and_clones_share_counts() {
        let store = CountingStore::new(MemoryStore::new());
        let clone = store.clone();
        let saved = store.create(&record()).await.unwrap();
        clone.load(&saved.key).await.unwrap();
        clone.save(&saved.key, &record()).await.unwrap();
        // MemoryStore's own `exists` and `touch` are called, and each counts once.
        store.exists(&saved.key).await.unwrap();
        store.touch(&saved.key, record().expires_at).await.unwrap();
        store.delete(&saved.key).await.unwrap();
        store.clear_expired().await.unwrap();
        let calls = store.calls();
        assert_eq!(
            calls,
            Calls {
                load: 1,
                create: 1,
                save: 1,
                delete: 1,
                exists: 1,
                touch: 1,
                clear_expired: 1,
            }
        );
        assert_eq!((calls.lookups(), calls.writes(), calls.total()), (2, 4, 7));
        clone.reset();
        assert_eq!(store.calls(), Calls::default());
    }

    #[tokio::test]
    async fn slow_store_waits_before_forwarding() {
        let store = SlowStore::new(MemoryStore::new(), std::time::Duration::from_millis(5));
        let start = tokio::time::Instant::now();
        let saved = store.create(&record()).await.unwrap();
        assert!(store.inner().exists(&saved.key).await.unwrap());
        // `sleep` never wakes early, so this holds however loaded the machine is.
        assert!(start.elapsed() >= store.delay());
    }
}
