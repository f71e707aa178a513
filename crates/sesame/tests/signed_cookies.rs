//! `SignedCookieStore` end to end, through `SessionManagerLayer`: the
//! counter lives in the cookie, a tampered cookie becomes a fresh empty
//! session re-issued as Django re-issues it, logout removes the cookie, an
//! oversized session is a 413 (never a silently dropped cookie), and
//! `SESSION_SAVE_EVERY_REQUEST` re-signs the cookie.

mod log_support;

use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use sesame::backends::{Record, SessionStore, SignedCookieStore};
use sesame::codec::{SIGNED_COOKIES_SALT, SessionMap, b62_decode};
use sesame::{Result, Session, SessionManagerLayer, Settings, Signer};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

use log_support::Logs;

/// `settings.SECRET_KEY` of `shared/django-compat/vectors.json`.
const SECRET_KEY: &str = "djcompat-primary-secret-key-do-not-use-in-production-0123456789";
const OLD_KEY: &str = "djcompat-fallback-one-secret-key-0123456789abcdefghijklmnopqrstuv";
/// `middleware_cases["signed_cookies_bad_cookie_read"].request_cookie`.
const DJANGO_TAMPERED: &str =
    "eyAjb3VudGVyIjozfQ:1r31eq:AsBBUhT0keLCeSKs72RlOujopC1RkESymBLqlB8yftE";

fn signer() -> Signer {
    Signer::new(SECRET_KEY).with_fallbacks([OLD_KEY])
}

fn store() -> SignedCookieStore {
    SignedCookieStore::new(signer())
}

async fn counter(session: Session) -> Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(n.to_string())
}

async fn read(session: Session) -> Result<String> {
    let n: Option<i64> = session.get("counter").await?;
    Ok(n.map_or_else(|| "none".to_owned(), |n| n.to_string()))
}

fn app(settings: Settings) -> Router {
    Router::new()
        .route("/", get(counter))
        .route("/read", get(read))
        .route(
            "/logout",
            get(|s: Session| async move { s.flush().await.map(|()| "logged out") }),
        )
        .route(
            "/big",
            get(|s: Session| async move {
                s.insert("blob", noise(8000)).await?;
                Ok::<_, sesame::Error>("stored")
            }),
        )
        .layer(SessionManagerLayer::new(store()).with_settings(settings))
}

/// Characters zlib cannot shrink much (xorshift noise).
fn noise(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(ALPHABET[state as usize % ALPHABET.len()])
        })
        .collect()
}

struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

impl Reply {
    /// The cookie's value, from `sessionid=<value>; …`.
    fn value(&self) -> String {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie");
        let pair = set.split(';').next().expect("name=value");
        pair.strip_prefix("sessionid=")
            .expect("named sessionid")
            .to_owned()
    }
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(value) = cookie {
        req = req.header(COOKIE, format!("sessionid={value}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("a request"))
        .await
        .unwrap();
    let status = res.status();
    let all: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("Set-Cookie is ASCII").to_owned())
        .collect();
    assert!(all.len() <= 1, "{all:?}");
    let body = res
        .into_body()
        .collect()
        .await
        .expect("the body can be read")
        .to_bytes();
    Reply {
        status,
        set_cookie: all.into_iter().next(),
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    }
}

/// The contents of a cookie value, verified with the current key only.
fn decoded(value: &str) -> SessionMap {
    Signer::new(SECRET_KEY)
        .loads_session(value, SIGNED_COOKIES_SALT, None, OffsetDateTime::now_utc())
        .expect("a cookie we issued verifies under SECRET_KEY")
}

fn timestamp(value: &str) -> i64 {
    b62_decode(value.rsplit(':').nth(1).expect("payload:ts:sig")).expect("a base62 timestamp")
}

#[tokio::test]
async fn the_counter_lives_in_the_cookie() {
    let app = app(Settings::default());
    let first = send(&app, "/", None).await;
    assert_eq!(first.body, "0");
    let mut cookie = first.value();
    assert!(cookie.starts_with("eyJjb3VudGVyIjoxfQ:"), "{cookie}"); // {"counter":1}
    for expected in 1..=2 {
        let reply = send(&app, "/", Some(&cookie)).await;
        assert_eq!(reply.body, expected.to_string());
        cookie = reply.value();
        assert_eq!(decoded(&cookie)["counter"], expected + 1);
    }
    let set = send(&app, "/", Some(&cookie))
        .await
        .set_cookie
        .expect("a cookie");
    assert!(
        set.contains("; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"),
        "{set}"
    );
}

#[tokio::test]
async fn a_tampered_cookie_starts_over_with_a_fresh_cookie() {
    let app = app(Settings::default());
    let reply = send(&app, "/", Some(DJANGO_TAMPERED)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "0");
    let fresh = reply.value();
    assert_ne!(fresh, DJANGO_TAMPERED);
    assert_eq!(decoded(&fresh)["counter"], 1);
}

/// Django's `signed_cookies_bad_cookie_read`: a tampered cookie that is only
/// read is answered with a cookie holding a freshly signed empty session.
#[tokio::test]
async fn a_tampered_cookie_only_read_is_replaced_by_an_empty_session() {
    let app = app(Settings::default());
    let reply = send(&app, "/read", Some(DJANGO_TAMPERED)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "none");
    let value = reply.value();
    // Django's value at its time: e30:<ts>:<sig>; ours at ours.
    let signed_at = OffsetDateTime::from_unix_timestamp(timestamp(&value)).unwrap();
    let django =
        Signer::new(SECRET_KEY).dumps_session(&SessionMap::new(), SIGNED_COOKIES_SALT, signed_at);
    assert_eq!(value, django);
    assert!(value.starts_with("e30:"), "{value}");
    let set = reply.set_cookie.unwrap();
    assert!(
        set.contains("; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"),
        "{set}"
    );
}

#[tokio::test]
async fn logout_sends_a_removal_cookie() {
    let app = app(Settings::default());
    let cookie = send(&app, "/", None).await.value();
    let reply = send(&app, "/logout", Some(&cookie)).await;
    assert_eq!(reply.body, "logged out");
    let set = reply.set_cookie.expect("a removal cookie");
    assert!(
        set.starts_with("sessionid=\"\"; expires=Thu, 01 Jan 1970"),
        "{set}"
    );
    assert!(set.contains("Max-Age=0"), "{set}");
}

#[tokio::test]
async fn an_oversized_session_is_a_413_and_no_cookie() {
    let app = app(Settings::default());
    let reply = send(&app, "/big", None).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body.is_empty(), "{}", reply.body);
    assert_eq!(reply.set_cookie, None);
}

#[tokio::test]
async fn save_every_request_re_signs_the_cookie_with_a_fresh_timestamp() {
    let settings = Settings {
        save_every_request: true,
        ..Settings::default()
    };
    let app = app(settings);
    // A cookie signed 1000 s ago (valid until 1000 s before a fresh one).
    let mut data = SessionMap::new();
    data.insert("counter".into(), 5.into());
    let expires_at = OffsetDateTime::now_utc() + Duration::weeks(2) - Duration::seconds(1000);
    let old = store()
        .create(&Record::new(data, expires_at))
        .await
        .unwrap()
        .key;
    let before = OffsetDateTime::now_utc().unix_timestamp();
    assert!(timestamp(old.as_str()) <= before - 999);
    for path in ["/read", "/"] {
        let reply = send(&app, path, Some(old.as_str())).await;
        assert_eq!(reply.status, StatusCode::OK);
        let value = reply.value();
        assert!(timestamp(&value) >= before, "{path}: not re-signed");
        assert!(decoded(&value)["counter"].as_i64() >= Some(5));
    }
}

#[tokio::test]
async fn a_cookie_signed_with_a_fallback_key_is_reissued_under_secret_key() {
    let app = app(Settings::default());
    let mut data = SessionMap::new();
    data.insert("counter".into(), 41.into());
    let old =
        Signer::new(OLD_KEY).dumps_session(&data, SIGNED_COOKIES_SALT, OffsetDateTime::now_utc());
    let reply = send(&app, "/", Some(&old)).await;
    assert_eq!(reply.body, "41");
    // `decoded` accepts only SECRET_KEY.
    assert_eq!(decoded(&reply.value())["counter"], 42);
}

#[tokio::test]
async fn an_expired_cookie_starts_over() {
    let app = app(Settings::default());
    let mut data = SessionMap::new();
    data.insert("counter".into(), 9.into());
    let long_ago = OffsetDateTime::now_utc() - Duration::weeks(2) - Duration::seconds(5);
    let expired = signer().dumps_session(&data, SIGNED_COOKIES_SALT, long_ago);
    let reply = send(&app, "/", Some(&expired)).await;
    assert_eq!(reply.body, "0");
    assert_eq!(decoded(&reply.value())["counter"], 1);
    // Well within max_age, it counts on.
    let recent = signer().dumps_session(
        &data,
        SIGNED_COOKIES_SALT,
        OffsetDateTime::now_utc() - StdDuration::from_secs(60),
    );
    assert_eq!(send(&app, "/", Some(&recent)).await.body, "9");
}

/// A cookie that does not verify — tampered, signed with a key we do not
/// hold, under another salt, cut short, or past `max_age` — is read as an
/// empty session with one `warn!` on `sesame::security` each, no ERROR, and
/// no part of the value in the log.
#[tokio::test]
async fn each_forged_or_expired_cookie_is_one_security_warning_without_its_value() {
    let logs = Logs::default();
    let _guard = logs.install();
    let app = app(Settings::default());
    let mut data = SessionMap::new();
    data.insert("counter".into(), 7.into());
    let now = OffsetDateTime::now_utc();
    let good = signer().dumps_session(&data, SIGNED_COOKIES_SALT, now);
    assert_eq!(send(&app, "/read", Some(&good)).await.body, "7");
    assert!(
        logs.lines("WARN", "sesame::security").is_empty(),
        "{}",
        logs.text()
    );

    let cut = &good[..good.len() - 1];
    let cases = [
        DJANGO_TAMPERED.to_owned(),
        Signer::new("an-attackers-guess-at-the-secret-key").dumps_session(
            &data,
            SIGNED_COOKIES_SALT,
            now,
        ),
        signer().dumps_session(&data, "django.core.signing", now),
        cut.to_owned(),
        signer().dumps_session(&data, SIGNED_COOKIES_SALT, now - Duration::weeks(3)),
    ];
    for (i, value) in cases.iter().enumerate() {
        let reply = send(&app, "/read", Some(value)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "none"),
            "{value}"
        );
        assert_eq!(
            logs.lines("WARN", "sesame::security").len(),
            i + 1,
            "{value}: {}",
            logs.text()
        );
        let signature = value.rsplit(':').next().expect("payload:ts:sig");
        assert!(!logs.text().contains(&signature[..16]), "{value}");
        let payload = value.split(':').next().expect("payload:ts:sig");
        let payload = &payload[..payload.len().min(16)];
        assert!(payload.len() >= 8, "{value}");
        assert!(!logs.text().contains(payload), "{value}");
    }
    assert!(logs.lines("ERROR", "").is_empty(), "{}", logs.text());
}
