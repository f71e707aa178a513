//! Fuzz target: the middleware's session-cookie parser.
//!
//! The first byte picks the cookie name and the kind of key; the rest,
//! split at `\n`, are the request's `Cookie` headers (values `http` refuses
//! are dropped, as they never reach a service). The parser, reached through
//! the hidden `sesame::__fuzz::read_cookie`, must not panic and must agree
//! with a plain model of its contract written with std's slice methods:
//! `present` iff some `;`-separated pair has that name (both sides trimmed
//! of ASCII whitespace, split at the first `=`), and the keys are the first
//! two distinct values (unquoted once) that validate as keys of that kind.

#![no_main]

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sesame::{KeyKind, SessionKey};

/// Django's default name, a one-letter one, and the empty name (`=value`).
const NAMES: [&str; 3] = ["sessionid", "s", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let kind = if selector & 0x80 == 0 {
        KeyKind::Random
    } else {
        KeyKind::Signed
    };

    let values: Vec<&[u8]> = rest
        .split(|&b| b == b'\n')
        .filter(|v| HeaderValue::from_bytes(v).is_ok())
        .collect();
    let mut headers = HeaderMap::new();
    for v in &values {
        headers.append(COOKIE, HeaderValue::from_bytes(v).expect("filtered above"));
    }

    let (present, keys) = sesame::__fuzz::read_cookie(&headers, name, kind);
    let (expected_present, expected_keys) = model(&values, name.as_bytes(), kind);
    assert_eq!(present, expected_present, "present");
    assert_eq!(keys, expected_keys, "keys");
    for key in &keys {
        assert_eq!(key.kind(), kind);
    }
});

/// The contract, written independently of the parser.
fn model(headers: &[&[u8]], name: &[u8], kind: KeyKind) -> (bool, Vec<SessionKey>) {
    let mut present = false;
    let mut keys: Vec<SessionKey> = Vec::new();
    for pair in headers.iter().flat_map(|h| h.split(|&b| b == b';')) {
        let pair = pair.trim_ascii();
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (pair_name, value) = (&pair[..eq], &pair[eq + 1..]);
        if pair_name.trim_ascii() != name {
            continue;
        }
        present = true;
        let value = value.trim_ascii();
        // One pair of double quotes is removed, as Django's cookie parser does.
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        if let Ok(key) = SessionKey::parse_kind(value, kind)
            && keys.len() < 2
            && !keys.contains(&key)
        {
            keys.push(key);
        }
    }
    (present, keys)
}
