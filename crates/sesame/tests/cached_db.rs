//! `CachedDbStore` beyond the conformance suites: a failing cache is not
//! fatal on writes but is on deletes, a stale cache entry is caught and
//! dropped by the next write, and on Redis the cache half is Django's.

mod log_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;
use sesame::backends::{CachedDbStore, MemoryStore, Record, SessionCache, SessionStore};
use sesame::codec::SessionMap;
use sesame::{Error, Session, SessionKey};
use time::{Duration, OffsetDateTime};

use log_support::Logs;

/// A [`MemoryStore`] cache that can be switched off: every call then fails
/// as an unreachable cache would.
#[derive(Clone, Default)]
struct SwitchableCache {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl SwitchableCache {
    fn check(&self) -> sesame::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::backend("cache down"))
        } else {
            Ok(())
        }
    }
}

impl SessionCache for SwitchableCache {
    async fn get(&self, key: &SessionKey) -> sesame::Result<Option<Record>> {
        self.check()?;
        SessionCache::get(&self.inner, key).await
    }

    async fn set(
        &self,
        key: &SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> sesame::Result<()> {
        self.check()?;
        self.inner.set(key, data, expires_at).await
    }

    async fn remove(&self, key: &SessionKey) -> sesame::Result<()> {
        self.check()?;
        self.inner.remove(key).await
    }

    async fn expire_at(&self, key: &SessionKey, until: OffsetDateTime) -> sesame::Result<()> {
        self.check()?;
        self.inner.expire_at(key, until).await
    }
}

fn map(value: serde_json::Value) -> SessionMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

#[tokio::test]
async fn a_cache_that_fails_writes_is_logged_not_fatal() {
    let logs = Logs::default();
    let _guard = logs.install();
    let cache = SwitchableCache::default();
    let db = MemoryStore::new();
    let store = CachedDbStore::new(cache.clone(), db.clone());
    cache.down.store(true, Ordering::SeqCst);

    let saved = store
        .create(&Record::new(map(json!({"n": 1})), in_an_hour()))
        .await
        .expect("the database took the write");
    let loaded = store
        .load(&saved.key)
        .await
        .expect("reads fall back to the database")
        .expect("the session is there");
    assert_eq!(*loaded.data, map(json!({"n": 1})));
    let record = Record {
        data: map(json!({"n": 2})).into(),
        ..loaded
    };
    store.save(&saved.key, &record).await.expect("saved");
    assert_eq!(
        db.load(&saved.key)
            .await
            .expect("db")
            .expect("row")
            .data
            .as_ref(),
        &map(json!({"n": 2}))
    );
    assert!(
        store
            .exists(&saved.key)
            .await
            .expect("the database answers")
    );
    // Each failure is an error-level log line (Django 5.1: `logger.exception`).
    let errors = |message: &str| {
        let lines = logs.lines("ERROR", "sesame::store");
        lines.iter().filter(|l| l.contains(message)).count()
    };
    assert!(errors("could not write the session to the cache") >= 2); // create, save
    assert!(errors("the cache of cached_db failed; reading the database") >= 1); // load
    assert_eq!(
        errors("the cache of cached_db failed; asking the database"),
        1
    ); // exists
}

/// A cache that hangs: every call waits out a one-second timeout, then
/// fails, as a client's timeout on an unresponsive server would.
#[derive(Clone, Default)]
struct HungCache {
    calls: Arc<AtomicUsize>,
}

impl HungCache {
    async fn hang(&self) -> sesame::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        Err(Error::backend("cache timed out"))
    }
}

impl SessionCache for HungCache {
    async fn get(&self, _: &SessionKey) -> sesame::Result<Option<Record>> {
        self.hang().await.map(|()| None)
    }

    async fn set(&self, _: &SessionKey, _: &SessionMap, _: OffsetDateTime) -> sesame::Result<()> {
        self.hang().await
    }

    async fn remove(&self, _: &SessionKey) -> sesame::Result<()> {
        self.hang().await
    }

    async fn expire_at(&self, _: &SessionKey, _: OffsetDateTime) -> sesame::Result<()> {
        self.hang().await
    }
}

/// A hung cache costs a read one cache timeout (the read; no fill after a
/// failed read) and a write two (the copy, then dropping the entry it could
/// not replace), so 3 × the cache's timeout stays the bound for a request.
#[tokio::test(start_paused = true)]
async fn a_hung_cache_costs_a_read_one_timeout_and_a_write_two() {
    let cache = HungCache::default();
    let db = MemoryStore::new();
    let store = CachedDbStore::new(cache.clone(), db.clone());
    let saved = db
        .create(&Record::new(map(json!({"n": 1})), in_an_hour()))
        .await
        .expect("a row");

    let started = tokio::time::Instant::now();
    let loaded = store
        .load(&saved.key)
        .await
        .expect("read from the database")
        .expect("the session is there");
    assert_eq!(*loaded.data, map(json!({"n": 1})));
    assert_eq!(cache.calls.load(Ordering::SeqCst), 1, "read only, no fill");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(1));

    let started = tokio::time::Instant::now();
    let record = Record {
        data: map(json!({"n": 2})).into(),
        ..loaded
    };
    store.save(&saved.key, &record).await.expect("saved");
    assert_eq!(cache.calls.load(Ordering::SeqCst), 3, "copy, then drop");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(2));
    let row = db.load(&saved.key).await.expect("db").expect("row");
    assert_eq!(*row.data, map(json!({"n": 2})));
}

#[tokio::test]
async fn a_delete_the_cache_does_not_confirm_is_an_error() {
    let cache = SwitchableCache::default();
    let store = CachedDbStore::new(cache.clone(), MemoryStore::new());
    let saved = store
        .create(&Record::new(map(json!({"user": "1"})), in_an_hour()))
        .await
        .expect("created");
    cache.down.store(true, Ordering::SeqCst);
    let err = store.delete(&saved.key).await.expect_err("cache down");
    assert!(err.is_outage(), "{err:?}");
    // Once the cache is back, the delete goes through and nothing is left.
    cache.down.store(false, Ordering::SeqCst);
    store.delete(&saved.key).await.expect("deleted");
    assert!(!cache.inner.exists(&saved.key).await.expect("cache"));
    assert!(store.load(&saved.key).await.expect("load").is_none());
}

#[tokio::test]
async fn a_stale_cache_entry_is_caught_and_the_write_is_merged() {
    let cache = MemoryStore::new();
    let db = MemoryStore::new();
    let store = CachedDbStore::new(cache.clone(), db.clone());
    let saved = store
        .create(&Record::new(map(json!({"a": 1})), in_an_hour()))
        .await
        .expect("created");
    // Another writer changed the row and failed to update the cache.
    let row = db.load(&saved.key).await.expect("db").expect("row");
    db.save(
        &saved.key,
        &Record {
            data: map(json!({"a": 1, "theirs": true})).into(),
            ..row
        },
    )
    .await
    .expect("their write");

    let session = Session::new(store.clone(), Some(saved.key.clone()));
    assert_eq!(session.get::<i64>("a").await.expect("read"), Some(1));
    assert_eq!(
        session.get::<bool>("theirs").await.expect("read"),
        None,
        "the read came from the (stale) cache"
    );
    session.insert("ours", true).await.expect("insert");
    session.save().await.expect("the conflict is merged");

    let row = db.load(&saved.key).await.expect("db").expect("row");
    assert_eq!(
        *row.data,
        map(json!({"a": 1, "theirs": true, "ours": true}))
    );
    let cached = SessionCache::get(&cache, &saved.key)
        .await
        .expect("cache")
        .expect("refilled");
    assert_eq!(cached.data, row.data, "the cache holds the merged session");
}

#[tokio::test]
async fn a_save_of_a_session_deleted_meanwhile_is_missing_everywhere() {
    let cache = MemoryStore::new();
    let db = MemoryStore::new();
    let store = CachedDbStore::new(cache.clone(), db.clone());
    let saved = store
        .create(&Record::new(map(json!({"a": 1})), in_an_hour()))
        .await
        .expect("created");
    let loaded = store.load(&saved.key).await.expect("load").expect("there");
    // Deleted in the database only (another app's logout, say).
    db.delete(&saved.key).await.expect("delete");
    let err = store
        .save(&saved.key, &loaded)
        .await
        .expect_err("never re-created");
    assert!(matches!(err, Error::Missing), "{err:?}");
    assert!(!cache.exists(&saved.key).await.expect("cache"));
    assert!(!db.exists(&saved.key).await.expect("db"));
}

/// On Redis, the cache half is exactly what Django's `cached_db` reads:
/// the pickled dict under `:1:django.contrib.sessions.cached_db<key>`.
#[cfg(feature = "redis")]
#[tokio::test]
async fn on_redis_the_cache_entry_is_djangos() {
    use sesame::backends::{CacheKeys, RedisStore};

    let Some(url) = sesame_conformance::env_url("REDIS") else {
        return;
    };
    let cache = RedisStore::connect(&url)
        .await
        .expect("connect")
        .with_keys(CacheKeys::cached_db());
    let db = MemoryStore::new();
    let store = CachedDbStore::new(cache, db);
    let data = map(json!({"counter": 1}));
    let saved = store
        .create(&Record::new(data.clone(), in_an_hour()))
        .await
        .expect("created");

    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let name = format!(":1:django.contrib.sessions.cached_db{}", saved.key.as_str());
    let (bytes, ttl): (Vec<u8>, i64) = redis::pipe()
        .get(&name)
        .ttl(&name)
        .query_async(&mut conn)
        .await
        .expect("read");
    assert_eq!(bytes, sesame::codec::pickle_dumps(&data));
    assert!((3590..=3600).contains(&ttl), "TTL {ttl}");
    store.delete(&saved.key).await.expect("delete");
    let left: i64 = redis::cmd("EXISTS")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(left, 0);
}

/// A database whose next `load` is overtaken by another writer: the row
/// changes right after the read returns, before the reader fills the cache.
#[derive(Clone, Default)]
struct OvertakenDb {
    inner: MemoryStore,
    overtake_with: Arc<std::sync::Mutex<Option<SessionMap>>>,
}

impl sesame::backends::SessionStore for OvertakenDb {
    async fn load(&self, key: &SessionKey) -> sesame::Result<Option<Record>> {
        let read = self.inner.load(key).await?;
        let newer = self
            .overtake_with
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let (Some(record), Some(data)) = (&read, newer) {
            let newer = Record {
                data: data.into(),
                ..record.clone()
            };
            self.inner.save(key, &newer).await?;
        }
        Ok(read)
    }

    async fn create(&self, record: &Record) -> sesame::Result<sesame::backends::Saved> {
        self.inner.create(record).await
    }

    async fn save(
        &self,
        key: &SessionKey,
        record: &Record,
    ) -> sesame::Result<sesame::backends::Saved> {
        self.inner.save(key, record).await
    }

    async fn delete(&self, key: &SessionKey) -> sesame::Result<()> {
        SessionStore::delete(&self.inner, key).await
    }
}

#[tokio::test]
async fn a_cache_fill_overtaken_by_a_write_never_shadows_it() {
    let cache = MemoryStore::new();
    let db = OvertakenDb::default();
    let store = CachedDbStore::new(cache.clone(), db.clone());
    let saved = store
        .create(&Record::new(map(json!({"role": "admin"})), in_an_hour()))
        .await
        .expect("created");
    // Start from a cold cache, as after a restart of the cache.
    SessionCache::remove(&cache, &saved.key)
        .await
        .expect("evict");
    *db.overtake_with.lock().expect("lock") = Some(map(json!({"role": "user"})));

    // This read misses the cache, reads "admin", and a write of "user"
    // lands before it copies "admin" into the cache.
    let first = store.load(&saved.key).await.expect("load").expect("there");
    assert_eq!(*first.data, map(json!({"role": "admin"})));
    // The stale copy was dropped: every later read sees the newer row.
    let next = store.load(&saved.key).await.expect("load").expect("there");
    assert_eq!(*next.data, map(json!({"role": "user"})));
    let cached = SessionCache::get(&cache, &saved.key).await.expect("cache");
    assert_eq!(
        cached.map(|r| std::sync::Arc::unwrap_or_clone(r.data)),
        Some(map(json!({"role": "user"})))
    );
}

/// `SECRET_KEY` rotated without a fallback while the cache still holds a
/// copy: the database row no longer decodes, the cached copy still loads.
/// The save overwrites the row (as any corrupt record is overwritten) rather
/// than failing every write, and a key rotation (login) works too.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_row_that_no_longer_decodes_under_a_cached_copy_is_overwritten() {
    use sesame::Signer;
    use sesame::backends::SqliteStore;

    let path = std::env::temp_dir().join(format!(
        "sesame-cached-db-rotated-{}-{}.sqlite3",
        std::process::id(),
        SessionKey::generate().as_str()
    ));
    let cache = MemoryStore::new();
    let before = SqliteStore::open(&path, Signer::new("old-secret")).expect("open");
    before.migrate().await.expect("migrate");
    let saved = CachedDbStore::new(cache.clone(), before)
        .create(&Record::new(map(json!({"n": 1})), in_an_hour()))
        .await
        .expect("created");

    let db = SqliteStore::open(&path, Signer::new("new-secret")).expect("open");
    let store = CachedDbStore::new(cache.clone(), db.clone());
    assert!(matches!(db.load(&saved.key).await, Err(Error::Corrupt(_))));
    let session = Session::new(store.clone(), Some(saved.key.clone()));
    assert_eq!(session.get::<i64>("n").await.expect("cached"), Some(1));
    session.insert("n", 2).await.expect("insert");
    session
        .save()
        .await
        .expect("the corrupt row is overwritten");
    let row = db
        .load(&saved.key)
        .await
        .expect("decodes now")
        .expect("row");
    assert_eq!(*row.data, map(json!({"n": 2})));

    // The same with a key rotation: the old record is retired, not a 500.
    let saved = CachedDbStore::new(
        cache.clone(),
        SqliteStore::open(&path, Signer::new("old-secret")).expect("open"),
    )
    .create(&Record::new(map(json!({"user": "7"})), in_an_hour()))
    .await
    .expect("created");
    let session = Session::new(store, Some(saved.key.clone()));
    assert_eq!(
        session
            .get::<String>("user")
            .await
            .expect("cached")
            .as_deref(),
        Some("7")
    );
    session.cycle_key().await.expect("rotated");
    let new_key = session.session_key().expect("a new key");
    assert_ne!(new_key, saved.key);
    assert!(db.load(&saved.key).await.expect("load").is_none());
    assert_eq!(
        db.load(&new_key).await.expect("load").expect("row").data["user"],
        "7"
    );
    let _ = std::fs::remove_file(&path);
}
