//! Django's session wire formats, as pure functions.
//!
//! This crate alone knows how Django lays session data out on the wire and at
//! rest: the names it uses (cookie, table, reserved keys, salts), signed
//! values (`django.core.signing`: salted HMAC-SHA256, base62 timestamps,
//! URL-safe base64, zlib), Django's JSON, the pickles its Redis cache stores
//! (read with a plain-data-only reader, written byte for byte as CPython
//! does), the `_auth_user_hash`, cache keys, and the forms `_session_expiry`
//! takes. It does no I/O and never reads the clock: time is always an argument.
//!
//! ```
//! use sesame_codec::{DB_SALT, SessionMap, Signer};
//! use time::OffsetDateTime;
//!
//! let signer = Signer::new("SECRET_KEY").with_fallbacks(["an old SECRET_KEY"]);
//! let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
//! let mut data = SessionMap::new();
//! data.insert("counter".into(), 1.into());
//!
//! // What Django's `db` engine stores in `django_session.session_data`.
//! let stored = signer.dumps_session(&data, DB_SALT, now);
//! assert!(stored.starts_with("eyJjb3VudGVyIjoxfQ:1r31eq:"));
//! assert_eq!(signer.loads_session(&stored, DB_SALT, None, now).unwrap(), data);
//! ```
//!
//! Golden vectors made by Django 5.2.19 are in `testdata/`; `tests/vectors.rs`
//! runs every one of them.

mod auth;
mod base62;
mod base64;
mod cache_key;
mod error;
mod expiry;
mod json;
mod names;
mod pickle;
mod session_data;
mod signer;
mod signing;
mod zlib;

pub use auth::session_auth_hash;
pub use base62::{b62_decode, b62_encode};
pub use base64::{b64_decode, b64_encode};
pub use cache_key::{make_cache_key, session_cache_key};
pub use error::Error;
pub use expiry::{ExpiryValue, format_isoformat, parse_isoformat};
pub use json::{json_dumps, json_loads};
pub use names::*;
pub use pickle::{
    MAX_PICKLE_DEPTH, MAX_PICKLE_ITEMS, MAX_PICKLE_LEN, MAX_PICKLE_STRING_BYTES, pickle_dumps,
    pickle_loads, pickle_loads_session,
};
pub use session_data::{MAX_SESSION_DATA_LEN, decode_session_data, encode_session_data};
pub use signer::{KeyMatch, Signer};
pub use signing::{dumps, loads, salted_hmac, salted_hmac_key};
pub use zlib::MAX_DECOMPRESSED_LEN;

/// A session's contents: a JSON object whose key order is kept, as a Python dict keeps it.
pub type SessionMap = serde_json::Map<String, serde_json::Value>;
