//! Django's session framework, rebuilt for Rust web services.
//!
//! Sesame gives every request a [`Session`]: a lazy, dict-like handle with
//! the methods of Django's `SessionBase`, read from the store only when a
//! handler first uses it. [`SessionManagerLayer`] is Django's
//! `SessionMiddleware` as a tower layer: it reads the `sessionid` cookie,
//! and once the handler has run it saves the session and sets the cookie by
//! Django's rules. [`Settings`] holds every `SESSION_*` setting under
//! Django's name, with Django's default. The [stores](backends) keep
//! sessions in Django's own `django_session` table (SQLite, PostgreSQL,
//! MySQL / MariaDB), in the signed cookie itself, or in memory.
//!
//! # Add sessions to an axum app
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sesame::{Session, SessionManagerLayer, backends::MemoryStore};
//!
//! async fn counter(session: Session) -> sesame::Result<String> {
//!     let n: i64 = session.get("counter").await?.unwrap_or(0);
//!     session.insert("counter", n + 1).await?;
//!     Ok(format!("Counter : {n}"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = MemoryStore::new(); // or SqliteStore::open(path, settings.signer()?)? then store.migrate().await?
//!     let app = Router::new().route("/", get(counter)).layer(SessionManagerLayer::new(store));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     Ok(axum::serve(listener, app).await?)
//! }
//! ```
//!
//! Each reload of `/` counts one more, for as long as the browser keeps its
//! `sessionid` cookie and the store keeps the session (two weeks by
//! default). The same app, driven without a socket as a test would:
//!
//! ```
//! # use axum::{Router, routing::get};
//! # use sesame::{Session, SessionManagerLayer, backends::MemoryStore};
//! # async fn counter(session: Session) -> sesame::Result<String> {
//! #     let n: i64 = session.get("counter").await?.unwrap_or(0);
//! #     session.insert("counter", n + 1).await?;
//! #     Ok(format!("Counter : {n}"))
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::body::{Body, to_bytes};
//! use http::Request;
//! use http::header::{COOKIE, SET_COOKIE};
//! use tower::ServiceExt;
//!
//! let app = Router::new().route("/", get(counter)).layer(SessionManagerLayer::new(MemoryStore::new()));
//!
//! let first = app.clone().oneshot(Request::get("/").body(Body::empty())?).await?;
//! let set_cookie = first.headers()[SET_COOKIE].to_str()?;
//! let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned(); // sessionid=…
//! assert_eq!(to_bytes(first.into_body(), 64).await?, "Counter : 0");
//!
//! let request = Request::get("/").header(COOKIE, &cookie).body(Body::empty())?;
//! let second = app.oneshot(request).await?;
//! assert_eq!(to_bytes(second.into_body(), 64).await?, "Counter : 1");
//! # Ok(()) }
//! ```
//!
//! Any tower-based server can use the layer: the session is in the request's
//! extensions. Outside a request, [`Session::new`] opens a session by key,
//! like Django's `SessionStore(session_key=…)`. Handlers can return
//! [`sesame::Result`](Result): an [`Error`] is a response with the status
//! Django's rules give it and an empty body.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor, and `Error` as a response |
//! | `sqlite` | yes | [`SqliteStore`], on a bundled SQLite through rusqlite |
//! | `postgres` | no | [`PostgresStore`], through sqlx |
//! | `mysql` | no | [`MySqlStore`], for MySQL and MariaDB, through sqlx |
//! | `redis` | no | [`RedisStore`], through redis-rs (multiplexed, reconnecting) |
//! | `redis-cluster` | no | [`RedisStore`] on a Redis Cluster (`redis+cluster://`) |
//! | `redis-tls` | no | `rediss://` for [`RedisStore`], with rustls |
//! | `memcached` | no | [`MemcachedStore`], with its own small client on tokio |
//! | `full` | no | all of the above (for CI and docs) |
//!
//! [`SessionManagerLayer`], [`Session`], [`MemoryStore`](backends::MemoryStore)
//! and [`SignedCookieStore`](backends::SignedCookieStore) need no feature.
//!
//! # Stores
//!
//! | store | replaces Django's `SESSION_ENGINE` | feature |
//! |---|---|---|
//! | [`MemoryStore`](backends::MemoryStore) | none; the closest is `cache` on `LocMemCache` | always |
//! | [`SqliteStore`] | `django.contrib.sessions.backends.db` on SQLite | `sqlite` |
//! | [`PostgresStore`] | `django.contrib.sessions.backends.db` on PostgreSQL | `postgres` |
//! | [`MySqlStore`] | `django.contrib.sessions.backends.db` on MySQL / MariaDB | `mysql` |
//! | [`SignedCookieStore`](backends::SignedCookieStore) | `django.contrib.sessions.backends.signed_cookies` | always |
//! | [`FileStore`](backends::FileStore) | `django.contrib.sessions.backends.file` | always |
//! | [`MemcachedStore`] | `django.contrib.sessions.backends.cache` on `PyMemcacheCache` | `memcached` |
//! | [`RedisStore`] | `django.contrib.sessions.backends.cache` on `RedisCache` | `redis` |
//! | [`CachedDbStore`](backends::CachedDbStore) | `django.contrib.sessions.backends.cached_db` | always |
//!
//! Any type implementing [`SessionStore`](backends::SessionStore) is a store: see
//! [the stores guide](docs::stores).
//!
//! # Guides
//!
//! - [Settings](docs::settings): every setting, its Django name, default,
//!   environment variable and validation.
//! - [Stores](docs::stores): the stores, the rules every store keeps, and how
//!   to write one.
//! - [Concurrency](docs::concurrency): what happens when two requests change
//!   one session (`Merge`, `LastWriteWins`, `Strict`).
//! - [Django compatibility](docs::django_compat): what matches Django today,
//!   and what does not yet.
//!
//! # Logging
//!
//! Sesame logs through [`tracing`](https://docs.rs/tracing), and no log line
//! holds session data or a whole session key (keys show as their first four
//! characters).
//!
//! | target | level | when |
//! |---|---|---|
//! | `sesame::security` | `WARN` | stored data could not be decoded; the request got an empty session (Django's `django.security.SuspiciousSession`); or `Cookie` headers over the limit (431) |
//! | `sesame::store` | `ERROR` | a store call failed or timed out; the request gets the [`OutagePolicy`] (503 by default) |
//! | `sesame::middleware` | `WARN` | a session deleted during the request (400), a save conflict under `Strict` (409), a session too large to save (413), or a handler returned a session [`Error`] |
//! | `sesame::middleware` | `ERROR` | the layer's save failed for another reason (500), a fail-open request's changes were dropped, or `Session` was extracted on a route without the layer |
//!
#![cfg_attr(feature = "sqlite", doc = "[`SqliteStore`]: backends::SqliteStore")]
#![cfg_attr(not(feature = "sqlite"), doc = "[`SqliteStore`]: backends")]
#![cfg_attr(
    feature = "postgres",
    doc = "[`PostgresStore`]: backends::PostgresStore"
)]
#![cfg_attr(not(feature = "postgres"), doc = "[`PostgresStore`]: backends")]
#![cfg_attr(feature = "mysql", doc = "[`MySqlStore`]: backends::MySqlStore")]
#![cfg_attr(not(feature = "mysql"), doc = "[`MySqlStore`]: backends")]
#![cfg_attr(
    feature = "memcached",
    doc = "[`MemcachedStore`]: backends::MemcachedStore"
)]
#![cfg_attr(not(feature = "memcached"), doc = "[`MemcachedStore`]: backends")]
#![cfg_attr(feature = "redis", doc = "[`RedisStore`]: backends::RedisStore")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisStore`]: backends")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
pub mod backends;
mod error;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
mod key;
mod middleware;
mod session;
mod settings;
mod shared_map;

pub use error::{BoxError, Error, Result};
pub use expiry::{Expiry, expire_at_browser_close, expiry_age, expiry_date};
pub use key::{
    InvalidKey, KEY_LENGTH, KeyKind, MAX_KEY_LENGTH, MAX_SIGNED_KEY_LENGTH, MIN_KEY_LENGTH,
    Redacted, SessionKey,
};
pub use middleware::{ResponseFuture, SessionManager, SessionManagerLayer};
pub use sesame_codec as codec;
pub use sesame_codec::Signer;
pub use session::{ConflictPolicy, Session};
pub use settings::{OutagePolicy, SameSite, Settings, SettingsError};

/// Entry points for the fuzz targets in the repository's `fuzz/` folder.
///
/// Not part of the API: hidden from the docs, outside semver, free to change
/// in any release.
#[doc(hidden)]
pub mod __fuzz {
    use crate::{KeyKind, SessionKey};

    /// Runs the middleware's session-cookie parser over a request's headers:
    /// whether a cookie named `name` was sent, and the well-formed keys kept.
    #[must_use]
    pub fn read_cookie(
        headers: &http::HeaderMap,
        name: &str,
        kind: KeyKind,
    ) -> (bool, Vec<SessionKey>) {
        let incoming =
            crate::middleware::cookie::read(headers.get_all(http::header::COOKIE), name, kind);
        (incoming.present, incoming.candidates.to_vec())
    }
}

/// Guides beyond the API reference, one page each.
///
/// Each page is a Markdown file in the crate's `docs/` folder, included here
/// so that its examples run as doc-tests.
pub mod docs {
    #[doc = include_str!("../docs/settings.md")]
    pub mod settings {}

    #[doc = include_str!("../docs/stores.md")]
    pub mod stores {}

    #[doc = include_str!("../docs/concurrency.md")]
    pub mod concurrency {}

    #[doc = include_str!("../docs/django-compat.md")]
    pub mod django_compat {}
}
