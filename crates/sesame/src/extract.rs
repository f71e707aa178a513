//! The axum integration: `Session` as an extractor, `Error` as a response.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{Error, Session};

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!(
                target: "sesame::middleware",
                "Session extractor used on a route without SessionManagerLayer"
            );
            StatusCode::INTERNAL_SERVER_ERROR
        })
    }
}

impl IntoResponse for Error {
    /// The status the middleware rules give this error, with an empty body.
    fn into_response(self) -> Response {
        let status = match &self {
            e if e.is_outage() => return crate::middleware::unavailable(),
            Self::Unsaveable(reason) if *reason == crate::session::STORE_UNAVAILABLE => {
                return crate::middleware::unavailable();
            }
            // What the request asked to store does not fit: see DESIGN.md,
            // "Size limits are 4xx".
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Missing => StatusCode::BAD_REQUEST,
            Self::Conflict => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(target: "sesame::middleware", error = %self, "session error answered with {status}");
        status.into_response()
    }
}
