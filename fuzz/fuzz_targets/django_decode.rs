//! Fuzz target: Django's signed session values and every format inside them.
//!
//! Each input is decoded four ways, under both session salts, with and
//! without a `max_age`:
//!
//! 1. as is, like a `session_data` column or a `signed_cookies` cookie;
//! 2. re-signed: its last `:` field is replaced by the right signature, so
//!    mutations get past the HMAC and reach the timestamp, base64, zlib and
//!    JSON code (a random input is never correctly signed);
//! 3. as the payload bytes, base64-encoded and signed (the JSON reader);
//! 4. as a zlib stream, `.`-marked, base64-encoded and signed (the inflater).
//!
//! Nothing may panic. Whenever a session decodes, the round-trip oracle
//! holds: `dumps_session` then `loads_session` gives the same map back, and
//! what we wrote passes the signed-cookie key validator. `json_loads`,
//! `b64_decode` and `b62_decode` get the raw input too, each with its own
//! round-trip check.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sesame::SessionKey;
use sesame_codec::{
    DB_SALT, Error, SIGNED_COOKIES_SALT, SessionMap, Signer, b62_decode, b62_encode, b64_decode,
    b64_encode, json_dumps, json_loads, salted_hmac,
};
use time::OffsetDateTime;

/// The keys of the golden vectors (`crates/sesame-codec/testdata`), so the
/// seed corpus, made of their signed values, decodes.
const SECRET_KEY: &str = "djcompat-primary-secret-key-do-not-use-in-production-0123456789";
const FALLBACKS: [&str; 2] = [
    "djcompat-fallback-one-secret-key-0123456789abcdefghijklmnopqrstuv",
    "djcompat-fallback-two-secret-key-zyxwvutsrqponmlkjihgfedcba987654",
];
/// The vectors' frozen clock.
const NOW: i64 = 1_700_000_000;
/// `SESSION_COOKIE_AGE`, the `max_age` the `signed_cookies` engine uses.
const COOKIE_AGE: Duration = Duration::from_secs(1_209_600);
/// `None` (the `db` engines), the cookie age, and the two extremes.
const MAX_AGES: [Option<Duration>; 4] = [
    None,
    Some(COOKIE_AGE),
    Some(Duration::ZERO),
    Some(Duration::MAX),
];

fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::new(SECRET_KEY).with_fallbacks(FALLBACKS))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).expect("a valid timestamp")
}

fuzz_target!(|data: &[u8]| {
    json(data);
    base64(data);
    // The decoders take `&str`; a lossy conversion keeps every valid input
    // intact and still lets the fuzzer reach them from any bytes.
    let text = String::from_utf8_lossy(data);
    base62(&text, data);

    for salt in [DB_SALT, SIGNED_COOKIES_SALT] {
        decode(&text, salt);
        decode(&resign(&text, salt), salt);
    }
    let timestamp = b62_encode(NOW);
    let plain = format!("{}:{timestamp}", b64_encode(data));
    decode(&sign(&plain, DB_SALT), DB_SALT);
    let zlib = format!(".{}:{timestamp}", b64_encode(data));
    decode(&sign(&zlib, DB_SALT), DB_SALT);
});

/// Decodes `signed` with every `max_age`; each success must round-trip.
fn decode(signed: &str, salt: &str) {
    let signer = signer();
    for max_age in MAX_AGES {
        // Error or not, the point is that this returns.
        if let Ok(map) = signer.loads_session(signed, salt, max_age, now()) {
            round_trip(&map, salt, max_age);
        }
    }
}

/// The oracle: what we write for a decoded session decodes to that session.
fn round_trip(map: &SessionMap, salt: &str, max_age: Option<Duration>) {
    let signer = signer();
    let written = signer.dumps_session(map, salt, now());
    // Cookies and `session_data` are ASCII, in the signed-cookie key shape.
    assert!(written.is_ascii(), "non-ASCII output: {written:?}");
    if written.len() <= sesame::MAX_SIGNED_KEY_LENGTH {
        assert!(
            SessionKey::from_signed_bytes(written.as_bytes()).is_ok(),
            "our own signed value is not a valid signed key: {written:?}"
        );
    }
    match signer.loads_session(&written, salt, max_age, now()) {
        Ok(back) => assert_eq!(&back, map, "round trip changed the session: {written:?}"),
        // Known limit, not a bug: raw Latin-1 bytes in a Django payload are
        // re-encoded as six-byte `\u00XX` escapes, so a session near the
        // 16 MiB caps can decode yet be too large once written back.
        Err(Error::TooLarge { .. }) => {}
        Err(e) => panic!("our own output does not decode ({e}): {written:?}"),
    }
}

/// Replaces the last `:` field of `text` (or appends one) with the
/// signature `SECRET_KEY` gives the rest under `salt`.
fn resign(text: &str, salt: &str) -> String {
    let value = text.rsplit_once(':').map_or(text, |(value, _old)| value);
    sign(value, salt)
}

/// `value:signature`, as Django's `Signer.sign` (salted HMAC-SHA256, base64).
fn sign(value: &str, salt: &str) -> String {
    let key_salt = format!("{salt}signer");
    let mac = salted_hmac(&key_salt, value.as_bytes(), SECRET_KEY.as_bytes());
    format!("{value}:{}", b64_encode(&mac))
}

/// `json_loads` never panics; what it reads is written as ASCII and reads back the same.
fn json(data: &[u8]) {
    let Ok(value) = json_loads(data) else {
        return;
    };
    let written = json_dumps(&value);
    assert!(written.is_ascii(), "non-ASCII JSON: {written:?}");
    match json_loads(written.as_bytes()) {
        Ok(back) => {
            assert_eq!(
                back, value,
                "JSON round trip changed the value: {written:?}"
            );
            assert_eq!(json_dumps(&back), written, "JSON output is not stable");
        }
        Err(e) => panic!("our own JSON does not parse ({e}): {written:?}"),
    }
}

/// Every byte string survives encode → decode; a decoded string re-encodes to the same bytes.
fn base64(data: &[u8]) {
    assert_eq!(b64_decode(&b64_encode(data)).as_deref(), Ok(data));
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = b64_decode(text)
    {
        assert_eq!(b64_decode(&b64_encode(&bytes)), Ok(bytes));
    }
}

/// Every `i64` survives encode → decode; a decoded timestamp re-encodes to the same number.
fn base62(text: &str, data: &[u8]) {
    if let Some(bytes) = data.first_chunk::<8>() {
        let n = i64::from_le_bytes(*bytes);
        assert_eq!(b62_decode(&b62_encode(n)), Ok(n));
    }
    if let Ok(n) = b62_decode(text) {
        assert_eq!(b62_decode(&b62_encode(n)), Ok(n), "{text:?}");
    }
}
