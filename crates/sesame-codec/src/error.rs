use thiserror::Error;

/// Why stored or received session data could not be decoded.
///
/// Every variant means "treat this as no session": Django turns each of these
/// cases into an empty session (and a `SuspiciousSession` log line where the
/// data was tampered with).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The data is longer than the decoder accepts.
    #[error("session data is too large ({len} bytes, limit {limit})")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The data is not valid JSON.
    #[error("session data is not valid JSON: {0}")]
    Json(String),
    /// The data is valid JSON but not an object.
    #[error("session data is not a JSON object")]
    NotAnObject,
    /// A date or time value is not in a form Django writes.
    #[error("invalid datetime value")]
    Datetime,
}
