//! Our middleware against real Django's: the `middleware_cases` of the golden
//! vectors (`sesame-codec/testdata/django-5.2.19-vectors.json`), recorded from
//! Django 5.2's `SessionMiddleware` on the `db` engine.
//!
//! Each case replays the request on `SqliteStore` with the vectors'
//! `SECRET_KEY` and compares the response's `Set-Cookie` and `Vary` with
//! Django's. Session keys are random and `expires` follows the clock, so those
//! two are compared by shape; every other byte must match (removal cookies
//! match whole).

#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{Request, StatusCode};
use serde_json::Value;
use sesame::backends::SqliteStore;
use sesame::{Session, SessionKey, SessionManagerLayer, Signer};
use tower::ServiceExt;

/// A row Django wrote for `{"counter": 1}` under the vectors' `SECRET_KEY`.
const DJANGO_KEY: &str = "vbb62d8f95d0e8569zddqvz1iw2wgcaw";

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sesame-codec/testdata/django-5.2.19-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the vectors are checked in"))
        .expect("the vectors are JSON")
}

fn case<'a>(vectors: &'a Value, name: &str) -> &'a Value {
    vectors["middleware_cases"]
        .as_array()
        .expect("a list of cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no middleware case {name}"))
}

/// A fresh SQLite file holding Django's `db_new_default` row, live until 2099.
struct Db(PathBuf);

impl Db {
    async fn new(vectors: &Value) -> (Self, SqliteStore) {
        let path = std::env::temp_dir().join(format!(
            "sesame-django-mw-{}.sqlite3",
            SessionKey::generate().as_str()
        ));
        let secret = vectors["settings"]["SECRET_KEY"].as_str().expect("a key");
        let store = SqliteStore::open(&path, Signer::new(secret)).expect("open");
        store.migrate().await.expect("migrate");
        let row = &case(vectors, "db_new_default")["db_row"];
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute(
            "INSERT INTO django_session VALUES (?1, ?2, '2099-01-01 00:00:00')",
            [
                row["session_key"].as_str().expect("key"),
                row["session_data"].as_str().expect("data"),
            ],
        )
        .expect("insert Django's row");
        (Self(path), store)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The views the vector generator used.
fn app(store: SqliteStore) -> Router {
    async fn counter(s: Session) -> sesame::Result<String> {
        let n: i64 = s.get("counter").await?.unwrap_or(0);
        s.insert("counter", n + 1).await?;
        Ok(n.to_string())
    }
    async fn read(s: Session) -> sesame::Result<String> {
        Ok(s.get_value("counter")
            .await?
            .unwrap_or(Value::Null)
            .to_string())
    }
    Router::new()
        .route("/", get(counter))
        .route("/read", get(read))
        .route(
            "/expiry/{kind}",
            get(
                |s: Session, axum::extract::Path(kind): axum::extract::Path<String>| async move {
                    let expiry = match kind.as_str() {
                        "3600" => sesame::Expiry::IdleSeconds(3600),
                        "0" => sesame::Expiry::BrowserClose,
                        "1d" => sesame::Expiry::In(time::Duration::days(1)),
                        _ => sesame::Expiry::At(time::macros::datetime!(2099-01-01 00:00 UTC)),
                    };
                    s.set_expiry(expiry).await?;
                    counter(s).await
                },
            ),
        )
        .route(
            "/save",
            get(|s: Session| async move { s.save().await.map(|()| "saved") }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_key().await.map(|()| "cycled") }),
        )
        .route(
            "/flush",
            get(|s: Session| async move { s.flush().await.map(|()| "flushed") }),
        )
        .layer(SessionManagerLayer::new(store))
}

struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    vary: Option<String>,
    body: String,
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(value) = cookie {
        req = req.header(COOKIE, format!("sessionid={value}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().expect("ASCII").to_owned())
    };
    let (status, set_cookie, vary) = (res.status(), header(SET_COOKIE), header(VARY));
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        set_cookie,
        vary,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `Set-Cookie` with the key and the `expires` date replaced by placeholders.
fn shape(set_cookie: &str) -> String {
    set_cookie
        .split("; ")
        .map(|part| match part.split_once('=') {
            Some(("sessionid", v)) if SessionKey::from_bytes(v.as_bytes()).is_ok() => {
                "sessionid=<key>".to_owned()
            }
            Some(("expires", _)) => "expires=<date>".to_owned(),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn django_set_cookie(c: &Value) -> Option<&str> {
    c["set_cookie"].as_str()
}

async fn new_session_case(name: &str, path: &str) {
    let vectors = vectors();
    let c = case(&vectors, name);
    let (_db, store) = Db::new(&vectors).await;
    let reply = send(&app(store), path, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let ours = reply.set_cookie.expect("a cookie");
    let django = django_set_cookie(c).expect("Django set a cookie");
    if name == "db_new_timedelta_1d" {
        // Django's clock was frozen; ours moves between `set_expiry` (which
        // fixes now + 1 day) and the response, and Python floors the age the
        // same way, so a live Django answers 86399 here too.
        let ours = shape(&ours).replace("Max-Age=86399;", "Max-Age=86400;");
        assert_eq!(ours, shape(django), "{name}");
    } else if name == "db_new_datetime" {
        // Max-Age counts down to a fixed date: compare everything else.
        let strip = |s: &str| {
            shape(s)
                .split("; ")
                .filter(|p| !p.starts_with("Max-Age="))
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(strip(&ours), strip(django), "{name}");
    } else {
        assert_eq!(shape(&ours), shape(django), "{name}");
    }
    assert_eq!(reply.vary.as_deref(), c["vary"].as_str(), "{name}");
}

#[tokio::test]
async fn new_session_with_default_expiry_matches_django() {
    new_session_case("db_new_default", "/").await;
}

#[tokio::test]
async fn new_session_with_idle_expiry_matches_django() {
    new_session_case("db_new_expiry_3600", "/expiry/3600").await;
}

#[tokio::test]
async fn new_browser_close_session_matches_django() {
    new_session_case("db_new_browser_close", "/expiry/0").await;
}

#[tokio::test]
async fn new_session_with_timedelta_expiry_matches_django() {
    new_session_case("db_new_timedelta_1d", "/expiry/1d").await;
}

#[tokio::test]
async fn new_session_with_datetime_expiry_matches_django() {
    new_session_case("db_new_datetime", "/expiry/at").await;
}

#[tokio::test]
async fn existing_django_session_is_updated_under_its_key() {
    let vectors = vectors();
    let c = case(&vectors, "db_existing_modified");
    let (_db, store) = Db::new(&vectors).await;
    let reply = send(&app(store), "/", Some(DJANGO_KEY)).await;
    assert_eq!(reply.body, "1", "Django's row holds counter = 1");
    let ours = reply.set_cookie.expect("a cookie");
    assert!(ours.starts_with(&format!("sessionid={DJANGO_KEY};")));
    assert_eq!(shape(&ours), shape(django_set_cookie(c).expect("a cookie")));
    assert_eq!(reply.vary.as_deref(), c["vary"].as_str());
}

#[tokio::test]
async fn read_only_access_sets_only_vary_like_django() {
    let vectors = vectors();
    let c = case(&vectors, "db_existing_read_only");
    let (_db, store) = Db::new(&vectors).await;
    let reply = send(&app(store), "/read", Some(DJANGO_KEY)).await;
    assert_eq!(reply.body, "1");
    assert_eq!(reply.set_cookie.as_deref(), django_set_cookie(c));
    assert_eq!(reply.vary.as_deref(), c["vary"].as_str());
}

#[tokio::test]
async fn unknown_key_gets_a_fresh_key_like_django() {
    let vectors = vectors();
    let c = case(&vectors, "db_unknown_key");
    let (_db, store) = Db::new(&vectors).await;
    let sent = c["request_cookie"].as_str().expect("a cookie");
    let reply = send(&app(store), "/", Some(sent)).await;
    let ours = reply.set_cookie.expect("a cookie");
    assert!(!ours.contains(sent), "the client's key must not be adopted");
    assert_eq!(shape(&ours), shape(django_set_cookie(c).expect("a cookie")));
}

/// Cases whose whole `Set-Cookie` is fixed (removal cookies): byte for byte.
async fn removal_case(name: &str, path: &str) {
    let vectors = vectors();
    let c = case(&vectors, name);
    let (_db, store) = Db::new(&vectors).await;
    let sent = c["request_cookie"].as_str().expect("a cookie");
    let reply = send(&app(store.clone()), path, Some(sent)).await;
    assert_eq!(reply.status, StatusCode::OK, "{name}");
    // The one deliberate difference: our removal cookie keeps HttpOnly (and
    // Secure) from the settings, as issue 2 asks, so that it replaces the
    // cookie it removes whatever its flags; Django's `delete_cookie` drops
    // HttpOnly. Every other byte is Django's.
    let ours = reply
        .set_cookie
        .as_deref()
        .map(|s| s.replace("; HttpOnly", ""));
    assert_eq!(ours.as_deref(), django_set_cookie(c), "{name}");
    assert_eq!(reply.vary.as_deref(), c["vary"].as_str(), "{name}");
    if c["row_exists_after"] == Value::Bool(false) {
        let key: SessionKey = sent.parse().expect("a key");
        use sesame::backends::SessionStore as _;
        assert!(store.load(&key).await.expect("load").is_none(), "{name}");
    }
}

#[tokio::test]
async fn unknown_key_read_only_is_deleted_like_django() {
    removal_case("db_unknown_key_read_only", "/read").await;
}

#[tokio::test]
async fn short_key_is_deleted_like_django() {
    removal_case("db_short_key", "/read").await;
}

#[tokio::test]
async fn flush_deletes_row_and_cookie_like_django() {
    removal_case("db_flush", "/flush").await;
}

/// A handler that only calls `save()` or `cycle_key()` varies on `Cookie`,
/// as Django's: both read the data through `_get_session()`, which sets
/// `accessed`. A new session's save and a rotation also send a cookie.
#[tokio::test]
async fn save_or_cycle_key_alone_varies_on_cookie_like_django() {
    let vectors = vectors();
    let (_db, store) = Db::new(&vectors).await;
    let app = app(store);
    for (path, cookie, sends_cookie) in [
        ("/save", None, true),
        ("/save", Some(DJANGO_KEY), false),
        ("/cycle", Some(DJANGO_KEY), true),
    ] {
        let reply = send(&app, path, cookie).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            reply.set_cookie.is_some(),
            sends_cookie,
            "{path} {cookie:?}"
        );
        assert_eq!(reply.vary.as_deref(), Some("Cookie"), "{path} {cookie:?}");
    }
}
