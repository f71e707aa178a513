//! The one error type of the `sesame` crate.

use thiserror::Error;

/// A boxed error from a store's driver, kept whole so its chain can be logged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for fallible Sesame operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
///
/// With the `axum` feature, `Error` is also a response: handlers can use `?`
/// on session calls and get the status the middleware rules prescribe
/// (503 with `Retry-After` for a store outage, 400 for an interrupted
/// session, 413 for a session too large to save), with an empty body: no error text ever reaches a client.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The stored record changed since it was loaded (compare-and-swap failed).
    #[error("the session was changed concurrently")]
    Conflict,
    /// The record was deleted (or expired) while the request held it.
    #[doc(alias = "UpdateError")]
    #[doc(alias = "SessionInterrupted")]
    #[error("the session was deleted during the request")]
    Missing,
    /// A freshly minted key already exists in the store.
    #[doc(alias = "CreateError")]
    #[error("session key collision")]
    KeyCollision,
    /// Stored data could not be decoded.
    #[error("stored session data is corrupt")]
    Corrupt(#[from] sesame_codec::Error),
    /// The store did not answer within the configured timeout.
    #[error("the session store timed out")]
    Timeout,
    /// The store failed (connection refused, I/O error, …).
    #[error("session store error")]
    Backend(#[source] BoxError),
    /// A value did not serialise to, or deserialise from, JSON as asked.
    #[error("session value does not match the requested type")]
    Json(#[source] serde_json::Error),
    /// The session cannot be saved: it belongs to a request that runs with the
    /// store unavailable, or its data would not fit the store.
    #[error("the session cannot be saved: {0}")]
    Unsaveable(&'static str),
    /// The session is too large to save: its JSON exceeds
    /// [`Settings::max_session_size`](crate::Settings::max_session_size)
    /// (1 MiB by default), or a signed cookie would exceed what a browser
    /// keeps (4096 bytes for `name=value`). Nothing was saved; the
    /// middleware answers 413 Content Too Large with an empty body.
    #[error("the session is too large for its store ({len} bytes, limit {limit})")]
    TooLarge {
        /// The size the session would take, in bytes.
        len: usize,
        /// The most the store accepts, in bytes.
        limit: usize,
    },
}

impl Error {
    /// Wraps a driver error: `.map_err(Error::backend)?`.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(err.into())
    }

    /// Whether this error means the store is unreachable or failing (an outage),
    /// as opposed to a fact about the session itself.
    #[must_use]
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Timeout | Self::Backend(_))
    }
}
