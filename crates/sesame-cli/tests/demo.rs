//! The demo router, driven in-process on every store the CLI builds by
//! default (memory and SQLite): the seed's counter, the Django peer's
//! routes, and Django's cookie rules as a browser sees them.
#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns: a failed unwrap is a failed test"
)]

mod common;

use axum::Router;
use axum::http::{StatusCode, header};
use serde_json::json;
use sesame::backends::SessionStore;
use sesame::{SessionKey, Settings};
use sesame_cli::demo::{AUTH_USER_BACKEND, AUTH_USER_ID, MODEL_BACKEND, SET_BODY_LIMIT};
use sesame_cli::store_url::{Store, StoreUrl};
use time::{Duration, OffsetDateTime, PrimitiveDateTime, format_description};

use common::{get, post, shown_counter};

/// A store for one test, with the folder its database lives in.
struct Fixture {
    store: Store,
    url: StoreUrl,
    _dir: Option<common::TempDir>,
}

impl Fixture {
    async fn memory() -> Self {
        Self::open(StoreUrl::Memory, None).await
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite() -> Self {
        let dir = common::TempDir::new("demo-sqlite");
        let url = StoreUrl::Sqlite(dir.path().join("db.sqlite3"));
        Self::open(url, Some(dir)).await
    }

    async fn open(url: StoreUrl, dir: Option<common::TempDir>) -> Self {
        let store = Store::open(&url, sesame::Signer::new("sesame-test-secret-key"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            _dir: dir,
        }
    }

    fn app(&self) -> Router {
        self.app_with(Settings::default())
    }

    fn app_with(&self, settings: Settings) -> Router {
        self.store.app(settings).unwrap()
    }

    /// Moves the stored record's expiry into the past, through the store.
    async fn expire(&self, key: &str) {
        let key: SessionKey = key.parse().unwrap();
        match &self.store {
            Store::Memory(s) => expire_in(s, key).await,
            #[cfg(feature = "sqlite")]
            Store::Sqlite(s) => expire_in(s, key).await,
            other => unreachable!("fixtures use memory or SQLite, not {other:?}"),
        }
    }
}

async fn expire_in(store: &impl SessionStore, key: SessionKey) {
    let mut record = store.load(&key).await.unwrap().expect("a live record");
    record.expires_at = OffsetDateTime::now_utc() - Duration::seconds(10);
    record.version = None;
    store.save(&key, &record).await.unwrap();
}

/// Runs each case once per store.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Fixture::memory().await).await;
            })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Fixture::sqlite().await).await;
            })*
        }
    };
}

on_every_store!(
    counter_counts_with_the_cookie,
    set_cookie_has_djangos_attributes,
    plain_and_healthz_never_touch_the_session,
    expired_record_starts_over_with_a_new_key,
    login_as_rotates_the_key_and_whoami_shows_the_user,
    login_as_another_user_starts_a_new_session,
    logout_removes_the_cookie_and_forgets_the_key,
    set_round_trips_non_ascii_data,
    set_rejects_bad_bodies,
    set_expiry_changes_the_cookie_lifetime,
    whoami_without_a_cookie_shows_an_empty_session,
    unknown_cookie_is_never_adopted,
);

async fn counter_counts_with_the_cookie(f: Fixture) {
    let app = f.app();
    let first = get(&app, "/", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert!(first.body.starts_with("<!DOCTYPE html>"), "{}", first.body);
    assert!(
        first
            .body
            .contains("<title>Hello World</title>\nHello World <br>\n")
    );
    assert_eq!(shown_counter(&first.body), 0);
    assert_eq!(first.header(header::VARY), Some("Cookie"));
    let key = first.new_key().expect("a session cookie");

    for expected in [1, 2] {
        let next = get(&app, "/", Some(&key)).await;
        assert_eq!(next.status, StatusCode::OK);
        assert!(next.body.contains(&format!("Counter : <b>{expected}</b>")));
        // Same session: the cookie is refreshed under the same key.
        assert_eq!(next.new_key().as_deref(), Some(key.as_str()));
    }
}

async fn set_cookie_has_djangos_attributes(f: Fixture) {
    let app = f.app();
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let reply = get(&app, "/", None).await;
    let cookie = reply.set_cookie().expect("a session cookie");
    let parts: Vec<&str> = cookie.split("; ").collect();
    let [
        pair,
        expires,
        "HttpOnly",
        "Max-Age=1209600",
        "Path=/",
        "SameSite=Lax",
    ] = parts[..]
    else {
        panic!("not Django's cookie shape: {cookie}");
    };
    let key = pair.strip_prefix("sessionid=").unwrap();
    assert_eq!(key.len(), 32, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let expires = expires.strip_prefix("expires=").unwrap();
    let format = format_description::parse(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .unwrap();
    let at = PrimitiveDateTime::parse(expires, &format)
        .unwrap()
        .assume_utc();
    let after = OffsetDateTime::now_utc();
    let two_weeks = Duration::seconds(1_209_600);
    assert!(
        at >= before + two_weeks && at <= after + two_weeks,
        "{expires}"
    );
}

async fn plain_and_healthz_never_touch_the_session(f: Fixture) {
    let app = f.app();
    let key = get(&app, "/", None).await.new_key().unwrap();
    for cookie in [None, Some(key.as_str())] {
        let plain = get(&app, "/plain", cookie).await;
        assert_eq!(plain.status, StatusCode::OK);
        assert!(!plain.body.is_empty());
        assert_eq!(plain.set_cookie(), None);
        assert_eq!(plain.header(header::VARY), None);
        let health = get(&app, "/healthz", cookie).await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::OK, "ok")
        );
        assert_eq!(health.set_cookie(), None);
        assert_eq!(health.header(header::VARY), None);
    }
    // The session was left as it was.
    assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 1);
}

async fn expired_record_starts_over_with_a_new_key(f: Fixture) {
    let app = f.app_with(Settings {
        cookie_age: 1,
        ..Settings::default()
    });
    let first = get(&app, "/", None).await;
    assert!(first.set_cookie().unwrap().contains("Max-Age=1;"));
    let key = first.new_key().unwrap();
    assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 1);

    f.expire(&key).await;
    let after = get(&app, "/", Some(&key)).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(shown_counter(&after.body), 0);
    let new_key = after.new_key().expect("a new session cookie");
    assert_ne!(new_key, key);
}

async fn login_as_rotates_the_key_and_whoami_shows_the_user(f: Fixture) {
    let app = f.app();
    let before = get(&app, "/", None).await.new_key().unwrap();

    let login = get(&app, "/login-as/42", Some(&before)).await;
    assert_eq!(login.status, StatusCode::OK);
    let after = login.new_key().expect("a cookie with the new key");
    assert_ne!(after, before);
    let shown = login.json();
    assert_eq!(shown["session_key"], json!(after));
    assert_eq!(shown["session"][AUTH_USER_ID], json!("42"));
    assert_eq!(shown["session"][AUTH_USER_BACKEND], json!(MODEL_BACKEND));
    // cycle_key keeps the data.
    assert_eq!(shown["session"]["counter"], json!(1));
    assert_eq!(
        shown["user"],
        json!({"authenticated": true, "id": 42, "username": "user42"})
    );

    let whoami = get(&app, "/whoami", Some(&after)).await.json();
    assert_eq!(whoami["session_key"], json!(after));
    assert_eq!(whoami["session"][AUTH_USER_ID], json!("42"));
    assert_eq!(whoami["engine"], json!(f.store.engine()));

    // The pre-login key is dead: no session fixation.
    let old = get(&app, "/whoami", Some(&before)).await.json();
    assert_eq!(old["session_key"], json!(null));
    assert_eq!(old["session"], json!({}));

    // Logging in again as the same user keeps the session, as Django does.
    let again = get(&app, "/login-as/42", Some(&after)).await;
    assert_eq!(again.new_key().as_deref(), Some(after.as_str()));
}

async fn login_as_another_user_starts_a_new_session(f: Fixture) {
    let app = f.app();
    let first = get(&app, "/login-as/1", None).await.new_key().unwrap();
    post(&app, "/set", Some(&first), r#"{"cart": [1, 2]}"#).await;
    let second = get(&app, "/login-as/2", Some(&first)).await;
    let key = second.new_key().unwrap();
    assert_ne!(key, first);
    let shown = second.json();
    assert_eq!(shown["session"].get("cart"), None, "{shown}");
    assert_eq!(shown["session"][AUTH_USER_ID], json!("2"));
}

async fn logout_removes_the_cookie_and_forgets_the_key(f: Fixture) {
    let app = f.app();
    let key = get(&app, "/login-as/7", None).await.new_key().unwrap();

    let logout = get(&app, "/logout", Some(&key)).await;
    assert_eq!(logout.status, StatusCode::OK);
    assert_eq!(logout.body, "logged out");
    let removal = logout.set_cookie().expect("a removal cookie");
    assert!(removal.starts_with("sessionid=\"\";"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(
        removal.contains("expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        "{removal}"
    );

    let whoami = get(&app, "/whoami", Some(&key)).await.json();
    assert_eq!(whoami["session_key"], json!(null));
    assert_eq!(whoami["user"]["authenticated"], json!(false));
    let counter = get(&app, "/", Some(&key)).await;
    assert_eq!(shown_counter(&counter.body), 0);
    assert_ne!(counter.new_key().unwrap(), key);
}

async fn set_round_trips_non_ascii_data(f: Fixture) {
    let app = f.app();
    let data = json!({"name": "Zoë Ørsted", "emoji": "😀🍪", "nested": {"ключ": ["é", 1.5, null]}});
    let reply = post(&app, "/set", None, data.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    // UTF-8, not \u escapes (the peer uses ensure_ascii=False).
    assert!(reply.body.contains("Zoë Ørsted") && reply.body.contains("😀🍪"));
    assert!(!reply.body.contains("\\u"), "{}", reply.body);
    let key = reply.new_key().unwrap();
    assert_eq!(reply.json()["session"], data);

    let more = post(&app, "/set", Some(&key), r#"{"name": "Zoë", "n": 1}"#).await;
    assert_eq!(more.new_key().as_deref(), Some(key.as_str()));
    let whoami = get(&app, "/whoami", Some(&key)).await.json();
    assert_eq!(whoami["session"]["name"], json!("Zoë"));
    assert_eq!(whoami["session"]["emoji"], json!("😀🍪"));
    assert_eq!(whoami["session"]["nested"], data["nested"]);
    assert_eq!(whoami["session"]["n"], json!(1));
}

async fn set_rejects_bad_bodies(f: Fixture) {
    let app = f.app();
    let key = get(&app, "/", None).await.new_key().unwrap();
    for (body, message) in [
        ("{", "body must be JSON"),
        ("", "body must be JSON"),
        ("[1, 2]", "body must be a JSON object"),
        ("\"counter\"", "body must be a JSON object"),
    ] {
        let reply = post(&app, "/set", Some(&key), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(reply.body, message);
        assert_eq!(reply.set_cookie(), None);
    }
    let invalid_utf8 = post(&app, "/set", Some(&key), vec![b'{', b'"', 0xff, b'"', b'}']).await;
    assert_eq!(invalid_utf8.status, StatusCode::BAD_REQUEST);

    // Just over the limit, and a 16 MiB body: 413 from axum's body limit,
    // before the session is touched.
    for blob in [SET_BODY_LIMIT, 16 << 20] {
        let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(blob));
        let too_big = post(&app, "/set", Some(&key), big).await;
        assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE, "{blob}");
        assert_eq!(too_big.set_cookie(), None);
    }

    assert_eq!(
        get(&app, "/set", Some(&key)).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Nothing above changed the session.
    assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 1);
}

async fn set_expiry_changes_the_cookie_lifetime(f: Fixture) {
    let app = f.app();
    let reply = get(&app, "/set-expiry/60", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookie().unwrap().contains("; Max-Age=60;"));
    assert_eq!(reply.json()["session"]["_session_expiry"], json!(60));
    let key = reply.new_key().unwrap();

    // 0: until the browser closes, so neither Max-Age nor expires.
    let browser = get(&app, "/set-expiry/0", Some(&key)).await;
    let cookie = browser.set_cookie().unwrap();
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("expires"),
        "{cookie}"
    );
    assert_eq!(browser.json()["session"]["_session_expiry"], json!(0));

    for bad in ["-1", "x", "1.5"] {
        let reply = get(&app, &format!("/set-expiry/{bad}"), Some(&key)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{bad}");
    }
    assert_eq!(
        get(&app, "/login-as/abc", None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn whoami_without_a_cookie_shows_an_empty_session(f: Fixture) {
    let app = f.app();
    let reply = get(&app, "/whoami", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "engine": f.store.engine(),
            "session_key": null,
            "session": {},
            "user": {"authenticated": false, "id": null, "username": null},
        })
    );
    // Read, not written: Vary, but no cookie and nothing stored.
    assert_eq!(reply.set_cookie(), None);
    assert_eq!(reply.header(header::VARY), Some("Cookie"));
    assert_eq!(f.store.clear_expired().await.unwrap(), 0);
}

async fn unknown_cookie_is_never_adopted(f: Fixture) {
    let app = f.app();
    let forged = "attackerchosenkey0123456789abcde";
    let reply = get(&app, "/", Some(forged)).await;
    assert_eq!(shown_counter(&reply.body), 0);
    let key = reply.new_key().unwrap();
    assert_ne!(key, forged);
    assert_eq!(
        get(&app, "/whoami", Some(forged)).await.json()["session_key"],
        json!(null)
    );
    let _ = &f.url;
}

#[cfg(feature = "sqlite")]
mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn restart_keeps_counting() {
        let f = Fixture::sqlite().await;
        let key = {
            let app = f.app();
            let key = get(&app, "/", None).await.new_key().unwrap();
            assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 1);
            key
        };
        // A new store and router on the same file: a restarted server.
        let reopened = Fixture::open(f.url.clone(), None).await;
        drop(f.store);
        let app = reopened.app();
        assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 2);
    }

    #[tokio::test]
    async fn corrupted_session_data_gives_an_empty_session() {
        let f = Fixture::sqlite().await;
        let app = f.app();
        let key = get(&app, "/", None).await.new_key().unwrap();
        let StoreUrl::Sqlite(path) = &f.url else {
            unreachable!()
        };
        let db = rusqlite::Connection::open(path).unwrap();
        let changed = db
            .execute(
                "UPDATE django_session SET session_data = 'not-a-session!' WHERE session_key = ?1",
                [&key],
            )
            .unwrap();
        assert_eq!(changed, 1);

        let whoami = get(&app, "/whoami", Some(&key)).await;
        assert_eq!(whoami.status, StatusCode::OK);
        assert_eq!(whoami.json()["session"], json!({}));
        // As Django's db engine: the row exists, so its key is kept and the
        // next save overwrites the corrupt data under it.
        assert_eq!(whoami.json()["session_key"], json!(key));
        let counter = get(&app, "/", Some(&key)).await;
        assert_eq!(counter.status, StatusCode::OK);
        assert_eq!(shown_counter(&counter.body), 0);
        assert_eq!(counter.new_key().unwrap(), key);
        assert_eq!(shown_counter(&get(&app, "/", Some(&key)).await.body), 1);
    }
}
