//! The demo app: the seed's counter page and the Django peer's routes
//! (`shared/django-compat/djapp/peer`), so one test can drive both.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | the seed's page: shows `counter` (default 0), stores `counter + 1` |
//! | `GET /plain` | a small text body; never touches the session |
//! | `GET /whoami` | JSON: `engine`, `session_key`, `session` (the contents), `user` |
//! | `GET /login-as/{id}` | Django's `login()`: new key, then `_auth_user_id` and `_auth_user_backend`; answers like `/whoami` |
//! | `GET /logout` | Django's `logout()`: `flush()`; answers `logged out` |
//! | `POST /set` | merges a JSON object (at most 64 KiB) into the session; answers like `/whoami` |
//! | `GET /set-expiry/{seconds}` | `set_expiry(seconds)`; answers like `/whoami` |
//! | `GET /healthz` | `ok`; never touches the session |
//!
//! Handlers return `sesame::Result`, so a store outage becomes the
//! middleware's 503 and an interrupted session its 400, with empty bodies.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sesame::backends::SessionStore;
use sesame::{Session, SessionManagerLayer, Settings, SettingsError};

/// Largest body `POST /set` accepts; beyond it the answer is 413.
pub const SET_BODY_LIMIT: usize = 64 * 1024;

/// The session key Django's auth stores the user's id under.
pub const AUTH_USER_ID: &str = "_auth_user_id";

/// The session key Django's auth stores the authentication backend under.
pub const AUTH_USER_BACKEND: &str = "_auth_user_backend";

/// The backend `/login-as` records, as the Django peer does.
pub const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";

/// The `engine` names `/whoami` reports, one per store (the Django peer
/// reports its `SESSION_ENGINE`).
pub mod engine {
    /// `memory:`.
    pub const MEMORY: &str = "sesame.backends.MemoryStore";
    /// `sqlite://…`.
    pub const SQLITE: &str = "sesame.backends.SqliteStore";
    /// `postgres://…`.
    pub const POSTGRES: &str = "sesame.backends.PostgresStore";
    /// `mysql://…`.
    pub const MYSQL: &str = "sesame.backends.MySqlStore";
    /// `signed-cookies:`.
    pub const SIGNED_COOKIES: &str = "sesame.backends.SignedCookieStore";
    /// `file:///…`.
    pub const FILE: &str = "sesame.backends.FileStore";
    /// `redis://…`, `redis+cluster://…`.
    pub const REDIS: &str = "sesame.backends.RedisStore";
    /// `--cache URL` with a database `--store`.
    pub const CACHED_DB: &str = "sesame.backends.CachedDbStore";
    /// `memcached://…`.
    pub const MEMCACHED: &str = "sesame.backends.MemcachedStore";
}

#[derive(Debug, Clone, Copy)]
struct Demo {
    engine: &'static str,
}

/// The demo router on `store`, with `settings`; `engine` is the name
/// `/whoami` reports.
///
/// # Errors
///
/// The first inconsistent setting (see [`Settings::validate`]).
pub fn app(
    store: impl SessionStore,
    engine: &'static str,
    settings: Settings,
) -> Result<Router, SettingsError> {
    settings.validate()?;
    let sessions = SessionManagerLayer::new(store).with_settings(settings);
    Ok(Router::new()
        .route("/", get(counter))
        .route("/plain", get(plain))
        .route("/whoami", get(whoami))
        .route("/login-as/{id}", get(login_as))
        .route("/logout", get(logout))
        .route(
            "/set",
            post(set_values).layer(DefaultBodyLimit::max(SET_BODY_LIMIT)),
        )
        .route("/set-expiry/{seconds}", get(set_expiry))
        .route("/healthz", get(healthz))
        .layer(sessions)
        .with_state(Demo { engine }))
}

/// The seed's `helloworld.html`, rendered with `counter`.
#[must_use]
pub fn hello_world_page(counter: i64) -> String {
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n    \
         <meta charset=\"UTF-8\">\n    \
         <title>Hello World</title>\n\
         Hello World <br>\n\
         Counter : <b>{counter}</b>\n"
    )
}

/// `GET /`: the seed's `HelloWorldView`.
async fn counter(session: Session) -> sesame::Result<Response> {
    let old: i64 = session.get("counter").await?.unwrap_or(0);
    // Python's integers do not overflow; ours would. Refuse rather than wrap
    // (a 5xx saves nothing).
    let Some(new) = old.checked_add(1) else {
        return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    session.insert("counter", new).await?;
    Ok(Html(hello_world_page(old)).into_response())
}

/// `GET /plain`: no session access at all.
async fn plain() -> &'static str {
    "Hello World"
}

/// `GET /healthz`.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /whoami`.
async fn whoami(State(demo): State<Demo>, session: Session) -> sesame::Result<Json<Value>> {
    describe(&session, demo.engine).await.map(Json)
}

/// `GET /login-as/{id}`: Django's `login()` for user `id`.
///
/// As Django: a session already logged in as another user is flushed (a new,
/// empty session), one not logged in gets a new key (`cycle_key()`), one
/// already logged in as this user is kept. (Django also stores
/// `_auth_user_hash`, derived from the user's password hash; the demo has no
/// user table, so it stores none.)
async fn login_as(
    State(demo): State<Demo>,
    session: Session,
    Path(id): Path<String>,
) -> sesame::Result<Response> {
    let Some(id) = django_int::<u64>(&id) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    match session.get_value(AUTH_USER_ID).await? {
        Some(current) if user_id(&current) == Some(id) => {}
        Some(_) => session.flush().await?,
        None => session.cycle_key().await?,
    }
    session.insert(AUTH_USER_ID, id.to_string()).await?;
    session.insert(AUTH_USER_BACKEND, MODEL_BACKEND).await?;
    Ok(Json(describe(&session, demo.engine).await?).into_response())
}

/// `GET /logout`: Django's `logout()`.
async fn logout(session: Session) -> sesame::Result<&'static str> {
    session.flush().await?;
    Ok("logged out")
}

/// `POST /set`: merges a JSON object into the session.
async fn set_values(
    State(demo): State<Demo>,
    session: Session,
    body: Bytes,
) -> sesame::Result<Response> {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return Ok((StatusCode::BAD_REQUEST, "body must be JSON").into_response());
    };
    let Value::Object(entries) = value else {
        return Ok((StatusCode::BAD_REQUEST, "body must be a JSON object").into_response());
    };
    session.update(entries).await?;
    Ok(Json(describe(&session, demo.engine).await?).into_response())
}

/// `GET /set-expiry/{seconds}`.
async fn set_expiry(
    State(demo): State<Demo>,
    session: Session,
    Path(seconds): Path<String>,
) -> sesame::Result<Response> {
    let Some(seconds) = django_int::<i64>(&seconds) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    session.set_expiry(seconds).await?;
    Ok(Json(describe(&session, demo.engine).await?).into_response())
}

/// What `/whoami` shows, with the Django peer's keys.
async fn describe(session: &Session, engine: &'static str) -> sesame::Result<Value> {
    // Load first: the key is the stored record's only once loaded (an
    // unknown cookie key is never shown as the session's key).
    let contents = session.to_map().await?;
    let key = session.session_key();
    let user = contents
        .get(AUTH_USER_ID)
        .and_then(user_id)
        .filter(|_| contents.get(AUTH_USER_BACKEND).and_then(Value::as_str) == Some(MODEL_BACKEND));
    Ok(json!({
        "engine": engine,
        "session_key": key.as_ref().map(sesame::SessionKey::as_str),
        "session": contents,
        "user": {
            "authenticated": user.is_some(),
            "id": user,
            // The Django peer names the users it creates `user<id>`.
            "username": user.map(|id| format!("user{id}")),
        },
    }))
}

/// The user id stored under `_auth_user_id` (a string of digits, as Django
/// stores a primary key).
fn user_id(value: &Value) -> Option<u64> {
    value.as_str().and_then(django_int)
}

/// Parses what Django's `<int:…>` path converter matches: ASCII digits only
/// (no sign), read as an integer.
fn django_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_the_seed_template() {
        assert_eq!(
            hello_world_page(7),
            "<!DOCTYPE html>\n<html lang=\"en\">\n    <meta charset=\"UTF-8\">\n    \
             <title>Hello World</title>\nHello World <br>\nCounter : <b>7</b>\n"
        );
    }

    #[test]
    fn path_integers_are_digits_only() {
        assert_eq!(django_int::<u64>("42"), Some(42));
        assert_eq!(django_int::<u64>("007"), Some(7));
        for bad in ["", "+1", "-1", "1e3", " 1", "x"] {
            assert_eq!(django_int::<i64>(bad), None, "{bad:?}");
        }
        assert_eq!(django_int::<i64>("99999999999999999999"), None);
    }
}
