//! The plain-JSON encoding the stores use today for `session_data`.
//!
//! Django stores `signing.dumps(session_dict, salt=…, compress=True)`, which
//! [`Signer::dumps_session`](crate::Signer::dumps_session) and
//! [`Signer::loads_session`](crate::Signer::loads_session) write and read.
//! The stores still call the two functions here (compact JSON, not signed)
//! until they switch to the signed form; this module is the one place that
//! decides, so the switch touches no store.

use crate::{Error, SessionMap};

/// Largest `session_data` or signed value the decoders accept, in bytes (16 MiB).
///
/// Anything longer is rejected before parsing, so a corrupt or hostile row
/// cannot make the decoder allocate without bound.
pub const MAX_SESSION_DATA_LEN: usize = 16 * 1024 * 1024;

/// Encodes a session's contents for storage.
///
/// # Examples
///
/// ```
/// let mut data = sesame_codec::SessionMap::new();
/// data.insert("counter".into(), 3.into());
/// assert_eq!(sesame_codec::encode_session_data(&data), r#"{"counter":3}"#);
/// ```
///
/// # Django
///
/// Django's `SessionBase.encode`; see the module docs for the current difference.
#[must_use]
pub fn encode_session_data(data: &SessionMap) -> String {
    // Serialising a map of JSON values into a String cannot fail: every key is
    // a string and every value is already valid JSON.
    serde_json::to_string(data).unwrap_or_else(|_| String::from("{}"))
}

/// Decodes stored `session_data` into a session's contents.
///
/// # Errors
///
/// [`Error::TooLarge`] over [`MAX_SESSION_DATA_LEN`], [`Error::Json`] for
/// anything that is not JSON, [`Error::NotAnObject`] for JSON that is not an
/// object. Callers treat each as an empty session.
///
/// # Examples
///
/// ```
/// assert!(sesame_codec::decode_session_data("not json").is_err());
/// assert!(sesame_codec::decode_session_data("[1]").is_err());
/// assert_eq!(sesame_codec::decode_session_data("{}").unwrap().len(), 0);
/// ```
pub fn decode_session_data(stored: &str) -> Result<SessionMap, Error> {
    if stored.len() > MAX_SESSION_DATA_LEN {
        return Err(Error::TooLarge {
            len: stored.len(),
            limit: MAX_SESSION_DATA_LEN,
        });
    }
    match serde_json::from_str::<serde_json::Value>(stored) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::NotAnObject),
        Err(e) => Err(Error::Json(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_insertion_order() {
        let mut data = SessionMap::new();
        data.insert("zeta".into(), 1.into());
        data.insert("alpha".into(), "é".into());
        let stored = encode_session_data(&data);
        assert_eq!(stored, r#"{"zeta":1,"alpha":"é"}"#);
        let back = decode_session_data(&stored).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in ["", "{", "null", "\"x\"", "{\"a\":}", "\u{0}"] {
            assert!(decode_session_data(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn oversized_data_is_rejected_before_parsing() {
        let big = " ".repeat(MAX_SESSION_DATA_LEN + 1);
        assert!(matches!(
            decode_session_data(&big),
            Err(Error::TooLarge { .. })
        ));
    }
}
