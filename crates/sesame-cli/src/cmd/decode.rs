//! `sesame decode`: the session a signed value holds, as Django reads it.

use std::time::Duration;

use sesame::codec::{Error as CodecError, MAX_SESSION_DATA_LEN, SessionMap, Signer};
use time::OffsetDateTime;

use crate::cli::DecodeArgs;
use crate::cmd::{read_stdin, signer_from_env};

/// Reads one signed value on stdin and prints its session as one line of
/// JSON; prints `{}` and a one-line warning on stderr for anything Django
/// would turn into an empty session.
///
/// The output is compact JSON in UTF-8 (not Django's `\uXXXX` escapes), keys
/// in the order they were stored, integers with all their digits. Python's
/// `NaN` and `Infinity`, which Django's JSON allows and JSON does not, are
/// printed as `null`, with a warning (see [`print_json`](crate::cmd::print_json)).
/// The warning for an empty session says why the value was refused; it
/// never holds the input or a key.
///
/// # Errors
///
/// A [`UsageError`](crate::cmd::UsageError) (exit status 2) when
/// `SECRET_KEY` is unset or `SECRET_KEY_FALLBACKS` unreadable; stdin that
/// cannot be read. An unreadable *value* is not an error: it prints `{}`
/// and the command succeeds, so scripts can pipe the output on.
pub fn run(args: &DecodeArgs) -> anyhow::Result<()> {
    let signer = signer_from_env()?;
    let input = read_stdin()?;
    let now = args.signing.now.unwrap_or_else(OffsetDateTime::now_utc);
    let max_age = args.max_age.map(Duration::from_secs);
    let session = decode(&signer, &input, &args.signing.salt, max_age, now).unwrap_or_else(|why| {
        eprintln!("warning: printing an empty session: {why}");
        SessionMap::new()
    });
    crate::cmd::print_json(serde_json::Value::Object(session))
}

/// The session in `input`, or why Django would see an empty one.
fn decode(
    signer: &Signer,
    input: &[u8],
    salt: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> Result<SessionMap, String> {
    if input.is_empty() {
        return Err("no input: expected one signed value on stdin".to_owned());
    }
    if input.len() > MAX_SESSION_DATA_LEN {
        return Err(CodecError::TooLarge {
            len: input.len(),
            limit: MAX_SESSION_DATA_LEN,
        }
        .to_string());
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return Err("the input is not UTF-8 text, so not a signed value".to_owned());
    };
    if text.contains(char::is_whitespace) {
        return Err("expected one signed value, got several words or lines".to_owned());
    }
    signer
        .loads_session(text, salt, max_age, now)
        .map_err(|e| match e {
            CodecError::BadSignature => format!(
                "{e} (not signed by SECRET_KEY or a key in SECRET_KEY_FALLBACKS with salt \
                 {salt:?}, or altered since)"
            ),
            other => other.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use sesame::codec::{DB_SALT, SIGNED_COOKIES_SALT};

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn session(pairs: &[(&str, serde_json::Value)]) -> SessionMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn every_refusal_says_why_without_echoing_the_input() {
        let signer = Signer::new("the-secret");
        let data = session(&[("counter", 1.into())]);
        let good = signer.dumps_session(&data, DB_SALT, at(1_700_000_000));
        let week = Some(Duration::from_secs(7 * 86_400));
        let later = at(1_700_000_000 + 8 * 86_400);
        let tampered = good.replacen("eyJ", "eyK", 1);
        // input, salt, max_age, now, expected reason
        type Case<'a> = (&'a [u8], &'a str, Option<Duration>, OffsetDateTime, &'a str);
        let cases: [Case<'_>; 7] = [
            (b"", DB_SALT, None, later, "no input"),
            (b"\xff\xfe", DB_SALT, None, later, "not UTF-8"),
            (b"a:b c:d", DB_SALT, None, later, "several words"),
            (tampered.as_bytes(), DB_SALT, None, later, "bad signature"),
            (
                good.as_bytes(),
                SIGNED_COOKIES_SALT,
                None,
                later,
                "bad signature",
            ),
            (good.as_bytes(), DB_SALT, week, later, "old, limit 604800 s"),
            (b"x:y:z", DB_SALT, None, later, "bad signature"),
        ];
        for (input, salt, max_age, now, expected) in cases {
            let why = decode(&signer, input, salt, max_age, now).unwrap_err();
            assert!(why.contains(expected), "{why}");
            assert!(!why.contains("the-secret"), "{why}");
            assert!(!why.contains(&good), "{why}");
        }
        assert_eq!(
            decode(&signer, good.as_bytes(), DB_SALT, week, at(1_700_000_000)),
            Ok(data)
        );
    }

    #[test]
    fn a_signed_non_object_is_refused() {
        let signer = Signer::new("k");
        let now = at(1_700_000_000);
        let list = signer.dumps(&serde_json::json!([1, 2, 3]), DB_SALT, true, now);
        let why = decode(&signer, list.as_bytes(), DB_SALT, None, now).unwrap_err();
        assert!(why.contains("not a JSON object"), "{why}");
    }
}
