//! The race suite: concurrent requests on one session lose no write and
//! bring no session back, on the store under test.

use std::fmt;

/// How many requests or races the count-heavy cases of
/// [`race_suite!`](crate::race_suite) run.
///
/// The default is what the published figures use (README, "Guarantees").
/// Every case asserts counts only, never timings, so a smaller scale proves
/// the same rule with fewer tries: a store that needs it says why where it
/// passes one.
///
/// # Examples
///
/// ```
/// use sesame_conformance::Scale;
///
/// let network = Scale { anonymous_requests: 20_000, ..Scale::default() };
/// assert_eq!(network.logout_races, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Requests with random, valid-looking keys in
    /// `anonymous_requests_create_nothing` (half read, half log out).
    pub anonymous_requests: usize,
    /// Logouts raced against a slow write in
    /// `logout_racing_a_slow_write_brings_nothing_back`.
    pub logout_races: usize,
    /// Pairs of concurrent rotations in `concurrent_cycle_keys_leave_one_live_key`.
    pub rotation_races: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            anonymous_requests: 100_000,
            logout_races: 1_000,
            rotation_races: 100,
        }
    }
}

/// Prints one measured figure as `figure: <label>: <text>` on stderr, so
/// figures can be collected with `--nocapture` and `grep '^figure:'`.
///
/// # Examples
///
/// ```
/// sesame_conformance::figure("races::memory", format_args!("merge 64/64 keys survived"));
/// ```
pub fn figure(label: &str, text: fmt::Arguments<'_>) {
    eprintln!("figure: {label}: {text}");
}

/// Expands to one test per race rule: concurrent requests on one session,
/// driven through the real [`SessionManagerLayer`](sesame::SessionManagerLayer)
/// in-process (tower `oneshot`), on the store under test.
///
/// `race_suite!(make_store, caps)` takes the same arguments as
/// [`store_suite!`](crate::store_suite); `race_suite!(make_store, caps,
/// scale)` also sets the counts of the long cases (a [`Scale`](crate::Scale)).
/// Every case prints its figure with [`figure`](crate::figure), labelled
/// with the invoking module's path (`races::postgres`).
///
/// | case | rule |
/// |---|---|
/// | `merge_keeps_all_64_concurrent_keys` | 64 `POST /set` on one session, all loaded at the same version, each adding its own key: 64 of 64 survive |
/// | `last_write_wins_loses_concurrent_keys` | the same under Django's policy: fewer than 64 survive |
/// | `strict_counts_all_64_increments_with_retries` | 64 increments of one key under `Strict`, each handler retrying on `Conflict` (reload, recompute): exactly 64 |
/// | `merge_same_key_later_save_wins` | under `Merge`, of two changes to one key the later save's value stays; 64 concurrent increments may count less than 64 |
/// | `logout_racing_a_slow_write_brings_nothing_back` | logout against an in-flight write, [`Scale::logout_races`](crate::Scale) times: the old key is dead and the write created nothing |
/// | `concurrent_cycle_keys_leave_one_live_key` | two concurrent `cycle_key` on one session, [`Scale::rotation_races`](crate::Scale) times: one live key, holding the data |
/// | `anonymous_requests_create_nothing` | [`Scale::anonymous_requests`](crate::Scale) reads and logouts with random keys: 0 store writes |
/// | `concurrent_writers_all_succeed` | 64 new sessions and 64 writers on one session at once: every request 2xx, no key lost |
///
/// # Examples
///
/// ```
/// mod memory {
///     sesame_conformance::race_suite!(
///         async { Some(sesame::backends::MemoryStore::new()) },
///         sesame_conformance::Caps::default(),
///     );
/// }
/// mod slower {
///     sesame_conformance::race_suite!(
///         async { Some(sesame::backends::MemoryStore::new()) },
///         sesame_conformance::Caps::default(),
///         sesame_conformance::Scale { anonymous_requests: 10_000, ..Default::default() },
///     );
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! race_suite {
    ($make_store:expr, $caps:expr $(,)?) => {
        $crate::race_suite!($make_store, $caps, $crate::Scale::default());
    };
    ($make_store:expr, $caps:expr, $scale:expr $(,)?) => {
        $crate::__race_cases! {
            ($make_store) ($caps) ($scale)
            merge_keeps_all_64_concurrent_keys
            last_write_wins_loses_concurrent_keys
            strict_counts_all_64_increments_with_retries
            merge_same_key_later_save_wins
            logout_racing_a_slow_write_brings_nothing_back
            concurrent_cycle_keys_leave_one_live_key
            anonymous_requests_create_nothing
            concurrent_writers_all_succeed
        }
    };
}

/// Expands each case name of [`race_suite!`] into its test. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __race_cases {
    (($make_store:expr) ($caps:expr) ($scale:expr) $($case:ident)+) => {
        $(
            #[test]
            fn $case() {
                $crate::__private::run(::core::stringify!($case), async {
                    if let ::core::option::Option::Some(store) = $make_store.await {
                        $crate::__private::race_cases::$case(
                            store,
                            $caps,
                            $scale,
                            ::core::module_path!(),
                        )
                        .await;
                    }
                });
            }
        )+
    };
}

/// The cases of [`race_suite!`](crate::race_suite), one function per rule.
///
/// Each takes the store under test, its [`Caps`](crate::Caps), the
/// [`Scale`](crate::Scale) and a label for its figure, and panics exactly
/// when the rule it is named for is broken.
pub mod cases {
    #![allow(
        clippy::missing_panics_doc,
        reason = "a case panics exactly when the rule is broken"
    )]

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration as StdDuration;

    use axum::extract::State;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use http::header::{COOKIE, SET_COOKIE};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use sesame::backends::{Record, Saved, SessionStore};
    use sesame::codec::SessionMap;
    use sesame::{
        ConflictPolicy, Error, KeyKind, Result, Session, SessionKey, SessionManagerLayer,
    };
    use time::OffsetDateTime;
    use tokio::sync::{Barrier, Notify};
    use tokio::task::JoinHandle;
    use tower::ServiceExt;

    use super::figure;
    use crate::{Caps, CountingStore, Scale};

    /// Concurrent requests in the one-session cases: the issue's 64.
    const N: usize = 64;

    /// Tries a strict handler makes: each lost try means another of the
    /// `N` requests saved in between, and each of them saves once, so `N`
    /// tries always suffice.
    const STRICT_BUDGET: usize = N;

    /// Requests in flight at once in `anonymous_requests_create_nothing`.
    const IN_FLIGHT: usize = 32;

    // ---- a store wrapper that forces overlaps --------------------------------

    /// Wraps the store under test to force interleavings: holds the next
    /// `n` loads until all `n` have read (so they all see one version),
    /// optionally yields a pseudo-random number of times before each save
    /// (a slow write), and records every key it creates.
    #[derive(Clone)]
    struct Gated<S> {
        inner: S,
        gate: Arc<Mutex<Option<Gate>>>,
        slow_saves: Arc<AtomicBool>,
        rng: Arc<AtomicU64>,
        created: Arc<Mutex<Vec<SessionKey>>>,
    }

    /// Loads still to hold, and the barrier they wait at.
    type Gate = (usize, Arc<Barrier>);

    impl<S> Gated<S> {
        fn new(inner: S) -> Self {
            Self {
                inner,
                gate: Arc::default(),
                slow_saves: Arc::default(),
                rng: Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15)),
                created: Arc::default(),
            }
        }

        /// Holds the next `n` loads until all `n` have read.
        fn arm(&self, n: usize) {
            *lock(&self.gate) = Some((n, Arc::new(Barrier::new(n))));
        }

        fn take_created(&self) -> Vec<SessionKey> {
            std::mem::take(&mut *lock(&self.created))
        }

        /// A pseudo-random number below `bound` (xorshift; deterministic per run).
        fn random(&self, bound: u64) -> u64 {
            let mut x = self.rng.load(Ordering::Relaxed);
            loop {
                let mut next = x;
                next ^= next << 13;
                next ^= next >> 7;
                next ^= next << 17;
                match self
                    .rng
                    .compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => return next % bound,
                    Err(seen) => x = seen,
                }
            }
        }

        async fn jitter(&self, most: u64) {
            for _ in 0..self.random(most + 1) {
                tokio::task::yield_now().await;
            }
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl<S: SessionStore> SessionStore for Gated<S> {
        fn key_kind(&self) -> KeyKind {
            self.inner.key_kind()
        }

        async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
            let loaded = self.inner.load(key).await;
            let barrier = {
                let mut gate = lock(&self.gate);
                match gate.as_mut() {
                    Some((left, barrier)) => {
                        let barrier = Arc::clone(barrier);
                        *left -= 1;
                        if *left == 0 {
                            *gate = None;
                        }
                        Some(barrier)
                    }
                    None => None,
                }
            };
            if let Some(barrier) = barrier {
                barrier.wait().await;
            }
            loaded
        }

        async fn create(&self, record: &Record) -> Result<Saved> {
            let saved = self.inner.create(record).await?;
            lock(&self.created).push(saved.key.clone());
            Ok(saved)
        }

        async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
            if self.slow_saves.load(Ordering::Relaxed) {
                self.jitter(16).await;
            }
            self.inner.save(key, record).await
        }

        async fn delete(&self, key: &SessionKey) -> Result<()> {
            self.inner.delete(key).await
        }

        async fn exists(&self, key: &SessionKey) -> Result<bool> {
            self.inner.exists(key).await
        }

        async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
            self.inner.touch(key, until).await
        }

        async fn clear_expired(&self) -> Result<u64> {
            self.inner.clear_expired().await
        }
    }

    // ---- the app under test ------------------------------------------------

    type Store<S> = CountingStore<Gated<S>>;

    /// Tells the test that a handler has loaded its session.
    #[derive(Clone, Default)]
    struct Loaded(Arc<Notify>);

    fn app<S: SessionStore + Clone>(store: &Store<S>, policy: ConflictPolicy) -> Router {
        app_with(store, policy, Loaded::default())
    }

    fn app_with<S: SessionStore + Clone>(
        store: &Store<S>,
        policy: ConflictPolicy,
        loaded: Loaded,
    ) -> Router {
        Router::new()
            .route("/set", post(set))
            .route("/incr", get(increment))
            .route("/incr-strict", get(increment_strict))
            .route("/load-then-set", post(load_then_set))
            .route("/login", get(login))
            .route(
                "/logout",
                get(|s: Session| async move { s.flush().await.map(|()| "logged out") }),
            )
            .route(
                "/read",
                get(|s: Session| async move { s.get_value("x").await.map(|_| "read") }),
            )
            .with_state(loaded)
            .layer(
                SessionManagerLayer::new(store.clone())
                    .with_conflict_policy(policy)
                    // The gate holds loads until every request has read: far
                    // longer than a store call may take in production.
                    .with_store_timeout(StdDuration::from_secs(60)),
            )
    }

    /// `POST /set`: merges a JSON object into the session (the demo's route).
    async fn set(session: Session, Json(entries): Json<SessionMap>) -> Result<&'static str> {
        session.update(entries).await.map(|()| "ok")
    }

    /// `GET /incr`: the demo's counter, a read-modify-write of one key.
    async fn increment(session: Session) -> Result<String> {
        let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
        session.insert("counter", n).await?;
        Ok(n.to_string())
    }

    /// `GET /incr-strict`: the counter under `Strict`, retrying its own
    /// logic when another request saved first.
    async fn increment_strict(session: Session) -> Result<String> {
        for _ in 0..STRICT_BUDGET {
            let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
            session.insert("counter", n).await?;
            match session.save().await {
                Ok(()) => return Ok(n.to_string()),
                Err(Error::Conflict) => session.reload().await?,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    /// `POST /load-then-set`: loads, tells the test, then writes (the
    /// middleware saves when the handler returns).
    async fn load_then_set(
        State(loaded): State<Loaded>,
        session: Session,
        Json(entries): Json<SessionMap>,
    ) -> Result<&'static str> {
        session.get_value("x").await?;
        loaded.0.notify_one();
        session.update(entries).await.map(|()| "ok")
    }

    /// `GET /login`: Django's `login()` for a session not yet logged in.
    async fn login(session: Session) -> Result<&'static str> {
        session.cycle_key().await?;
        session.insert("_auth_user_id", "42").await?;
        Ok("logged in")
    }

    struct Reply {
        status: StatusCode,
        /// The key of the `Set-Cookie`, if a live one was set.
        key: Option<String>,
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        cookie: Option<&SessionKey>,
        body: Value,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = cookie {
            req = req.header(COOKIE, format!("sessionid={}", key.as_str()));
        }
        if method == "POST" {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(axum::body::Body::from(body.to_string()))
            .expect("a request");
        let res = app
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let key = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.contains("Max-Age=0"))
            .find_map(|v| {
                let pair = v.split(';').next()?;
                pair.strip_prefix("sessionid=").map(str::to_owned)
            });
        let status = res.status();
        res.into_body()
            .collect()
            .await
            .expect("the body can be read");
        Reply { status, key }
    }

    fn spawn_send(
        app: &Router,
        method: &'static str,
        path: &'static str,
        cookie: Option<SessionKey>,
        body: Value,
    ) -> JoinHandle<Reply> {
        let app = app.clone();
        tokio::spawn(async move { send(&app, method, path, cookie.as_ref(), body).await })
    }

    async fn join<T>(handle: JoinHandle<T>) -> T {
        match handle.await {
            Ok(value) => value,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("task did not finish: {err}"),
        }
    }

    /// Stores `data` under a fresh key, bypassing the counters.
    async fn seed<S: SessionStore>(store: &S, data: Value) -> SessionKey {
        let Value::Object(map) = data else {
            panic!("seed data must be an object");
        };
        let expires_at = OffsetDateTime::now_utc() + time::Duration::hours(1);
        store
            .create(&Record::new(map, expires_at))
            .await
            .expect("seed the session")
            .key
    }

    async fn stored<S: SessionStore>(store: &S, key: &SessionKey) -> Option<SessionMap> {
        store
            .load(key)
            .await
            .expect("load")
            .map(|r| SessionMap::clone(&r.data))
    }

    fn skip_unless_server_side(case: &str, caps: Caps) -> bool {
        if !caps.server_side {
            // A store whose key is the data keeps nothing to race on.
            eprintln!("SKIP {case}: the store keeps no server-side record");
        }
        !caps.server_side
    }

    fn statuses(replies: &[Reply]) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for r in replies {
            *counts.entry(r.status.as_u16()).or_default() += 1;
        }
        counts
    }

    /// 64 `POST /set`, all loaded at the same version, each adding `k<i>`.
    /// Returns how many of the 64 keys the stored session holds, and the saves made.
    async fn sixty_four_sets<S: SessionStore + Clone>(
        store: S,
        policy: ConflictPolicy,
    ) -> (usize, u64) {
        let store = CountingStore::new(Gated::new(store));
        let key = seed(&store.inner().inner, json!({"seed": 0})).await;
        let app = app(&store, policy);
        store.inner().arm(N);
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                spawn_send(
                    &app,
                    "POST",
                    "/set",
                    Some(key.clone()),
                    json!({ format!("k{i}"): i }),
                )
            })
            .collect();
        for task in tasks {
            let reply = join(task).await;
            assert_eq!(reply.status, StatusCode::OK, "every /set must succeed");
        }
        let data = stored(&store.inner().inner, &key)
            .await
            .expect("the session lives");
        assert_eq!(data.get("seed"), Some(&json!(0)), "the seed key was lost");
        let survived = (0..N)
            .filter(|i| data.contains_key(&format!("k{i}")))
            .count();
        (survived, store.calls().save)
    }

    // ---- cases -------------------------------------------------------------

    /// Under `Merge` (the default), 64 concurrent `POST /set` on one session,
    /// forced to load the same version, each adding a distinct key: all 64
    /// keys survive.
    pub async fn merge_keeps_all_64_concurrent_keys<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        _scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("merge_keeps_all_64_concurrent_keys", caps) {
            return;
        }
        let (survived, saves) = sixty_four_sets(store, ConflictPolicy::Merge).await;
        figure(
            label,
            format_args!(
                "merge: {survived}/{N} keys survived 64 overlapping POST /set \
                 ({saves} saves: {} conflicts re-applied)",
                saves.saturating_sub(N as u64)
            ),
        );
        assert_eq!(survived, N, "Merge lost keys");
    }

    /// Under `LastWriteWins` (Django's behaviour) the same 64 requests lose keys.
    pub async fn last_write_wins_loses_concurrent_keys<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        _scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("last_write_wins_loses_concurrent_keys", caps) {
            return;
        }
        let (survived, _) = sixty_four_sets(store, ConflictPolicy::LastWriteWins).await;
        figure(
            label,
            format_args!(
                "last-write-wins (Django): {survived}/{N} keys survived 64 overlapping POST /set"
            ),
        );
        assert!(
            survived < N,
            "64 overlapping writes under LastWriteWins should lose keys"
        );
        assert!(survived >= 1, "the last writer's key must be there");
    }

    /// Under `Strict`, 64 concurrent increments of one key, each handler
    /// retrying (reload, recompute, save) on `Conflict` within a budget of
    /// 64 tries: the counter is exactly 64.
    pub async fn strict_counts_all_64_increments_with_retries<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        _scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("strict_counts_all_64_increments_with_retries", caps) {
            return;
        }
        let store = CountingStore::new(Gated::new(store));
        let key = seed(&store.inner().inner, json!({"counter": 0})).await;
        let app = app(&store, ConflictPolicy::Strict);
        store.inner().arm(N);
        let tasks: Vec<_> = (0..N)
            .map(|_| spawn_send(&app, "GET", "/incr-strict", Some(key.clone()), Value::Null))
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(join(task).await);
        }
        let data = stored(&store.inner().inner, &key)
            .await
            .expect("the session lives");
        let counter = data.get("counter").and_then(Value::as_i64);
        let saves = store.calls().save;
        figure(
            label,
            format_args!(
                "strict: 64 concurrent increments counted {} ({saves} save attempts, statuses {:?})",
                counter.unwrap_or(-1),
                statuses(&replies)
            ),
        );
        assert!(
            replies.iter().all(|r| r.status == StatusCode::OK),
            "every increment must succeed"
        );
        assert_eq!(counter, Some(N as i64));
    }

    /// Under `Merge`, two sessions that change one key: the later save's
    /// value stays, in either order. Hence 64 concurrent increments of one
    /// key may count fewer than 64 (that is what `Strict` is for).
    pub async fn merge_same_key_later_save_wins<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        _scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("merge_same_key_later_save_wins", caps) {
            return;
        }
        for (first, second) in [("a", "b"), ("b", "a")] {
            let key = seed(&store, json!({"k": "seed", "other": 1})).await;
            let a = Session::new(store.clone(), Some(key.clone()));
            let b = Session::new(store.clone(), Some(key.clone()));
            a.get_value("k").await.expect("load a");
            b.get_value("k").await.expect("load b");
            a.insert("k", "a").await.expect("insert a");
            b.insert("k", "b").await.expect("insert b");
            let (x, y) = if first == "a" { (&a, &b) } else { (&b, &a) };
            x.save().await.expect("first save");
            y.save().await.expect("second save merges");
            let data = stored(&store, &key).await.expect("the session lives");
            assert_eq!(
                data.get("k"),
                Some(&json!(second)),
                "the later save must win"
            );
            assert_eq!(
                data.get("other"),
                Some(&json!(1)),
                "an untouched key must stay"
            );
        }

        let counting = CountingStore::new(Gated::new(store));
        let key = seed(&counting.inner().inner, json!({"counter": 0})).await;
        let app = app(&counting, ConflictPolicy::Merge);
        counting.inner().arm(N);
        let tasks: Vec<_> = (0..N)
            .map(|_| spawn_send(&app, "GET", "/incr", Some(key.clone()), Value::Null))
            .collect();
        for task in tasks {
            assert_eq!(join(task).await.status, StatusCode::OK);
        }
        let data = stored(&counting.inner().inner, &key)
            .await
            .expect("the session lives");
        let counter = data.get("counter").and_then(Value::as_i64).unwrap_or(0);
        figure(
            label,
            format_args!(
                "merge: 64 overlapping increments of one key counted {counter} \
                 (same key: the later save wins; use Strict to count all)"
            ),
        );
        assert!((1..=N as i64).contains(&counter), "counter {counter}");
    }

    /// A logout (`flush`) raced against an in-flight write on the same
    /// session (loaded before the logout, saved with random delays around
    /// it), [`Scale::logout_races`] times: afterwards the old key never
    /// loads, the write either landed before the logout (200, on the old
    /// key) or was interrupted (400), and no write request created a record.
    pub async fn logout_racing_a_slow_write_brings_nothing_back<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("logout_racing_a_slow_write_brings_nothing_back", caps) {
            return;
        }
        let store = CountingStore::new(Gated::new(store));
        store.inner().slow_saves.store(true, Ordering::Relaxed);
        let raw = store.inner().inner.clone();
        let loaded = Loaded::default();
        let app = app_with(&store, ConflictPolicy::Merge, loaded.clone());
        let (mut landed, mut interrupted, mut brought_back) = (0usize, 0usize, 0usize);
        for i in 0..scale.logout_races {
            let key = seed(&raw, json!({"_auth_user_id": "42", "i": i})).await;
            let notify = Arc::clone(&loaded.0);
            let write = spawn_send(
                &app,
                "POST",
                "/load-then-set",
                Some(key.clone()),
                json!({"late": i}),
            );
            notify.notified().await;
            store.inner().jitter(8).await;
            let logout = send(&app, "GET", "/logout", Some(&key), Value::Null).await;
            assert_eq!(logout.status, StatusCode::OK, "race {i}: logout failed");
            let write = join(write).await;
            match write.status {
                StatusCode::OK => {
                    landed += 1;
                    assert_eq!(
                        write.key.as_deref(),
                        Some(key.as_str()),
                        "race {i}: the write moved keys"
                    );
                }
                StatusCode::BAD_REQUEST => {
                    interrupted += 1;
                    assert_eq!(
                        write.key, None,
                        "race {i}: an interrupted write set a cookie"
                    );
                }
                other => panic!("race {i}: the write answered {other}"),
            }
            if stored(&raw, &key).await.is_some() {
                brought_back += 1;
            }
        }
        let created = store.calls().create;
        figure(
            label,
            format_args!(
                "logout vs slow write: {brought_back}/{} sessions brought back, {created} records \
                 created by the writes (write saved before the logout: {landed}; interrupted, 400: \
                 {interrupted})",
                scale.logout_races
            ),
        );
        assert_eq!(brought_back, 0, "a logged-out session was brought back");
        assert_eq!(created, 0, "a write request created a record");
    }

    /// Two concurrent `cycle_key` (logins) on one session, both loaded at
    /// the same version, [`Scale::rotation_races`] times: exactly one live
    /// key afterwards (the old one is dead), holding the session's data.
    pub async fn concurrent_cycle_keys_leave_one_live_key<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        scale: Scale,
        label: &str,
    ) {
        if skip_unless_server_side("concurrent_cycle_keys_leave_one_live_key", caps) {
            return;
        }
        let store = CountingStore::new(Gated::new(store));
        let raw = store.inner().inner.clone();
        let app = app(&store, ConflictPolicy::Merge);
        let mut outcomes = BTreeMap::new();
        for i in 0..scale.rotation_races {
            let old = seed(&raw, json!({"cart": i})).await;
            store.inner().arm(2);
            let a = spawn_send(&app, "GET", "/login", Some(old.clone()), Value::Null);
            let b = spawn_send(&app, "GET", "/login", Some(old.clone()), Value::Null);
            let replies = [join(a).await, join(b).await];
            let mut codes: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
            codes.sort_unstable();
            *outcomes.entry(codes).or_insert(0usize) += 1;
            assert!(
                stored(&raw, &old).await.is_none(),
                "race {i}: the old key lives"
            );
            let mut live = Vec::new();
            for key in store.inner().take_created() {
                if let Some(data) = stored(&raw, &key).await {
                    live.push((key, data));
                }
            }
            assert_eq!(live.len(), 1, "race {i}: {} live keys", live.len());
            let (live_key, data) = &live[0];
            assert_eq!(
                data.get("cart"),
                Some(&json!(i)),
                "race {i}: the data was lost"
            );
            let winners: Vec<_> = replies
                .iter()
                .filter(|r| r.status == StatusCode::OK)
                .collect();
            assert_eq!(
                winners.len(),
                1,
                "race {i}: {} logins succeeded",
                winners.len()
            );
            assert_eq!(
                winners[0].key.as_deref(),
                Some(live_key.as_str()),
                "race {i}: wrong cookie"
            );
        }
        figure(
            label,
            format_args!(
                "two concurrent cycle_key x{}: exactly 1 live key every time (status pairs {outcomes:?})",
                scale.rotation_races
            ),
        );
    }

    /// [`Scale::anonymous_requests`] requests with random, valid-looking
    /// keys, half reading the session and half logging out: no store write
    /// at all, so no record is created.
    pub async fn anonymous_requests_create_nothing<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
        scale: Scale,
        label: &str,
    ) {
        let store = CountingStore::new(Gated::new(store));
        let app = app(&store, ConflictPolicy::Merge);
        let per_task = scale.anonymous_requests.div_ceil(IN_FLIGHT);
        let total = scale.anonymous_requests;
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|t| {
                let app = app.clone();
                tokio::spawn(async move {
                    let mut bad = 0usize;
                    for i in (t * per_task..(t + 1) * per_task).take_while(|i| *i < total) {
                        let path = if i % 2 == 0 { "/read" } else { "/logout" };
                        let key = SessionKey::generate();
                        let reply = send(&app, "GET", path, Some(&key), Value::Null).await;
                        if reply.status != StatusCode::OK || reply.key.is_some() {
                            bad += 1;
                        }
                    }
                    bad
                })
            })
            .collect();
        let mut bad = 0;
        for task in tasks {
            bad += join(task).await;
        }
        let calls = store.calls();
        figure(
            label,
            format_args!(
                "anonymous: {total} requests with random keys ({} /read, {} /logout): {} store \
                 writes, {} records created, {} lookups",
                total.div_ceil(2),
                total / 2,
                calls.writes(),
                calls.create,
                calls.lookups()
            ),
        );
        assert_eq!(
            bad, 0,
            "an anonymous request failed or got a session cookie"
        );
        assert_eq!(calls.writes(), 0, "an anonymous request wrote to the store");
    }

    /// 64 requests creating 64 new sessions and 64 writing distinct keys to
    /// one shared session, all at once: every request answers 2xx (no
    /// "database is locked", no timeout) and nothing is lost.
    pub async fn concurrent_writers_all_succeed<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
        _scale: Scale,
        label: &str,
    ) {
        let store = CountingStore::new(Gated::new(store));
        let raw = store.inner().inner.clone();
        let shared = seed(&raw, json!({"seed": 0})).await;
        let app = app(&store, ConflictPolicy::Merge);
        let mut tasks = Vec::new();
        for i in 0..N {
            tasks.push(spawn_send(&app, "POST", "/set", None, json!({ "own": i })));
            tasks.push(spawn_send(
                &app,
                "POST",
                "/set",
                Some(shared.clone()),
                json!({ format!("k{i}"): i }),
            ));
        }
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(join(task).await);
        }
        let ok = replies.iter().filter(|r| r.status.is_success()).count();
        figure(
            label,
            format_args!(
                "{} concurrent writers (64 new sessions, 64 on one session): {ok}/{} answered 2xx \
                 (statuses {:?})",
                replies.len(),
                replies.len(),
                statuses(&replies)
            ),
        );
        assert_eq!(ok, replies.len(), "a concurrent writer failed");
        if caps.server_side {
            let data = stored(&raw, &shared)
                .await
                .expect("the shared session lives");
            let kept = (0..N)
                .filter(|i| data.contains_key(&format!("k{i}")))
                .count();
            assert_eq!(kept, N, "the shared session lost keys");
            let mut new_keys = 0;
            for reply in replies
                .iter()
                .filter(|r| r.key.as_deref() != Some(shared.as_str()))
            {
                let key = SessionKey::parse_kind(
                    reply
                        .key
                        .as_deref()
                        .expect("a new session gets a cookie")
                        .as_bytes(),
                    KeyKind::Random,
                )
                .expect("a well-formed key");
                assert!(
                    stored(&raw, &key)
                        .await
                        .is_some_and(|d| d.contains_key("own"))
                );
                new_keys += 1;
            }
            assert_eq!(new_keys, N, "every new session has its own key");
        }
    }
}
