//! Every golden vector made by Django 5.2.19 (`testdata/django-5.2.19-vectors.json`).
//!
//! One test walks every group, collects every failure (so no failure hides
//! another) and ends with a line of counts: run it with `-- --nocapture` to
//! see them. Vectors outside the codec's job are listed by name with the
//! reason, never skipped silently.
//!
//! Compressed values: `miniz_oxide`'s zlib bytes differ from CPython's, so for
//! those we check that we also compress, that our output decodes to the same
//! session, and that Django's value decodes; uncompressed values must be
//! byte-identical. So must pickles, except for the two Python dicts that are
//! not JSON-shaped (an int key, a tuple), which decode to their JSON form.

use std::time::Duration;

use serde_json::Value;
use sesame_codec::{
    CACHE_KEY_PREFIX, CACHED_DB_KEY_PREFIX, DB_SALT, Error, ExpiryValue, KeyMatch,
    SIGNED_COOKIES_SALT, SessionMap, Signer, b62_decode, b62_encode, b64_decode, b64_encode,
    format_isoformat, json_dumps, json_loads, make_cache_key, pickle_dumps, pickle_loads,
    pickle_loads_session, salted_hmac, salted_hmac_key, session_auth_hash, session_cache_key,
};
use time::OffsetDateTime;

const VECTORS: &str = include_str!("../testdata/django-5.2.19-vectors.json");

/// Results of one group: checks run, failures, and cases left out (with why).
#[derive(Default)]
struct Tally {
    cases: usize,
    checks: usize,
    failures: Vec<String>,
    out_of_scope: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    // By value so callers can pass temporaries (`x.as_ref()`, `Ok(n)`) of any shape.
    #[allow(clippy::needless_pass_by_value)]
    fn check_eq<T: PartialEq + std::fmt::Debug>(&mut self, got: T, want: T, what: &str) {
        self.checks += 1;
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn int(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer"))
}

fn count(value: &Value, key: &str) -> usize {
    usize::try_from(int(value, key)).unwrap_or_else(|_| panic!("{key} is not a count"))
}

fn flag(value: &Value, key: &str) -> bool {
    value[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} is not a boolean"))
}

fn unix(value: &Value, key: &str) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(int(value, key)).expect("a Unix time in range")
}

fn loads(text: &str) -> Value {
    json_loads(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn cookie_age(vectors: &Value) -> Option<Duration> {
    let secs =
        u64::try_from(int(&vectors["settings"], "SESSION_COOKIE_AGE")).expect("a positive age");
    Some(Duration::from_secs(secs))
}

/// A dict from the vectors file as our reader would produce it (`serde_json`
/// and our reader agree on strings and integers; floats are re-read).
fn as_ours(value: &Value) -> Value {
    loads(&json_dumps(value))
}

fn as_map(value: Value) -> SessionMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

struct Keys {
    signer: Signer,
    secret_key: String,
    fallbacks: Vec<String>,
}

fn keys(vectors: &Value) -> Keys {
    let settings = &vectors["settings"];
    let secret_key = text(settings, "SECRET_KEY").to_owned();
    let fallbacks: Vec<String> = list(settings, "SECRET_KEY_FALLBACKS")
        .iter()
        .map(|k| k.as_str().expect("a key").to_owned())
        .collect();
    Keys {
        signer: Signer::new(secret_key.clone()).with_fallbacks(fallbacks.clone()),
        secret_key,
        fallbacks,
    }
}

/// Our encoding of `session` must equal Django's `expected` byte for byte
/// when Django did not compress; when it did, ours must be compressed too and
/// decode to the same session.
fn check_encoding(
    t: &mut Tally,
    name: &str,
    ours: &str,
    expected: &str,
    compressed: bool,
    decode_ours: impl Fn(&str) -> Result<SessionMap, Error>,
    session: &SessionMap,
) {
    if compressed {
        t.check(ours.starts_with('.'), || {
            format!("{name}: Django compressed, we did not: {ours}")
        });
        t.check_eq(
            ours.split(':').nth(1),
            expected.split(':').nth(1),
            &format!("{name} timestamp"),
        );
        t.check_eq(
            decode_ours(ours).as_ref(),
            Ok(session),
            &format!("{name} decodes"),
        );
    } else {
        t.check_eq(ours, expected, name);
    }
}

fn encode_cases(vectors: &Value, k: &Keys) -> Tally {
    let mut t = Tally::default();
    let cookie_age = cookie_age(vectors);
    let fallback_signer = Signer::new(k.fallbacks[0].clone());
    for case in list(vectors, "encode_cases") {
        t.cases += 1;
        let name = text(case, "name");
        let json = text(case, "serialized_json");
        let compressed = flag(case, "compressed");
        let now = unix(case, "timestamp");

        // Django's JSON text is the session (it also covers the
        // `$python_repr` cases: NaN, int keys, tuples).
        let session = as_map(loads(json));
        t.check_eq(
            json_dumps(&Value::Object(session.clone())).as_str(),
            json,
            &format!("{name} json"),
        );
        if case["session"].get("$python_repr").is_none() {
            t.check_eq(
                &as_map(as_ours(&case["session"])),
                &session,
                &format!("{name} session"),
            );
            let decoded = as_map(as_ours(&case["db"]["decoded"]));
            t.check_eq(&decoded, &session, &format!("{name} db.decoded"));
        }

        let db = &case["db"];
        let session_data = text(db, "session_data");
        let parts = &db["parts"];
        let joined = format!(
            "{}:{}:{}",
            text(parts, "payload"),
            text(parts, "timestamp_b62"),
            text(parts, "signature")
        );
        t.check_eq(joined.as_str(), session_data, &format!("{name} db.parts"));
        t.check_eq(
            text(parts, "payload").starts_with('.'),
            compressed,
            &format!("{name} compressed flag"),
        );

        // Encoding: db salt, signed_cookies salt, and signed with fallback 1.
        let decode_db = |s: &str| k.signer.loads_session(s, DB_SALT, None, now);
        let decode_cookie = |s: &str| {
            k.signer
                .loads_session(s, SIGNED_COOKIES_SALT, cookie_age, now)
        };
        let ours = k.signer.dumps_session(&session, DB_SALT, now);
        check_encoding(
            &mut t,
            &format!("{name} db"),
            &ours,
            session_data,
            compressed,
            decode_db,
            &session,
        );
        let ours = k.signer.dumps_session(&session, SIGNED_COOKIES_SALT, now);
        let cookie = &case["signed_cookie"];
        check_encoding(
            &mut t,
            &format!("{name} cookie"),
            &ours,
            text(cookie, "value"),
            compressed,
            decode_cookie,
            &session,
        );
        let ours = fallback_signer.dumps_session(&session, DB_SALT, now);
        check_encoding(
            &mut t,
            &format!("{name} db fallback"),
            &ours,
            text(db, "signed_with_fallback_1"),
            compressed,
            decode_db,
            &session,
        );

        // Decoding Django's values, fallback-signed ones included.
        for (what, value, salt, max_age) in [
            ("db", session_data, DB_SALT, None),
            (
                "db fallback",
                text(db, "signed_with_fallback_1"),
                DB_SALT,
                None,
            ),
            (
                "cookie",
                text(cookie, "value"),
                SIGNED_COOKIES_SALT,
                cookie_age,
            ),
            (
                "cookie fallback",
                text(cookie, "signed_with_fallback_1"),
                SIGNED_COOKIES_SALT,
                cookie_age,
            ),
        ] {
            let decoded = k.signer.loads_session(value, salt, max_age, now);
            t.check_eq(
                decoded.as_ref(),
                Ok(&session),
                &format!("{name} decode {what}"),
            );
        }
        check_pickle(&mut t, case, name, &session);
    }
    t
}

/// Django's `RedisCache` value for the case: it decodes to the session, and
/// our pickle of the session is byte-identical, except where the Python
/// dict is not JSON-shaped (int keys, tuples), whose JSON form pickles differently.
fn check_pickle(t: &mut Tally, case: &Value, name: &str, session: &SessionMap) {
    let django = b64_decode(text(case, "redis_pickle_b64")).expect("base64");
    t.check_eq(
        pickle_loads_session(&django).as_ref(),
        Ok(session),
        &format!("{name} pickle decode"),
    );
    let ours = pickle_dumps(session);
    t.check_eq(
        pickle_loads_session(&ours).as_ref(),
        Ok(session),
        &format!("{name} pickle round trip"),
    );
    let repr = text(case, "session_python_repr");
    // `$python_repr` marks sessions JSON cannot show as is: NaN/Infinity
    // (JSON-shaped, compared) and int keys and tuples (not JSON-shaped).
    let json_shaped = case["session"].get("$python_repr").is_none() || repr.contains("nan");
    if !json_shaped {
        t.out_of_scope.push(format!(
            "{name}.redis_pickle_b64 bytes: Django pickled {repr}, which is not JSON-shaped; \
             we decode it to its JSON form and pickle that (checked above), so the bytes differ"
        ));
    } else {
        t.check_eq(hex(&ours), hex(&django), &format!("{name} pickle bytes"));
    }
}

fn decode_cases(vectors: &Value, k: &Keys) -> Tally {
    let mut t = Tally::default();
    for case in list(vectors, "decode_cases") {
        t.cases += 1;
        let name = text(case, "name");
        let salt = match text(case, "backend") {
            "db" => DB_SALT,
            "signed_cookies" => SIGNED_COOKIES_SALT,
            other => panic!("{name}: unknown backend {other}"),
        };
        t.check_eq(text(case, "salt"), salt, &format!("{name} salt"));
        let max_age = case["max_age"].as_u64().map(Duration::from_secs);
        let now = unix(case, "now");
        let input = text(case, "input");
        let got = k.signer.loads_session(input, salt, max_age, now);
        match text(case, "outcome") {
            "decoded" => {
                let want = as_map(as_ours(&case["expected"]));
                t.check_eq(got.as_ref(), Ok(&want), name);
            }
            "empty" => t.check(got.is_err(), || {
                format!("{name}: decoded {got:?}, Django gave {{}}")
            }),
            "non_dict" => {
                t.check_eq(got.as_ref(), Err(&Error::NotAnObject), name);
                // The value Django's decode() returned before failing later.
                let raw = k.signer.loads(input, salt, max_age, now);
                t.check_eq(
                    raw.as_ref(),
                    Ok(&as_ours(&case["expected"])),
                    &format!("{name} raw"),
                );
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
    t
}

fn cache_keys(vectors: &Value) -> Tally {
    let mut t = Tally::default();
    for case in list(vectors, "cache_keys") {
        t.cases += 1;
        let engine_prefix = match text(case, "engine") {
            "django.contrib.sessions.backends.cache" => CACHE_KEY_PREFIX,
            "django.contrib.sessions.backends.cached_db" => CACHED_DB_KEY_PREFIX,
            other => panic!("unknown engine {other}"),
        };
        let prefix = text(case, "KEY_PREFIX");
        let version = int(case, "VERSION");
        let session_key = text(case, "session_key");
        let want = text(case, "redis_key");
        let what = format!("cache key {prefix:?} v{version} {engine_prefix}");
        t.check_eq(
            session_cache_key(prefix, version, engine_prefix, session_key).as_str(),
            want,
            &what,
        );
        t.check_eq(
            make_cache_key(prefix, version, &format!("{engine_prefix}{session_key}")).as_str(),
            want,
            &what,
        );
    }
    t
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn primitives(vectors: &Value, k: &Keys) -> Tally {
    let mut t = Tally::default();
    let p = &vectors["primitives"];
    for case in list(p, "b62") {
        t.cases += 1;
        let n = int(case, "int");
        let s = text(case, "b62");
        t.check_eq(b62_encode(n).as_str(), s, &format!("b62_encode({n})"));
        t.check_eq(b62_decode(s), Ok(n), &format!("b62_decode({s})"));
    }
    for case in list(p, "salted_hmac") {
        t.cases += 1;
        let key_salt = text(case, "key_salt");
        if text(case, "algorithm") != "sha256" {
            t.out_of_scope.push(format!(
                "primitives.salted_hmac[{key_salt}, {}]: SHA-1 signing is Django 3.1/3.2's legacy; \
                 Django 4.0+ rejects it, and so do we (decode case *_sha1_signature)",
                text(case, "algorithm")
            ));
            continue;
        }
        let secret = text(case, "secret").as_bytes();
        let value = text(case, "value").as_bytes();
        let what = format!("salted_hmac[{key_salt}]");
        let mac = salted_hmac(key_salt, value, secret);
        t.check_eq(
            hex(&salted_hmac_key(key_salt, secret)),
            text(case, "derived_key_hex").to_owned(),
            &what,
        );
        t.check_eq(hex(&mac), text(case, "hexdigest").to_owned(), &what);
        t.check_eq(
            b64_encode(&mac),
            text(case, "b64url_nopad").to_owned(),
            &what,
        );
    }
    for case in list(p, "signer_keys") {
        t.cases += 1;
        let salt = text(case, "salt");
        let hmac_key_salt = text(case, "hmac_key_salt");
        t.check_eq(
            format!("{salt}signer"),
            hmac_key_salt.to_owned(),
            "signer key salt",
        );
        let derived = salted_hmac_key(hmac_key_salt, text(case, "secret").as_bytes());
        t.check_eq(
            hex(&derived),
            text(case, "derived_hmac_key_hex").to_owned(),
            &format!("signer key {salt}"),
        );
    }
    for case in list(p, "auth_hash") {
        t.cases += 1;
        let password = text(case, "password_field");
        let primary = text(case, "session_auth_hash_primary");
        let what = format!("auth hash user {}", case["user_id"]);
        t.check_eq(
            session_auth_hash(password, &k.secret_key).as_str(),
            primary,
            &what,
        );
        t.check_eq(
            k.signer.session_auth_hash(password).as_str(),
            primary,
            &what,
        );
        t.check_eq(
            k.signer.verify_session_auth_hash(primary, password),
            Some(KeyMatch::Current),
            &what,
        );
        let fallbacks = list(case, "session_auth_hash_fallbacks");
        t.check_eq(fallbacks.len(), k.fallbacks.len(), &what);
        for (i, (fallback, want)) in k.fallbacks.iter().zip(fallbacks).enumerate() {
            let want = want.as_str().expect("a hash");
            t.check_eq(session_auth_hash(password, fallback).as_str(), want, &what);
            t.check_eq(
                k.signer.verify_session_auth_hash(want, password),
                Some(KeyMatch::Fallback(i)),
                &what,
            );
        }
    }
    t
}

/// The codec's part of the middleware vectors: the `session_data` Django
/// stored, the signed cookie it set, and the `_session_expiry` it wrote.
fn middleware_cases(vectors: &Value, k: &Keys) -> Tally {
    let mut t = Tally::default();
    let cookie_age = cookie_age(vectors);
    for case in list(vectors, "middleware_cases") {
        t.cases += 1;
        let name = text(case, "name");
        let now = unix(case, "now");
        t.out_of_scope.push(format!(
            "{name}: Set-Cookie, Vary, session keys and expire_date are the middleware's and stores' \
             job (crates/sesame); only the codec's part is checked here"
        ));
        if let Some(row) = case.get("db_row") {
            let session = as_map(as_ours(&case["session_after"]));
            let session_data = text(row, "session_data");
            t.check_eq(
                k.signer.dumps_session(&session, DB_SALT, now).as_str(),
                session_data,
                &format!("{name} session_data"),
            );
            t.check_eq(
                k.signer
                    .loads_session(session_data, DB_SALT, None, now)
                    .as_ref(),
                Ok(&session),
                &format!("{name} decode"),
            );
            if let Some(expiry) = session.get("_session_expiry") {
                let parsed = ExpiryValue::from_json(expiry);
                t.check(parsed.is_some(), || {
                    format!("{name}: _session_expiry {expiry} unread")
                });
                if let (Some(ExpiryValue::At(at)), Some(text)) = (parsed, expiry.as_str()) {
                    t.check_eq(
                        format_isoformat(at).as_str(),
                        text,
                        &format!("{name} isoformat"),
                    );
                }
            }
        }
        if text(case, "engine") == "django.contrib.sessions.backends.signed_cookies" {
            let set_cookie = text(case, "set_cookie");
            let value = set_cookie
                .strip_prefix("sessionid=")
                .and_then(|rest| rest.split(';').next())
                .expect("a sessionid cookie");
            let issued = k
                .signer
                .loads_session(value, SIGNED_COOKIES_SALT, cookie_age, now);
            t.check(issued.is_ok(), || {
                format!("{name}: Django's cookie does not decode")
            });
            if let Ok(session) = issued {
                t.check_eq(
                    k.signer
                        .dumps_session(&session, SIGNED_COOKIES_SALT, now)
                        .as_str(),
                    value,
                    &format!("{name} cookie value"),
                );
            }
            if let Some(sent) = case["request_cookie"].as_str() {
                let read = k
                    .signer
                    .loads_session(sent, SIGNED_COOKIES_SALT, cookie_age, now);
                t.check(read.is_err(), || {
                    format!("{name}: the tampered cookie decoded")
                });
            }
        }
    }
    t
}

fn cache_only_pickles(vectors: &Value) -> Tally {
    let mut t = Tally::default();
    for case in list(vectors, "cache_only_pickles") {
        t.cases += 1;
        let name = text(case, "name");
        let readable = flag(case, "json_serializable");
        let (stored, got) = if let Some(raw) = case["redis_raw_value"].as_str() {
            // A bare int: RedisSerializer's plain-digits form, never a session.
            (raw.as_bytes().to_vec(), None)
        } else {
            let stored = b64_decode(text(case, "redis_pickle_b64")).expect("base64");
            let got = pickle_loads(&stored);
            (stored, Some(got))
        };
        let session = pickle_loads_session(&stored);
        match got {
            None => t.check_eq(session.as_ref(), Err(&Error::NotAnObject), name),
            Some(got) => {
                t.check_eq(got.is_ok(), readable, &format!("{name} readable"));
                t.check_eq(session.is_ok(), readable, &format!("{name} session"));
                if let Err(e) = &got {
                    // Class instances must be refused as code, the rest as non-plain data.
                    let code = text(case, "session_python_repr").contains('(');
                    t.check(matches!(e, Error::UnsafePickle(_)) == code, || {
                        format!("{name}: unexpected error {e:?}")
                    });
                }
            }
        }
    }
    t
}

#[test]
fn every_django_vector() {
    let vectors: Value = serde_json::from_str(VECTORS).expect("the vectors file is JSON");
    assert_eq!(vectors["generator"]["django"], "5.2.19");
    let k = keys(&vectors);
    let groups = [
        ("encode_cases", encode_cases(&vectors, &k)),
        ("decode_cases", decode_cases(&vectors, &k)),
        ("cache_keys", cache_keys(&vectors)),
        ("primitives", primitives(&vectors, &k)),
        ("middleware_cases", middleware_cases(&vectors, &k)),
        ("cache_only_pickles", cache_only_pickles(&vectors)),
    ];

    let counts = &vectors["counts"];
    let expected_cases = |group: &str| -> usize {
        if group == "primitives" {
            ["b62", "salted_hmac", "signer_keys", "auth_hash"]
                .iter()
                .map(|p| count(counts, &format!("primitives.{p}")))
                .sum()
        } else {
            count(counts, group)
        }
    };
    let mut failures = Vec::new();
    let (mut cases, mut checks, mut out_of_scope) = (0, 0, 0);
    for (group, tally) in &groups {
        eprintln!(
            "{group}: {} cases, {} checks, {} failed, {} left out",
            tally.cases,
            tally.checks,
            tally.failures.len(),
            tally.out_of_scope.len()
        );
        for reason in &tally.out_of_scope {
            eprintln!("  left out: {reason}");
        }
        assert_eq!(
            tally.cases,
            expected_cases(group),
            "{group}: not every case was visited"
        );
        cases += tally.cases;
        checks += tally.checks;
        out_of_scope += tally.out_of_scope.len();
        failures.extend(tally.failures.iter().map(|f| format!("{group}: {f}")));
    }
    assert_eq!(cases, count(counts, "total"));
    eprintln!(
        "django-5.2.19 vectors: {cases} cases, {checks} checks, {} failed; {out_of_scope} items left out (listed above)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
