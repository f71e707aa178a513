//! No lost writes, no resurrected sessions: the race suite on every store,
//! and a property test that interleaved saves equal some serial order.
//!
//! Each case prints its figure on stderr; collect them with
//! `cargo test -p sesame --all-features --test races -- --nocapture 2>&1 | grep '^figure:'`.
//! External stores read `SESAME_TEST_POSTGRES_URL` and `SESAME_TEST_MYSQL_URL`
//! and skip when they are unset.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests are not #[test] fns; a failed unwrap is a failed test"
)]

mod sql_support;

mod memory {
    sesame_conformance::race_suite!(
        async { Some(sesame::backends::MemoryStore::new()) },
        sesame_conformance::Caps::default(),
    );
}

/// A fresh database file per case.
#[cfg(feature = "sqlite")]
mod sqlite {
    use super::sql_support::sqlite::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_POSTGRES_URL` (the full 10⁵
/// anonymous requests take about 35 s here: each is a network round trip).
#[cfg(feature = "postgres")]
mod postgres {
    use super::sql_support::postgres::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_MYSQL_URL` (10⁵ anonymous
/// requests: about 40 s here).
#[cfg(feature = "mysql")]
mod mysql {
    use super::sql_support::mysql::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh directory per case, under `<tmp>/sesame-tests-files/`.
mod file {
    use sesame::backends::FileStore;

    use super::sql_support::{fresh_name, signer};

    async fn store() -> Option<FileStore> {
        let root = std::env::temp_dir().join("sesame-tests-files");
        let store = FileStore::new(root.join(fresh_name()), signer());
        store.migrate().await.expect("migrate");
        Some(store)
    }

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// Django's `cache` engine on `SESAME_TEST_REDIS_URL`.
#[cfg(feature = "redis")]
mod redis {
    async fn store() -> Option<sesame::backends::RedisStore> {
        let url = sesame_conformance::env_url("REDIS")?;
        Some(
            sesame::backends::RedisStore::connect(&url)
                .await
                .expect("connect to Redis"),
        )
    }

    const CAPS: sesame_conformance::Caps = sesame_conformance::Caps {
        native_ttl: true,
        expiry_resolution: time::Duration::seconds(1),
        ..sesame_conformance::Caps::DEFAULT
    };

    sesame_conformance::race_suite!(store(), CAPS);
}

/// The same on a Redis Cluster (`SESAME_TEST_REDIS_CLUSTER_URL`).
#[cfg(feature = "redis-cluster")]
mod redis_cluster {
    async fn store() -> Option<sesame::backends::RedisStore> {
        let url = sesame_conformance::env_url("REDIS_CLUSTER")?;
        Some(
            sesame::backends::RedisStore::connect(&url)
                .await
                .expect("connect to the Redis Cluster"),
        )
    }

    const CAPS: sesame_conformance::Caps = sesame_conformance::Caps {
        native_ttl: true,
        expiry_resolution: time::Duration::seconds(1),
        ..sesame_conformance::Caps::DEFAULT
    };

    sesame_conformance::race_suite!(store(), CAPS);
}

/// Django's `cache` engine on `SESAME_TEST_MEMCACHED_URL`.
#[cfg(feature = "memcached")]
mod memcached {
    async fn store() -> Option<sesame::backends::MemcachedStore> {
        let url = sesame_conformance::env_url("MEMCACHED")?;
        Some(
            sesame::backends::MemcachedStore::connect(&url)
                .await
                .expect("connect to memcached"),
        )
    }

    const CAPS: sesame_conformance::Caps = sesame_conformance::Caps {
        native_ttl: true,
        expiry_resolution: time::Duration::seconds(1),
        size_limit: Some(1024 * 1024),
        ..sesame_conformance::Caps::DEFAULT
    };

    sesame_conformance::race_suite!(store(), CAPS);
}

/// Django's `cached_db`: Redis in front of SQLite.
#[cfg(all(feature = "redis", feature = "sqlite"))]
mod cached_db {
    use sesame::backends::{CacheKeys, CachedDbStore, RedisStore, SqliteStore};

    async fn store() -> Option<CachedDbStore<RedisStore, SqliteStore>> {
        let url = sesame_conformance::env_url("REDIS")?;
        let cache = RedisStore::connect(&url)
            .await
            .expect("connect to Redis")
            .with_keys(CacheKeys::cached_db());
        let db = crate::sql_support::sqlite::store().await?;
        Some(CachedDbStore::new(cache, db))
    }

    const CAPS: sesame_conformance::Caps = sesame_conformance::Caps {
        expiry_resolution: time::Duration::seconds(1),
        ..sesame_conformance::Caps::DEFAULT
    };

    sesame_conformance::race_suite!(store(), CAPS);
}

/// Two `SqliteStore`s on one database file, as two server processes open
/// it: each has its own writer connection, so the two contend for SQLite's
/// write lock, where "database is locked" comes from.
#[cfg(feature = "sqlite")]
mod sqlite_two_handles {
    use axum::routing::post;
    use axum::{Json, Router};
    use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
    use http::{Request, StatusCode};
    use serde_json::{Value, json};
    use sesame::backends::{Record, SessionStore, SqliteStore};
    use sesame::codec::SessionMap;
    use sesame::{Session, SessionKey, SessionManagerLayer};
    use tower::ServiceExt;

    use super::sql_support::{fresh_name, signer};

    const WRITERS: usize = 64;

    fn app(store: SqliteStore) -> Router {
        Router::new()
            .route(
                "/set",
                post(|s: Session, Json(m): Json<SessionMap>| async move {
                    s.update(m).await.map(|()| "ok")
                }),
            )
            .layer(SessionManagerLayer::new(store))
    }

    async fn set(
        app: Router,
        cookie: Option<SessionKey>,
        body: Value,
    ) -> (StatusCode, Option<String>) {
        let mut req = Request::post("/set").header(CONTENT_TYPE, "application/json");
        if let Some(key) = cookie {
            req = req.header(COOKIE, format!("sessionid={}", key.as_str()));
        }
        let res = app
            .oneshot(req.body(axum::body::Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let key = res
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|p| p.strip_prefix("sessionid="))
            .map(str::to_owned);
        (res.status(), key)
    }

    /// 64 writers making new sessions and 64 writing one shared session, split
    /// over the two handles, all at once: every request 2xx (a "database is
    /// locked" error would be a 503), nothing lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_on_two_handles_never_see_database_is_locked() {
        let dir = std::env::temp_dir().join("sesame-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.sqlite3", fresh_name()));
        let a = SqliteStore::open(&path, signer()).unwrap();
        a.migrate().await.unwrap();
        let b = SqliteStore::open(&path, signer()).unwrap();
        let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let shared = a
            .create(&Record::new(SessionMap::new(), expires))
            .await
            .unwrap()
            .key;
        let apps = [app(a.clone()), app(b)];
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let app = apps[i % 2].clone();
            tasks.push(tokio::spawn(set(app, None, json!({ "own": i }))));
            let app = apps[(i + 1) % 2].clone();
            tasks.push(tokio::spawn(set(
                app,
                Some(shared.clone()),
                json!({ format!("k{i}"): i }),
            )));
        }
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        let mut new_keys = Vec::new();
        for task in tasks {
            let (status, key) = task.await.unwrap();
            *statuses.entry(status.as_u16()).or_default() += 1;
            if let Some(key) = key.filter(|k| k != shared.as_str()) {
                new_keys.push(key);
            }
        }
        let ok = statuses.get(&200).copied().unwrap_or(0);
        sesame_conformance::figure(
            "races::sqlite_two_handles",
            format_args!(
                "{} concurrent writers on two handles of one file (64 new sessions, 64 on one \
                 session): {ok}/{} answered 2xx, 0 \"database is locked\" (statuses {statuses:?})",
                2 * WRITERS,
                2 * WRITERS
            ),
        );
        assert_eq!(ok, 2 * WRITERS, "a writer failed: {statuses:?}");
        let data = a.load(&shared).await.unwrap().unwrap().data;
        assert_eq!(
            (0..WRITERS)
                .filter(|i| data.contains_key(&format!("k{i}")))
                .count(),
            WRITERS
        );
        assert_eq!(new_keys.len(), WRITERS);
        for key in new_keys {
            let key: SessionKey = key.parse().unwrap();
            assert!(a.load(&key).await.unwrap().is_some());
        }
        drop(apps);
        let _ = std::fs::remove_file(&path);
    }
}

/// A handler that saves and writes at once (`tokio::join!`): the write made
/// while the store holds the record is saved by the middleware, not lost.
mod during_a_save {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::routing::get;
    use http::header::SET_COOKIE;
    use http::{Request, StatusCode};
    use sesame::backends::{MemoryStore, Record, Saved, SessionStore};
    use sesame::{Session, SessionKey, SessionManagerLayer};
    use tokio::sync::Notify;
    use tower::ServiceExt;

    /// A `MemoryStore` whose first write waits until the handler lets it
    /// finish: a save in flight, without timing.
    #[derive(Clone, Default)]
    struct Held {
        inner: MemoryStore,
        passed: Arc<AtomicBool>,
        writing: Arc<Notify>,
        finish: Arc<Notify>,
    }

    impl Held {
        async fn hold(&self) {
            if !self.passed.swap(true, Ordering::SeqCst) {
                self.writing.notify_one();
                self.finish.notified().await;
            }
        }
    }

    impl SessionStore for Held {
        async fn load(&self, key: &SessionKey) -> sesame::Result<Option<Record>> {
            self.inner.load(key).await
        }
        async fn create(&self, record: &Record) -> sesame::Result<Saved> {
            self.hold().await;
            self.inner.create(record).await
        }
        async fn save(&self, key: &SessionKey, record: &Record) -> sesame::Result<Saved> {
            self.hold().await;
            self.inner.save(key, record).await
        }
        async fn delete(&self, key: &SessionKey) -> sesame::Result<()> {
            self.inner.delete(key).await
        }
    }

    #[tokio::test]
    async fn a_write_made_while_the_handler_saves_is_saved_too() {
        let store = Held::default();
        let held = store.clone();
        let app = Router::new()
            .route(
                "/",
                get(move |s: Session| async move {
                    s.insert("a", 1).await?;
                    let (saved, wrote) = tokio::join!(s.save(), async {
                        held.writing.notified().await;
                        let wrote = s.insert("b", 2).await;
                        held.finish.notify_one();
                        wrote
                    });
                    saved?;
                    wrote.map(|()| "ok")
                }),
            )
            .layer(SessionManagerLayer::new(store.clone()));
        let res = app
            .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let key: SessionKey = res.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .and_then(|p| p.strip_prefix("sessionid="))
            .unwrap()
            .parse()
            .unwrap();
        let stored = Session::new(store.inner, Some(key));
        assert_eq!(stored.keys().await.unwrap(), ["a", "b"]);
    }
}

/// `SESSION_SAVE_EVERY_REQUEST`: read-only requests only move the expiry
/// (`touch`), which writes no data, so however many run at once none fails.
mod save_every_request {
    use std::collections::BTreeMap;
    use std::time::Duration as StdDuration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::routing::get;
    use http::Request;
    use http::header::{COOKIE, SET_COOKIE};
    use sesame::backends::{FileStore, MemoryStore, Record, Saved, SessionStore};
    use sesame::{Session, SessionKey, SessionManagerLayer};
    use time::OffsetDateTime;
    use tower::ServiceExt;

    use super::sql_support::{fresh_name, signer};

    /// A `MemoryStore` whose saves take a few milliseconds and which keeps
    /// the trait's default `touch` (a load, then a compare-and-swap save),
    /// as a store written outside this crate may.
    #[derive(Clone, Debug)]
    struct SlowSaves(MemoryStore);

    impl SessionStore for SlowSaves {
        async fn load(&self, key: &SessionKey) -> sesame::Result<Option<Record>> {
            self.0.load(key).await
        }
        async fn create(&self, record: &Record) -> sesame::Result<Saved> {
            self.0.create(record).await
        }
        async fn save(&self, key: &SessionKey, record: &Record) -> sesame::Result<Saved> {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
            self.0.save(key, record).await
        }
        async fn delete(&self, key: &SessionKey) -> sesame::Result<()> {
            self.0.delete(key).await
        }
    }

    /// `n` read-only requests on the stored session `key`, all at once: how
    /// many got each status.
    async fn read_in_parallel<S: SessionStore + Clone>(
        store: S,
        key: &SessionKey,
        n: usize,
    ) -> BTreeMap<u16, usize> {
        let app = Router::new()
            .route(
                "/",
                get(|s: Session| async move { s.get_value("theme").await.map(|_| "read") }),
            )
            .layer(SessionManagerLayer::new(store).with_save_every_request(true));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let request = Request::get("/")
                    .header(COOKIE, format!("sessionid={}", key.as_str()))
                    .body(Body::empty())
                    .unwrap();
                tokio::spawn(app.clone().oneshot(request))
            })
            .collect();
        let mut statuses = BTreeMap::new();
        for task in tasks {
            let status = task.await.unwrap().unwrap().status().as_u16();
            *statuses.entry(status).or_default() += 1;
        }
        statuses
    }

    async fn seed<S: SessionStore + Clone>(store: &S) -> SessionKey {
        let s = Session::new(store.clone(), None);
        s.insert("theme", "dark").await.unwrap();
        s.save().await.unwrap();
        s.session_key().unwrap()
    }

    /// `FileStore` touches by setting the mtime: the bytes (the version)
    /// stay, so parallel touches never conflict with each other.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn parallel_read_only_requests_on_a_file_store_all_succeed() {
        let dir = std::env::temp_dir()
            .join("sesame-tests-files")
            .join(fresh_name());
        let store = FileStore::new(&dir, signer());
        store.migrate().await.unwrap();
        let key = seed(&store).await;
        let before = store.load(&key).await.unwrap().unwrap();
        // A rewrite (temporary file, then rename) gives the file a new
        // inode, whether or not its bytes differ.
        let inode = || {
            let path = store.path_of(&key).unwrap();
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
        };
        let inode_before = inode();
        let statuses = read_in_parallel(store.clone(), &key, 32).await;
        assert_eq!(statuses, BTreeMap::from([(200, 32)]));
        let after = store.load(&key).await.unwrap().unwrap();
        assert_eq!(after.version, before.version, "a touch rewrote the file");
        assert_eq!(inode(), inode_before, "a touch rewrote the file");
        assert!(
            after.expires_at > before.expires_at,
            "the expiry did not move"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Loads, then lets another request set an absolute deadline a minute
    /// away: this request's touch must not push it back to two weeks.
    async fn read_while_other_sets_a_deadline(
        session: Session,
        State(store): State<MemoryStore>,
    ) -> sesame::Result<&'static str> {
        session.get_value("theme").await?;
        let other = Session::new(store, session.session_key());
        other
            .set_expiry(OffsetDateTime::now_utc() + time::Duration::minutes(1))
            .await?;
        other.save().await?;
        Ok("read")
    }

    #[tokio::test]
    async fn a_touch_keeps_a_deadline_set_by_a_concurrent_request() {
        let store = MemoryStore::new();
        let key = seed(&store).await;
        let app = Router::new()
            .route("/", get(read_while_other_sets_a_deadline))
            .with_state(store.clone())
            .layer(SessionManagerLayer::new(store.clone()).with_save_every_request(true));
        let request = Request::get("/")
            .header(COOKIE, format!("sessionid={}", key.as_str()))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let record = store.load(&key).await.unwrap().unwrap();
        let left = record.expires_at - OffsetDateTime::now_utc();
        assert!(
            left <= time::Duration::minutes(1),
            "the deadline was pushed back: {left} left"
        );
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
        let max_age: i64 = cookie
            .split("; ")
            .find_map(|part| part.strip_prefix("Max-Age="))
            .unwrap()
            .parse()
            .unwrap();
        assert!((55..=60).contains(&max_age), "{cookie}");
    }

    /// A store with the default `touch`: each touch is a save, so parallel
    /// touches conflict; the session retries them instead of answering 409.
    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn parallel_read_only_requests_on_a_default_touch_store_all_succeed() {
        let store = SlowSaves(MemoryStore::new());
        let key = seed(&store).await;
        let statuses = read_in_parallel(store, &key, 16).await;
        assert_eq!(statuses, BTreeMap::from([(200, 16)]));
    }
}

/// The cookie a merged save sends agrees with the expiry it stored.
mod merged_expiry {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::routing::get;
    use http::Request;
    use http::header::{COOKIE, SET_COOKIE};
    use sesame::backends::MemoryStore;
    use sesame::{Session, SessionManagerLayer};
    use tower::ServiceExt;

    /// Loads, lets another request make the session a browser-session one,
    /// then writes a key of its own.
    async fn write_after_other_sets_browser_close(
        session: Session,
        State(store): State<MemoryStore>,
    ) -> sesame::Result<&'static str> {
        session.get_value("theme").await?;
        let other = Session::new(store, session.session_key());
        other.set_expiry(0).await?;
        other.save().await?;
        session.insert("x", 1).await?;
        Ok("written")
    }

    #[tokio::test]
    async fn a_merged_browser_close_expiry_sends_a_browser_session_cookie() {
        let store = MemoryStore::new();
        let seed = Session::new(store.clone(), None);
        seed.insert("theme", "dark").await.unwrap();
        seed.save().await.unwrap();
        let key = seed.session_key().unwrap();
        let app = Router::new()
            .route("/", get(write_after_other_sets_browser_close))
            .with_state(store.clone())
            .layer(SessionManagerLayer::new(store.clone()));
        let request = Request::get("/")
            .header(COOKIE, format!("sessionid={}", key.as_str()))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let stored = Session::new(store, Some(key));
        assert_eq!(stored.get::<i64>("x").await.unwrap(), Some(1));
        assert!(stored.expire_at_browser_close().await.unwrap());
        assert!(
            !cookie.contains("Max-Age") && !cookie.contains("expires"),
            "a browser-session record got a persistent cookie: {cookie}"
        );
    }
}

/// Any interleaving of sessions that each change their own keys equals some
/// serial order: the one in which their saves completed.
///
/// Deterministic scheduling, no threads: each session is a sequence of
/// steps (load, one step per change, save) on one `MemoryStore`, and a
/// generated schedule picks which session takes its next step.
mod serial_order {
    use proptest::prelude::*;
    use serde_json::json;
    use sesame::Session;
    use sesame::backends::{MemoryStore, Record, SessionStore};
    use sesame::codec::SessionMap;

    /// One change a session makes, to a key of its own.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, i64),
        Remove(u8),
    }

    /// Keys per session.
    const KEYS: u8 = 4;

    fn key(session: usize, k: u8) -> String {
        format!("s{session}k{k}")
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..KEYS, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..KEYS).prop_map(Op::Remove),
        ]
    }

    /// Per session: which of its keys exist before, and its changes.
    fn sessions() -> impl Strategy<Value = Vec<(u8, Vec<Op>)>> {
        prop::collection::vec((0..16u8, prop::collection::vec(op(), 0..6)), 1..6)
    }

    fn apply(map: &mut SessionMap, session: usize, op: &Op) {
        match *op {
            Op::Insert(k, v) => {
                map.insert(key(session, k), json!(v));
            }
            Op::Remove(k) => {
                map.shift_remove(&key(session, k));
            }
        }
    }

    async fn run(plans: &[(u8, Vec<Op>)], picks: &[usize]) -> (SessionMap, SessionMap) {
        let store = MemoryStore::new();
        let mut initial = SessionMap::new();
        initial.insert("shared".to_owned(), json!("untouched"));
        for (i, (mask, _)) in plans.iter().enumerate() {
            for k in (0..KEYS).filter(|k| mask & (1 << k) != 0) {
                initial.insert(key(i, k), json!(format!("initial {i}.{k}")));
            }
        }
        let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let saved = store
            .create(&Record::new(initial.clone(), expires))
            .await
            .unwrap();
        let sessions: Vec<Session> = plans
            .iter()
            .map(|_| Session::new(store.clone(), Some(saved.key.clone())))
            .collect();
        // Step `n` of a session: 0 loads, 1..=ops changes, ops + 1 saves.
        let mut next = vec![0usize; plans.len()];
        let mut completed = Vec::new();
        let mut picks = picks.iter().copied().cycle();
        loop {
            let running: Vec<usize> = (0..plans.len())
                .filter(|&i| next[i] <= plans[i].1.len() + 1)
                .collect();
            if running.is_empty() {
                break;
            }
            let i = running[picks.next().unwrap_or(0) % running.len()];
            let (session, ops) = (&sessions[i], &plans[i].1);
            match next[i] {
                0 => {
                    session.get_value("shared").await.unwrap();
                }
                n if n <= ops.len() => match ops[n - 1] {
                    Op::Insert(k, v) => session.insert(&key(i, k), v).await.unwrap(),
                    Op::Remove(k) => {
                        session.remove(&key(i, k)).await.unwrap();
                    }
                },
                _ => {
                    session.save().await.unwrap();
                    completed.push(i);
                }
            }
            next[i] += 1;
        }
        let mut serial = initial;
        for i in completed {
            for op in &plans[i].1 {
                apply(&mut serial, i, op);
            }
        }
        let stored = store.load(&saved.key).await.unwrap().unwrap().data;
        let stored = std::sync::Arc::unwrap_or_clone(stored);
        (stored, serial)
    }

    proptest! {
        #[test]
        fn interleaved_saves_equal_the_serial_order_of_completion(
            plans in sessions(),
            picks in prop::collection::vec(any::<usize>(), 1..64),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (stored, serial) = rt.block_on(run(&plans, &picks));
            // Values per key; key order may differ (a merge re-applies a
            // session's keys onto the newer record).
            prop_assert_eq!(stored, serial);
        }
    }
}
