//! The store suite: one test per rule of the `SessionStore` trait.

use std::env::{self, VarError};
use std::future::Future;
use std::time::Duration as StdDuration;

use time::Duration;

/// What the store under test can do.
///
/// A case that needs a capability the store lacks returns early, prints
/// `SKIP <case>: <why>` to stderr and says why in a comment. The default is a
/// server-side store with no native expiry and microsecond expiry timestamps:
/// the SQL stores, [`MemoryStore`](sesame::backends::MemoryStore) and
/// `FileStore`. Others start from it:
///
/// ```
/// use sesame_conformance::Caps;
///
/// let redis = Caps {
///     native_ttl: true,
///     expiry_resolution: time::Duration::seconds(1),
///     ..Caps::default()
/// };
/// assert!(redis.server_side);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Deleting a record makes it unloadable at once, everywhere.
    ///
    /// `false` for a store whose key *is* the data (`SignedCookieStore`):
    /// a deleted cookie can be replayed.
    pub revocable: bool,
    /// The store keeps state under each key, so it can tell a stale version
    /// ([`Error::Conflict`](sesame::Error::Conflict)) and a vanished record
    /// ([`Error::Missing`](sesame::Error::Missing)) from a good save, and can
    /// move a record's expiry in place (`touch`).
    ///
    /// `false` for `SignedCookieStore`, which holds nothing to compare with.
    /// Such a store's key carries its own expiry, so a key past it is a value
    /// that no longer verifies: `load` may answer
    /// `Err(Corrupt(Expired))` for it (the session then re-issues an empty
    /// cookie, as Django's `signed_cookies` does) where a server-side store
    /// answers `None`.
    pub server_side: bool,
    /// The store expires records itself (Redis `EXPIRE`, Memcached TTL), so
    /// `clear_expired` has nothing to do and may return 0.
    pub native_ttl: bool,
    /// How far a loaded `expires_at` may be from the one written.
    ///
    /// The default, one microsecond, lets a store truncate or round to
    /// microseconds as SQL `datetime` columns do. A store that keeps expiry in
    /// whole seconds sets one second; the cases fail on anything coarser.
    pub expiry_resolution: Duration,
    /// The most bytes the store keeps for one record, if it has a limit.
    ///
    /// `Some(4096)` for `SignedCookieStore` (a browser's cookie limit): a
    /// record that does not fit must be refused with
    /// [`Error::TooLarge`](sesame::Error::TooLarge), never truncated or
    /// silently dropped. (The suite's 100 KiB value compresses to far less.)
    pub size_limit: Option<usize>,
}

impl Caps {
    /// What a server-side store with SQL-like precision can do: the
    /// [`Default`], usable in `const` items (`..Caps::DEFAULT`).
    pub const DEFAULT: Self = Self {
        revocable: true,
        server_side: true,
        native_ttl: false,
        expiry_resolution: Duration::microseconds(1),
        size_limit: None,
    };
}

impl Default for Caps {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Reads the URL of an external store for a test from `SESAME_TEST_<STORE>_URL`.
///
/// When the variable is unset or empty, prints
/// `SKIP <store>: SESAME_TEST_<STORE>_URL unset` to stderr and returns `None`,
/// which a store maker passed to [`store_suite!`](crate::store_suite) returns
/// in turn to skip the case.
///
/// # Examples
///
/// ```
/// // Unset here, so the case would be skipped.
/// assert_eq!(sesame_conformance::env_url("NOWHERE"), None);
/// ```
///
/// # Panics
///
/// Panics when the variable is set but not UTF-8: a misconfigured CI job
/// should fail, not silently skip.
#[must_use]
pub fn env_url(store: &str) -> Option<String> {
    let var = format!("SESAME_TEST_{}_URL", store.to_ascii_uppercase());
    match env::var(&var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        Ok(_) | Err(VarError::NotPresent) => {
            eprintln!("SKIP {}: {var} unset", store.to_ascii_lowercase());
            None
        }
        Err(VarError::NotUnicode(_)) => panic!("{var} is set but is not UTF-8"),
    }
}

/// How long one case may take before it counts as hung.
///
/// Generous, because external stores in CI are slow (the 10⁵ anonymous
/// requests of the race suite take 60–100 s on PostgreSQL or MySQL in a
/// debug build on two busy cores); it only turns a deadlock into a failure
/// with a name instead of a job that never ends.
const CASE_TIMEOUT: StdDuration = StdDuration::from_secs(300);

/// Runs one case on its own multi-threaded runtime, as
/// `#[tokio::test(flavor = "multi_thread")]` would.
///
/// The macros call this instead of expanding `#[tokio::test]`, because that
/// attribute names `tokio` by a path the caller's crate must resolve.
///
/// # Panics
///
/// Panics when the case fails, when it runs longer than five minutes, or
/// when no runtime can be built.
pub fn run<F: Future<Output = ()>>(case: &str, test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can be built for a test")
        .block_on(async {
            if tokio::time::timeout(CASE_TIMEOUT, test).await.is_err() {
                panic!(
                    "{case}: did not finish within {CASE_TIMEOUT:?}: a deadlock or a hung store"
                );
            }
        });
}

/// Expands to one test per rule of the
/// [`SessionStore`](sesame::backends::SessionStore) trait.
///
/// `store_suite!(make_store, caps)`:
///
/// - `make_store` is an expression of type `impl Future<Output = Option<S>>`
///   where `S: SessionStore + Clone`, evaluated afresh in every test (on that
///   test's runtime): an `async { … }` block or a call such as `make_pg()` to
///   an `async fn`. `None` skips the case: an external store whose URL is
///   unset (see [`env_url`](crate::env_url), which prints the skip line).
/// - `caps` is a [`Caps`](crate::Caps) expression.
///
/// Each case is a `#[test]` running on its own multi-threaded tokio runtime,
/// like `#[tokio::test(flavor = "multi_thread")]`, so no failure hides
/// another. The caller needs no dependency on tokio. Every case uses fresh
/// keys and asserts only on them, so the cases can run concurrently against
/// one external database. Expiry is tested with past timestamps, never sleeps.
///
/// The cases, each a test named for the behaviour it checks:
///
/// | case | rule |
/// |---|---|
/// | `absent_key_loads_none` | an unknown key loads `None` |
/// | `create_then_load_round_trips_data_and_expiry` | nested JSON, unicode, insertion order and expiry survive; load fills the version |
/// | `load_contents_reads_what_load_reads` | the same data (in order) and version; unknown, expired and deleted keys load `None` |
/// | `create_never_overwrites` | two creates give two distinct, loadable keys |
/// | `create_ignores_the_record_version` | creating from a loaded record makes a new record |
/// | `version_from_create_allows_save` | `create`'s version is current |
/// | `save_with_current_version_returns_a_new_version` | and that one is current in turn |
/// | `save_moves_expiry_forward` | save replaces data and expiry |
/// | `save_with_stale_version_conflicts_and_keeps_data` | stale version → `Conflict`, stored data unchanged |
/// | `save_without_version_writes_unconditionally` | `version: None` overwrites |
/// | `save_after_delete_is_missing_and_recreates_nothing` | → `Missing` |
/// | `save_to_unknown_key_is_missing` | → `Missing` |
/// | `save_of_expired_record_is_missing` | → `Missing` |
/// | `delete_is_idempotent` | twice, or an unknown key: `Ok` |
/// | `expired_record_is_never_loaded` | created or saved in the past: `None` |
/// | `exists_reports_only_live_records` | live, unknown, expired, deleted |
/// | `clear_expired_removes_only_expired_records` | and counts them |
/// | `touch_extends_expiry_and_keeps_data` | |
/// | `touch_of_missing_record_is_missing` | unknown, expired, deleted |
/// | `concurrent_writers_lose_nothing` | 32 load-modify-save writers, retrying on `Conflict` |
/// | `concurrent_saves_with_same_version_only_one_wins` | exactly one of two |
/// | `large_value_round_trips` | 100 KiB (compressible); past [`Caps::size_limit`](crate::Caps::size_limit), `TooLarge` |
/// | `special_character_keys_round_trip` | quotes, SQL, NUL, emoji, … as data keys |
///
/// # Examples
///
/// ```
/// mod memory {
///     sesame_conformance::store_suite!(
///         async { Some(sesame::backends::MemoryStore::new()) },
///         sesame_conformance::Caps::default(),
///     );
/// }
/// # fn main() {}
/// ```
///
/// An external store reads its URL with [`env_url`](crate::env_url) and
/// returns `None` when it is unset (here `MemoryStore` stands in for a store
/// that would connect to `url` and run its migrations):
///
/// ```
/// mod postgres {
///     async fn make() -> Option<sesame::backends::MemoryStore> {
///         // Prints `SKIP postgres: SESAME_TEST_POSTGRES_URL unset` when unset.
///         let _url = sesame_conformance::env_url("POSTGRES")?;
///         Some(sesame::backends::MemoryStore::new())
///     }
///     sesame_conformance::store_suite!(make(), sesame_conformance::Caps::default());
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_suite {
    ($make_store:expr, $caps:expr $(,)?) => {
        $crate::__store_cases! {
            ($make_store) ($caps)
            absent_key_loads_none
            create_then_load_round_trips_data_and_expiry
            load_contents_reads_what_load_reads
            create_never_overwrites
            create_ignores_the_record_version
            version_from_create_allows_save
            save_with_current_version_returns_a_new_version
            save_moves_expiry_forward
            save_with_stale_version_conflicts_and_keeps_data
            save_without_version_writes_unconditionally
            save_after_delete_is_missing_and_recreates_nothing
            save_to_unknown_key_is_missing
            save_of_expired_record_is_missing
            delete_is_idempotent
            expired_record_is_never_loaded
            exists_reports_only_live_records
            clear_expired_removes_only_expired_records
            touch_extends_expiry_and_keeps_data
            touch_of_missing_record_is_missing
            concurrent_writers_lose_nothing
            concurrent_saves_with_same_version_only_one_wins
            large_value_round_trips
            special_character_keys_round_trip
        }
    };
}

/// Expands each case name of [`store_suite!`] into its test. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    (($make_store:expr) ($caps:expr) $($case:ident)+) => {
        $(
            #[test]
            fn $case() {
                $crate::__private::run(::core::stringify!($case), async {
                    // `None`: an external store whose URL is unset; the maker
                    // has printed the skip line.
                    if let ::core::option::Option::Some(store) = $make_store.await {
                        $crate::__private::cases::$case(&store, $caps).await;
                    }
                });
            }
        )+
    };
}

/// The cases of [`store_suite!`](crate::store_suite), one function per rule.
///
/// Each takes the store under test and its [`Caps`](crate::Caps), and panics
/// exactly when the store breaks the rule it is named for.
pub mod cases {
    #![allow(
        clippy::missing_panics_doc,
        reason = "a case panics exactly when the store breaks its rule"
    )]

    use std::panic;

    use serde_json::{Value, json};
    use sesame::backends::{Record, Saved, SessionStore};
    use sesame::codec::SessionMap;
    use sesame::{Error, SessionKey};
    use time::{Duration, OffsetDateTime};
    use tokio::task::JoinHandle;

    use crate::Caps;

    /// Writers in [`concurrent_writers_lose_nothing`].
    const WRITERS: usize = 32;

    // ---- helpers ----------------------------------------------------------

    fn skip(case: &str, why: &str) {
        eprintln!("SKIP {case}: {why}");
    }

    fn in_hours(hours: i64) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::hours(hours)
    }

    fn hours_ago(hours: i64) -> OffsetDateTime {
        OffsetDateTime::now_utc() - Duration::hours(hours)
    }

    fn map(value: Value) -> SessionMap {
        match value {
            Value::Object(map) => map,
            other => panic!("session data must be a JSON object, not {other}"),
        }
    }

    async fn create<S: SessionStore>(store: &S, data: Value, expires_at: OffsetDateTime) -> Saved {
        store
            .create(&Record::new(map(data), expires_at))
            .await
            .expect("create failed")
    }

    async fn load<S: SessionStore>(store: &S, key: &SessionKey) -> Option<Record> {
        store.load(key).await.expect("load failed")
    }

    async fn load_live<S: SessionStore>(store: &S, key: &SessionKey) -> Record {
        load(store, key)
            .await
            .expect("a live record should load, but load returned None")
    }

    /// Compares data including key order at every level (`SessionMap`'s
    /// `==` ignores order).
    fn assert_same_data(got: &SessionMap, want: &SessionMap, what: &str) {
        assert_eq!(got, want, "{what}: data differs");
        let got = serde_json::to_string(got).expect("a map serializes");
        let want = serde_json::to_string(want).expect("a map serializes");
        assert_eq!(got, want, "{what}: key order differs");
    }

    fn assert_expiry(caps: Caps, got: OffsetDateTime, want: OffsetDateTime, what: &str) {
        assert!(
            caps.expiry_resolution <= Duration::seconds(1),
            "Caps::expiry_resolution is {}; the suite allows at most one second",
            caps.expiry_resolution,
        );
        let off = (got - want).abs();
        assert!(
            off <= caps.expiry_resolution,
            "{what}: expires_at is {got}, wrote {want} (off by {off}, allowed {})",
            caps.expiry_resolution,
        );
    }

    /// Asserts that an expired record does not load: `None`, or for a
    /// store that is not server-side, `Err(Corrupt(Expired))` (its key
    /// carries the expiry; see [`Caps::server_side`]).
    async fn assert_expired_not_loaded<S: SessionStore>(
        store: &S,
        key: &SessionKey,
        caps: Caps,
        what: &str,
    ) {
        match store.load(key).await {
            Ok(None) => {}
            Err(Error::Corrupt(sesame::codec::Error::Expired { .. })) if !caps.server_side => {}
            Ok(Some(record)) => panic!("{what}: loaded {record:?}"),
            Err(err) => panic!("{what}: load failed: {err:?}"),
        }
        match store.load_contents(key).await {
            Ok(None) => {}
            Err(Error::Corrupt(sesame::codec::Error::Expired { .. })) if !caps.server_side => {}
            Ok(Some(contents)) => panic!("{what}: load_contents read {contents:?}"),
            Err(err) => panic!("{what}: load_contents failed: {err:?}"),
        }
    }

    fn assert_missing<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
        match result {
            Err(Error::Missing) => {}
            other => panic!("{what}: expected Err(Missing), got {other:?}"),
        }
    }

    /// Awaits a spawned task, re-raising its panic with its own message.
    async fn join<T>(handle: JoinHandle<T>) -> T {
        match handle.await {
            Ok(value) => value,
            Err(err) if err.is_panic() => panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("task did not finish: {err}"),
        }
    }

    // ---- load and create --------------------------------------------------

    /// An unknown key loads `None`.
    pub async fn absent_key_loads_none<S: SessionStore + Clone>(store: &S, _caps: Caps) {
        let key = SessionKey::generate();
        assert!(load(store, &key).await.is_none(), "an unknown key loaded");
    }

    /// What `create` stores, `load` returns: nested JSON, unicode, key order
    /// and expiry; and `load` fills the version.
    pub async fn create_then_load_round_trips_data_and_expiry<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        let data = json!({
            "zebra": 1,
            "apple": {"nested": [1, "two", {"three": 3.5}], "deeper": {"z": null, "a": true}},
            "mango": "Grüße, 世界 🍋 \"quoted\" \\ back",
            "_auth_user_id": "42",
            "max": u64::MAX,
            "min": i64::MIN,
            "empty_object": {},
            "empty_list": [],
            "flag": false,
        });
        let expires_at = in_hours(1);
        let saved = create(store, data.clone(), expires_at).await;
        let loaded = load_live(store, &saved.key).await;
        assert_same_data(&loaded.data, &map(data), "round trip");
        assert_expiry(caps, loaded.expires_at, expires_at, "round trip");
        assert!(loaded.version.is_some(), "load must fill the version");
    }

    /// `load_contents` reads what `load` reads, less the expiry: the same
    /// data in the same order and the same, current version; nothing for an
    /// unknown or deleted key (expired keys: [`expired_record_is_never_loaded`]).
    pub async fn load_contents_reads_what_load_reads<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        let unknown = SessionKey::generate();
        let read = store.load_contents(&unknown).await;
        assert!(
            matches!(read, Ok(None)),
            "an unknown key: load_contents returned {read:?}"
        );

        let data = json!({"zebra": 1, "apple": {"z": null, "a": [1, "two"]}, "mango": "🍋"});
        let saved = create(store, data.clone(), in_hours(1)).await;
        let loaded = load_live(store, &saved.key).await;
        let contents = store
            .load_contents(&saved.key)
            .await
            .expect("load_contents failed")
            .expect("a live record should load, but load_contents returned None");
        assert_same_data(&contents.data, &map(data), "load_contents");
        assert_same_data(&contents.data, &loaded.data, "load_contents against load");
        assert_eq!(
            contents.version, loaded.version,
            "load and load_contents versions"
        );
        if caps.server_side {
            // The version read is current: a save presenting it succeeds.
            let mut record = Record::new(map(json!({"n": 2})), in_hours(1));
            record.version = contents.version.clone();
            store
                .save(&saved.key, &record)
                .await
                .expect("a save with load_contents's version failed");
            let again = store
                .load_contents(&saved.key)
                .await
                .expect("load_contents failed")
                .expect("the saved record should load");
            assert_same_data(&again.data, &map(json!({"n": 2})), "after the save");
            store.delete(&saved.key).await.expect("delete failed");
            let gone = store.load_contents(&saved.key).await;
            assert!(
                matches!(gone, Ok(None)),
                "a deleted key: load_contents returned {gone:?}"
            );
        }
    }

    /// Creating twice gives two distinct keys, each holding its own record.
    pub async fn create_never_overwrites<S: SessionStore + Clone>(store: &S, _caps: Caps) {
        let first = create(store, json!({"who": "first"}), in_hours(1)).await;
        let second = create(store, json!({"who": "second"}), in_hours(1)).await;
        assert_ne!(first.key, second.key, "two creates returned the same key");
        assert_eq!(
            load_live(store, &first.key).await.data["who"],
            "first",
            "the first record was overwritten"
        );
        assert_eq!(load_live(store, &second.key).await.data["who"], "second");
    }

    /// `create` from a loaded record (as `cycle_key` does) makes a new record
    /// and leaves the old one alone, whatever version the record carries.
    pub async fn create_ignores_the_record_version<S: SessionStore + Clone>(
        store: &S,
        _caps: Caps,
    ) {
        let old = create(store, json!({"n": 1}), in_hours(1)).await;
        let mut record = load_live(store, &old.key).await;
        record.data_mut().insert("n".into(), json!(2));
        let new = store
            .create(&record)
            .await
            .expect("create from a loaded record failed");
        assert_ne!(new.key, old.key, "create reused the old key");
        assert_eq!(load_live(store, &new.key).await.data["n"], 2);
        assert_eq!(
            load_live(store, &old.key).await.data["n"],
            1,
            "create changed the record it was copied from"
        );
    }

    /// The version `create` returns is current: a conditional save with it succeeds.
    pub async fn version_from_create_allows_save<S: SessionStore + Clone>(store: &S, caps: Caps) {
        if !caps.server_side {
            // A client-side store has no stored version to compare with.
            return skip("version_from_create_allows_save", "not server-side");
        }
        let record = Record::new(map(json!({"n": 1})), in_hours(1));
        let saved = store.create(&record).await.expect("create failed");
        let next = Record {
            data: map(json!({"n": 2})).into(),
            version: Some(saved.version),
            ..record
        };
        store
            .save(&saved.key, &next)
            .await
            .expect("save with the version create returned failed");
        assert_eq!(load_live(store, &saved.key).await.data["n"], 2);
    }

    // ---- save -------------------------------------------------------------

    /// A save with the loaded version succeeds and returns a new version,
    /// which is current in turn; the returned key is the record's.
    pub async fn save_with_current_version_returns_a_new_version<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // A client-side store has no stored version to compare with.
            return skip(
                "save_with_current_version_returns_a_new_version",
                "not server-side",
            );
        }
        let created = create(store, json!({"n": 0}), in_hours(1)).await;
        let mut record = load_live(store, &created.key).await;
        let loaded_version = record.version.clone().expect("load fills the version");

        record.data_mut().insert("n".into(), json!(1));
        let first = store
            .save(&created.key, &record)
            .await
            .expect("save with the loaded version failed");
        assert_eq!(first.key, created.key, "save moved the record to a new key");
        assert_ne!(first.version, loaded_version, "save kept the old version");

        // Chain a second save on the returned version, without reloading.
        record.data_mut().insert("n".into(), json!(2));
        record.version = Some(first.version.clone());
        let second = store
            .save(&created.key, &record)
            .await
            .expect("save with the version the last save returned failed");
        assert_ne!(second.version, first.version, "save kept the old version");
        assert_eq!(load_live(store, &created.key).await.data["n"], 2);
    }

    /// `save` replaces the data and moves the expiry to the new one.
    pub async fn save_moves_expiry_forward<S: SessionStore + Clone>(store: &S, caps: Caps) {
        let created = create(store, json!({"n": 1}), in_hours(1)).await;
        let mut record = load_live(store, &created.key).await;
        let later = in_hours(2);
        record.expires_at = later;
        record.data_mut().insert("n".into(), json!(2));
        let saved = store
            .save(&created.key, &record)
            .await
            .expect("save failed");
        let loaded = load_live(store, &saved.key).await;
        assert_eq!(loaded.data["n"], 2, "save did not replace the data");
        assert_expiry(caps, loaded.expires_at, later, "after save");
    }

    /// A save with a version that is no longer current is `Conflict` and
    /// leaves the stored record as it was.
    pub async fn save_with_stale_version_conflicts_and_keeps_data<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // A client-side store cannot see another writer's version.
            return skip(
                "save_with_stale_version_conflicts_and_keeps_data",
                "not server-side",
            );
        }
        let created = create(store, json!({"who": "creator"}), in_hours(1)).await;
        let stale = load_live(store, &created.key).await;

        let mut winner = stale.clone();
        winner.data_mut().insert("who".into(), json!("winner"));
        store
            .save(&created.key, &winner)
            .await
            .expect("the first save failed");

        let mut loser = stale;
        loser.data_mut().insert("who".into(), json!("loser"));
        let result = store.save(&created.key, &loser).await;
        assert!(
            matches!(result, Err(Error::Conflict)),
            "a save with a stale version should be Err(Conflict), got {result:?}"
        );
        assert_eq!(
            load_live(store, &created.key).await.data["who"],
            "winner",
            "a conflicting save changed the stored data"
        );
    }

    /// A save with `version: None` overwrites whatever is stored.
    pub async fn save_without_version_writes_unconditionally<S: SessionStore + Clone>(
        store: &S,
        _caps: Caps,
    ) {
        let created = create(store, json!({"who": "creator"}), in_hours(1)).await;
        let mut other = load_live(store, &created.key).await;
        other.data_mut().insert("who".into(), json!("other"));
        store
            .save(&created.key, &other)
            .await
            .expect("the versioned save failed");

        let blind = Record::new(map(json!({"who": "blind"})), in_hours(1));
        let saved = store
            .save(&created.key, &blind)
            .await
            .expect("a save with version None failed");
        assert_eq!(load_live(store, &saved.key).await.data["who"], "blind");
    }

    /// After `delete`, a save (with or without a version) is `Missing` and
    /// re-creates nothing.
    pub async fn save_after_delete_is_missing_and_recreates_nothing<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !(caps.server_side && caps.revocable) {
            // Without server-side state, a deleted record cannot be told
            // from a live one.
            return skip(
                "save_after_delete_is_missing_and_recreates_nothing",
                "not server-side and revocable",
            );
        }
        let created = create(store, json!({"n": 1}), in_hours(1)).await;
        let mut record = load_live(store, &created.key).await;
        store.delete(&created.key).await.expect("delete failed");

        record.data_mut().insert("n".into(), json!(2));
        assert_missing(
            store.save(&created.key, &record).await,
            "versioned save after delete",
        );
        let blind = Record::new(SessionMap::clone(&record.data), in_hours(1));
        assert_missing(
            store.save(&created.key, &blind).await,
            "unversioned save after delete",
        );
        assert!(
            load(store, &created.key).await.is_none(),
            "a save after delete re-created the record"
        );
    }

    /// A save to a key that was never created is `Missing` and creates nothing.
    pub async fn save_to_unknown_key_is_missing<S: SessionStore + Clone>(store: &S, caps: Caps) {
        if !caps.server_side {
            // A client-side store has no notion of an unknown key.
            return skip("save_to_unknown_key_is_missing", "not server-side");
        }
        let key = SessionKey::generate();
        let record = Record::new(map(json!({"n": 1})), in_hours(1));
        assert_missing(store.save(&key, &record).await, "save to an unknown key");
        assert!(
            load(store, &key).await.is_none(),
            "a save to an unknown key created a record"
        );
    }

    /// A save to a record that has expired is `Missing`: it does not revive it.
    pub async fn save_of_expired_record_is_missing<S: SessionStore + Clone>(store: &S, caps: Caps) {
        if !caps.server_side {
            // A client-side store cannot tell an expired key from a live one
            // when writing.
            return skip("save_of_expired_record_is_missing", "not server-side");
        }
        let created = create(store, json!({"n": 1}), hours_ago(1)).await;
        let record = Record::new(map(json!({"n": 2})), in_hours(1));
        assert_missing(
            store.save(&created.key, &record).await,
            "save of an expired record",
        );
        assert!(
            load(store, &created.key).await.is_none(),
            "a save revived an expired record"
        );
    }

    // ---- delete, expiry, exists -------------------------------------------

    /// Deleting twice, or deleting a key that never existed, succeeds.
    pub async fn delete_is_idempotent<S: SessionStore + Clone>(store: &S, caps: Caps) {
        let created = create(store, json!({"n": 1}), in_hours(1)).await;
        store.delete(&created.key).await.expect("delete failed");
        store
            .delete(&created.key)
            .await
            .expect("a second delete failed");
        store
            .delete(&SessionKey::generate())
            .await
            .expect("deleting an unknown key failed");
        if caps.revocable {
            assert!(
                load(store, &created.key).await.is_none(),
                "a deleted record loaded"
            );
        }
    }

    /// A record whose expiry has passed never loads, whether it was created
    /// that way or saved that way.
    pub async fn expired_record_is_never_loaded<S: SessionStore + Clone>(store: &S, caps: Caps) {
        let long_ago = create(store, json!({"n": 1}), hours_ago(1)).await;
        assert_expired_not_loaded(
            store,
            &long_ago.key,
            caps,
            "a record that expired an hour ago",
        )
        .await;
        let just_now = create(
            store,
            json!({"n": 1}),
            OffsetDateTime::now_utc() - Duration::seconds(2),
        )
        .await;
        assert_expired_not_loaded(
            store,
            &just_now.key,
            caps,
            "a record that expired two seconds ago",
        )
        .await;

        let live = create(store, json!({"n": 1}), in_hours(1)).await;
        let mut record = load_live(store, &live.key).await;
        record.expires_at = hours_ago(1);
        let saved = store
            .save(&live.key, &record)
            .await
            .expect("saving a past expiry failed");
        assert_expired_not_loaded(store, &saved.key, caps, "a record saved with a past expiry")
            .await;
    }

    /// `exists` is true for a live record only: not for an unknown, expired
    /// or deleted one.
    pub async fn exists_reports_only_live_records<S: SessionStore + Clone>(store: &S, caps: Caps) {
        let exists =
            |key: SessionKey| async move { store.exists(&key).await.expect("exists failed") };
        let live = create(store, json!({"n": 1}), in_hours(1)).await;
        assert!(
            exists(live.key.clone()).await,
            "a live record does not exist"
        );
        assert!(
            !exists(SessionKey::generate()).await,
            "an unknown key exists"
        );
        let expired = create(store, json!({"n": 1}), hours_ago(1)).await;
        assert!(!exists(expired.key).await, "an expired record exists");
        if caps.revocable {
            store.delete(&live.key).await.expect("delete failed");
            assert!(!exists(live.key).await, "a deleted record exists");
        }
    }

    /// `clear_expired` removes expired records, keeps live ones, and counts
    /// at least the expired records this case made.
    ///
    /// Other cases may share the store and add expired records of their own,
    /// hence "at least". If another `clear_expired` on the same database
    /// (another store module sharing it) removes this case's records first,
    /// the count comes up short through no fault of the store; the case then
    /// tries again, up to three rounds. A store that miscounts fails every round.
    pub async fn clear_expired_removes_only_expired_records<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        const EXPIRED: u64 = 3;
        const ROUNDS: usize = 3;
        let mut live = Vec::new();
        for n in 0..2 {
            live.push(create(store, json!({"n": n}), in_hours(1)).await.key);
        }

        let mut counts = Vec::new();
        for _ in 0..ROUNDS {
            let mut expired = Vec::new();
            for n in 0..EXPIRED {
                expired.push(create(store, json!({"n": n}), hours_ago(1)).await.key);
            }
            let removed = store.clear_expired().await.expect("clear_expired failed");
            for key in &expired {
                assert_expired_not_loaded(store, key, caps, "an expired record").await;
            }
            for key in &live {
                assert!(
                    load(store, key).await.is_some(),
                    "clear_expired removed a live record"
                );
            }
            if !caps.server_side || caps.native_ttl {
                // The store expires records itself (or holds none), so there
                // is nothing to count.
                return;
            }
            if removed >= EXPIRED {
                return;
            }
            counts.push(removed);
        }
        panic!(
            "clear_expired removed {counts:?} records in {ROUNDS} rounds; each round made {EXPIRED} expired ones"
        );
    }

    // ---- touch -------------------------------------------------------------

    /// `touch` moves the expiry and leaves the data as it was.
    pub async fn touch_extends_expiry_and_keeps_data<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // `touch` moves a stored expiry in place; a client-side store
            // has none and must re-issue the key through `save`.
            return skip("touch_extends_expiry_and_keeps_data", "not server-side");
        }
        let data = json!({"keep": "me", "nested": {"b": 2, "a": 1}});
        let created = create(store, data.clone(), in_hours(1)).await;
        let later = in_hours(5);
        store
            .touch(&created.key, later)
            .await
            .expect("touch failed");
        let loaded = load_live(store, &created.key).await;
        assert_same_data(&loaded.data, &map(data), "after touch");
        assert_expiry(caps, loaded.expires_at, later, "after touch");
    }

    /// `touch` of an unknown, expired or deleted record is `Missing` and
    /// creates nothing.
    pub async fn touch_of_missing_record_is_missing<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // See `touch_extends_expiry_and_keeps_data`.
            return skip("touch_of_missing_record_is_missing", "not server-side");
        }
        let unknown = SessionKey::generate();
        assert_missing(
            store.touch(&unknown, in_hours(1)).await,
            "touch of unknown key",
        );
        assert!(
            load(store, &unknown).await.is_none(),
            "touch created a record"
        );

        let expired = create(store, json!({"n": 1}), hours_ago(1)).await;
        assert_missing(
            store.touch(&expired.key, in_hours(1)).await,
            "touch of expired record",
        );
        assert!(
            load(store, &expired.key).await.is_none(),
            "touch revived an expired record"
        );

        if caps.revocable {
            let deleted = create(store, json!({"n": 1}), in_hours(1)).await;
            store.delete(&deleted.key).await.expect("delete failed");
            assert_missing(
                store.touch(&deleted.key, in_hours(1)).await,
                "touch of deleted record",
            );
            assert!(
                load(store, &deleted.key).await.is_none(),
                "touch revived a deleted record"
            );
        }
    }

    // ---- concurrency -------------------------------------------------------

    /// 32 tasks each load the record, add their own key and save with the
    /// loaded version, reloading and retrying on `Conflict`: every key is
    /// there at the end.
    pub async fn concurrent_writers_lose_nothing<S: SessionStore + Clone>(store: &S, caps: Caps) {
        if !caps.server_side {
            // Without a stored version, concurrent writers cannot be detected.
            return skip("concurrent_writers_lose_nothing", "not server-side");
        }
        let created = create(store, json!({"seed": true}), in_hours(1)).await;
        let key = created.key;
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    // Each conflict means another writer's save went in, so
                    // a writer can lose at most WRITERS - 1 times; the bound
                    // only turns a livelock into a failure.
                    for _ in 0..WRITERS * 10 {
                        let mut record = load_live(&store, &key).await;
                        record.data_mut().insert(format!("writer-{i}"), json!(i));
                        match store.save(&key, &record).await {
                            Ok(_) => return,
                            Err(Error::Conflict) => {}
                            Err(err) => panic!("writer {i}: save failed: {err:?}"),
                        }
                    }
                    panic!(
                        "writer {i}: still conflicting after {} attempts",
                        WRITERS * 10
                    );
                })
            })
            .collect();
        for writer in writers {
            join(writer).await;
        }

        let record = load_live(store, &key).await;
        let missing: Vec<_> = (0..WRITERS)
            .filter(|i| record.data.get(&format!("writer-{i}")) != Some(&json!(i)))
            .collect();
        assert!(missing.is_empty(), "writes were lost: writers {missing:?}");
        assert_eq!(record.data["seed"], true, "the seed key was lost");
    }

    /// Two saves racing with the same version: exactly one succeeds, the
    /// other is `Conflict`, and the stored data is the winner's.
    pub async fn concurrent_saves_with_same_version_only_one_wins<S: SessionStore + Clone>(
        store: &S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // Without a stored version, concurrent writers cannot be detected.
            return skip(
                "concurrent_saves_with_same_version_only_one_wins",
                "not server-side",
            );
        }
        let created = create(store, json!({"who": "creator"}), in_hours(1)).await;
        let key = created.key;
        let base = load_live(store, &key).await;
        let racers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let store = store.clone();
                let key = key.clone();
                let mut record = base.clone();
                record.data_mut().insert("who".into(), json!(who));
                tokio::spawn(async move { (who, store.save(&key, &record).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            match join(racer).await {
                (who, Ok(_)) => winners.push(who),
                (_, Err(Error::Conflict)) => {}
                (who, Err(err)) => panic!("save {who} failed: {err:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one of two saves with the same version must win, won: {winners:?}"
        );
        assert_eq!(load_live(store, &key).await.data["who"], winners[0]);
    }

    // ---- data --------------------------------------------------------------

    /// A 100 KiB value is stored and loaded whole. A store with a
    /// [`Caps::size_limit`] also refuses a record it cannot hold with
    /// `TooLarge`.
    pub async fn large_value_round_trips<S: SessionStore + Clone>(store: &S, caps: Caps) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        if let Some(limit) = caps.size_limit {
            // Twice the limit of xorshift noise, which no compression
            // shrinks below it: refused loudly, as a browser would drop it
            // without a word.
            let mut state: u32 = 0x9e37_79b9;
            let noise: String = (0..2 * limit)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    char::from(ALPHABET[state as usize % ALPHABET.len()])
                })
                .collect();
            let record = Record::new(map(json!({"noise": noise})), in_hours(1));
            let result = store.create(&record).await;
            assert!(
                matches!(result, Err(Error::TooLarge { .. })),
                "a record over the store's {limit}-byte limit should be Err(TooLarge), got {result:?}"
            );
        }
        // Not one repeated byte, so a compressing codec still has work to do
        // (and a size-limited one can still hold it).
        let blob: String = (0..100 * 1024)
            .map(|i: usize| char::from(ALPHABET[(i * 7919 + i / 61) % ALPHABET.len()]))
            .collect();
        let data = json!({"blob": blob, "after": "the blob"});
        let created = create(store, data.clone(), in_hours(1)).await;
        let loaded = load_live(store, &created.key).await;
        assert_same_data(&loaded.data, &map(data), "100 KiB value");
    }

    /// Data keys with quotes, SQL, format specifiers, control characters,
    /// NUL, path separators and emoji are stored and loaded unchanged.
    pub async fn special_character_keys_round_trip<S: SessionStore + Clone>(
        store: &S,
        _caps: Caps,
    ) {
        let keys = [
            "",
            " ",
            "'",
            "\"",
            "\\",
            "'; DROP TABLE django_session; --",
            "%s %d {} {0} $1 ? :name @x",
            "line\nbreak\r\ttab",
            "nul\u{0}byte",
            "\u{7f}\u{1b}[0m",
            "../../etc/passwd",
            "<script>&amp;</script>",
            "ключ 键 مفتاح",
            "🔑🍪\u{200d}",
            "_session_expiry_not",
        ];
        let mut data = SessionMap::new();
        for (n, key) in keys.iter().enumerate() {
            // The key also appears nested, where a store might escape differently.
            let mut nested = SessionMap::new();
            nested.insert((*key).to_owned(), json!(n));
            data.insert((*key).to_owned(), Value::Object(nested));
        }
        let created = store
            .create(&Record::new(data.clone(), in_hours(1)))
            .await
            .expect("create failed");
        let loaded = load_live(store, &created.key).await;
        assert_same_data(&loaded.data, &data, "special keys");
    }
}
