//! Django's session wire formats, as pure functions.
//!
//! This crate alone knows how Django lays session data out on the wire and at
//! rest: the names it uses (cookie, table, reserved keys, salts), the encoding
//! of `session_data`, and the forms `_session_expiry` takes. It does no I/O
//! and never reads the clock: time is always an argument.
//!
//! ```
//! use serde_json::json;
//!
//! let data = json!({"counter": 1}).as_object().cloned().unwrap();
//! let stored = sesame_codec::encode_session_data(&data);
//! assert_eq!(sesame_codec::decode_session_data(&stored).unwrap(), data);
//! ```

mod base62;
mod base64;
mod cache_key;
mod error;
mod expiry;
mod json;
mod names;
mod session_data;

pub use base62::{b62_decode, b62_encode};
pub use base64::{b64_decode, b64_encode};
pub use cache_key::{make_cache_key, session_cache_key};
pub use error::Error;
pub use expiry::{ExpiryValue, format_isoformat, parse_isoformat};
pub use json::{json_dumps, json_loads};
pub use names::*;
pub use session_data::{MAX_SESSION_DATA_LEN, decode_session_data, encode_session_data};

/// A session's contents: a JSON object whose key order is kept, as a Python dict keeps it.
pub type SessionMap = serde_json::Map<String, serde_json::Value>;
