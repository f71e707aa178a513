use thiserror::Error;

/// Why stored or received session data could not be decoded.
///
/// Every variant means "treat this as no session": Django turns each of these
/// cases into an empty session. The variants say why, so a caller can choose
/// the log line: Django logs [`Error::BadSignature`] and [`Error::Expired`]
/// on its `django.security.SuspiciousSession` logger and stays silent on the
/// others.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The signature matches none of the keys (`SECRET_KEY`, then each fallback).
    ///
    /// Also returned when the value has no `:` at all. Django raises
    /// `signing.BadSignature` in both cases.
    #[error("session data has a bad signature")]
    BadSignature,
    /// The signature is valid but older than the `max_age` the caller allows.
    ///
    /// Django raises `signing.SignatureExpired`.
    #[error("signed session data is {age_secs} s old, limit {max_age_secs} s")]
    Expired {
        /// Age of the signature in whole seconds (rounded down).
        age_secs: i64,
        /// The `max_age` that was exceeded, in whole seconds (rounded down).
        max_age_secs: u64,
    },
    /// Correctly signed, but not laid out as Django lays it out: no timestamp
    /// field, a timestamp that is not base62, or a payload that is not base64.
    #[error("session data is malformed: {0}")]
    Malformed(&'static str),
    /// The input, or the data it decompresses to, is longer than the decoder accepts.
    #[error("session data is too large ({len} bytes, limit {limit})")]
    TooLarge {
        /// Length in bytes; for decompressed data, the length at which
        /// decompression was stopped (`limit + 1`).
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The payload is marked as compressed (a leading `.`) but is not a valid
    /// zlib stream (raw DEFLATE, gzip, truncated, or a bad checksum).
    #[error("compressed session data does not inflate: {0}")]
    Decompress(&'static str),
    /// The data is not valid JSON (as Python's `json.loads` reads it).
    #[error("session data is not valid JSON: {0}")]
    Json(String),
    /// The data is valid JSON but not an object.
    #[error("session data is not a JSON object")]
    NotAnObject,
    /// A pickle (Django's cache engines) holds an opcode that imports or
    /// calls something; it names the opcode. Nothing was run.
    #[error("pickled session data would run code ({0}); refused")]
    UnsafePickle(&'static str),
    /// A pickle is malformed, truncated, too large once decoded, or holds
    /// data outside the plain subset Sesame reads (bytes, sets, …).
    #[error("pickled session data is not plain data: {0}")]
    Pickle(&'static str),
    /// A date or time value is not in a form Django writes.
    #[error("invalid datetime value")]
    Datetime,
}
