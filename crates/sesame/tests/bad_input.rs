//! Bad input has a defined outcome, and nothing leaks: every case drives an
//! axum app through `SessionManagerLayer` while capturing all tracing output,
//! then checks that no log line and no response body holds a session key.
//!
//! Each test runs on `#[tokio::test]`'s current-thread runtime, so the
//! subscriber installed with `set_default` sees every event of the request.

mod log_support;

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use sesame::backends::{MemoryStore, Record, Saved, SessionStore};
use sesame::{Error, Result, Session, SessionKey, SessionManagerLayer, Settings};
use sesame_conformance::{CountingStore, FailingStore, SlowStore};
use time::OffsetDateTime;
use tower::ServiceExt;
use tracing::subscriber::DefaultGuard;

use log_support::Logs;

// ---- a store that remembers every key and can corrupt one -------------------

/// Wraps a store: records every key passed in or handed out, and answers
/// `load` of the key marked corrupt with `Error::Corrupt`.
#[derive(Debug, Clone)]
struct Watched<S> {
    inner: S,
    seen: Arc<Mutex<Vec<SessionKey>>>,
    corrupt: Arc<Mutex<Option<SessionKey>>>,
}

impl<S> Watched<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            seen: Arc::default(),
            corrupt: Arc::default(),
        }
    }

    fn see(&self, key: SessionKey) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    fn corrupt(&self, key: SessionKey) {
        *self.corrupt.lock().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    fn keys(&self) -> Vec<SessionKey> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn saw(&self, result: Result<Saved>) -> Result<Saved> {
        if let Ok(saved) = &result {
            self.see(saved.key.clone());
        }
        result
    }
}

impl<S: SessionStore> SessionStore for Watched<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.see(key.clone());
        if *self.corrupt.lock().unwrap_or_else(PoisonError::into_inner) == Some(key.clone()) {
            return Err(Error::Corrupt(sesame::codec::Error::NotAnObject));
        }
        self.inner.load(key).await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        self.saw(self.inner.create(record).await)
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        self.see(key.clone());
        let result = self.inner.save(key, record).await;
        if result.is_ok() {
            // Overwritten: readable again.
            let mut corrupt = self.corrupt.lock().unwrap_or_else(PoisonError::into_inner);
            if corrupt.as_ref() == Some(key) {
                *corrupt = None;
            }
        }
        self.saw(result)
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.see(key.clone());
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        self.see(key.clone());
        self.inner.exists(key).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        self.see(key.clone());
        self.inner.touch(key, until).await
    }
}

// ---- the app and the probe --------------------------------------------------

async fn counter(session: Session) -> Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(format!("Counter : {n}"))
}

async fn read(session: Session) -> Result<String> {
    let n: Option<i64> = session.get("counter").await?;
    Ok(n.map_or_else(|| "none".to_owned(), |n| n.to_string()))
}

fn app<S: SessionStore + Clone>(store: S, settings: Settings) -> Router {
    Router::new()
        .route("/", get(counter))
        .route("/read", get(read))
        .route(
            "/delete-then-write",
            get(|s: Session, State(store): State<S>| async move {
                // Another request logs the user out while this one runs.
                s.get_value("counter").await?;
                if let Some(key) = s.session_key() {
                    store.delete(&key).await?;
                }
                s.insert("late", 1).await?;
                Ok::<_, Error>("late write")
            }),
        )
        .with_state(store.clone())
        .layer(SessionManagerLayer::new(store).with_settings(settings))
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    /// The key of the one `Set-Cookie` this reply carries, if any.
    fn new_key(&self) -> Option<SessionKey> {
        assert!(self.set_cookies.len() <= 1, "{:?}", self.set_cookies);
        let cookie = self.set_cookies.first()?;
        let pair = cookie.split(';').next()?;
        pair.split_once('=')?.1.parse().ok()
    }
}

/// Captures logs for one test and remembers every key and body it saw.
struct Probe {
    logs: Logs,
    _guard: DefaultGuard,
    keys: Vec<SessionKey>,
    bodies: Vec<String>,
}

impl Probe {
    fn new() -> Self {
        let logs = Logs::default();
        let guard = logs.install();
        Self {
            logs,
            _guard: guard,
            keys: Vec::new(),
            bodies: Vec::new(),
        }
    }

    /// A fresh key, remembered for the leak check.
    fn key(&mut self) -> SessionKey {
        let key = SessionKey::generate();
        self.keys.push(key.clone());
        key
    }

    /// Sends `GET path` with one `Cookie` header per entry of `cookies`.
    async fn send(&mut self, app: &Router, path: &str, cookies: &[&[u8]]) -> Reply {
        let mut req = Request::get(path);
        for c in cookies {
            req = req.header(COOKIE, HeaderValue::from_bytes(c).expect("a valid header"));
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("a request"))
            .await
            .expect("the router is infallible");
        let status = res.status();
        let header = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let set_cookies = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(header)
            .collect();
        let retry_after = res.headers().get(RETRY_AFTER).map(header);
        let bytes = res.into_body().collect().await.expect("a body").to_bytes();
        let reply = Reply {
            status,
            set_cookies,
            retry_after,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        self.keys.extend(reply.new_key());
        self.bodies.push(reply.body.clone());
        reply
    }

    /// No log line and no response body holds any key this test used (nor
    /// any 8 consecutive characters of one: logs show 4 at most).
    fn assert_no_key_leaked(&self, more: &[SessionKey]) {
        let logs = self.logs.text();
        let keys: Vec<&SessionKey> = self.keys.iter().chain(more).collect();
        assert!(!keys.is_empty(), "the test used no key");
        for key in keys {
            let key = key.as_str();
            for window in key.as_bytes().windows(8) {
                let window = std::str::from_utf8(window).expect("keys are ASCII");
                assert!(
                    !logs.contains(window),
                    "a log line holds {window} of {key}:\n{logs}"
                );
                for body in &self.bodies {
                    assert!(!body.contains(window), "a body holds {window} of {key}");
                }
            }
        }
    }
}

fn cookie(key: &SessionKey) -> Vec<u8> {
    format!("sessionid={}", key.as_str()).into_bytes()
}

// ---- outcomes of bad input --------------------------------------------------

#[tokio::test]
async fn corrupt_record_is_an_empty_session_and_a_security_warning() {
    let mut probe = Probe::new();
    let store = Watched::new(MemoryStore::new());
    let app = app(store.clone(), Settings::default());
    let started = probe.send(&app, "/", &[]).await;
    let key = started.new_key().expect("the first write sets a cookie");
    probe.send(&app, "/", &[&cookie(&key)]).await;
    store.corrupt(key.clone());

    let reply = probe.send(&app, "/read", &[&cookie(&key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body, "none",
        "a corrupt record reads as an empty session"
    );
    let warnings = probe.logs.lines("WARN", "sesame::security");
    assert_eq!(warnings.len(), 1, "{}", probe.logs.text());

    // As Django's db engine: the record exists, so writing overwrites it under
    // its own key (the client could not have chosen that key: it is stored).
    let reply = probe.send(&app, "/", &[&cookie(&key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "Counter : 0");
    assert_eq!(reply.new_key().expect("the cookie is refreshed"), key);
    probe.assert_no_key_leaked(&store.keys());
}

/// With `SESSION_SAVE_EVERY_REQUEST`, a read of an unreadable record
/// overwrites it with the empty session (Django's `save()`), rather than
/// only moving its expiry — which would keep it unreadable, and every
/// request reading it, forever.
#[tokio::test]
async fn corrupt_record_under_save_every_request_is_overwritten_not_touched() {
    let mut probe = Probe::new();
    let store = Watched::new(MemoryStore::new());
    let settings = Settings {
        save_every_request: true,
        ..Settings::default()
    };
    let app = app(store.clone(), settings);
    let key = probe
        .send(&app, "/", &[])
        .await
        .new_key()
        .expect("the first write sets a cookie");
    store.corrupt(key.clone());

    let reply = probe.send(&app, "/read", &[&cookie(&key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "none");
    assert_eq!(reply.new_key().expect("the cookie is refreshed"), key);
    let record = store.inner.load(&key).await.expect("load").expect("kept");
    assert!(record.data.is_empty(), "overwritten with the empty session");
    let reply = probe.send(&app, "/read", &[&cookie(&key)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let warnings = probe.logs.lines("WARN", "sesame::security");
    assert_eq!(warnings.len(), 1, "read again, it is readable");
    probe.assert_no_key_leaked(&store.keys());
}

#[tokio::test]
async fn store_outage_is_503_with_empty_body_and_an_error_line() {
    let mut probe = Probe::new();
    let app = app(FailingStore::new(), Settings::default());
    let key = probe.key();
    for (path, cookies) in [
        ("/", vec![cookie(&key)]),
        ("/read", vec![cookie(&key)]),
        ("/", vec![]),
    ] {
        let cookies: Vec<&[u8]> = cookies.iter().map(Vec::as_slice).collect();
        let before = probe.logs.lines("ERROR", "sesame").len();
        let reply = probe.send(&app, path, &cookies).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
        assert!(reply.body.is_empty() && reply.set_cookies.is_empty());
        let errors = probe.logs.lines("ERROR", "sesame");
        assert_eq!(
            errors.len(),
            before + 1,
            "{path}: one error line per outage:\n{}",
            probe.logs.text()
        );
    }
    probe.assert_no_key_leaked(&[]);
}

#[tokio::test]
async fn slow_store_is_503_and_an_error_line() {
    let mut probe = Probe::new();
    let settings = Settings {
        store_timeout: Duration::from_millis(20),
        ..Settings::default()
    };
    let store = Watched::new(SlowStore::new(MemoryStore::new(), Duration::from_secs(30)));
    let app = app(store.clone(), settings);
    let key = probe.key();
    let reply = probe.send(&app, "/", &[&cookie(&key)]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.is_empty());
    assert_eq!(
        probe.logs.lines("ERROR", "sesame").len(),
        1,
        "{}",
        probe.logs.text()
    );
    probe.assert_no_key_leaked(&store.keys());
}

#[tokio::test]
async fn session_deleted_mid_request_is_400_and_a_log_line() {
    let mut probe = Probe::new();
    let store = Watched::new(MemoryStore::new());
    let app = app(store.clone(), Settings::default());
    let key = probe
        .send(&app, "/", &[])
        .await
        .new_key()
        .expect("a cookie");

    let reply = probe
        .send(&app, "/delete-then-write", &[&cookie(&key)])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.is_empty() && reply.set_cookies.is_empty());
    assert!(!store.inner.exists(&key).await.unwrap(), "never re-created");
    let lines = probe.logs.lines("WARN", "sesame");
    assert_eq!(lines.len(), 1, "{}", probe.logs.text());
    probe.assert_no_key_leaked(&store.keys());
}

/// Sends each cookie header set to `/` and `/read`: never a 5xx, never more
/// than two store lookups, never an ERROR line (a client's bytes are not a
/// server fault). Returns the store's keys.
async fn survives(probe: &mut Probe, cases: &[Vec<Vec<u8>>]) -> Vec<SessionKey> {
    let store = Watched::new(MemoryStore::new());
    let counting = CountingStore::new(store.clone());
    let app = app(counting.clone(), Settings::default());
    for headers in cases {
        let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        for path in ["/", "/read"] {
            counting.reset();
            let reply = probe.send(&app, path, &headers).await;
            let shown = String::from_utf8_lossy(&headers.concat())
                .chars()
                .take(80)
                .collect::<String>();
            assert!(
                reply.status.is_success(),
                "{path} {shown:?}: {}",
                reply.status
            );
            let calls = counting.calls();
            assert!(calls.lookups() <= 2, "{path} {shown:?}: {calls:?}");
        }
    }
    let errors = probe.logs.lines("ERROR", "");
    assert!(errors.is_empty(), "{errors:?}");
    store.keys()
}

#[tokio::test]
async fn long_cookie_header_within_the_limit_never_fails() {
    // Over `cookie_header_limit` (8 KiB) the answer is 431: see hostile_input.rs.
    let mut probe = Probe::new();
    let key = probe.key();
    let long_value = format!("sessionid={}", "a".repeat(7 * 1024));
    let padding = format!("junk={}; sessionid={}", "x".repeat(7 * 1024), key.as_str());
    let many = (0..1000)
        .map(|i| format!("c{i}=v"))
        .collect::<Vec<_>>()
        .join("; ");
    let keys = survives(
        &mut probe,
        &[
            vec![long_value.into_bytes()],
            vec![padding.into_bytes()],
            vec![format!("{many}; sessionid={}", key.as_str()).into_bytes()],
        ],
    )
    .await;
    probe.assert_no_key_leaked(&keys);
}

#[tokio::test]
async fn non_utf8_cookie_header_never_fails() {
    let mut probe = Probe::new();
    let key = probe.key();
    let mut mixed = b"a=\xff\xfe; sessionid=".to_vec();
    mixed.extend_from_slice(key.as_str().as_bytes());
    let keys = survives(
        &mut probe,
        &[
            vec![b"sessionid=\xff\xfe\xfd\xfcabcdefgh".to_vec()],
            vec![b"sessionid=abcdefgh\xc3\xa912345678".to_vec()],
            vec![b"\xe2\x82\xac=\x80\x81; sessionid=\xf0\x9f\x8d\xaa".to_vec()],
            vec![mixed],
        ],
    )
    .await;
    probe.assert_no_key_leaked(&keys);
}

#[tokio::test]
async fn hundred_duplicate_session_cookies_cost_at_most_two_lookups() {
    let mut probe = Probe::new();
    let keys: Vec<SessionKey> = (0..100).map(|_| probe.key()).collect();
    let one_header = keys
        .iter()
        .map(|k| format!("sessionid={}", k.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
        .into_bytes();
    let many_headers: Vec<Vec<u8>> = keys.iter().map(cookie).collect();
    let same_key: Vec<Vec<u8>> = (0..100).map(|_| cookie(&keys[0])).collect();
    let seen = survives(&mut probe, &[vec![one_header], many_headers, same_key]).await;
    assert!(
        seen.iter()
            .all(|k| keys[..2].contains(k) || !keys.contains(k)),
        "only the first two were looked up"
    );
    probe.assert_no_key_leaked(&seen);
}

#[tokio::test]
async fn quotes_control_and_path_characters_are_no_session() {
    let mut probe = Probe::new();
    let key = probe.key();
    let k = key.as_str();
    let values = [
        format!("\"{k}\""),
        format!("\"{k}"),
        format!("{k}\""),
        format!("'{k}'"),
        format!("\\\"{k}\\\""),
        format!("{k}\t"),
        format!("{}\t{}", &k[..16], &k[16..]),
        format!("../../{k}"),
        format!("..%2f..%2f{k}"),
        format!("/etc/passwd/{k}"),
        format!("{k}/.."),
        format!("{k}%00"),
        k.to_ascii_uppercase(),
        "\"\"".to_owned(),
        "\"".to_owned(),
        String::new(),
        "=====".to_owned(),
        "sessionid=sessionid".to_owned(),
        "\u{7f}".to_owned(),
    ];
    let cases: Vec<Vec<Vec<u8>>> = values
        .iter()
        .filter(|v| HeaderValue::from_str(&format!("sessionid={v}")).is_ok())
        .map(|v| vec![format!("sessionid={v}").into_bytes()])
        .chain([
            vec![format!("sessionid={k},sessionid={k}").into_bytes()],
            vec![format!("sessionid ={k} ; ;;=; sessionid").into_bytes()],
        ])
        .collect();
    assert!(cases.len() > 15, "most values are valid header bytes");
    let keys = survives(&mut probe, &cases).await;
    probe.assert_no_key_leaked(&keys);
}

/// A session cookie that is not a well-formed key (empty, `""`, a path, the
/// wrong case) is no session and costs no lookup; it, and a request carrying
/// more than one session cookie, gives one `warn!` on `sesame::security`
/// without the values. A single well-formed cookie, known or not, gives none.
#[tokio::test]
async fn malformed_session_cookies_are_one_security_warning_and_repeats_a_debug_line() {
    let mut probe = Probe::new();
    let store = Watched::new(MemoryStore::new());
    let counting = CountingStore::new(store.clone());
    let app = app(counting.clone(), Settings::default());
    let key = probe
        .send(&app, "/", &[])
        .await
        .new_key()
        .expect("the first write sets a cookie");
    let unknown = probe.key();
    for sent in [&key, &unknown] {
        let reply = probe.send(&app, "/read", &[&cookie(sent)]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let security = |probe: &Probe| probe.logs.lines("WARN", "sesame::security").len();
    assert_eq!(security(&probe), 0, "{}", probe.logs.text());

    let k = key.as_str();
    let malformed: Vec<Vec<u8>> = vec![
        b"sessionid=".to_vec(),
        b"sessionid=\"\"".to_vec(),
        format!("sessionid=../../{k}").into_bytes(),
        format!("sessionid={}", k.to_ascii_uppercase()).into_bytes(),
    ];
    for (i, header) in malformed.iter().enumerate() {
        counting.reset();
        let reply = probe.send(&app, "/read", &[header]).await;
        let shown = String::from_utf8_lossy(header);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "none"),
            "{shown}"
        );
        assert_eq!(counting.calls().lookups(), 0, "{shown}");
        assert_eq!(security(&probe), i + 1, "{shown}: {}", probe.logs.text());
    }
    let repeated: [Vec<Vec<u8>>; 2] = [
        vec![cookie(&unknown), cookie(&key)],
        vec![format!("sessionid={}; sessionid={k}", unknown.as_str()).into_bytes()],
    ];
    // Two well-formed cookies (a parent domain's and the host's, say) are
    // recorded at debug level, not warned about on every request.
    for (i, headers) in repeated.iter().enumerate() {
        let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        let reply = probe.send(&app, "/read", &headers).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "1"));
        assert_eq!(security(&probe), malformed.len(), "{}", probe.logs.text());
        assert_eq!(
            probe.logs.lines("DEBUG", "sesame::security").len(),
            i + 1,
            "{}",
            probe.logs.text()
        );
    }
    probe.assert_no_key_leaked(&store.keys());
}

// ---- Debug and thread safety ------------------------------------------------

fn assert_send_sync_debug<T: Send + Sync + Debug>() {}

#[test]
fn public_types_are_send_sync_and_debug() {
    assert_send_sync_debug::<Session>();
    assert_send_sync_debug::<SessionManagerLayer>();
    assert_send_sync_debug::<MemoryStore>();
    assert_send_sync_debug::<Settings>();
    assert_send_sync_debug::<SessionKey>();
    assert_send_sync_debug::<Record>();
    assert_send_sync_debug::<Error>();
}

#[tokio::test]
async fn debug_never_shows_secrets_data_or_whole_keys() {
    const SECRET: &str = "django-insecure-hunter2";
    const OLD_SECRET: &str = "previous-hunter3";
    const DATA: &str = "card-4111111111111111";
    let settings = Settings {
        secret_key: Some(SECRET.to_owned()),
        secret_key_fallbacks: vec![OLD_SECRET.to_owned()],
        ..Settings::default()
    };
    let store = MemoryStore::new();
    let session = Session::with_settings(store.clone(), None, settings.clone());
    session.insert("payment", DATA).await.unwrap();
    session.save().await.unwrap();
    let key = session.session_key().unwrap();
    let loaded = Session::with_settings(store.clone(), Some(key.clone()), settings.clone());
    assert_eq!(
        loaded.get::<String>("payment").await.unwrap().as_deref(),
        Some(DATA)
    );
    let record = store.load(&key).await.unwrap().unwrap();
    let layer = SessionManagerLayer::new(store.clone()).with_settings(settings.clone());
    let map = json!({"payment": DATA}).as_object().cloned().unwrap();
    let fresh = Record::new(map, OffsetDateTime::now_utc());

    let shown = [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{session:?}"),
        format!("{loaded:#?}"),
        format!("{record:?}"),
        format!("{fresh:#?}"),
        format!("{layer:?}"),
        format!("{store:?}"),
        format!("{key:?}"),
    ];
    for text in shown {
        for secret in [
            SECRET,
            OLD_SECRET,
            DATA,
            "payment",
            key.as_str(),
            &key.as_str()[..8],
        ] {
            assert!(!text.contains(secret), "{secret:?} shown in {text}");
        }
    }
}
