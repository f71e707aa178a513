//! Fuzz target: the session key validator, for both kinds of key.
//!
//! Any bytes go to `SessionKey::from_bytes` (server-side stores) and
//! `SessionKey::from_signed_bytes` (`signed_cookies`). Nothing may panic,
//! and an accepted key:
//!
//! - is exactly the input (`as_str()`), of the kind asked for, within that
//!   kind's length limits and alphabet;
//! - validates again from its own text, equal to itself, through
//!   `parse_kind` too (and `FromStr` for random keys);
//! - never shows in full in `redacted()` once it is longer than four
//!   characters, and `Debug` shows only that redacted form (STYLE.md §5:
//!   logs never hold a whole session key).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame::{KeyKind, MAX_KEY_LENGTH, MAX_SIGNED_KEY_LENGTH, MIN_KEY_LENGTH, SessionKey};

fuzz_target!(|data: &[u8]| {
    // Random keys: accepted exactly when they have Django's shape.
    let random = SessionKey::from_bytes(data);
    assert_eq!(random, SessionKey::parse_kind(data, KeyKind::Random));
    let django_shape = (MIN_KEY_LENGTH..=MAX_KEY_LENGTH).contains(&data.len())
        && data
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    assert_eq!(random.is_ok(), django_shape, "from_bytes({data:?})");
    if let Ok(key) = random {
        check(&key, data, KeyKind::Random);
        assert_eq!(key.as_str().parse::<SessionKey>(), Ok(key.clone()));
    }

    // Signed keys: accepted implies the signed-value alphabet and the
    // cookie limit (the minimum length is left to key.rs's own tests).
    let signed = SessionKey::from_signed_bytes(data);
    assert_eq!(signed, SessionKey::parse_kind(data, KeyKind::Signed));
    if let Ok(key) = signed {
        check(&key, data, KeyKind::Signed);
        assert!(!data.is_empty() && data.len() <= MAX_SIGNED_KEY_LENGTH);
        assert!(
            data.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        );
    }
});

fn check(key: &SessionKey, data: &[u8], kind: KeyKind) {
    let text = key.as_str();
    assert_eq!(text.as_bytes(), data, "as_str() is not the input");
    assert_eq!(key.kind(), kind);
    assert_eq!(
        SessionKey::parse_kind(text.as_bytes(), kind).as_ref(),
        Ok(key)
    );

    let redacted = key.redacted().to_string();
    if text.len() > 4 {
        assert!(
            !redacted.contains(text),
            "redacted() shows the whole key: {redacted}"
        );
    }
    // `Debug` shows the redacted form and nothing else of the key (checking
    // it for the key's text directly would flag the key `SessionKe`).
    assert_eq!(format!("{key:?}"), format!("SessionKey({redacted})"));
}
