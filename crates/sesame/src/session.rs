//! `Session`: the lazy, dict-like handle a request works with.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use indexmap::IndexMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sesame_codec::{SESSION_EXPIRY_KEY, SessionMap, TEST_COOKIE_NAME, TEST_COOKIE_VALUE};
use time::OffsetDateTime;

use crate::backends::{Contents, DynStore, Record, Saved, SessionStore, Version};
use crate::shared_map::SharedMap;
use crate::{Error, Expiry, KeyKind, OutagePolicy, Result, SessionKey, Settings};

/// How many times a save re-reads and re-applies its changes after a
/// concurrent write before giving up with [`Error::Conflict`].
///
/// An attempt is lost only when another request saved the record in
/// between, and a request saves once, so with at most this many requests
/// writing one session at once every save succeeds, however they interleave.
const MAX_SAVE_ATTEMPTS: u32 = 64;

/// The second retry after a conflict waits up to this long; each later one
/// up to twice as long as the one before, at most [`MAX_BACKOFF`]. The
/// first goes at once.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(1);

/// The longest wait between two attempts of one save.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(16);

/// Waits before retry number `attempt` (from 1) of a conflicting write.
///
/// The first retry only yields: the conflict says another request has
/// just committed, so the record read now is the one to merge with, and
/// two requests racing once (the common case) cost no wait. From the
/// second on, a random time up to `FIRST_BACKOFF * 2^(attempt - 2)`,
/// capped ("full jitter"), so writers that keep losing the same race do not
/// retry in lockstep and lose again together.
async fn backoff(attempt: u32) {
    if attempt <= 1 {
        tokio::task::yield_now().await;
        return;
    }
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(2).min(16))
        .min(MAX_BACKOFF);
    let mut bytes = [0; 4];
    // No randomness (never seen in practice): wait the full ceiling.
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    tokio::time::sleep(ceiling.mul_f64(fraction)).await;
}

/// The reason in [`Error::Unsaveable`] once the store was found unavailable.
pub(crate) const STORE_UNAVAILABLE: &str = "the session store was unavailable";

/// Why a session whose key rotation failed refuses to save.
pub(crate) const ROTATION_FAILED: &str = "its key rotation failed in this request";

/// What a save does when the record changed since this session loaded it.
///
/// # Django
///
/// Django always overwrites (`LastWriteWins`); Sesame merges by default so
/// that concurrent requests on one session lose nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Re-read the record, re-apply only the keys this session changed, and
    /// retry (bounded). Changes to distinct keys all survive; for the same key
    /// the last save wins. A key written back with the value it was loaded
    /// with counts as unchanged (a three-way merge), so it takes the stored
    /// value.
    #[default]
    Merge,
    /// Overwrite whatever is stored, as Django does.
    LastWriteWins,
    /// Report [`Error::Conflict`] to the caller (409 from the middleware).
    Strict,
}

/// Everything a session needs besides its own state: the store and the settings.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: DynStore,
    pub(crate) settings: Settings,
    pub(crate) policy: ConflictPolicy,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A session: a lazily loaded, dict-like view of one stored record.
///
/// Nothing is read from the store until a method needs the data, so routes
/// that never touch the session never wait for the store. Cloning is cheap
/// and clones share state (it is an `Arc` inside).
///
/// Methods follow Django's `SessionBase`, including when they mark the
/// session *accessed* (the response then varies on `Cookie`) and *modified*
/// (the middleware then saves it and sends the cookie).
///
/// # Examples
///
/// Outside a request, like Django's `SessionStore(session_key=…)`:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Session;
/// use sesame::backends::MemoryStore;
///
/// let store = MemoryStore::new();
/// let session = Session::new(store.clone(), None);
/// session.insert("counter", 1).await?;
/// session.save().await?;
/// let key = session.session_key().expect("saved sessions have a key");
///
/// let again = Session::new(store, Some(key));
/// assert_eq!(again.get::<i64>("counter").await?, Some(1));
/// # Ok(()) }
/// ```
#[doc(alias = "SessionBase")]
#[doc(alias = "request.session")]
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Serialises loads, so concurrent first accesses hit the store once.
    load_lock: tokio::sync::Mutex<()>,
}

#[derive(Clone, Default)]
struct State {
    /// Keys read from the request's cookies, not yet looked up (at most two).
    candidates: Candidates,
    /// The key of the stored record this session mirrors, once loaded.
    key: Option<SessionKey>,
    /// Whether `data` reflects the store (or a fresh, empty session).
    loaded: bool,
    data: SharedMap,
    version: Option<Version>,
    accessed: bool,
    modified: bool,
    /// Counts changes to the data: a save that finds it moved on since it
    /// took its record leaves the later changes pending.
    generation: u64,
    /// Keys changed by this session since it was loaded, in the order they
    /// were first changed, each with its value in the stored state `data`
    /// derives from (`None`: absent; after a `clear()`, the empty session).
    /// On conflict a key is re-applied only if its value differs from that
    /// base: a three-way merge.
    changed: IndexMap<String, Option<Value>>,
    /// Whether `clear()` emptied the session since it was loaded: the
    /// `generation` that clear gave the data.
    cleared: Option<u64>,
    /// A store outage was seen: the data is unknown and must not be saved.
    outage: bool,
    /// `save()` wrote the session during this request: the client must be
    /// sent its key even if nothing changed after that save.
    saved: bool,
    /// `cycle_key()` gave the session a new key during this request.
    rotated: bool,
    /// A key rotation failed half-way: the session must not be saved again
    /// in this request (its data may belong to the new key only).
    frozen: bool,
    /// The record under the key could not be read (corrupt data): a save
    /// overwrites it whole, never only moves its expiry.
    unreadable: bool,
    /// Counts `flush()`, `cycle_key()` and `reload()`: a save that was in
    /// flight across one of them wrote for a session that has moved on, and
    /// must not take its key or version back.
    epoch: u64,
    /// This session's own conflict policy, when it differs from the layer's.
    policy: Option<ConflictPolicy>,
}

/// Up to two keys from the request's cookies, in the order they were sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    keys: [Option<SessionKey>; 2],
}

impl Candidates {
    pub(crate) fn push(&mut self, key: SessionKey) -> bool {
        match &self.keys {
            [None, _] => self.keys[0] = Some(key),
            [Some(a), None] if *a != key => self.keys[1] = Some(key),
            _ => return false,
        }
        true
    }

    pub(crate) fn is_full(&self) -> bool {
        self.keys[1].is_some()
    }

    fn first(&self) -> Option<&SessionKey> {
        self.keys[0].as_ref()
    }

    fn iter(&self) -> impl Iterator<Item = &SessionKey> + '_ {
        self.keys.iter().flatten()
    }

    pub(crate) fn to_vec(&self) -> Vec<SessionKey> {
        self.iter().cloned().collect()
    }
}

/// Flags the middleware reads after the handler has run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) accessed: bool,
    pub(crate) modified: bool,
    pub(crate) empty: bool,
    pub(crate) loaded: bool,
    pub(crate) outage: bool,
    pub(crate) saved: bool,
    pub(crate) rotated: bool,
    pub(crate) frozen: bool,
}

impl fmt::Debug for Session {
    // Never prints the data or the whole key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("key", &state.key.as_ref().map(|k| k.redacted().to_string()))
            .field("loaded", &state.loaded)
            .field("accessed", &state.accessed)
            .field("modified", &state.modified)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session on `store` for `key` (or a new session for `None`), with
    /// default [`Settings`].
    ///
    /// Nothing is read until the data is used; an unknown or expired key
    /// behaves as a new, empty session and is never adopted: a fresh key is
    /// minted when the data is first saved.
    #[must_use]
    pub fn new(store: impl SessionStore, key: Option<SessionKey>) -> Self {
        Self::with_settings(store, key, Settings::default())
    }

    /// Like [`new`](Self::new), with explicit settings (cookie age and browser-close policy).
    #[must_use]
    pub fn with_settings(
        store: impl SessionStore,
        key: Option<SessionKey>,
        settings: Settings,
    ) -> Self {
        let shared = Arc::new(Shared {
            store: Arc::new(store),
            settings,
            policy: ConflictPolicy::default(),
        });
        let mut candidates = Candidates::default();
        if let Some(key) = key {
            candidates.push(key);
        }
        Self::from_shared(shared, candidates)
    }

    /// This session with another [`ConflictPolicy`] (a session made with
    /// [`new`](Self::new) uses the default, `Merge`; the middleware's
    /// sessions use the layer's policy).
    ///
    /// The policy belongs to the session, not the handle: every clone (the
    /// middleware's included) saves with it from then on.
    ///
    /// # Examples
    ///
    /// ```
    /// use sesame::backends::MemoryStore;
    /// use sesame::{ConflictPolicy, Session};
    ///
    /// let session = Session::new(MemoryStore::new(), None)
    ///     .with_conflict_policy(ConflictPolicy::Strict);
    /// # let _ = session;
    /// ```
    #[must_use]
    pub fn with_conflict_policy(self, policy: ConflictPolicy) -> Self {
        self.state().policy = Some(policy);
        self
    }

    /// The conflict policy this session saves with.
    fn policy(&self) -> ConflictPolicy {
        self.state().policy.unwrap_or(self.inner.shared.policy)
    }

    pub(crate) fn from_shared(shared: Arc<Shared>, candidates: Candidates) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                state: Mutex::new(State {
                    candidates,
                    ..State::default()
                }),
                load_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before any code
        // that could panic, so a poisoned lock is still safe to use.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.shared.settings
    }

    /// Reads the record under `key` again (after a conflict, or for
    /// `reload`): a record made unreadable meanwhile (another app wrote it)
    /// counts as gone.
    async fn reread(&self, key: &SessionKey) -> Result<Option<Contents>> {
        match self.call(self.inner.shared.store.load_contents(key)).await {
            Err(Error::Corrupt(_)) => Ok(None),
            fresh => fresh,
        }
    }

    /// Runs one store call under the configured timeout, noting and logging outages.
    async fn call<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let mut fut = std::pin::pin!(fut);
        // A store that answers at once (memory, a cache hit) needs no timer:
        // poll once before arming one.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
        let result = match first {
            std::task::Poll::Ready(r) => r,
            // A store that bounds its own calls within the setting needs no
            // second timer.
            std::task::Poll::Pending
                if self
                    .inner
                    .shared
                    .store
                    .call_timeout()
                    .is_some_and(|bound| bound <= self.settings().store_timeout) =>
            {
                fut.await
            }
            std::task::Poll::Pending => {
                match tokio::time::timeout(self.settings().store_timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout),
                }
            }
        };
        if let Err(e) = &result
            && e.is_outage()
        {
            // Logged here, where the error is at hand: the middleware only
            // sees the flag, and a handler's `?` turns the error into a 503
            // without a word.
            tracing::error!(
                target: "sesame::store",
                error = %e,
                source = ?std::error::Error::source(e),
                "session store unavailable"
            );
            self.state().outage = true;
        }
        result
    }

    fn fails_open(&self) -> bool {
        self.settings().outage_policy == OutagePolicy::FailOpen
    }

    /// `Err(Unsaveable)` once an outage was seen: the data is unknown, and a
    /// second store call would only wait for another timeout.
    fn check_no_outage(&self) -> Result<()> {
        if self.state().outage {
            return Err(Error::Unsaveable(STORE_UNAVAILABLE));
        }
        Ok(())
    }

    /// `Err(TooLarge)` when `record`'s JSON exceeds `max_session_size`.
    fn check_size(&self, record: &Record) -> Result<()> {
        let limit = self.settings().max_session_size;
        let len = json_len(&record.data);
        if len > limit {
            return Err(Error::TooLarge { len, limit });
        }
        Ok(())
    }

    /// Loads the record on first use. `mark` sets `accessed`, as Django's
    /// `_session` property does.
    ///
    /// A store outage is the error under [`OutagePolicy::FailClosed`]; under
    /// [`OutagePolicy::FailOpen`] the session becomes empty, loaded and
    /// unsaveable, and this returns `Ok`.
    async fn load(&self, mark: bool) -> Result<()> {
        {
            let mut state = self.state();
            if state.outage && !(state.loaded && self.fails_open()) {
                return Err(Error::Unsaveable(STORE_UNAVAILABLE));
            }
            if mark {
                state.accessed = true;
            }
            if state.loaded {
                return Ok(());
            }
        }
        let _guard = self.inner.load_lock.lock().await;
        let candidates = {
            let state = self.state();
            if state.loaded {
                return Ok(());
            }
            state.candidates.clone()
        };
        let mut found = None;
        let mut first_corrupt = None;
        for key in candidates.iter() {
            match self.call(self.inner.shared.store.load_contents(key)).await {
                Ok(Some(record)) => {
                    found = Some((key.clone(), record));
                    break;
                }
                Ok(None) => {}
                Err(Error::Corrupt(e)) => {
                    tracing::warn!(
                        target: "sesame::security",
                        key = %key.redacted(),
                        error = %e,
                        "session data corrupted; starting an empty session"
                    );
                    // A later cookie may still name a good session.
                    first_corrupt.get_or_insert_with(|| key.clone());
                }
                Err(e) if e.is_outage() && self.fails_open() => {
                    // Fail open: an empty session, which `save` refuses
                    // (the `outage` flag is set), so nothing is overwritten.
                    let mut state = self.state();
                    state.rebase(None);
                    state.loaded = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let mut corrupt = false;
        if found.is_none()
            && let Some(key) = first_corrupt
        {
            // As Django: the record exists, so its key is kept and the
            // next save overwrites it (no version: unconditionally).
            corrupt = true;
            let empty = Contents {
                data: Default::default(),
                version: None,
            };
            found = Some((key, empty));
        }
        let mut state = self.state();
        state.rebase(found);
        state.unreadable = corrupt;
        if corrupt && self.inner.shared.store.key_kind() == KeyKind::Signed {
            // Django's signed_cookies engine re-issues a cookie holding an
            // empty session in place of a bad one.
            state.modified = true;
        }
        state.loaded = true;
        Ok(())
    }

    /// Runs `f` on the loaded data, marking the session accessed.
    async fn with_data<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T> {
        self.load(true).await?;
        Ok(f(&mut self.state()))
    }

    // ----- reading ---------------------------------------------------------

    /// The value under `key`, deserialised into `T`.
    ///
    /// # Errors
    ///
    /// A store error while loading, or [`Error::Json`] when the stored value
    /// does not deserialise into `T`.
    ///
    /// # Django
    ///
    /// `session.get(key)`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        // Deserialised from the stored value in place: no copy of it first.
        self.with_data(|s| {
            s.data
                .get(key)
                .map(|v| T::deserialize(v).map_err(Error::Json))
                .transpose()
        })
        .await?
    }

    /// The raw JSON value under `key`.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        self.with_data(|s| s.data.get(key).cloned()).await
    }

    /// Whether the session holds `key`.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    #[doc(alias = "has_key")]
    #[doc(alias = "__contains__")]
    pub async fn contains(&self, key: &str) -> Result<bool> {
        self.with_data(|s| s.data.contains_key(key)).await
    }

    /// The session's keys, in insertion order.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn keys(&self) -> Result<Vec<String>> {
        self.with_data(|s| s.data.keys().cloned().collect()).await
    }

    /// The session's values, in insertion order.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn values(&self) -> Result<Vec<Value>> {
        self.with_data(|s| s.data.values().cloned().collect()).await
    }

    /// The session's contents as pairs, in insertion order.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn items(&self) -> Result<Vec<(String, Value)>> {
        self.with_data(|s| s.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .await
    }

    /// The session's contents as one JSON object.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn to_map(&self) -> Result<SessionMap> {
        self.with_data(|s| SessionMap::clone(&s.data)).await
    }

    /// How many keys the session holds.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn len(&self) -> Result<usize> {
        self.with_data(|s| s.data.len()).await
    }

    /// Whether the session has neither a key nor data. Does not load.
    ///
    /// # Django
    ///
    /// `session.is_empty()`: `True` when there is no session key and no
    /// loaded data. A session whose cookie carries a key counts as not empty
    /// until a load shows the key unknown.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.state().is_empty()
    }

    /// The session's key: the stored record's key once loaded, before that
    /// the key the request's cookie carried. `None` for a new session. Does
    /// not load.
    ///
    /// # Django
    ///
    /// `session.session_key` (read-only).
    #[must_use]
    pub fn session_key(&self) -> Option<SessionKey> {
        self.state().current_key().cloned()
    }

    /// Whether the data has been read or written during this request.
    #[doc(alias = "accessed")]
    #[must_use]
    pub fn is_accessed(&self) -> bool {
        self.state().accessed
    }

    /// Whether the data was changed and will be saved.
    #[doc(alias = "modified")]
    #[must_use]
    pub fn is_modified(&self) -> bool {
        self.state().modified
    }

    // ----- writing ---------------------------------------------------------

    /// Stores `value` under `key`.
    ///
    /// # Errors
    ///
    /// A store error while loading, or [`Error::Json`] when `value` does not serialise.
    ///
    /// # Django
    ///
    /// `session[key] = value`.
    #[doc(alias = "__setitem__")]
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value).map_err(Error::Json)?;
        self.insert_value(key, value).await
    }

    /// Stores a raw JSON value under `key`.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<()> {
        self.with_data(|s| {
            s.set(key, Some(value));
        })
        .await
    }

    /// Removes `key`, returning its value if it was there.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Django
    ///
    /// `del session[key]` (which raises `KeyError` where this returns `None`).
    #[doc(alias = "__delitem__")]
    pub async fn remove(&self, key: &str) -> Result<Option<Value>> {
        self.with_data(|s| {
            let value = s.data.get(key).cloned();
            if value.is_some() {
                s.set(key, None);
            }
            value
        })
        .await
    }

    /// Removes `key` and returns its value deserialised, or `None` if absent.
    /// The session counts as modified only if the key was there.
    ///
    /// # Errors
    ///
    /// A store error while loading, or [`Error::Json`] when the value does not
    /// deserialise into `T` (the key is removed all the same).
    ///
    /// # Django
    ///
    /// `session.pop(key)`.
    pub async fn pop<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.remove(key)
            .await?
            .map(|v| serde_json::from_value(v).map_err(Error::Json))
            .transpose()
    }

    /// Removes `key` and returns its value, or `default` if absent.
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    ///
    /// # Django
    ///
    /// `session.pop(key, default)`.
    pub async fn pop_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        Ok(self.pop(key).await?.unwrap_or(default))
    }

    /// Returns the value under `key`, first storing `default` there if absent.
    ///
    /// # Errors
    ///
    /// A store error while loading, or [`Error::Json`] when a value does not
    /// (de)serialise.
    ///
    /// # Django
    ///
    /// `session.setdefault(key, default)`.
    pub async fn setdefault<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T> {
        let default = serde_json::to_value(default).map_err(Error::Json)?;
        let value = self
            .with_data(|s| match s.data.get(key) {
                Some(v) => v.clone(),
                None => {
                    s.set(key, Some(default.clone()));
                    default
                }
            })
            .await?;
        serde_json::from_value(value).map_err(Error::Json)
    }

    /// Merges `entries` into the session.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Django
    ///
    /// `session.update(dict)`.
    pub async fn update(&self, entries: impl IntoIterator<Item = (String, Value)>) -> Result<()> {
        self.with_data(|s| {
            for (k, v) in entries {
                s.set(&k, Some(v));
            }
            s.mark_modified();
        })
        .await
    }

    /// Empties the session's data, keeping its key. Does not load.
    ///
    /// # Django
    ///
    /// `session.clear()`.
    pub fn clear(&self) {
        let mut state = self.state();
        state.data.clear();
        state.changed.clear();
        state.mark_modified();
        state.cleared = Some(state.generation);
        state.accessed = true;
    }

    /// Empties the session, deletes its record and drops its key: logout.
    /// A later write in the same request starts a new session with a new key.
    ///
    /// A key that names no live record (a forged or stale cookie) costs one
    /// lookup and no write: only a record that exists is deleted.
    ///
    /// # Errors
    ///
    /// A store error while loading or deleting, or [`Error::Unsaveable`]
    /// (nothing deleted, the cookie kept) once this request found the store
    /// unavailable: a logout that did not happen must not look done.
    ///
    /// # Django
    ///
    /// `session.flush()`. Django deletes the cookie's key without looking
    /// it up, so a request with a random cookie costs a `DELETE`; Sesame
    /// looks first, so anonymous requests never write.
    pub async fn flush(&self) -> Result<()> {
        self.load(true).await?;
        self.check_no_outage()?;
        let (doomed, others) = {
            let mut state = self.state();
            let doomed = state.key.take();
            state.epoch += 1;
            let others: Vec<SessionKey> = state
                .candidates
                .iter()
                .filter(|k| Some(*k) != doomed.as_ref())
                .cloned()
                .collect();
            state.reset_empty();
            state.accessed = true;
            state.modified = true;
            (doomed, others)
        };
        let store = &self.inner.shared.store;
        if let Some(key) = doomed {
            self.call(store.delete(&key)).await?;
        }
        // A second session cookie (another Path or Domain) names a session
        // the removal cookie may not reach: end it too, if it exists (a
        // lookup, so a forged cookie still costs no write).
        for key in others {
            let live = match self.call(store.load_contents(&key)).await {
                Ok(found) => found.is_some(),
                // A record that exists but does not decode is still ended.
                Err(Error::Corrupt(_)) => true,
                Err(e) => return Err(e),
            };
            if live {
                self.call(store.delete(&key)).await?;
            }
        }
        Ok(())
    }

    /// Gives the session a new key, keeping its data, and deletes the old
    /// record: call it at login against session fixation.
    ///
    /// The rotation is exclusive: the new record is created, then the old
    /// one is retired by a compare-and-swap on the version this session
    /// loaded. Of two concurrent rotations of one session exactly one wins
    /// and the other removes the record it created, so one live key
    /// remains; a rotation racing a logout never brings the session back
    /// under its new key. A change another request saved to the old record
    /// meanwhile is merged into the new one (under
    /// [`ConflictPolicy::Merge`]), overwritten (`LastWriteWins`) or reported
    /// (`Strict`).
    ///
    /// # Errors
    ///
    /// [`Error::Missing`] when the old record was deleted (a logout) or
    /// retired (a concurrent rotation) meanwhile, [`Error::Conflict`] under
    /// the strict policy when it was changed meanwhile,
    /// [`Error::TooLarge`] over [`Settings::max_session_size`] (this
    /// session's data, or its merge with a change saved meanwhile),
    /// [`Error::Unsaveable`] once this request found the store unavailable,
    /// or a store error. On any error no new record remains (unless removing
    /// it failed too).
    ///
    /// # Django
    ///
    /// `session.cycle_key()`: stores the data under a new key at once, then
    /// deletes the old record. Django deletes unconditionally, so two
    /// concurrent logins leave two live keys.
    pub async fn cycle_key(&self) -> Result<()> {
        self.load(true).await?;
        self.check_no_outage()?;
        let shared = &self.inner.shared;
        let (old, record) = {
            let state = self.state();
            (
                state.key.clone().map(|k| (k, state.version.clone())),
                self.record_of(&state),
            )
        };
        self.check_size(&record)?;
        let snapshot = self.state().clone();
        let mut new = self.call(shared.store.create(&record)).await?;
        // A signed key is the data: there is nothing stored to retire.
        if let Some((old_key, old_version)) = old
            && shared.store.key_kind() != KeyKind::Signed
            && let Err(e) = self.retire(&old_key, old_version, &mut new).await
        {
            // Best effort: the error that matters is the rotation's.
            let _ = self.call(shared.store.delete(&new.key)).await;
            // Back to the state before the rotation, and no further save in
            // this request: data meant for the new key (a login's) must
            // never be written under the old one.
            let mut state = self.state();
            *state = snapshot;
            state.frozen = true;
            return Err(e);
        }
        let mut state = self.state();
        state.key = Some(new.key);
        state.version = Some(new.version);
        state.epoch += 1;
        state.changed.clear();
        state.cleared = None;
        state.modified = true;
        state.rotated = true;
        Ok(())
    }

    /// Retires the record a rotation leaves: a compare-and-swap to an
    /// expired, empty record (which no request can load or save any more),
    /// then a delete. A conflict re-reads the old record and, under `Merge`,
    /// carries the other request's change into the `new` record first.
    async fn retire(
        &self,
        old_key: &SessionKey,
        mut old_version: Option<Version>,
        new: &mut Saved,
    ) -> Result<()> {
        let shared = &self.inner.shared;
        let policy = self.policy();
        // Stores keep expiry to the second at worst; an hour ago is past everywhere.
        let retired_at = OffsetDateTime::now_utc() - time::Duration::hours(1);
        for attempt in 1..=MAX_SAVE_ATTEMPTS {
            let tombstone = Record {
                data: Arc::default(),
                expires_at: retired_at,
                version: old_version.clone(),
            };
            match self.call(shared.store.save(old_key, &tombstone)).await {
                Ok(_) => {
                    // The old record is already expired, so no request can
                    // load it: a failed delete leaves only garbage for
                    // `clear_expired`, and must not undo the rotation.
                    if let Err(e) = self.call(shared.store.delete(old_key)).await {
                        tracing::warn!(
                            target: "sesame::store",
                            error = %e,
                            "could not delete a retired session record; clear_expired will"
                        );
                    }
                    return Ok(());
                }
                Err(Error::Conflict) if policy != ConflictPolicy::Strict => {
                    if attempt == MAX_SAVE_ATTEMPTS {
                        break;
                    }
                    backoff(attempt).await;
                    let fresh = self.reread(old_key).await?;
                    let fresh = fresh.ok_or(Error::Missing)?;
                    old_version = fresh.version.clone();
                    if policy == ConflictPolicy::Merge {
                        let record = {
                            let mut state = self.state();
                            state.rebase(Some((old_key.clone(), fresh)));
                            state.version = Some(new.version.clone());
                            self.record_of(&state)
                        };
                        // The other request's keys add to this one's: the
                        // merged record may be over the limit either alone
                        // was under (the caller then rolls the rotation back).
                        self.check_size(&record)?;
                        *new = self.call(shared.store.save(&new.key, &record)).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    // ----- expiry ----------------------------------------------------------

    /// Sets this session's expiry; see [`Expiry`] for the forms it takes.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// # let session = sesame::Session::new(sesame::backends::MemoryStore::new(), None);
    /// session.set_expiry(0).await?; // until the browser closes
    /// assert!(session.expire_at_browser_close().await?);
    /// session.set_expiry(300).await?; // five idle minutes
    /// assert_eq!(session.expiry_age().await?, 300);
    /// session.set_expiry(None::<i64>).await?; // back to SESSION_COOKIE_AGE
    /// assert_eq!(session.expiry_age().await?, 1_209_600);
    /// # Ok(()) }
    /// ```
    ///
    /// # Django
    ///
    /// `session.set_expiry(value)`, stored under `_session_expiry` as Django stores it.
    pub async fn set_expiry(&self, expiry: impl Into<Expiry>) -> Result<()> {
        let stored = expiry.into().to_stored(OffsetDateTime::now_utc());
        self.with_data(|s| match stored {
            Some(v) => {
                s.set(SESSION_EXPIRY_KEY, Some(v));
            }
            None => {
                if s.data.contains_key(SESSION_EXPIRY_KEY) {
                    s.set(SESSION_EXPIRY_KEY, None);
                }
            }
        })
        .await
    }

    /// Seconds until the session expires if saved now.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Django
    ///
    /// `session.get_expiry_age()`.
    #[doc(alias = "get_expiry_age")]
    pub async fn expiry_age(&self) -> Result<i64> {
        let age = self.settings().cookie_age;
        self.with_data(|s| {
            crate::expiry_age(
                s.data.get(SESSION_EXPIRY_KEY),
                OffsetDateTime::now_utc(),
                age,
            )
        })
        .await
    }

    /// When the session expires if saved now.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Django
    ///
    /// `session.get_expiry_date()`.
    #[doc(alias = "get_expiry_date")]
    pub async fn expiry_date(&self) -> Result<OffsetDateTime> {
        let age = self.settings().cookie_age;
        self.with_data(|s| {
            crate::expiry_date(
                s.data.get(SESSION_EXPIRY_KEY),
                OffsetDateTime::now_utc(),
                age,
            )
        })
        .await
    }

    /// Whether the session cookie lasts only until the browser closes.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Django
    ///
    /// `session.get_expire_at_browser_close()`.
    #[doc(alias = "get_expire_at_browser_close")]
    pub async fn expire_at_browser_close(&self) -> Result<bool> {
        let default = self.settings().expire_at_browser_close;
        self.with_data(|s| crate::expire_at_browser_close(s.data.get(SESSION_EXPIRY_KEY), default))
            .await
    }

    /// `SESSION_COOKIE_AGE`, in seconds.
    ///
    /// # Django
    ///
    /// `session.get_session_cookie_age()`.
    #[doc(alias = "get_session_cookie_age")]
    #[must_use]
    pub fn session_cookie_age(&self) -> i64 {
        self.settings().cookie_age
    }

    // ----- test cookie -----------------------------------------------------

    /// Stores the test value, to check on a later request that the browser keeps cookies.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn set_test_cookie(&self) -> Result<()> {
        self.insert_value(TEST_COOKIE_NAME, Value::from(TEST_COOKIE_VALUE))
            .await
    }

    /// Whether the value stored by [`set_test_cookie`](Self::set_test_cookie) came back.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn test_cookie_worked(&self) -> Result<bool> {
        Ok(self.get_value(TEST_COOKIE_NAME).await? == Some(Value::from(TEST_COOKIE_VALUE)))
    }

    /// Removes the test value.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    pub async fn delete_test_cookie(&self) -> Result<()> {
        self.remove(TEST_COOKIE_NAME).await.map(|_| ())
    }

    // ----- saving ----------------------------------------------------------

    /// Discards this session's unsaved changes and reads its record again.
    ///
    /// This is what a handler needs to retry its own logic after a save
    /// fails with [`Error::Conflict`] under [`ConflictPolicy::Strict`]:
    /// reload, recompute, save again. A session never stored (no key) just
    /// drops its changes and stays empty.
    ///
    /// # Examples
    ///
    /// An increment that counts every request, however many run at once:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// use sesame::backends::MemoryStore;
    /// use sesame::{ConflictPolicy, Error, Session};
    ///
    /// /// Adds one to `counter`, retrying on a concurrent change (at most `budget` tries).
    /// async fn increment(session: &Session, budget: usize) -> sesame::Result<i64> {
    ///     for _ in 0..budget {
    ///         let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    ///         session.insert("counter", n).await?;
    ///         match session.save().await {
    ///             Ok(()) => return Ok(n),
    ///             Err(Error::Conflict) => session.reload().await?,
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    ///     Err(Error::Conflict)
    /// }
    ///
    /// let store = MemoryStore::new();
    /// # let seed = Session::new(store.clone(), None);
    /// # seed.insert("counter", 0).await?;
    /// # seed.save().await?;
    /// # let key = seed.session_key();
    /// // Two requests on one session, as a strict layer would hand them out.
    /// let strict = || {
    ///     Session::new(store.clone(), key.clone()).with_conflict_policy(ConflictPolicy::Strict)
    /// };
    /// let (a, b) = (strict(), strict());
    /// a.get_value("counter").await?; // both read 0
    /// b.get_value("counter").await?;
    /// assert_eq!(increment(&a, 3).await?, 1);
    /// assert_eq!(increment(&b, 3).await?, 2); // conflict, reload, retry
    /// assert_eq!(Session::new(store, key).get::<i64>("counter").await?, Some(2));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Missing`] when the record was deleted meanwhile (the session
    /// is then empty, with no key), or a store error.
    ///
    /// # Django
    ///
    /// No equivalent: Django's saves never conflict. Like making a new
    /// `SessionStore(session_key=…)`, on the same handle.
    pub async fn reload(&self) -> Result<()> {
        let loaded_key = {
            let mut state = self.state();
            if state.outage {
                return Err(Error::Unsaveable("the session store was unavailable"));
            }
            state.changed.clear();
            state.cleared = None;
            state.modified = false;
            state.accessed = true;
            state.epoch += 1;
            state.loaded.then(|| state.key.clone())
        };
        let Some(key) = loaded_key else {
            // Never loaded: the first load reads the record.
            return self.load(true).await;
        };
        let _guard = self.inner.load_lock.lock().await;
        let Some(key) = key else {
            self.state().reset_empty();
            return Ok(());
        };
        let fresh = self.reread(&key).await?;
        let mut state = self.state();
        match fresh {
            Some(record) => {
                state.data = record.data.into();
                state.version = record.version;
                Ok(())
            }
            None => {
                state.reset_empty();
                Err(Error::Missing)
            }
        }
    }

    /// Writes the session to its store: creates the record (with a fresh key)
    /// when there is none, otherwise updates it, moving its expiry forward.
    ///
    /// A concurrent change to the record is resolved by the conflict policy
    /// (by default: re-read and re-apply this session's own changes). A record
    /// deleted meanwhile (a logout in another request) is never re-created.
    /// The data is written as it was when the save began: a change made
    /// (through a clone) while the store writes stays pending, and the
    /// session stays modified until a later save writes it.
    ///
    /// # Errors
    ///
    /// [`Error::Missing`] when the record was deleted meanwhile (Django's
    /// `SessionInterrupted`), [`Error::Conflict`] under the strict policy or
    /// when retries run out, [`Error::TooLarge`] when the session's JSON
    /// exceeds [`Settings::max_session_size`] (nothing is written),
    /// [`Error::Unsaveable`] once this request found the store unavailable,
    /// or a store error.
    ///
    /// # Django
    ///
    /// `session.save()`, which marks the session accessed as this does.
    pub async fn save(&self) -> Result<()> {
        // Marks the session accessed as Django's `save()` does (it reads
        // the data through `_get_session()`): a response whose cookie a
        // handler's save sets must vary on `Cookie`. The middleware's own
        // save comes after `Vary` is decided, as in Django.
        self.load(true).await?;
        self.check_no_outage()?;
        let shared = &self.inner.shared;
        let policy = {
            let state = self.state();
            if state.frozen {
                return Err(Error::Unsaveable(ROTATION_FAILED));
            }
            state.policy.unwrap_or(shared.policy)
        };
        // A signed key carries its own timestamp: its expiry moves only by
        // re-signing, which the save below does (and which gives a new key).
        let touchable = shared.store.key_kind() != KeyKind::Signed;
        let unchanged = {
            let state = self.state();
            match &state.key {
                // An unreadable record is overwritten (Django's save writes
                // `{}` over it): moving its expiry would keep it forever.
                Some(key) if !state.modified && !state.unreadable && touchable => {
                    Some((key.clone(), self.expiry_of(&state)))
                }
                _ => None,
            }
        };
        if let Some((key, until)) = unchanged {
            // Nothing changed: only the expiry moves (SESSION_SAVE_EVERY_REQUEST).
            return self.touch(key, until).await;
        }
        for attempt in 1..=MAX_SAVE_ATTEMPTS {
            let (key, mut record, generation, epoch) = {
                let state = self.state();
                (
                    state.key.clone(),
                    self.record_of(&state),
                    state.generation,
                    state.epoch,
                )
            };
            self.check_size(&record)?;
            let result = match &key {
                None => self.call(shared.store.create(&record)).await,
                Some(key) => {
                    if policy == ConflictPolicy::LastWriteWins {
                        record.version = None;
                    }
                    self.call(shared.store.save(key, &record)).await
                }
            };
            match result {
                Ok(saved) => {
                    if !self.adopt(&saved, &record, generation, epoch) && key.is_none() {
                        // Flushed, rotated or reloaded while the store wrote
                        // (a handler can do both at once): the session has
                        // moved on, and the record this call created is
                        // named by no cookie. It goes (best effort).
                        let _ = self.call(shared.store.delete(&saved.key)).await;
                    }
                    return Ok(());
                }
                // The session moved on while the store wrote (see above): a
                // save to the key it left (deleted or retired meanwhile) has
                // nothing left to do; the session's own state is saved next.
                Err(_) if self.state().epoch != epoch => return Ok(()),
                Err(Error::Conflict) if policy == ConflictPolicy::Merge => {
                    let Some(key) = key else {
                        return Err(Error::Conflict);
                    };
                    if attempt == MAX_SAVE_ATTEMPTS {
                        break;
                    }
                    // Wait before re-reading, not after: the re-read version
                    // must be as fresh as possible when the next try compares.
                    backoff(attempt).await;
                    let fresh = self.reread(&key).await?;
                    let Some(fresh) = fresh else {
                        return Err(Error::Missing);
                    };
                    self.state().rebase(Some((key, fresh)));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    /// Moves the expiry of this unchanged session's record to `until`.
    ///
    /// A touch writes no data, so a conflict (another request saved the
    /// record meanwhile; or, with a store that touches by load and save,
    /// touched it) never fails it, whatever the policy: the record is read
    /// again, the expiry computed from what is stored now, and the touch
    /// tried again (bounded). A touch still losing after that is done: each
    /// lost try was another request's write, which moved the expiry itself.
    ///
    /// `until` comes from the `_session_expiry` this request loaded, which
    /// another request may have changed since (say, `set_expiry` to an
    /// earlier date): the record is read again after the touch, and when
    /// its `_session_expiry` differs, the session takes the stored data
    /// (so the cookie's lifetime follows it too) and touches again with the
    /// expiry computed from it. A save after that read sets its own expiry.
    async fn touch(&self, key: SessionKey, mut until: OffsetDateTime) -> Result<()> {
        let store = &self.inner.shared.store;
        for attempt in 1..=MAX_SAVE_ATTEMPTS {
            let touched = match self.call(store.touch(&key, until)).await {
                Ok(()) => true,
                Err(Error::Conflict) if attempt < MAX_SAVE_ATTEMPTS => {
                    backoff(attempt).await;
                    false
                }
                Err(Error::Conflict) => return Ok(()),
                Err(e) => return Err(e),
            };
            let fresh = match self.call(store.load_contents(&key)).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => return Err(Error::Missing),
                // Made unreadable meanwhile (another app wrote it): the
                // touch stands; the next request's load deals with it.
                Err(Error::Corrupt(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let mut state = self.state();
            let same_expiry =
                fresh.data.get(SESSION_EXPIRY_KEY) == state.data.get(SESSION_EXPIRY_KEY);
            state.rebase(Some((key.clone(), fresh)));
            // Changed meanwhile (a clone of this session): the save that
            // writes the change sets the expiry from data that is stored.
            if (touched && same_expiry) || state.modified {
                return Ok(());
            }
            until = self.expiry_of(&state);
        }
        Ok(())
    }

    /// Takes the key and version a save returned, unless the session moved
    /// on while the store wrote (`epoch` changed: flushed, rotated or
    /// reloaded), which it reports with `false`. Changes made meanwhile
    /// (`generation` changed) stay to save, merged against what was written.
    fn adopt(&self, saved: &Saved, record: &Record, generation: u64, epoch: u64) -> bool {
        let mut state = self.state();
        if state.epoch != epoch {
            return false;
        }
        state.key = Some(saved.key.clone());
        state.version = Some(saved.version.clone());
        state.loaded = true;
        state.saved = true;
        state.unreadable = false;
        if state.generation == generation {
            state.changed.clear();
            state.cleared = None;
            state.modified = false;
        } else {
            // Changed while the store wrote (a handler can save and write
            // at once): those changes stay to save.
            state.written(&record.data, generation);
        }
        true
    }

    /// The record to write now: the data and its expiry computed at this instant.
    fn record_of(&self, state: &State) -> Record {
        Record {
            data: state.data.share(),
            expires_at: self.expiry_of(state),
            version: state.version.clone(),
        }
    }

    /// When the session expires if saved at this instant.
    fn expiry_of(&self, state: &State) -> OffsetDateTime {
        crate::expiry_date(
            state.data.get(SESSION_EXPIRY_KEY),
            OffsetDateTime::now_utc(),
            self.settings().cookie_age,
        )
    }

    // ----- for the middleware ----------------------------------------------

    pub(crate) fn outcome(&self) -> Outcome {
        let state = self.state();
        Outcome {
            accessed: state.accessed,
            modified: state.modified,
            empty: state.is_empty(),
            loaded: state.loaded,
            outage: state.outage,
            saved: state.saved,
            rotated: state.rotated,
            frozen: state.frozen,
        }
    }

    /// Loads without marking the session accessed (for `SESSION_SAVE_EVERY_REQUEST`).
    pub(crate) async fn load_quietly(&self) -> Result<()> {
        self.load(false).await
    }

    /// The cookie facts at `now`: whether it expires at browser close, and
    /// its max age.
    pub(crate) fn cookie_lifetime(&self, now: OffsetDateTime) -> (bool, i64) {
        let settings = self.settings();
        let state = self.state();
        let stored = state.data.get(SESSION_EXPIRY_KEY);
        (
            crate::expire_at_browser_close(stored, settings.expire_at_browser_close),
            crate::expiry_age(stored, now, settings.cookie_age),
        )
    }
}

/// The length of `data` as compact JSON, counted without building the text.
fn json_len(data: &SessionMap) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, data);
    count.0
}

impl State {
    fn current_key(&self) -> Option<&SessionKey> {
        if self.loaded {
            self.key.as_ref()
        } else {
            self.candidates.first()
        }
    }

    fn is_empty(&self) -> bool {
        self.current_key().is_none() && self.data.is_empty()
    }

    /// Marks the data changed: to be saved, and newer than any save in flight.
    fn mark_modified(&mut self) {
        self.modified = true;
        self.generation += 1;
    }

    /// Sets (`Some`) or removes (`None`) one key, recording the change.
    fn set(&mut self, key: &str, value: Option<Value>) {
        self.mark_modified();
        let replaced = if value.is_none() && !self.data.contains_key(key) {
            // Nothing to remove: the shared map is not copied.
            None
        } else {
            let data = self.data.make_mut();
            match (value, data.get_mut(key)) {
                // Replacing keeps the stored key: no new `String`.
                (Some(v), Some(slot)) => Some(std::mem::replace(slot, v)),
                (Some(v), None) => data.insert(key.to_owned(), v),
                (None, _) => data.shift_remove(key),
            }
        };
        if !self.changed.contains_key(key) {
            // A key not yet changed held its base value until now: keep it
            // (moved, not copied: this runs on every write).
            self.changed.insert(key.to_owned(), replaced);
        }
    }

    fn reset_empty(&mut self) {
        self.key = None;
        self.loaded = true;
        self.data.clear();
        self.version = None;
        self.changed.clear();
        self.cleared = None;
    }

    /// Takes `written`, saved from this session's data as it was at
    /// generation `at`, as the stored state the data now derives from; the
    /// changes made since stay pending, each against its written value.
    fn written(&mut self, written: &SessionMap, at: u64) {
        if self.cleared.is_some_and(|cleared| cleared > at) {
            // Cleared since: the pending changes still replace everything.
            return;
        }
        self.cleared = None;
        for (k, base) in &mut self.changed {
            *base = written.get(k).cloned();
        }
    }

    /// Adopts `fresh` as the stored state and re-applies this session's own
    /// changes on top of it. `None` means no live record: the key is dropped.
    ///
    /// A changed key whose value equals its base (written back as read, or
    /// changed and changed back) is not re-applied: this session did not
    /// change it after all, and another request's value for it stays.
    fn rebase(&mut self, fresh: Option<(SessionKey, Contents)>) {
        let (key, mut data, version) = match fresh {
            Some((key, record)) => (Some(key), SharedMap::from(record.data), record.version),
            None => (None, SharedMap::default(), None),
        };
        let cleared = self.cleared.is_some();
        if cleared {
            data.clear();
        }
        for (k, base) in &mut self.changed {
            let mine = self.data.get(k);
            // After a `clear()` the base stays the empty session; otherwise
            // it is now what `fresh` holds.
            let theirs = if cleared { None } else { data.get(k).cloned() };
            if mine != base.as_ref() {
                match mine {
                    Some(v) => {
                        data.make_mut().insert(k.clone(), v.clone());
                    }
                    None if data.contains_key(k) => {
                        data.make_mut().shift_remove(k);
                    }
                    None => {}
                }
            }
            if !cleared {
                *base = theirs;
            }
        }
        self.key = key;
        self.data = data;
        self.version = version;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::backends::MemoryStore;

    fn fresh() -> (MemoryStore, Session) {
        let store = MemoryStore::new();
        (store.clone(), Session::new(store, None))
    }

    #[tokio::test]
    async fn reading_marks_accessed_but_not_modified() {
        let (_, s) = fresh();
        assert!(!s.is_accessed());
        assert_eq!(s.get::<i64>("x").await.unwrap(), None);
        assert!(s.is_accessed() && !s.is_modified());
    }

    #[tokio::test]
    async fn writing_marks_modified() {
        let (_, s) = fresh();
        s.insert("x", 1).await.unwrap();
        assert!(s.is_accessed() && s.is_modified());
    }

    #[tokio::test]
    async fn pop_of_absent_key_does_not_modify() {
        let (_, s) = fresh();
        assert_eq!(s.pop::<i64>("nope").await.unwrap(), None);
        assert_eq!(s.pop_or("nope", 7).await.unwrap(), 7);
        assert!(!s.is_modified());
        s.insert("k", "v").await.unwrap();
        s.save().await.unwrap();
        assert_eq!(s.pop::<String>("k").await.unwrap().as_deref(), Some("v"));
        assert!(s.is_modified());
    }

    #[tokio::test]
    async fn setdefault_stores_only_when_absent() {
        let (_, s) = fresh();
        assert_eq!(s.setdefault("a", 1).await.unwrap(), 1);
        assert!(s.is_modified());
        s.save().await.unwrap();
        assert_eq!(s.setdefault("a", 2).await.unwrap(), 1);
        assert!(!s.is_modified());
    }

    #[tokio::test]
    async fn clear_does_not_load() {
        let (_, s) = fresh();
        s.clear();
        assert!(s.is_accessed() && s.is_modified());
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn save_creates_then_updates_the_same_key() {
        let (store, s) = fresh();
        s.insert("n", 1).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key().unwrap();
        s.insert("n", 2).await.unwrap();
        s.save().await.unwrap();
        assert_eq!(s.session_key(), Some(key.clone()));
        let again = Session::new(store.clone(), Some(key.clone()));
        assert_eq!(again.get::<i64>("n").await.unwrap(), Some(2));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn unknown_key_is_never_adopted() {
        let store = MemoryStore::new();
        let forged: SessionKey = "attackerchosenkey123".parse().unwrap();
        let s = Session::new(store.clone(), Some(forged.clone()));
        assert!(!s.is_empty());
        s.insert("x", 1).await.unwrap();
        assert_eq!(s.session_key(), None);
        s.save().await.unwrap();
        assert_ne!(s.session_key(), Some(forged.clone()));
        assert!(!store.exists(&forged).await.unwrap());
    }

    #[tokio::test]
    async fn flush_deletes_the_record_and_drops_the_key() {
        let (store, s) = fresh();
        s.insert("user", 1).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key().unwrap();
        s.flush().await.unwrap();
        assert!(s.is_empty());
        assert_eq!(s.session_key(), None);
        assert!(!store.exists(&key).await.unwrap());
    }

    #[tokio::test]
    async fn cycle_key_keeps_data_under_a_new_key() {
        let (store, s) = fresh();
        s.insert("cart", json!([1, 2])).await.unwrap();
        s.save().await.unwrap();
        let old = s.session_key().unwrap();
        s.cycle_key().await.unwrap();
        let new = s.session_key().unwrap();
        assert_ne!(old, new);
        assert!(!store.exists(&old).await.unwrap());
        assert_eq!(s.get_value("cart").await.unwrap(), Some(json!([1, 2])));
        s.save().await.unwrap();
        assert_eq!(store.len(), 1);
    }

    /// Two handles on one stored session `{"cart": 1}`, both loaded.
    async fn two_loaded() -> (MemoryStore, SessionKey, Session, Session) {
        let (store, s) = fresh();
        s.insert("cart", 1).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key().unwrap();
        let a = Session::new(store.clone(), Some(key.clone()));
        let b = Session::new(store.clone(), Some(key.clone()));
        a.get_value("cart").await.unwrap();
        b.get_value("cart").await.unwrap();
        (store, key, a, b)
    }

    #[tokio::test]
    async fn of_two_concurrent_rotations_one_wins_and_one_key_lives() {
        let (store, old, a, b) = two_loaded().await;
        a.cycle_key().await.unwrap();
        assert!(matches!(b.cycle_key().await, Err(Error::Missing)));
        assert_eq!(store.len(), 1, "the loser's record must be removed");
        assert!(!store.exists(&old).await.unwrap());
        let winner = a.session_key().unwrap();
        assert!(store.exists(&winner).await.unwrap());
    }

    #[tokio::test]
    async fn rotation_after_logout_brings_nothing_back() {
        let (store, _, a, b) = two_loaded().await;
        a.flush().await.unwrap();
        assert!(matches!(b.cycle_key().await, Err(Error::Missing)));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn rotation_carries_a_concurrent_change_to_the_new_key() {
        let (store, old, a, b) = two_loaded().await;
        a.insert("theme", "dark").await.unwrap();
        a.save().await.unwrap();
        b.insert("user", 42).await.unwrap();
        b.cycle_key().await.unwrap();
        assert!(!store.exists(&old).await.unwrap());
        let new = Session::new(store.clone(), b.session_key());
        assert_eq!(new.keys().await.unwrap(), ["cart", "theme", "user"]);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn strict_rotation_reports_a_concurrent_change() {
        let (store, old, a, b) = two_loaded().await;
        let b = b.with_conflict_policy(ConflictPolicy::Strict);
        a.insert("theme", "dark").await.unwrap();
        a.save().await.unwrap();
        assert!(matches!(b.cycle_key().await, Err(Error::Conflict)));
        assert!(store.exists(&old).await.unwrap());
        assert_eq!(
            store.len(),
            1,
            "the refused rotation's record must be removed"
        );
    }

    /// Two sessions each under `max_session_size` alone, over it together:
    /// the rotation's merge must not write the sum under the new key, where
    /// every later save would fail.
    #[tokio::test]
    async fn a_rotation_whose_merge_is_too_large_is_rolled_back() {
        let store = MemoryStore::new();
        let settings = Settings {
            max_session_size: 1000,
            ..Settings::default()
        };
        let seed = Session::with_settings(store.clone(), None, settings.clone());
        seed.insert("theme", "dark").await.unwrap();
        seed.save().await.unwrap();
        let old = seed.session_key().unwrap();
        let a = Session::with_settings(store.clone(), Some(old.clone()), settings.clone());
        let b = Session::with_settings(store.clone(), Some(old.clone()), settings);
        a.get_value("theme").await.unwrap();
        b.insert("big_b", "x".repeat(600)).await.unwrap();
        b.save().await.unwrap();
        a.insert("big_a", "y".repeat(600)).await.unwrap();
        assert!(matches!(a.cycle_key().await, Err(Error::TooLarge { .. })));
        assert_eq!(a.session_key(), Some(old.clone()), "the rotation undone");
        assert!(a.outcome().frozen);
        assert_eq!(store.len(), 1, "the new record was removed");
        let kept = Session::new(store, Some(old));
        assert_eq!(kept.keys().await.unwrap(), ["theme", "big_b"]);
    }

    #[tokio::test]
    async fn reload_discards_changes_and_reads_again() {
        let (store, key, a, b) = two_loaded().await;
        a.insert("cart", 2).await.unwrap();
        a.save().await.unwrap();
        b.insert("mine", true).await.unwrap();
        b.reload().await.unwrap();
        assert!(!b.is_modified());
        assert_eq!(b.keys().await.unwrap(), ["cart"]);
        assert_eq!(b.get::<i64>("cart").await.unwrap(), Some(2));
        store.delete(&key).await.unwrap();
        assert!(matches!(b.reload().await, Err(Error::Missing)));
        assert_eq!(b.session_key(), None);
        assert!(b.is_empty());
    }

    #[tokio::test]
    async fn merge_keeps_the_later_save_for_a_key_both_changed() {
        let (store, key, a, b) = two_loaded().await;
        a.insert("cart", "a").await.unwrap();
        b.insert("cart", "b").await.unwrap();
        b.save().await.unwrap();
        a.save().await.unwrap();
        let stored = Session::new(store, Some(key));
        assert_eq!(
            stored.get::<String>("cart").await.unwrap().as_deref(),
            Some("a")
        );
    }

    /// A writes back the cart it read, unchanged; B adds to the cart
    /// meanwhile. A's merge must keep B's cart (A did not change it).
    #[tokio::test]
    async fn merge_keeps_another_requests_value_for_a_key_written_back_unchanged() {
        let (store, s) = fresh();
        s.insert("cart", ["apple"]).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key();
        let a = Session::new(store.clone(), key.clone());
        let b = Session::new(store.clone(), key.clone());
        let cart: Vec<String> = a.get("cart").await.unwrap().unwrap();
        a.insert("cart", cart).await.unwrap();
        a.insert("seen", true).await.unwrap();
        // Changed and changed back: no net change either.
        a.insert("tab", 1).await.unwrap();
        a.remove("tab").await.unwrap();
        b.insert("cart", ["apple", "pear"]).await.unwrap();
        b.insert("tab", 2).await.unwrap();
        b.save().await.unwrap();
        a.save().await.unwrap();
        let stored = Session::new(store, key);
        assert_eq!(
            stored.get_value("cart").await.unwrap(),
            Some(json!(["apple", "pear"]))
        );
        assert_eq!(stored.get_value("seen").await.unwrap(), Some(json!(true)));
        assert_eq!(stored.get_value("tab").await.unwrap(), Some(json!(2)));
    }

    /// The three-way merge still re-applies a removal of a key that was
    /// loaded, and after a `clear()` every key set since, even one set back
    /// to the value it had before the clear.
    #[tokio::test]
    async fn merge_reapplies_removals_and_clears() {
        let (store, key, a, b) = two_loaded().await;
        a.remove("cart").await.unwrap();
        b.insert("theme", "dark").await.unwrap();
        b.save().await.unwrap();
        a.save().await.unwrap();
        let stored = Session::new(store.clone(), Some(key.clone()));
        assert_eq!(stored.keys().await.unwrap(), ["theme"]);

        let (store, key, a, b) = two_loaded().await;
        a.clear();
        a.insert("cart", 1).await.unwrap();
        b.insert("cart", 2).await.unwrap();
        b.insert("theme", "dark").await.unwrap();
        b.save().await.unwrap();
        a.save().await.unwrap();
        let stored = Session::new(store, Some(key));
        assert_eq!(stored.to_map().await.unwrap(), json_map(json!({"cart": 1})));
    }

    fn json_map(value: Value) -> SessionMap {
        serde_json::from_value(value).unwrap()
    }

    /// A `MemoryStore` whose next write, once armed, waits until the test
    /// lets it finish: a save in flight, without timing.
    #[derive(Clone, Default)]
    struct Held {
        inner: MemoryStore,
        armed: Arc<std::sync::atomic::AtomicBool>,
        writing: Arc<tokio::sync::Notify>,
        finish: Arc<tokio::sync::Notify>,
    }

    impl Held {
        async fn hold(&self) {
            if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.writing.notify_one();
                self.finish.notified().await;
            }
        }

        /// Saves `s` while `meanwhile` runs against it, once the store has
        /// the record in hand.
        async fn save_while(&self, s: &Session, meanwhile: impl Future<Output = ()>) {
            self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
            let (saved, ()) = tokio::join!(s.save(), async {
                self.writing.notified().await;
                meanwhile.await;
                self.finish.notify_one();
            });
            saved.unwrap();
        }
    }

    impl SessionStore for Held {
        async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
            self.inner.load(key).await
        }
        async fn create(&self, record: &Record) -> Result<Saved> {
            self.hold().await;
            self.inner.create(record).await
        }
        async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
            self.hold().await;
            self.inner.save(key, record).await
        }
        async fn delete(&self, key: &SessionKey) -> Result<()> {
            self.inner.delete(key).await
        }
    }

    /// A store that answers after `delay` and reports `bound` as the
    /// longest its calls take.
    #[derive(Clone)]
    struct Slow {
        inner: MemoryStore,
        delay: std::time::Duration,
        bound: Option<std::time::Duration>,
    }

    impl SessionStore for Slow {
        fn call_timeout(&self) -> Option<std::time::Duration> {
            self.bound
        }
        async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
            tokio::time::sleep(self.delay).await;
            self.inner.load(key).await
        }
        async fn create(&self, record: &Record) -> Result<Saved> {
            self.inner.create(record).await
        }
        async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
            self.inner.save(key, record).await
        }
        async fn delete(&self, key: &SessionKey) -> Result<()> {
            self.inner.delete(key).await
        }
    }

    /// The session times a store call out after `store_timeout` unless the
    /// store bounds its calls within it. The store here breaks that promise
    /// (it answers after six seconds), which shows the session armed no
    /// timer of its own.
    #[tokio::test(start_paused = true)]
    async fn the_sessions_timer_is_armed_unless_the_store_bounds_its_calls_within_it() {
        let secs = std::time::Duration::from_secs;
        let inner = MemoryStore::new();
        let s = Session::new(inner.clone(), None);
        s.insert("n", 1).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key();
        assert_eq!(Settings::default().store_timeout, secs(5));
        for (bound, timed_out) in [(None, true), (Some(secs(10)), true), (Some(secs(1)), false)] {
            let store = Slow {
                inner: inner.clone(),
                delay: secs(6),
                bound,
            };
            let read = Session::new(store, key.clone()).get::<i64>("n").await;
            if timed_out {
                assert!(
                    matches!(read, Err(Error::Timeout)),
                    "bound {bound:?}: {read:?}"
                );
            } else {
                assert_eq!(read.unwrap(), Some(1), "bound {bound:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_change_made_while_a_save_is_in_flight_stays_to_save() {
        let store = Held::default();
        let s = Session::new(store.clone(), None);
        s.insert("a", 1).await.unwrap();
        store
            .save_while(&s, async { s.insert("b", 2).await.unwrap() })
            .await;
        assert!(s.is_modified(), "b was never written");
        s.save().await.unwrap();
        let stored = Session::new(store.inner, s.session_key());
        assert_eq!(stored.keys().await.unwrap(), ["a", "b"]);
    }

    /// A logout (`flush`) or a login (`cycle_key`) while a save is in
    /// flight wins: the save does not give the session back the key it
    /// wrote to, and a record it created for the flushed session is removed.
    #[tokio::test]
    async fn a_flush_or_rotation_while_a_save_is_in_flight_is_not_undone() {
        let store = Held::default();
        let s = Session::new(store.clone(), None);
        s.insert("user", "7").await.unwrap();
        store
            .save_while(&s, async { s.flush().await.unwrap() })
            .await;
        assert_eq!(s.session_key(), None, "the logout stands");
        assert!(s.is_modified());
        assert_eq!(store.inner.len(), 0, "the created record is gone");

        let s = Session::new(store.clone(), None);
        s.insert("user", "7").await.unwrap();
        s.save().await.unwrap();
        let old = s.session_key().unwrap();
        s.insert("seen", true).await.unwrap();
        store
            .save_while(&s, async { s.cycle_key().await.unwrap() })
            .await;
        let new = s.session_key().unwrap();
        assert_ne!(new, old, "the rotation stands");
        s.save().await.unwrap();
        assert_eq!(s.session_key(), Some(new.clone()));
        assert!(store.inner.load(&old).await.unwrap().is_none());
        let stored = Session::new(store.inner, Some(new));
        assert_eq!(stored.get_value("seen").await.unwrap(), Some(json!(true)));
    }

    /// After a save that left changes pending, a merge compares them with
    /// what that save wrote, and a `clear()` made during it still empties
    /// the session.
    #[tokio::test]
    async fn changes_left_pending_by_a_save_merge_against_what_it_wrote() {
        let store = Held::default();
        let seed = Session::new(store.inner.clone(), None);
        seed.insert("cart", 1).await.unwrap();
        seed.save().await.unwrap();
        let key = seed.session_key();
        let other = Session::new(store.inner.clone(), key.clone());
        let stored = || Session::new(store.inner.clone(), key.clone());

        let s = Session::new(store.clone(), key.clone());
        s.insert("cart", 2).await.unwrap();
        s.insert("n", 1).await.unwrap();
        store
            .save_while(&s, async {
                s.insert("n", 2).await.unwrap();
                s.insert("x", 1).await.unwrap();
            })
            .await;
        // Another request reads what that save wrote and changes it.
        other.insert("cart", 7).await.unwrap();
        other.insert("n", 9).await.unwrap();
        other.save().await.unwrap();
        s.save().await.unwrap();
        // `cart` was saved already: the later change to it stays.
        assert_eq!(
            stored().to_map().await.unwrap(),
            json_map(json!({"cart": 7, "n": 2, "x": 1}))
        );

        s.insert("cart", 4).await.unwrap();
        store
            .save_while(&s, async {
                s.clear();
                s.insert("y", 1).await.unwrap();
            })
            .await;
        other.insert("late", true).await.unwrap();
        other.save().await.unwrap();
        s.save().await.unwrap();
        assert_eq!(stored().to_map().await.unwrap(), json_map(json!({"y": 1})));
    }

    #[tokio::test]
    async fn save_after_concurrent_delete_is_interrupted() {
        let (store, s) = fresh();
        s.insert("a", 1).await.unwrap();
        s.save().await.unwrap();
        store.delete(&s.session_key().unwrap()).await.unwrap();
        s.insert("a", 2).await.unwrap();
        assert!(matches!(s.save().await, Err(Error::Missing)));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn concurrent_sessions_merge_their_changes() {
        let (store, s) = fresh();
        s.insert("base", 0).await.unwrap();
        s.save().await.unwrap();
        let key = s.session_key();
        let a = Session::new(store.clone(), key.clone());
        let b = Session::new(store.clone(), key.clone());
        a.insert("a", 1).await.unwrap();
        b.insert("b", 2).await.unwrap();
        a.save().await.unwrap();
        b.save().await.unwrap();
        let check = Session::new(store, key);
        assert_eq!(check.keys().await.unwrap(), ["base", "a", "b"]);
    }

    #[tokio::test]
    async fn expiry_forms_follow_django() {
        let (_, s) = fresh();
        assert_eq!(s.expiry_age().await.unwrap(), 1_209_600);
        assert!(!s.expire_at_browser_close().await.unwrap());
        s.set_expiry(0).await.unwrap();
        assert!(s.expire_at_browser_close().await.unwrap());
        assert_eq!(s.expiry_age().await.unwrap(), 1_209_600);
        s.set_expiry(time::Duration::seconds(100)).await.unwrap();
        let age = s.expiry_age().await.unwrap();
        assert!((98..=100).contains(&age), "{age}");
        assert!(
            s.get_value(SESSION_EXPIRY_KEY)
                .await
                .unwrap()
                .unwrap()
                .is_string()
        );
        s.set_expiry(None::<i64>).await.unwrap();
        assert!(!s.contains(SESSION_EXPIRY_KEY).await.unwrap());
    }

    #[tokio::test]
    async fn test_cookie_round_trip() {
        let (_, s) = fresh();
        assert!(!s.test_cookie_worked().await.unwrap());
        s.set_test_cookie().await.unwrap();
        assert!(s.test_cookie_worked().await.unwrap());
        s.delete_test_cookie().await.unwrap();
        assert!(!s.test_cookie_worked().await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_cookie_does_not_hide_a_good_one() {
        use crate::backends::SignedCookieStore;

        let store = SignedCookieStore::new(sesame_codec::Signer::new("k"));
        let first = Session::new(store.clone(), None);
        first.insert("x", 1).await.unwrap();
        first.save().await.unwrap();
        let good = first.session_key().unwrap();
        let forged = SessionKey::from_signed_bytes(b"eyJ4IjoyfQ:1r31eq:forged").unwrap();
        let mut candidates = Candidates::default();
        candidates.push(forged);
        candidates.push(good.clone());
        let shared = Arc::new(Shared {
            store: Arc::new(store),
            settings: Settings::default(),
            policy: ConflictPolicy::default(),
        });
        let s = Session::from_shared(shared, candidates);
        assert_eq!(s.get::<i64>("x").await.unwrap(), Some(1));
        assert_eq!(s.session_key(), Some(good));
        assert!(!s.is_modified());
    }

    /// A forged cookie under a `SESSION_COOKIE_AGE` past every date (a
    /// "never expire" setting) is an empty session, not an overflow panic.
    #[tokio::test]
    async fn a_forged_cookie_with_an_endless_cookie_age_is_an_empty_session() {
        use crate::backends::SignedCookieStore;

        let forged = SessionKey::from_signed_bytes(b"eyJ4IjoyfQ:1r31eq:forged").unwrap();
        let mut candidates = Candidates::default();
        candidates.push(forged);
        let shared = Arc::new(Shared {
            store: Arc::new(SignedCookieStore::new(sesame_codec::Signer::new("k"))),
            settings: Settings {
                cookie_age: i64::MAX,
                ..Settings::default()
            },
            policy: ConflictPolicy::default(),
        });
        let s = Session::from_shared(shared, candidates);
        assert_eq!(s.len().await.unwrap(), 0);
        assert_eq!(s.expiry_date().await.unwrap().year(), 9999);
    }

    /// Two live sessions behind two cookies (say, two Paths): a logout ends both.
    #[tokio::test]
    async fn flush_ends_every_live_session_the_cookies_name() {
        let store = MemoryStore::new();
        let mut keys = Vec::new();
        for n in 0..2 {
            let s = Session::new(store.clone(), None);
            s.insert("n", n).await.unwrap();
            s.save().await.unwrap();
            keys.push(s.session_key().unwrap());
        }
        let mut candidates = Candidates::default();
        candidates.push(keys[0].clone());
        candidates.push(keys[1].clone());
        let shared = Arc::new(Shared {
            store: Arc::new(store.clone()),
            settings: Settings::default(),
            policy: ConflictPolicy::default(),
        });
        Session::from_shared(shared, candidates)
            .flush()
            .await
            .unwrap();
        for key in &keys {
            assert!(
                !store.exists(key).await.unwrap(),
                "a session survived logout"
            );
        }
    }

    /// The middleware and the handler hold the same session: a policy set
    /// through one handle must not take the state away from the other.
    #[tokio::test]
    async fn with_conflict_policy_keeps_the_session_shared() {
        let (store, first) = fresh();
        first.insert("user", "1").await.unwrap();
        first.save().await.unwrap();
        let key = first.session_key().unwrap();
        let middleware = Session::new(store, Some(key.clone()));
        let handler = middleware
            .clone()
            .with_conflict_policy(ConflictPolicy::Strict);
        handler.insert("cart", 3).await.unwrap();
        assert_eq!(
            middleware.get::<String>("user").await.unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(middleware.get::<i64>("cart").await.unwrap(), Some(3));
        assert!(middleware.is_modified());
        assert_eq!(middleware.policy(), ConflictPolicy::Strict);
    }

    /// A rotation that loses to a logout leaves the session as it was and
    /// refuses to save it: data meant for a new key never lands on the old.
    #[tokio::test]
    async fn a_failed_rotation_freezes_the_session() {
        let (store, first) = fresh();
        first.insert("x", 1).await.unwrap();
        first.save().await.unwrap();
        let key = first.session_key().unwrap();
        let s = Session::new(store.clone(), Some(key.clone()));
        s.insert("_auth_user_id", "7").await.unwrap();
        // Another request logs out in between.
        store.delete(&key).await.unwrap();
        assert!(matches!(s.cycle_key().await, Err(Error::Missing)));
        assert_eq!(s.session_key(), Some(key.clone()));
        assert!(s.outcome().frozen);
        assert!(matches!(s.save().await, Err(Error::Unsaveable(_))));
        assert!(
            store.is_empty(),
            "the new record was removed, nothing re-created"
        );
    }

    #[test]
    fn session_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Session>();
    }
}
