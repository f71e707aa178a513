//! `sesame encode`: the signed value Django would store for a session.

use serde_json::Value;
use sesame::codec::{MAX_SESSION_DATA_LEN, SessionMap, Signer};
use time::OffsetDateTime;

use crate::cli::EncodeArgs;
use crate::cmd::{UsageError, read_stdin, signer_from_env};

/// Reads a JSON object on stdin and prints the value Django would store for
/// it: signed with `SECRET_KEY` under the salt, compressed when that is
/// shorter.
///
/// The input is standard JSON in UTF-8; keys keep their order, and a
/// repeated key keeps its first position and its last value, as in Python.
/// Output without compression is byte-identical to Django's; compressed
/// output differs in its zlib bytes but decodes to the same session in
/// Django (see `sesame_codec::dumps`).
///
/// # Errors
///
/// A [`UsageError`] (exit status 2) when stdin is not a JSON object, holds
/// a number beyond a float's range (Django would store `Infinity`, which
/// is not JSON), is larger than a stored session can be (16 MiB), or
/// `SECRET_KEY` is unset; stdin that cannot be read.
pub fn run(args: &EncodeArgs) -> anyhow::Result<()> {
    let signer = signer_from_env()?;
    let session = parse_session(&read_stdin()?)?;
    let now = args.signing.now.unwrap_or_else(OffsetDateTime::now_utc);
    println!("{}", encode(&signer, &session, &args.signing.salt, now));
    Ok(())
}

fn encode(signer: &Signer, session: &SessionMap, salt: &str, now: OffsetDateTime) -> String {
    signer.dumps_session(session, salt, now)
}

/// The JSON object in `input`.
fn parse_session(input: &[u8]) -> Result<SessionMap, UsageError> {
    if input.len() > MAX_SESSION_DATA_LEN {
        return Err(UsageError(format!(
            "stdin holds more than {} MiB: more than a stored session can be",
            MAX_SESSION_DATA_LEN / (1024 * 1024)
        )));
    }
    // serde_json's messages give a position, never the input itself.
    match serde_json::from_slice::<Value>(input) {
        Ok(Value::Object(map)) if map.values().any(has_non_finite) => Err(UsageError(
            "a number is beyond a float's range (as 1e999): it would be stored as Infinity, \
             which Django reads but JSON cannot hold; use a smaller number or a string"
                .to_owned(),
        )),
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(UsageError(format!(
            "expected a JSON object on stdin, got {}",
            kind(&other)
        ))),
        Err(e) => Err(UsageError(format!("stdin is not valid JSON: {e}"))),
    }
}

/// Whether a number in `value` is a float that overflows to ±infinity
/// (numbers are kept as their text: `arbitrary_precision`).
fn has_non_finite(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            let text = n.as_str();
            text.contains(['.', 'e', 'E']) && text.parse::<f64>().is_ok_and(|f| !f.is_finite())
        }
        Value::Array(items) => items.iter().any(has_non_finite),
        Value::Object(map) => map.values().any(has_non_finite),
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use sesame::codec::DB_SALT;

    use super::*;

    #[test]
    fn only_an_object_is_a_session() {
        for (input, expected) in [
            (&b"[1, 2]"[..], "an array"),
            (b"\"s\"", "a string"),
            (b"null", "null"),
            (b"", "not valid JSON"),
            (b"{\"a\": NaN}", "not valid JSON"),
            (b"{\"a\": 1} {}", "not valid JSON"),
            (b"{\"a\": 1e999}", "Infinity"),
            (b"{\"a\": [{\"b\": -1.5e400}]}", "Infinity"),
        ] {
            let err = parse_session(input).unwrap_err();
            assert!(err.0.contains(expected), "{err}");
        }
    }

    #[test]
    fn keeps_key_order_and_signs_as_django() {
        let session = parse_session("{\"z\": 1, \"a\": \"é\", \"z\": 2}".as_bytes()).unwrap();
        assert_eq!(session.keys().collect::<Vec<_>>(), ["z", "a"]);
        assert_eq!(session["z"], 2);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let signer = Signer::new("k");
        let signed = encode(&signer, &session, DB_SALT, now);
        // Django's JSON: compact and ASCII, `{"z":2,"a":"\u00e9"}`.
        assert!(
            signed.starts_with("eyJ6IjoyLCJhIjoiXHUwMGU5In0:1r31eq:"),
            "{signed}"
        );
        assert_eq!(
            signer.loads_session(&signed, DB_SALT, None, now),
            Ok(session)
        );
    }
}
