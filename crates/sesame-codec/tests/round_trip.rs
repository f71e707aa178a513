//! Property tests: whatever we encode decodes to the same value, and no input
//! makes a decoder panic.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Number, Value};
use sesame_codec::{
    DB_SALT, SIGNED_COOKIES_SALT, SessionMap, Signer, b62_decode, b62_encode, b64_decode,
    b64_encode, json_dumps, json_loads, pickle_dumps, pickle_loads, pickle_loads_session,
};
use time::OffsetDateTime;

/// Strings from every plane: ASCII, controls, Latin-1, BMP (surrogates
/// excluded by `char`), and astral characters such as emoji.
fn any_string() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => proptest::char::range('\u{7f}', '\u{ff}'),
        1 => proptest::char::range('\u{100}', '\u{ffff}'),
        1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
    ];
    proptest::collection::vec(ch, 0..12).prop_map(|chars| chars.into_iter().collect())
}

/// Floats as Python has them: every finite double, and NaN and ±Infinity.
fn any_float() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => Just(json_loads(b"NaN").expect("Python's NaN token")),
        1 => Just(json_loads(b"Infinity").expect("Python's Infinity token")),
        1 => Just(json_loads(b"-Infinity").expect("Python's -Infinity token")),
    ]
}

/// Integers beyond 64 bits, which Python keeps exactly.
fn big_int() -> impl Strategy<Value = Value> {
    ("-?[1-9][0-9]{19,60}")
        .prop_map(|digits| Value::Number(digits.parse().expect("an integer literal")))
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        big_int(),
        any_float(),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any_string(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn any_session() -> impl Strategy<Value = SessionMap> {
    proptest::collection::vec((any_string(), any_value()), 0..10)
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("a time in range")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trips_and_is_ascii(value in any_value()) {
        let text = json_dumps(&value);
        prop_assert!(text.is_ascii(), "{text}");
        prop_assert_eq!(json_loads(text.as_bytes()).unwrap(), value);
    }

    #[test]
    fn json_keeps_key_order(session in any_session()) {
        let text = json_dumps(&Value::Object(session.clone()));
        let Value::Object(back) = json_loads(text.as_bytes()).unwrap() else {
            panic!("not an object");
        };
        prop_assert!(back.keys().eq(session.keys()));
    }

    #[test]
    fn signed_sessions_round_trip(
        session in any_session(),
        now in 0_i64..4_102_444_800,
        cookie in any::<bool>(),
    ) {
        let signer = Signer::new("current").with_fallbacks(["previous"]);
        let (salt, max_age) = if cookie {
            (SIGNED_COOKIES_SALT, Some(Duration::from_secs(1_209_600)))
        } else {
            (DB_SALT, None)
        };
        let signed = signer.dumps_session(&session, salt, at(now));
        prop_assert_eq!(signer.loads_session(&signed, salt, max_age, at(now)), Ok(session.clone()));
        // Rotated: the old current key is now a fallback.
        let rotated = Signer::new("next").with_fallbacks(["current"]);
        prop_assert_eq!(rotated.loads_session(&signed, salt, max_age, at(now)), Ok(session));
    }

    #[test]
    fn any_change_to_a_signed_value_is_refused(
        session in any_session(),
        index in any::<proptest::sample::Index>(),
        byte in 0x21_u8..0x7f,
    ) {
        let signer = Signer::new("key");
        let signed = signer.dumps_session(&session, DB_SALT, at(1_700_000_000));
        let mut bytes = signed.into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(signer.loads_session(&tampered, DB_SALT, None, at(1_700_000_000)).is_err());
    }

    #[test]
    fn decoders_never_panic(input in any_string(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let signer = Signer::new("key").with_fallbacks(["old"]);
        let now = at(1_700_000_000);
        let _ = signer.loads_session(&input, DB_SALT, Some(Duration::from_secs(1)), now);
        let _ = json_loads(&bytes);
        let _ = json_loads(input.as_bytes());
        let _ = b64_decode(&input);
        let _ = b62_decode(&input);
    }

    #[test]
    fn correctly_signed_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), dot in any::<bool>()) {
        // Sign arbitrary bytes as the payload so decoding gets past the HMAC.
        let payload = format!("{}{}", if dot { "." } else { "" }, b64_encode(&bytes));
        let signer = Signer::new("key");
        let now = at(1_700_000_000);
        let signed = forge(&payload, "key", DB_SALT, now);
        let _ = signer.loads_session(&signed, DB_SALT, None, now);
    }

    #[test]
    fn pickles_round_trip(session in any_session()) {
        let bytes = pickle_dumps(&session);
        prop_assert_eq!(pickle_loads_session(&bytes), Ok(session.clone()));
        prop_assert_eq!(pickle_loads(&bytes).unwrap(), Value::Object(session));
    }

    #[test]
    fn pickle_reader_never_panics(
        session in any_session(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        index in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let _ = pickle_loads(&bytes);
        let _ = pickle_loads_session(&bytes);
        // One byte of a valid pickle changed: an error or some value, never a panic.
        let mut pickled = pickle_dumps(&session);
        let i = index.index(pickled.len());
        pickled[i] = byte;
        let _ = pickle_loads(&pickled);
        let _ = pickle_loads(&pickled[..i]);
    }

    #[test]
    fn base64_and_base62_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in any::<i64>()) {
        prop_assert_eq!(b64_decode(&b64_encode(&bytes)).unwrap(), bytes);
        prop_assert_eq!(b62_decode(&b62_encode(n)), Ok(n));
    }
}

/// Signs an arbitrary payload field with Django's layout, as a key holder could.
fn forge(payload: &str, key: &str, salt: &str, now: OffsetDateTime) -> String {
    let value = format!("{payload}:{}", b62_encode(now.unix_timestamp()));
    let mac = sesame_codec::salted_hmac(&format!("{salt}signer"), value.as_bytes(), key.as_bytes());
    format!("{value}:{}", b64_encode(&mac))
}

#[test]
fn forge_matches_the_signer() {
    let now = at(1_700_000_000);
    let signer = Signer::new("key");
    let signed = signer.dumps_session(&SessionMap::new(), DB_SALT, now);
    assert_eq!(forge("e30", "key", DB_SALT, now), signed);
}
