//! Django's signed values: `[.]<b64(payload)>:<b62(timestamp)>:<b64(HMAC-SHA256)>`.

use std::time::Duration;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::{
    Error, MAX_DECOMPRESSED_LEN, MAX_SESSION_DATA_LEN, b62_decode, b62_encode, b64_decode,
    b64_encode, json, zlib,
};

/// The separator between the fields of a signed value (`Signer.sep`).
const SEP: char = ':';

/// Derives the HMAC key Django's `salted_hmac` uses: `SHA-256(key_salt || secret)`.
///
/// # Examples
///
/// ```
/// let key = sesame_codec::salted_hmac_key("django.contrib.sessions.SessionStoresigner", b"secret");
/// assert_eq!(key.len(), 32);
/// ```
///
/// # Django
///
/// The first step of `salted_hmac` in `django/utils/crypto.py`, with
/// `algorithm="sha256"`.
#[must_use]
pub fn salted_hmac_key(key_salt: &str, secret: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(key_salt.as_bytes());
    hasher.update(secret);
    hasher.finalize().into()
}

/// Computes Django's salted HMAC-SHA256 of `value`: the key is
/// [`salted_hmac_key`]`(key_salt, secret)`.
///
/// # Examples
///
/// ```
/// let mac = sesame_codec::salted_hmac("any salt", b"any value", b"secret");
/// assert_eq!(mac.len(), 32);
/// assert_ne!(mac, sesame_codec::salted_hmac("other salt", b"any value", b"secret"));
/// ```
///
/// # Django
///
/// `salted_hmac(key_salt, value, secret, algorithm="sha256")` in
/// `django/utils/crypto.py`. The SHA-1 variant (Django 3.1 and 3.2's
/// `DEFAULT_HASHING_ALGORITHM = "sha1"`) is not provided: Django 4.0+ no
/// longer accepts what it signed.
#[must_use]
pub fn salted_hmac(key_salt: &str, value: &[u8], secret: &[u8]) -> [u8; 32] {
    // HMAC zero-pads a key shorter than the hash's 64-byte block, so the
    // padded block is the same key, and a fixed-size key cannot be refused.
    let mut block = [0_u8; 64];
    block[..32].copy_from_slice(&salted_hmac_key(key_salt, secret));
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(value);
    mac.finalize().into_bytes().into()
}

/// The signature field: base64 of the salted HMAC over `value` with key salt `salt + "signer"`.
fn signature(salt: &str, value: &str, secret: &[u8]) -> String {
    let key_salt = format!("{salt}signer");
    b64_encode(&salted_hmac(&key_salt, value.as_bytes(), secret))
}

/// Signs a JSON value as Django's `signing.dumps` does, with the time of signing.
///
/// The value is serialised with [`json_dumps`](crate::json_dumps); with
/// `compress`, the JSON is zlib-compressed when that saves at least two
/// bytes and the payload then starts with `.`. The timestamp is `now` in
/// whole Unix seconds; the signature uses `secret` only (never a fallback).
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use time::OffsetDateTime;
///
/// let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
/// let signed = sesame_codec::dumps(&json!({"a": 1}), "secret", "my.salt", true, now);
/// assert!(signed.starts_with("eyJhIjoxfQ:1r31eq:"));
/// assert_eq!(
///     sesame_codec::loads(&signed, &["secret"], "my.salt", None, now),
///     Ok(json!({"a": 1}))
/// );
/// ```
///
/// # Django
///
/// `signing.dumps(obj, key, salt, compress=compress)` in
/// `django/core/signing.py` (`TimestampSigner.sign_object`, SHA-256).
/// Uncompressed output is byte-identical to Django's; compressed output
/// differs in its zlib bytes (`miniz_oxide` is not CPython's zlib) but Django
/// reads it, and Django's compression decision can differ from ours for data
/// where the two compressors land on either side of the two-byte threshold.
#[doc(alias = "sign_object")]
#[must_use]
pub fn dumps(
    value: &Value,
    secret: impl AsRef<[u8]>,
    salt: &str,
    compress: bool,
    now: OffsetDateTime,
) -> String {
    sign_json(
        &json::json_dumps(value),
        secret.as_ref(),
        salt,
        compress,
        now,
    )
}

/// Signs JSON text (already in Django's layout); shared by [`dumps`] and the session helpers.
pub(crate) fn sign_json(
    json: &str,
    secret: &[u8],
    salt: &str,
    compress: bool,
    now: OffsetDateTime,
) -> String {
    let data = json.as_bytes();
    let compressed = if compress {
        zlib::compress_if_smaller(data)
    } else {
        None
    };
    let mut value = match compressed {
        Some(z) => format!(".{}", b64_encode(&z)),
        None => b64_encode(data),
    };
    value.push(SEP);
    value.push_str(&b62_encode(now.unix_timestamp()));
    let sig = signature(salt, &value, secret);
    value.push(SEP);
    value.push_str(&sig);
    value
}

/// Verifies and decodes a value signed by Django (or by [`dumps`]).
///
/// `keys` is `SECRET_KEY` followed by `SECRET_KEY_FALLBACKS`, in that order;
/// the first key whose signature matches (compared in constant time) wins.
/// With `max_age`, a signature older than that (`now - timestamp > max_age`)
/// is refused; a timestamp in the future is accepted, as in Django.
///
/// # Errors
///
/// In the order they are checked, which is Django's order:
/// - [`Error::TooLarge`]: the input is over [`MAX_SESSION_DATA_LEN`]
///   (checked before any HMAC is computed);
/// - [`Error::BadSignature`]: no `:`, or no key's signature matches;
/// - [`Error::Malformed`]: no timestamp field, or it is not base62;
/// - [`Error::Expired`]: older than `max_age`;
/// - [`Error::Malformed`]: the payload is not base64;
/// - [`Error::Decompress`]: a `.` payload that is not a zlib stream, or
///   [`Error::TooLarge`] when it inflates beyond [`MAX_DECOMPRESSED_LEN`];
/// - [`Error::Json`]: the payload is not JSON.
///
/// Django turns every one of them into an empty session.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use time::OffsetDateTime;
///
/// let signed_at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
/// let signed = sesame_codec::dumps(&json!({"a": 1}), "old-key", "my.salt", true, signed_at);
///
/// // Still accepted once "old-key" has moved to the fallbacks.
/// let keys = ["new-key", "old-key"];
/// assert!(sesame_codec::loads(&signed, &keys, "my.salt", None, signed_at).is_ok());
///
/// let later = signed_at + Duration::from_secs(61);
/// assert!(matches!(
///     sesame_codec::loads(&signed, &keys, "my.salt", Some(Duration::from_secs(60)), later),
///     Err(sesame_codec::Error::Expired { .. })
/// ));
/// assert_eq!(
///     sesame_codec::loads(&signed, &["new-key"], "my.salt", None, signed_at),
///     Err(sesame_codec::Error::BadSignature)
/// );
/// ```
///
/// # Django
///
/// `signing.loads(s, key, salt, max_age=max_age, fallback_keys=…)` in
/// `django/core/signing.py` (`TimestampSigner.unsign_object`). The payload
/// is decoded with Django's lenient base64 ([`b64_decode`]) and read with
/// [`json_loads`](crate::json_loads). Differences: decompression is capped
/// at [`MAX_DECOMPRESSED_LEN`], and a timestamp outside `i64` is
/// [`Error::Malformed`] (Django accepts any length when no `max_age` applies).
pub fn loads<K: AsRef<[u8]>>(
    signed: &str,
    keys: &[K],
    salt: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> Result<Value, Error> {
    let payload = unsign(signed, keys, salt, max_age, now)?;
    let (compressed, base64) = match payload.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let mut data = b64_decode(base64)?;
    if compressed {
        data = zlib::decompress(&data, MAX_DECOMPRESSED_LEN)?;
    }
    json::json_loads(&data)
}

/// Checks the signature and the timestamp, and returns the payload field.
fn unsign<'a, K: AsRef<[u8]>>(
    signed: &'a str,
    keys: &[K],
    salt: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> Result<&'a str, Error> {
    if signed.len() > MAX_SESSION_DATA_LEN {
        return Err(Error::TooLarge {
            len: signed.len(),
            limit: MAX_SESSION_DATA_LEN,
        });
    }
    // Signer.unsign: split at the last separator, try each key in order.
    let (value, sig) = signed.rsplit_once(SEP).ok_or(Error::BadSignature)?;
    let matched = keys.iter().any(|key| {
        let expected = signature(salt, value, key.as_ref());
        bool::from(sig.as_bytes().ct_eq(expected.as_bytes()))
    });
    if !matched {
        return Err(Error::BadSignature);
    }
    // TimestampSigner.unsign: split off the timestamp, then check its age.
    let (payload, timestamp) = value
        .rsplit_once(SEP)
        .ok_or(Error::Malformed("no timestamp field"))?;
    let timestamp = b62_decode(timestamp)?;
    if let Some(max_age) = max_age {
        check_age(timestamp, max_age, now)?;
    }
    Ok(payload)
}

/// Django: `age = time.time() - timestamp; if age > max_age: raise SignatureExpired`.
fn check_age(timestamp: i64, max_age: Duration, now: OffsetDateTime) -> Result<(), Error> {
    const NANOS: i128 = 1_000_000_000;
    let age = now.unix_timestamp_nanos() - i128::from(timestamp) * NANOS;
    let limit = i128::try_from(max_age.as_nanos()).unwrap_or(i128::MAX);
    if age > limit {
        return Err(Error::Expired {
            age_secs: i64::try_from(age.div_euclid(NANOS)).unwrap_or(i64::MAX),
            max_age_secs: max_age.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    const KEYS: [&str; 1] = ["secret"];

    #[test]
    fn round_trips_compressed_and_not() {
        let small = json!({"a": 1});
        let large = json!({"blob": "x".repeat(1000)});
        for value in [small, large] {
            for compress in [false, true] {
                let signed = dumps(&value, "secret", "salt", compress, at(1_700_000_000));
                assert_eq!(
                    loads(&signed, &KEYS, "salt", None, at(0)),
                    Ok(value.clone())
                );
            }
        }
        let signed = dumps(
            &json!({"blob": "x".repeat(1000)}),
            "secret",
            "salt",
            true,
            at(1),
        );
        assert!(signed.starts_with('.'), "{signed}");
    }

    #[test]
    fn the_salt_separates_namespaces() {
        let signed = dumps(&json!({}), "secret", "one", true, at(1));
        assert_eq!(
            loads(&signed, &KEYS, "two", None, at(1)),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn age_equal_to_max_age_is_valid_and_one_nanosecond_more_is_not() {
        let signed = dumps(&json!({}), "secret", "s", false, at(1000));
        let max_age = Some(Duration::from_secs(60));
        assert!(loads(&signed, &KEYS, "s", max_age, at(1060)).is_ok());
        let just_after = at(1060) + Duration::from_nanos(1);
        assert_eq!(
            loads(&signed, &KEYS, "s", max_age, just_after),
            Err(Error::Expired {
                age_secs: 60,
                max_age_secs: 60
            })
        );
        // A timestamp in the future is accepted.
        assert!(loads(&signed, &KEYS, "s", max_age, at(0)).is_ok());
    }

    #[test]
    fn the_signature_is_compared_as_text() {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let signed = dumps(&json!({}), "secret", "s", false, at(1));
        // 43 base64 characters carry 258 bits for a 256-bit MAC: setting a
        // spare bit of the last one keeps the bytes but changes the text,
        // and Django compares the text.
        let (head, last) = signed.split_at(signed.len() - 1);
        let sextet = ALPHABET.find(last).unwrap();
        assert_eq!(sextet & 3, 0);
        let sibling = format!("{head}{}", &ALPHABET[sextet | 1..=sextet | 1]);
        let mac = |s: &str| b64_decode(s.rsplit_once(':').unwrap().1).unwrap();
        assert_eq!(mac(&sibling), mac(&signed));
        assert_eq!(
            loads(&sibling, &KEYS, "s", None, at(1)),
            Err(Error::BadSignature)
        );
        assert_eq!(
            loads(&format!("{signed}="), &KEYS, "s", None, at(1)),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn no_keys_means_no_valid_signature() {
        let signed = dumps(&json!({}), "secret", "s", false, at(1));
        let none: [&str; 0] = [];
        assert_eq!(
            loads(&signed, &none, "s", None, at(1)),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn oversized_input_is_refused_before_any_hmac() {
        let big = "a".repeat(MAX_SESSION_DATA_LEN + 1);
        assert!(matches!(
            loads(&big, &KEYS, "s", None, at(1)),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn a_signed_zip_bomb_is_too_large_not_an_allocation() {
        let huge = vec![b' '; MAX_DECOMPRESSED_LEN + 1];
        let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&huge, 9);
        let value = format!(".{}:{}", b64_encode(&bomb), b62_encode(1));
        let signed = format!("{value}:{}", signature("s", &value, b"secret"));
        assert_eq!(
            loads(&signed, &KEYS, "s", None, at(1)),
            Err(Error::TooLarge {
                len: MAX_DECOMPRESSED_LEN + 1,
                limit: MAX_DECOMPRESSED_LEN
            })
        );
    }

    #[test]
    fn signed_but_broken_payloads_have_their_own_errors() {
        let sign = |value: &str| format!("{value}:{}", signature("s", value, b"secret"));
        let cases = [
            (sign("e30"), Error::Malformed("no timestamp field")),
            (sign("e30:!!"), Error::Malformed("timestamp is not base62")),
            (sign("e30:"), Error::Malformed("timestamp is not base62")),
            (sign(".e30:1"), Error::Decompress("not a zlib stream")),
            (
                sign("a:1"),
                Error::Malformed("base64 length is one more than a multiple of four"),
            ),
        ];
        for (signed, expected) in cases {
            assert_eq!(
                loads(&signed, &KEYS, "s", None, at(1)),
                Err(expected),
                "{signed}"
            );
        }
        assert!(matches!(
            loads(&sign("aGVsbG8:1"), &KEYS, "s", None, at(1)),
            Err(Error::Json(_))
        ));
    }
}
