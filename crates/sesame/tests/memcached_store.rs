//! `MemcachedStore`: both conformance suites, what Django's `PyMemcacheCache`
//! reads, the limits memcached sets, bad servers, and a real server stopped
//! and restarted under the middleware.
//!
//! Most tests need `SESAME_TEST_MEMCACHED_URL` (e.g.
//! `memcached://127.0.0.1:11211`) and skip when it is unset. The fault tests
//! start a private `memcached` on a free port instead, and skip when the
//! binary is missing. The bad-server tests need nothing.

#![cfg(feature = "memcached")]
#![allow(
    clippy::unwrap_used,
    reason = "helpers are not #[test] fns; a failed unwrap is a failed test"
)]

mod log_support;
mod outage_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use sesame::backends::{
    CacheKeys, InvalidCacheKey, MemcachedStore, Record, SessionCache, SessionStore, Version,
};
use sesame::codec::SessionMap;
use sesame::{Error, Session, SessionKey, SessionManagerLayer, Settings};
use sesame_conformance::{Caps, free_port};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use log_support::Logs;
use outage_support::Outage;

/// memcached keeps expiry in whole seconds and expires items itself; its
/// default item size limit is 1 MiB. A loaded expiry can be up to 2 s off
/// (`loaded_expiry_is_within_2_s_not_1`), but the suites load within
/// milliseconds of writing an expiry computed just before, where the error
/// is under one second: one second is what they see.
const CAPS: Caps = Caps {
    revocable: true,
    server_side: true,
    native_ttl: true,
    expiry_resolution: Duration::seconds(1),
    size_limit: Some(1024 * 1024),
};

/// The store on `SESAME_TEST_MEMCACHED_URL`, or `None` (and a skip line).
async fn store() -> Option<MemcachedStore> {
    let url = sesame_conformance::env_url("MEMCACHED")?;
    Some(
        MemcachedStore::connect(&url)
            .await
            .expect("SESAME_TEST_MEMCACHED_URL is set but memcached does not answer"),
    )
}

mod suites {
    use super::{CAPS, store};

    sesame_conformance::store_suite!(store(), CAPS);
    sesame_conformance::http_suite!(store(), CAPS);
}

fn map(value: serde_json::Value) -> SessionMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn in_hours(h: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(h)
}

fn django_key(key: &SessionKey) -> String {
    format!(":1:django.contrib.sessions.cache{}", key.as_str())
}

/// A bare memcached client, as another process (Django) would talk to the server.
struct Raw {
    stream: BufReader<TcpStream>,
}

impl Raw {
    async fn connect(addr: &str) -> Self {
        Self {
            stream: BufReader::new(TcpStream::connect(addr).await.expect("connect")),
        }
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("read a line");
        line.trim_end().to_owned()
    }

    /// Sends a command (and a value) and returns the reply's first line.
    async fn command(&mut self, command: &str, value: Option<&[u8]>) -> String {
        let mut request = format!("{command}\r\n").into_bytes();
        if let Some(value) = value {
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .expect("send");
        self.line().await
    }

    /// `mg <key> v f t`: the value, its flags and remaining seconds.
    async fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32, i64)> {
        let header = self.command(&format!("mg {key} v f t"), None).await;
        if header == "EN" {
            return None;
        }
        let mut parts = header.split(' ');
        assert_eq!(parts.next(), Some("VA"), "{header}");
        let len: usize = parts.next().unwrap().parse().unwrap();
        let (mut flags, mut ttl) = (None, None);
        for part in parts {
            match part.split_at(1) {
                ("f", v) => flags = Some(v.parse().unwrap()),
                ("t", v) => ttl = Some(v.parse().unwrap()),
                _ => {}
            }
        }
        let mut value = vec![0; len + 2];
        self.stream.read_exact(&mut value).await.expect("a value");
        value.truncate(len);
        Some((value, flags.unwrap(), ttl.unwrap()))
    }

    /// Stores `value` under `key` with `flags`, for 60 s (a plain `set`, as
    /// pymemcache sends it).
    async fn set(&mut self, key: &str, value: &[u8], flags: u32) {
        let reply = self
            .command(
                &format!("set {key} {flags} 60 {}", value.len()),
                Some(value),
            )
            .await;
        assert_eq!(reply, "STORED");
    }
}

// ---- Django compatibility ----------------------------------------------------

/// What Sesame stores is what `PyMemcacheCache` reads: the pickled dict
/// under Django's key, flagged 1 (pymemcache's `FLAG_PICKLE`), with the
/// expiry age as the item's TTL.
#[tokio::test]
async fn stored_item_is_djangos_pickle_flagged_1() {
    let Some(store) = store().await else { return };
    let data = map(json!({"_auth_user_id": "42", "counter": 3, "name": "Grüße"}));
    let saved = store
        .create(&Record::new(
            data.clone(),
            OffsetDateTime::now_utc() + Duration::seconds(300),
        ))
        .await
        .unwrap();
    let mut raw = Raw::connect(store.addr()).await;
    let (value, flags, ttl) = raw.get(&django_key(&saved.key)).await.expect("stored");
    assert_eq!(value, sesame::codec::pickle_dumps(&data));
    assert_eq!(flags, 1);
    assert!((298..=300).contains(&ttl), "ttl {ttl}");
}

/// What Django writes (CPython's `pickle.dumps(session, 5)`, flags 1) loads.
#[tokio::test]
async fn djangos_pickle_loads() {
    let Some(store) = store().await else { return };
    // python3.11 -c "import pickle; print(pickle.dumps({'_auth_user_id': '42',
    //   'counter': 3, 'cart': [1, 2.5, None, True], 'name': 'Grüße'}, 5).hex())"
    let django = hex(
        "8005954f000000000000007d94288c0d5f617574685f757365725f6964948c023432948c07636f756e7465\
         72944b038c0463617274945d94284b014740040000000000004e88658c046e616d65948c074772c3bcc39f65\
         94752e",
    );
    let key = SessionKey::generate();
    Raw::connect(store.addr())
        .await
        .set(&django_key(&key), &django, 1)
        .await;
    let record = store
        .load(&key)
        .await
        .unwrap()
        .expect("Django's item loads");
    assert_eq!(
        *record.data,
        map(
            json!({"_auth_user_id": "42", "counter": 3, "cart": [1, 2.5, null, true], "name": "Grüße"})
        )
    );
    let left = record.expires_at - OffsetDateTime::now_utc();
    assert!(
        left > Duration::seconds(58) && left <= Duration::seconds(61),
        "{left}"
    );
}

/// CVE-2011-4136: a cache entry the application made under a session-shaped
/// key (`cache.set(key, …)`: `:1:<key>`, or the bare key) is not a session;
/// only the `django.contrib.sessions.cache` namespace is read.
#[tokio::test]
async fn a_cache_entry_outside_the_session_namespace_is_no_session() {
    let Some(store) = store().await else { return };
    // pickle.dumps({'_auth_user_id': '1'}, 5)
    let forged = hex("80059518000000000000007d948c0d5f617574685f757365725f6964948c013194732e");
    let mut raw = Raw::connect(store.addr()).await;
    let key = SessionKey::generate();
    for name in [format!(":1:{}", key.as_str()), key.as_str().to_owned()] {
        raw.set(&name, &forged, 1).await;
        assert!(raw.get(&name).await.is_some(), "{name} was planted");
    }
    assert!(store.load(&key).await.unwrap().is_none());
    assert!(!store.exists(&key).await.unwrap());
    // The same bytes in the session namespace do load: the pickle is good.
    raw.set(&django_key(&key), &forged, 1).await;
    let record = store.load(&key).await.unwrap().expect("a session");
    assert_eq!(*record.data, map(json!({"_auth_user_id": "1"})));
}

/// `with_keys` follows the cache's `KEY_PREFIX` and `VERSION`.
#[tokio::test]
async fn key_prefix_and_version_are_djangos() {
    let Some(store) = store().await else { return };
    let store = store.with_keys(
        CacheKeys::default()
            .with_key_prefix("myapp")
            .with_version(3),
    );
    let saved = store
        .create(&Record::new(map(json!({"n": 1})), in_hours(1)))
        .await
        .unwrap();
    let mut raw = Raw::connect(store.addr()).await;
    let key = format!(
        "myapp:3:django.contrib.sessions.cache{}",
        saved.key.as_str()
    );
    assert!(raw.get(&key).await.is_some());
    assert!(raw.get(&django_key(&saved.key)).await.is_none());
}

fn hex(text: &str) -> Vec<u8> {
    let text: String = text.split_whitespace().collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

// ---- limits and bad data -----------------------------------------------------

fn is_invalid_key(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::Backend(err)) if err.downcast_ref::<InvalidCacheKey>().is_some())
}

/// A key memcached cannot take is refused before anything is sent, with a
/// typed error, and the store's connections stay in step.
#[tokio::test]
async fn invalid_keys_are_refused_before_sending() {
    let Some(store) = store().await else { return };
    let spaced = store
        .clone()
        .with_keys(CacheKeys::default().with_key_prefix("my app"));
    let long = store
        .clone()
        .with_keys(CacheKeys::default().with_key_prefix("p".repeat(220)));
    let record = Record::new(map(json!({"n": 1})), in_hours(1));
    let key = SessionKey::generate();
    for bad in [&spaced, &long] {
        assert!(is_invalid_key(&bad.load(&key).await));
        assert!(is_invalid_key(&bad.create(&record).await));
        assert!(is_invalid_key(&bad.save(&key, &record).await));
        assert!(is_invalid_key(&bad.delete(&key).await));
        assert!(is_invalid_key(&bad.touch(&key, in_hours(1)).await));
    }
    if let Err(Error::Backend(err)) = long.load(&key).await {
        let text = err.to_string();
        assert!(text.contains("250"), "{text}");
        assert!(!text.contains(key.as_str()), "the message holds the key");
    }
    // The shared connections are still in step.
    let saved = store.create(&record).await.unwrap();
    assert!(store.exists(&saved.key).await.unwrap());
}

/// A session over the item size limit is `TooLarge`, whether this store or
/// the server refuses it; the connection stays usable.
#[tokio::test]
async fn oversized_session_is_too_large() {
    let Some(store) = store().await else { return };
    let noise: String = (0..1_500_000u32)
        .map(|i| char::from(b'a' + u8::try_from(i.wrapping_mul(2_654_435_761) >> 27).unwrap() % 26))
        .collect();
    let big = Record::new(map(json!({"noise": noise})), in_hours(1));
    // Refused here: over the 1 MiB default.
    match store.create(&big).await {
        Err(Error::TooLarge { len, limit }) => {
            assert!(len > limit);
            assert_eq!(limit, 1024 * 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Refused by the server (its -I is 1 MiB) when this store allows more.
    let lax = store.clone().with_max_item_size(64 * 1024 * 1024);
    assert!(matches!(
        lax.create(&big).await,
        Err(Error::TooLarge { .. })
    ));
    let small = lax
        .create(&Record::new(map(json!({"n": 1})), in_hours(1)))
        .await
        .unwrap();
    let mut record = lax.load(&small.key).await.unwrap().unwrap();
    record.data = big.data.clone();
    assert!(matches!(
        lax.save(&small.key, &record).await,
        Err(Error::TooLarge { .. })
    ));
    // The store still answers. (memcached 1.6 also drops the item it
    // refused to replace, so whether it loads is the server's business.)
    lax.load(&small.key).await.unwrap();
}

/// Bytes that are not a pickled dict flagged 1 are `Corrupt`, and the
/// middleware turns them into an empty session that, as in Django, keeps
/// the key and overwrites the bad item when saved.
#[tokio::test]
async fn corrupt_stored_bytes_are_corrupt_and_start_an_empty_session() {
    let Some(store) = store().await else { return };
    let mut raw = Raw::connect(store.addr()).await;
    let pickle = sesame::codec::pickle_dumps(&map(json!({"counter": 7})));
    let cases: [(&[u8], u32); 4] = [
        (b"not a pickle at all", 1),
        (&pickle[..pickle.len() - 3], 1),
        (b"\x80\x05K\x07.", 1), // the int 7
        (&pickle, 0),           // bytes to pymemcache
    ];
    let app = counter_app(store.clone(), Settings::default());
    for (value, flags) in cases {
        let key = SessionKey::generate();
        raw.set(&django_key(&key), value, flags).await;
        assert!(
            matches!(store.load(&key).await, Err(Error::Corrupt(_))),
            "{:?} flags {flags}",
            value.escape_ascii().to_string()
        );
        let reply = send(&app, Some(&key)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "1", "a corrupt session starts empty");
        assert_eq!(reply.key.as_ref(), Some(&key));
        let (value, flags, _) = raw.get(&django_key(&key)).await.expect("rewritten");
        assert_eq!(
            value,
            sesame::codec::pickle_dumps(&map(json!({"counter": 1})))
        );
        assert_eq!(flags, 1);
    }
}

/// Another writer's plain `set` (Django's save) changes the CAS token: a
/// save with the token loaded before is `Conflict`; a token this store did
/// not make is `Conflict` too, and `Missing` once the item is gone.
#[tokio::test]
async fn another_writer_makes_a_stale_save_conflict() {
    let Some(store) = store().await else { return };
    let saved = store
        .create(&Record::new(map(json!({"who": "sesame"})), in_hours(1)))
        .await
        .unwrap();
    let loaded = store.load(&saved.key).await.unwrap().unwrap();
    assert_eq!(loaded.version.as_ref(), Some(&saved.version));
    let django = sesame::codec::pickle_dumps(&map(json!({"who": "django"})));
    Raw::connect(store.addr())
        .await
        .set(&django_key(&saved.key), &django, 1)
        .await;

    let mut stale = loaded.clone();
    stale.data_mut().insert("who".into(), json!("stale"));
    assert!(matches!(
        store.save(&saved.key, &stale).await,
        Err(Error::Conflict)
    ));
    stale.version = Some(Version::new(b"not a cas".to_vec()));
    assert!(matches!(
        store.save(&saved.key, &stale).await,
        Err(Error::Conflict)
    ));
    assert_eq!(
        store.load(&saved.key).await.unwrap().unwrap().data["who"],
        "django"
    );
    store.delete(&saved.key).await.unwrap();
    assert!(matches!(
        store.save(&saved.key, &stale).await,
        Err(Error::Missing)
    ));
}

/// An expiry over 30 days is sent as a Unix time (memcached would read a
/// larger number of seconds as a date in 1970 and expire the item at once).
/// memcached converts it with its start time, in whole seconds, and counts
/// down on a clock that ticks once a second: it loads within 4 s.
#[tokio::test]
async fn expiry_over_30_days_is_kept() {
    let Some(store) = store().await else { return };
    let sixty_days = OffsetDateTime::now_utc() + Duration::days(60);
    let saved = store
        .create(&Record::new(map(json!({"n": 1})), sixty_days))
        .await
        .unwrap();
    let record = store.load(&saved.key).await.unwrap().expect("still there");
    assert!(
        (record.expires_at - sixty_days).abs() <= Duration::seconds(4),
        "{} vs {sixty_days}",
        record.expires_at
    );
    let (_, _, ttl) = Raw::connect(store.addr())
        .await
        .get(&django_key(&saved.key))
        .await
        .unwrap();
    assert!(
        (60 * 86_400 - 3..=60 * 86_400 + 3).contains(&ttl),
        "ttl {ttl}"
    );

    let ninety_days = OffsetDateTime::now_utc() + Duration::days(90);
    store.touch(&saved.key, ninety_days).await.unwrap();
    let record = store.load(&saved.key).await.unwrap().expect("still there");
    assert!((record.expires_at - ninety_days).abs() <= Duration::seconds(4));
}

/// memcached reads an exptime as a signed 32-bit number: a Unix time past
/// 2^31 would drop the item at once, one from 2^32 would keep it forever.
/// A session expiring after 2038-01-19T03:14:07Z (`i32::MAX`) is kept until
/// then, whether created, saved or touched, and loads with that expiry.
#[tokio::test]
async fn expiry_past_2038_is_kept_until_2038() {
    let Some(store) = store().await else { return };
    let last = OffsetDateTime::from_unix_timestamp(i64::from(i32::MAX)).unwrap();
    // Within 4 s, as any expiry over 30 days (`expiry_over_30_days_is_kept`).
    let near_last = |record: &Record| (record.expires_at - last).abs() <= Duration::seconds(4);
    let y2040 = time::macros::datetime!(2040-01-01 0:00 UTC);
    let far = OffsetDateTime::now_utc().saturating_add(Duration::MAX);

    let saved = store
        .create(&Record::new(map(json!({"n": 1})), y2040))
        .await
        .unwrap();
    let mut record = store.load(&saved.key).await.unwrap().expect("kept");
    assert!(near_last(&record), "{}", record.expires_at);
    let (_, _, ttl) = Raw::connect(store.addr())
        .await
        .get(&django_key(&saved.key))
        .await
        .unwrap();
    assert!(ttl > 0, "ttl {ttl}");

    record.expires_at = far;
    store.save(&saved.key, &record).await.unwrap();
    let record = store.load(&saved.key).await.unwrap().expect("kept");
    assert!(near_last(&record), "{}", record.expires_at);

    store.touch(&saved.key, y2040).await.unwrap();
    let record = store.load(&saved.key).await.unwrap().expect("kept");
    assert!(near_last(&record), "{}", record.expires_at);

    // Through a session, as a view would set it.
    for expiry in [sesame::Expiry::At(y2040), sesame::Expiry::In(Duration::MAX)] {
        let session = Session::new(store.clone(), None);
        session.insert("user", 42).await.unwrap();
        session.set_expiry(expiry).await.unwrap();
        session.save().await.unwrap();
        let again = Session::new(store.clone(), session.session_key());
        assert_eq!(
            again.get::<i64>("user").await.unwrap(),
            Some(42),
            "{expiry:?}"
        );
    }
}

/// memcached rounds the TTL up to a whole second and counts it down on a
/// clock that ticks once a second, so a loaded expiry can be almost 2 s
/// later than the one written, never more: written just after a tick with
/// half a second rounded up, and loaded 0.8 s later, before the next tick,
/// it is 1.3 s late. (A second attempt, then a third, if this machine was
/// too slow and the next tick came first.)
#[tokio::test]
async fn loaded_expiry_is_within_2_s_not_1() {
    let Some(store) = store().await else { return };
    let mut raw = Raw::connect(store.addr()).await;
    // An item with a 60 s TTL, whose seconds left show the clock's ticks.
    let probe = SessionKey::generate();
    raw.set(&django_key(&probe), b"probe", 0).await;
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        // Waits (at most a second) for memcached's clock to tick.
        let (_, _, before) = raw.get(&django_key(&probe)).await.unwrap();
        let ticked = loop {
            let (_, _, ttl) = raw.get(&django_key(&probe)).await.unwrap();
            if ttl != before {
                break tokio::time::Instant::now();
            }
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        };
        let written = OffsetDateTime::now_utc() + Duration::milliseconds(100_500);
        let saved = store
            .create(&Record::new(map(json!({"n": 1})), written))
            .await
            .unwrap();
        tokio::time::sleep_until(ticked + StdDuration::from_millis(800)).await;
        let loaded = store.load(&saved.key).await.unwrap().expect("live");
        let off = (loaded.expires_at - written).abs();
        assert!(off <= Duration::seconds(2), "off by {off}");
        worst = worst.max(off);
        if worst > Duration::seconds(1) {
            return;
        }
    }
    panic!("the expiry was never over a second off (at most {worst})");
}

/// memcached's own TTL expires a session: seen after it passes.
#[tokio::test]
async fn native_ttl_expires_the_item() {
    let Some(store) = store().await else { return };
    let saved = store
        .create(&Record::new(
            map(json!({"n": 1})),
            OffsetDateTime::now_utc() + Duration::milliseconds(200),
        ))
        .await
        .unwrap();
    assert!(store.exists(&saved.key).await.unwrap());
    // An item with a 1 s TTL is gone within 2 s of memcached's clock.
    tokio::time::sleep(StdDuration::from_millis(2100)).await;
    assert!(store.load(&saved.key).await.unwrap().is_none());
}

// ---- bad servers (no memcached needed) ---------------------------------------

/// A fake server that answers every connection with `reply` (then keeps it
/// open if `hold`, or closes it).
async fn fake_server(reply: &'static [u8], hold: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(reply).await.is_err() {
                        return;
                    }
                    if !hold {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Replies a memcached never sends are backend errors: no panic, no hang,
/// no desync.
#[tokio::test]
async fn unexpected_replies_are_backend_errors() {
    let replies: [&'static [u8]; 8] = [
        b"HELLO\r\n",
        b"VA 5 c1 t10 f1\r\nab",       // cut short, then closed
        b"VA 2 c1 t10 f1\r\nabcd\r\n", // longer than announced
        b"VA x c1 t10 f1\r\n",
        b"VA 2 t10 f1\r\nab\r\n", // no CAS
        b"SERVER_ERROR out of memory\r\n",
        b"EN\n",
        b"",
    ];
    let key = SessionKey::generate();
    for reply in replies {
        let store = MemcachedStore::new(fake_server(reply, false).await)
            .with_timeout(StdDuration::from_secs(2));
        let result = store.load(&key).await;
        assert!(
            matches!(result, Err(Error::Backend(_))),
            "{:?}: {result:?}",
            reply.escape_ascii().to_string()
        );
        let result = store
            .create(&Record::new(map(json!({"n": 1})), in_hours(1)))
            .await;
        assert!(
            matches!(result, Err(Error::Backend(_))),
            "{:?}: {result:?}",
            reply.escape_ascii().to_string()
        );
    }
}

/// A TTL past what a date holds (only a hostile or broken server sends one)
/// is read as a default session age: the session loads, no panic.
#[tokio::test]
async fn a_ttl_past_year_9999_loads_with_a_default_age() {
    // An empty dict, pickled (PROTO 2, EMPTY_DICT, STOP), flagged as a pickle.
    let reply = b"VA 4 c1 t9223372036854775807 f1\r\n\x80\x02}.\r\n";
    let store = MemcachedStore::new(fake_server(reply, true).await);
    let record = store
        .load(&SessionKey::generate())
        .await
        .expect("a valid item")
        .expect("a live one");
    assert!(record.data.is_empty());
    let age = record.expires_at - OffsetDateTime::now_utc();
    assert!(
        (Duration::days(13)..=Duration::days(14)).contains(&age),
        "{age}"
    );
}

/// A fake `memcached -C` (CAS disabled), as memcached 1.6 answers then:
/// every CAS token is 0, and a compare-and-swap is `EX`. Items hold an
/// empty dict.
async fn fake_cas_disabled_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                let mut line = String::new();
                while socket.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let reply: &[u8] = match words.as_slice() {
                        ["ms", _, len, flags @ ..] => {
                            let mut value = vec![0; len.parse::<usize>().unwrap() + 2];
                            socket.read_exact(&mut value).await.unwrap();
                            if flags.iter().any(|f| f.starts_with('C')) {
                                b"EX c0\r\n"
                            } else {
                                b"HD c0\r\n"
                            }
                        }
                        ["mg", _, "v", ..] => b"VA 4 c0 t100 f1\r\n\x80\x02}.\r\n",
                        ["mg" | "md", ..] => b"HD\r\n",
                        _ => b"ERROR\r\n",
                    };
                    if socket.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

fn names_cas_disabled(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::Backend(err)) if err.to_string().contains("CAS disabled (-C)"))
}

/// A server with CAS disabled answers CAS token 0, with which no save could
/// ever succeed: `load`, `create` and `save` say so with a backend error
/// rather than loading a version that makes every save a conflict. As a
/// `cached_db` cache, which uses no version, it still works.
#[tokio::test]
async fn cas_token_0_is_a_backend_error_naming_cas_disabled() {
    let store = MemcachedStore::new(fake_cas_disabled_server().await);
    let key = SessionKey::generate();
    let record = Record::new(map(json!({"n": 1})), in_hours(1));
    let loaded = store.load(&key).await;
    assert!(names_cas_disabled(&loaded), "{loaded:?}");
    let created = store.create(&record).await;
    assert!(names_cas_disabled(&created), "{created:?}");
    let saved = store.save(&key, &record).await;
    assert!(names_cas_disabled(&saved), "{saved:?}");

    let cached = SessionCache::get(&store, &key).await.unwrap();
    assert!(cached.expect("a hit").data.is_empty());
    SessionCache::set(&store, &key, &record.data, record.expires_at)
        .await
        .unwrap();
}

/// An endless reply line is cut off, and a server that never answers times out.
#[tokio::test]
async fn endless_or_silent_servers_are_bounded() {
    static ENDLESS: [u8; 64 * 1024] = [b'x'; 64 * 1024];
    let store = MemcachedStore::new(fake_server(&ENDLESS, true).await);
    assert!(matches!(
        store.load(&SessionKey::generate()).await,
        Err(Error::Backend(_))
    ));

    // Accepts, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = MemcachedStore::new(addr).with_timeout(StdDuration::from_millis(200));
    assert!(matches!(
        store.load(&SessionKey::generate()).await,
        Err(Error::Timeout)
    ));
}

/// Nothing listening: a backend error at once, and `connect` says so.
#[tokio::test]
async fn refused_connection_is_a_backend_error() {
    let port = free_port();
    let store = MemcachedStore::new(format!("127.0.0.1:{port}"));
    let result = store.load(&SessionKey::generate()).await;
    assert!(matches!(result, Err(Error::Backend(_))), "{result:?}");
    assert!(
        MemcachedStore::connect(&format!("memcached://127.0.0.1:{port}"))
            .await
            .is_err()
    );
    assert!(MemcachedStore::connect("redis://127.0.0.1").await.is_err());
}

#[test]
fn store_is_send_sync_clone_debug_without_data() {
    fn assert_traits<S: SessionStore + Clone + std::fmt::Debug + Send + Sync>() {}
    assert_traits::<MemcachedStore>();
    let debug = format!("{:?}", MemcachedStore::new("127.0.0.1:11211"));
    assert!(debug.contains("127.0.0.1:11211"), "{debug}");
}

// ---- a real server stopped and restarted ---------------------------------------

/// A private memcached process, killed when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
}

impl Server {
    /// Starts memcached on `port`, or `None` (and a skip line) when the
    /// binary is missing.
    async fn start(port: u16) -> Option<Self> {
        Self::start_with(port, &[]).await
    }

    /// [`start`](Self::start) with more command-line options.
    async fn start_with(port: u16, options: &[&str]) -> Option<Self> {
        let spawned = Command::new("memcached")
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
            .args(options)
            // Ignored unless running as root, where memcached requires it.
            .args(["-u", "root"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIP memcached fault test: no memcached binary on PATH");
                return None;
            }
            Err(err) => panic!("cannot start memcached: {err}"),
        };
        let server = Self {
            child: Some(child),
            port,
        };
        for _ in 0..100 {
            if TcpStream::connect(server.addr()).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("memcached did not listen on port {port} within 5 s");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// Sends a signal (`STOP`, `CONT`) with `kill(1)`.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A stopped process must be continued for SIGKILL to reap it cleanly.
        if self.child.is_some() {
            let _ = Command::new("kill").args(["-CONT", &self.pid()]).status();
        }
        self.kill();
    }
}

fn counter_app(store: MemcachedStore, settings: Settings) -> Router {
    async fn counter(session: Session) -> sesame::Result<String> {
        let n: i64 = session.get("counter").await?.unwrap_or(0) + 1;
        session.insert("counter", n).await?;
        Ok(n.to_string())
    }
    Router::new()
        .route("/", get(counter))
        .layer(SessionManagerLayer::new(store).with_settings(settings))
}

struct Reply {
    status: StatusCode,
    key: Option<SessionKey>,
    retry_after: bool,
    body: String,
}

async fn send(app: &Router, key: Option<&SessionKey>) -> Reply {
    let mut request = Request::get("/");
    if let Some(key) = key {
        request = request.header(COOKIE, format!("sessionid={}", key.as_str()));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let key = response.headers().get(SET_COOKIE).and_then(|c| {
        let pair = c.to_str().ok()?.split(';').next()?;
        pair.split_once('=')?.1.parse().ok()
    });
    Reply {
        status: response.status(),
        key,
        retry_after: response.headers().contains_key(RETRY_AFTER),
        body: String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    }
}

/// The layer's store timeout in these tests ([`settings`]).
const TIMEOUT: StdDuration = StdDuration::from_millis(300);
/// Added to [`TIMEOUT`] for the latency bound: room for a loaded CI machine.
const MARGIN: StdDuration = StdDuration::from_millis(1500);
/// The time any request may take, the store down or not: an answer later
/// than this (or none) fails the test.
const BOUND: StdDuration = TIMEOUT.saturating_add(MARGIN);

async fn send_bounded(app: &Router, key: Option<&SessionKey>) -> Reply {
    tokio::time::timeout(BOUND, send(app, key))
        .await
        .expect("a request took longer than the store timeout + margin")
}

fn settings() -> Settings {
    Settings {
        store_timeout: TIMEOUT,
        ..Settings::default()
    }
}

/// Sends requests until one succeeds, for at most `within`.
async fn succeeds_within(app: &Router, key: Option<&SessionKey>, within: StdDuration) -> Reply {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let reply = send_bounded(app, key).await;
        if reply.status == StatusCode::OK {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests still fail ({}) {within:?} after the server came back",
            reply.status
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Kill the server: requests get 503 with `Retry-After` within the timeout.
/// Restart it on the same port: requests succeed again within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_is_503_and_a_restart_recovers() {
    let port = free_port();
    let Some(mut server) = Server::start(port).await else {
        return;
    };
    let store = MemcachedStore::new(server.addr()).with_timeout(StdDuration::from_secs(1));
    let app = counter_app(store.clone(), settings());

    let first = send_bounded(&app, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    let key = first.key.expect("a session cookie");
    // Several connections go idle in the pool.
    let concurrent: Vec<_> = (0..4)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send_bounded(&app, None).await.status })
        })
        .collect();
    for request in concurrent {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(send_bounded(&app, Some(&key)).await.body, "2");

    server.kill();
    for _ in 0..3 {
        let down = send_bounded(&app, Some(&key)).await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.retry_after, "a 503 without Retry-After");
        assert!(down.body.is_empty());
    }

    let server = Server::start(port).await.expect("memcached starts again");
    // The restarted server lost the session: it starts over, under a new key.
    let back = succeeds_within(&app, Some(&key), StdDuration::from_secs(1)).await;
    assert_eq!(back.body, "1");
    let key = back.key.expect("a new session cookie");
    assert_eq!(send_bounded(&app, Some(&key)).await.body, "2");
    drop(server);
}

/// A server that stops answering (SIGSTOP) is 503 within the store timeout;
/// once it continues, requests succeed again within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_server_times_out_as_503_and_recovers() {
    let Some(server) = Server::start(free_port()).await else {
        return;
    };
    let store = MemcachedStore::new(server.addr()).with_timeout(StdDuration::from_secs(10));
    let app = counter_app(store, settings());
    let first = send_bounded(&app, None).await;
    let key = first.key.expect("a session cookie");

    server.signal("STOP");
    for _ in 0..3 {
        let down = send_bounded(&app, Some(&key)).await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.retry_after);
    }
    server.signal("CONT");
    let back = succeeds_within(&app, Some(&key), StdDuration::from_secs(1)).await;
    assert_eq!(back.body, "2", "the session survived the pause");
}

/// A real memcached started with `-C` (CAS disabled): a request is the
/// outage policy's 503, with an error log line that names the cause, not a
/// 409 after 64 conflicting saves; a new session is refused too. As a
/// `cached_db` cache (no CAS needed) the server still works.
#[tokio::test]
async fn memcached_with_cas_disabled_is_503_with_the_cause_logged() {
    let Some(server) = Server::start_with(free_port(), &["-C"]).await else {
        return;
    };
    let store = MemcachedStore::new(server.addr());
    let key = SessionKey::generate();
    let pickle = sesame::codec::pickle_dumps(&map(json!({"counter": 7})));
    Raw::connect(store.addr())
        .await
        .set(&django_key(&key), &pickle, 1)
        .await;
    let app = counter_app(store.clone(), settings());

    let logs = Logs::default();
    let guard = logs.install();
    let existing = send_bounded(&app, Some(&key)).await;
    let fresh = send_bounded(&app, None).await;
    drop(guard);
    for reply in [existing, fresh] {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.body.is_empty());
    }
    let errors = logs.lines("ERROR", "sesame::store");
    assert_eq!(errors.len(), 2, "{}", logs.text());
    for line in errors {
        assert!(line.contains("CAS disabled (-C)"), "{line}");
    }

    let cache = store.with_keys(CacheKeys::cached_db());
    let data = map(json!({"n": 1}));
    SessionCache::set(&cache, &key, &data, in_hours(1))
        .await
        .unwrap();
    let cached = SessionCache::get(&cache, &key)
        .await
        .unwrap()
        .expect("cached");
    assert_eq!(*cached.data, data);
}

/// 8 clients for 4 s; the server is killed at 1 s and started again at 2 s.
/// Nothing hangs, every failure is the outage policy's 503 within the store
/// timeout, and from 1 s after the restart (at most) requests succeed again
/// (sessions start over: the restarted memcached lost them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_mid_load() {
    const CLIENTS: usize = 8;
    const KILL_AT: StdDuration = StdDuration::from_secs(1);
    const RESTART_AT: StdDuration = StdDuration::from_secs(2);
    const STOP_AT: StdDuration = StdDuration::from_secs(4);
    const RECOVERY: StdDuration = StdDuration::from_secs(1);
    let port = free_port();
    let Some(mut server) = Server::start(port).await else {
        return;
    };
    let store = MemcachedStore::new(server.addr()).with_timeout(StdDuration::from_secs(1));
    let app = counter_app(store, settings());
    let mut keys = Vec::new();
    for _ in 0..CLIENTS {
        let reply = send_bounded(&app, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        keys.push(reply.key.expect("a session cookie"));
    }

    let t0 = tokio::time::Instant::now();
    let clients = outage_support::clients(keys, t0, STOP_AT, BOUND, {
        let app = app.clone();
        move |key| {
            let app = app.clone();
            async move {
                let reply = send(&app, Some(&key)).await;
                (reply.status, reply.key)
            }
        }
    });

    tokio::time::sleep_until(t0 + KILL_AT).await;
    server.kill();
    tokio::time::sleep_until(t0 + RESTART_AT).await;
    let server = Server::start(port).await.expect("memcached starts again");
    let up = t0.elapsed();
    let samples = clients.await.expect("the clients ran");
    drop(server);
    let outage = Outage::of(&samples, up, RECOVERY);
    eprintln!(
        "figure: memcached restart: {} requests from {CLIENTS} clients, {} hung, slowest {} ms \
         (store timeout {} ms); {} failed ({} not 503); first success {} ms after the restart; \
         {}/{} = {:.1} % success from {} s after the restart",
        outage.requests,
        outage.hung,
        outage.slowest.as_millis(),
        TIMEOUT.as_millis(),
        outage.failed,
        outage.not_503.len(),
        outage
            .first_back
            .map_or_else(|| "never".to_owned(), |d| d.as_millis().to_string()),
        outage.recovered_ok,
        outage.recovered,
        outage.rate(),
        RECOVERY.as_secs(),
    );
    outage.check();
}
