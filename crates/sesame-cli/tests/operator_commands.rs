//! The real `sesame` binary's `decode`, `encode` and `inspect`, on values
//! made by Django 5.2.19 (the golden vectors in `sesame-codec/testdata`) and
//! on sessions written by the library.
#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns: a failed unwrap is a failed test"
)]

mod common;

use std::process::{ExitStatus, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};
use sesame::codec::Signer;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sesame");

/// How long one command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The time the vectors were made at (their `settings.frozen_time`).
const NOW: &str = "1700000000";

/// Django's output, read-only test data.
static VECTORS: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sesame-codec/testdata/django-5.2.19-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
});

/// The `SECRET_KEY` the vectors were made with.
fn secret_key() -> &'static str {
    VECTORS["settings"]["SECRET_KEY"].as_str().unwrap()
}

/// The vectors' `SECRET_KEY_FALLBACKS`, as the JSON array Django's settings hold.
fn fallbacks_json() -> String {
    VECTORS["settings"]["SECRET_KEY_FALLBACKS"].to_string()
}

/// The Django settings the vectors were made with, as environment variables.
fn django_env() -> Vec<(&'static str, String)> {
    vec![
        ("SECRET_KEY", secret_key().to_owned()),
        ("SECRET_KEY_FALLBACKS", fallbacks_json()),
    ]
}

fn decode_case(name: &str) -> &'static Value {
    VECTORS["decode_cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no decode case {name}"))
}

fn encode_cases() -> &'static [Value] {
    VECTORS["encode_cases"].as_array().unwrap()
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout as JSON, after checking it is one line.
    fn json(&self) -> Value {
        assert_eq!(self.stdout.lines().count(), 1, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Runs `sesame args…` with `stdin` piped in and only the environment given
/// (none of the caller's `SECRET_KEY*`, `SESSION_*` or `SESAME_*`), bounded
/// by [`TIMEOUT`], in an empty working directory of its own (`inspect` reads
/// a key file `serve` left there).
async fn sesame(args: &[&str], env: &[(&str, String)], stdin: &[u8]) -> Run {
    let dir = common::TempDir::new("operator-cwd");
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SESSION_")
            || name.starts_with("SECRET_KEY")
            || name.starts_with("SESAME_")
        {
            cmd.env_remove(&*name);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // Written from a task of its own, so a command that does not read all
    // of stdin cannot block the test.
    let writer = tokio::spawn(async move {
        let _ = pipe.write_all(&input).await;
    });
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("the command finishes")
        .unwrap();
    writer.await.unwrap();
    Run {
        status: output.status,
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `sesame decode args…` with the vectors' settings on `input` + newline.
async fn decode(args: &[&str], env: &[(&str, String)], input: &str) -> Run {
    let mut all = vec!["decode", "--now", NOW];
    all.extend_from_slice(args);
    sesame(&all, env, format!("{input}\n").as_bytes()).await
}

/// Checks that a run printed `{}` and a one-line warning, and succeeded.
fn assert_empty_with_warning(run: &Run, why: &str) {
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(run.stdout, "{}\n", "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.starts_with("warning: "), "{run:?}");
    assert!(run.stderr.contains(why), "expected {why:?} in {run:?}");
}

#[tokio::test]
async fn decode_prints_a_django_db_session_as_utf8_json() {
    let case = decode_case("db_valid");
    let run = decode(&[], &django_env(), case["input"].as_str().unwrap()).await;
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"counter\":5,\"user\":\"élève\",\"_auth_user_id\":\"42\"}\n"
    );
    assert_eq!(run.json(), case["expected"]);
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn decode_reads_a_signed_cookie_with_the_shorthand_salt() {
    let case = decode_case("signed_cookies_valid");
    let input = case["input"].as_str().unwrap();
    let args = ["--salt", "signed-cookies", "--max-age", "1209600"];
    let run = decode(&args, &django_env(), input).await;
    assert_eq!(run.json(), case["expected"], "{run:?}");
    // Under the default (db) salt the same cookie is not a session.
    let run = decode(&[], &django_env(), input).await;
    assert_empty_with_warning(&run, "bad signature");
    // The full salt works too.
    let salt = VECTORS["constants"]["signed_cookies_salt"]
        .as_str()
        .unwrap();
    let run = decode(&["--salt", salt], &django_env(), input).await;
    assert_eq!(run.json(), case["expected"], "{run:?}");
}

#[tokio::test]
async fn decode_accepts_a_value_signed_with_a_fallback_key() {
    let case = decode_case("db_valid");
    let input = case["input"].as_str().unwrap();
    // The vectors' key has been rotated out: SECRET_KEY=new, fallbacks=[old].
    let rotated = [
        ("SECRET_KEY", "a-brand-new-secret-key".to_owned()),
        ("SECRET_KEY_FALLBACKS", json!([secret_key()]).to_string()),
    ];
    let run = decode(&[], &rotated, input).await;
    assert_eq!(run.json(), case["expected"], "{run:?}");
    // Django's own fallback vector, under Django's settings.
    let case = decode_case("db_fallback_2");
    let run = decode(&[], &django_env(), case["input"].as_str().unwrap()).await;
    assert_eq!(run.json(), case["expected"], "{run:?}");
    // Without the fallback the value is refused.
    let new_only = [("SECRET_KEY", "a-brand-new-secret-key".to_owned())];
    let run = decode(&[], &new_only, input).await;
    assert_empty_with_warning(&run, "bad signature");
}

#[tokio::test]
async fn fallback_keys_may_contain_commas_in_a_json_array() {
    let comma_key = "old,key,with,commas";
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let mut data = sesame::codec::SessionMap::new();
    data.insert("user".into(), "ünïcode".into());
    let signed = Signer::new(comma_key).dumps_session(&data, sesame::codec::DB_SALT, now);
    let env = [
        ("SECRET_KEY", "new".to_owned()),
        (
            "SECRET_KEY_FALLBACKS",
            json!(["other", comma_key]).to_string(),
        ),
    ];
    let run = decode(&[], &env, &signed).await;
    assert_eq!(run.json(), json!({"user": "ünïcode"}), "{run:?}");
    // As a comma-separated list the same setting names other keys.
    let env = [
        ("SECRET_KEY", "new".to_owned()),
        ("SECRET_KEY_FALLBACKS", format!("other,{comma_key}")),
    ];
    assert_empty_with_warning(&decode(&[], &env, &signed).await, "bad signature");
    // A plain comma-separated list works for keys without commas.
    let env = [
        ("SECRET_KEY", "new".to_owned()),
        ("SECRET_KEY_FALLBACKS", format!("other, {}", secret_key())),
    ];
    let case = decode_case("db_valid");
    let run = decode(&[], &env, case["input"].as_str().unwrap()).await;
    assert_eq!(run.json(), case["expected"], "{run:?}");
}

#[tokio::test]
async fn decode_of_a_tampered_value_prints_an_empty_session_and_says_why() {
    let case = decode_case("db_tampered_payload");
    let input = case["input"].as_str().unwrap();
    let run = decode(&[], &django_env(), input).await;
    assert_empty_with_warning(&run, "bad signature");
    assert!(!run.stderr.contains(input), "the input was echoed: {run:?}");
    assert!(!run.stderr.contains(secret_key()), "the key was shown");
}

#[tokio::test]
async fn decode_with_max_age_refuses_an_expired_value() {
    let case = decode_case("signed_cookies_age_max_age_plus_1");
    let input = case["input"].as_str().unwrap();
    let args = ["--salt", "signed-cookies", "--max-age", "1209600"];
    let run = decode(&args, &django_env(), input).await;
    assert_empty_with_warning(&run, "1209601 s old, limit 1209600 s");
    // Without --max-age the signature has no age limit.
    let run = decode(&["--salt", "signed-cookies"], &django_env(), input).await;
    assert_eq!(run.json(), decode_case("signed_cookies_valid")["expected"]);
}

#[tokio::test]
async fn decode_gives_every_django_decode_case_its_outcome() {
    for case in VECTORS["decode_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let now = case["now"].to_string();
        let mut args = vec!["--now", &now, "--salt", case["salt"].as_str().unwrap()];
        let max_age = case["max_age"].as_u64().map(|s| s.to_string());
        if let Some(max_age) = &max_age {
            args.extend(["--max-age", max_age]);
        }
        let input = case["input"].as_str().unwrap();
        let run = sesame(
            &[&["decode"][..], &args].concat(),
            &django_env(),
            input.as_bytes(),
        )
        .await;
        assert_eq!(run.code(), Some(0), "{name}: {run:?}");
        match case["outcome"].as_str().unwrap() {
            "decoded" => {
                assert_eq!(run.json(), case["expected"], "{name}: {run:?}");
                assert_eq!(run.stderr, "", "{name}");
            }
            "empty" | "non_dict" => {
                assert_eq!(run.stdout, "{}\n", "{name}: {run:?}");
                assert_eq!(run.stderr.lines().count(), 1, "{name}: {run:?}");
                if input.len() > 8 {
                    assert!(!run.stderr.contains(input), "{name}: input echoed");
                }
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
}

#[tokio::test]
async fn decode_without_secret_key_is_a_usage_error() {
    let input = decode_case("db_valid")["input"].as_str().unwrap();
    let run = decode(&[], &[], input).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("SECRET_KEY is not set"), "{run:?}");
    let bad = [
        ("SECRET_KEY", "k".to_owned()),
        ("SECRET_KEY_FALLBACKS", "[not json".to_owned()),
    ];
    let run = decode(&[], &bad, input).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("SECRET_KEY_FALLBACKS"), "{run:?}");
}

#[tokio::test]
async fn encode_matches_django_byte_for_byte_when_uncompressed() {
    let mut checked = 0;
    for case in encode_cases() {
        if case["compressed"] != false {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        // Django's JSON (`\u00e9` escapes) re-written by serde_json as UTF-8.
        let session: Value =
            serde_json::from_str(case["serialized_json"].as_str().unwrap()).unwrap();
        let input = serde_json::to_string(&session).unwrap();
        for (args, expected) in [
            (&["encode", "--now", NOW][..], &case["db"]["session_data"]),
            (
                &["encode", "--now", NOW, "--salt", "signed-cookies"][..],
                &case["signed_cookie"]["value"],
            ),
        ] {
            let run = sesame(args, &django_env(), input.as_bytes()).await;
            assert_eq!(run.code(), Some(0), "{name}: {run:?}");
            assert_eq!(
                run.stdout,
                format!("{}\n", expected.as_str().unwrap()),
                "{name}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} uncompressed cases");
}

#[tokio::test]
async fn encode_compresses_as_django_does_and_django_values_decode_the_same() {
    let case = encode_cases()
        .iter()
        .find(|c| c["name"] == "large_repetitive")
        .unwrap();
    let input = case["serialized_json"].as_str().unwrap();
    let run = sesame(&["encode", "--now", NOW], &django_env(), input.as_bytes()).await;
    assert_eq!(run.code(), Some(0), "{run:?}");
    let ours = run.stdout.trim_end();
    assert!(ours.starts_with('.'), "not compressed: {ours}");
    let django = case["db"]["session_data"].as_str().unwrap();
    assert!(django.starts_with('.'));
    let expected: Value = serde_json::from_str(input).unwrap();
    for value in [ours, django] {
        assert_eq!(decode(&[], &django_env(), value).await.json(), expected);
    }
}

#[tokio::test]
async fn encode_then_decode_round_trips_non_ascii() {
    let session = json!({
        "name": "élève 日本語 😀",
        "ключ": [1, 2.5, null, true, {"nested": "שלום"}],
        "big": 123_456_789_012_345_678_u64,
    });
    let env = [("SECRET_KEY", "round-trip-key".to_owned())];
    let encoded = sesame(
        &["encode", "--now", NOW, "--salt", "signed-cookies"],
        &env,
        session.to_string().as_bytes(),
    )
    .await;
    assert_eq!(encoded.code(), Some(0), "{encoded:?}");
    assert!(encoded.stdout.is_ascii());
    let decoded = decode(
        &["--salt", "signed-cookies"],
        &env,
        encoded.stdout.trim_end(),
    )
    .await;
    assert_eq!(decoded.json(), session, "{decoded:?}");
    assert!(
        decoded.stdout.contains("élève 日本語 😀"),
        "not UTF-8: {decoded:?}"
    );
    // Key order is kept.
    let keys: Vec<String> = decoded
        .json()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["name", "ключ", "big"]);
}

#[tokio::test]
async fn encode_refuses_anything_but_a_json_object() {
    let env = [("SECRET_KEY", "k".to_owned())];
    for (input, why) in [
        ("[1, 2, 3]", "got an array"),
        ("\"a string\"", "got a string"),
        ("{\"a\": 1", "not valid JSON"),
        ("", "not valid JSON"),
    ] {
        let run = sesame(&["encode"], &env, input.as_bytes()).await;
        assert_eq!(run.code(), Some(2), "{input}: {run:?}");
        assert_eq!(run.stdout, "", "{input}");
        assert!(run.stderr.contains(why), "{input}: {run:?}");
    }
    let run = sesame(&["encode"], &[], b"{}").await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("SECRET_KEY is not set"), "{run:?}");
}

/// Python's json (and so Django) reads and writes `NaN` and `Infinity`;
/// JSON has no such numbers. `encode` refuses a number that would become
/// one; `decode` of a session holding them still prints JSON, with `null`
/// in their place and a warning.
#[tokio::test]
async fn infinity_never_reaches_the_json_printed_or_the_value_encoded() {
    let env = [("SECRET_KEY", "k".to_owned())];
    let run = sesame(&["encode"], &env, br#"{"a": 1e999}"#).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("Infinity"), "{run:?}");

    let session = sesame::codec::json_loads(br#"{"a":Infinity,"b":[NaN,1.5],"c":-Infinity}"#)
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let signed = Signer::new("k").dumps_session(&session, sesame::codec::DB_SALT, now);
    let run = decode(&[], &env, &signed).await;
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(run.json(), json!({"a": null, "b": [null, 1.5], "c": null}));
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("printed 3 NaN or Infinity"), "{run:?}");
}

#[tokio::test]
async fn encode_of_more_than_a_session_can_hold_says_so() {
    let env = [("SECRET_KEY", "k".to_owned())];
    let mut big = b"{\"a\": \"".to_vec();
    big.resize(17 * 1024 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    for input in [big, vec![b' '; 17 * 1024 * 1024]] {
        let run = sesame(&["encode"], &env, &input).await;
        assert_eq!(run.code(), Some(2), "{:?}", run.stderr);
        assert!(run.stderr.contains("more than 16 MiB"), "{:?}", run.stderr);
    }
}

#[cfg(feature = "sqlite")]
mod inspect {
    use sesame::backends::{Record, SessionStore as _, SqliteStore};
    use sesame::codec::SessionMap;
    use time::OffsetDateTime;

    use super::*;
    use crate::common::TempDir;

    const OLD_KEY: &str = "inspect-old-secret";
    const NEW_KEY: &str = "inspect-new-secret";

    /// An SQLite file holding one session the library wrote with
    /// [`OLD_KEY`], expiring on 2100-01-01; returns the folder, the store URL
    /// and the session key.
    async fn store_with_one_session(data: &SessionMap) -> (TempDir, String, String) {
        let dir = TempDir::new("inspect");
        let path = dir.path().join("db.sqlite3");
        let store = SqliteStore::open(&path, Signer::new(OLD_KEY)).unwrap();
        store.migrate().await.unwrap();
        let expires = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap();
        let saved = store
            .create(&Record::new(data.clone(), expires))
            .await
            .unwrap();
        let url = format!("sqlite://{}", path.display());
        (dir, url, saved.key.as_str().to_owned())
    }

    #[tokio::test]
    async fn inspect_prints_a_stored_session_without_its_whole_key() {
        let mut data = SessionMap::new();
        data.insert("counter".into(), 7.into());
        data.insert("name".into(), "élève".into());
        let (_dir, url, key) = store_with_one_session(&data).await;
        // The key it was signed with is now a fallback.
        let env = [
            ("SECRET_KEY", NEW_KEY.to_owned()),
            ("SECRET_KEY_FALLBACKS", json!([OLD_KEY]).to_string()),
        ];
        let run = sesame(&["inspect", "--store", &url, &key], &env, b"").await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert_eq!(
            run.json(),
            json!({
                "session_key": format!("{}…", &key[..4]),
                "expire_date": "2100-01-01T00:00:00Z",
                "session": {"counter": 7, "name": "élève"},
            })
        );
        assert!(!run.stdout.contains(&key) && !run.stderr.contains(&key));
    }

    #[tokio::test]
    async fn inspect_reads_a_row_django_wrote() {
        let (_dir, url, _) = store_with_one_session(&SessionMap::new()).await;
        let row = &VECTORS["middleware_cases"][0]["db_row"];
        let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
        conn.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) \
             VALUES (?1, ?2, '2999-01-01 00:00:00')",
            [
                row["session_key"].as_str().unwrap(),
                row["session_data"].as_str().unwrap(),
            ],
        )
        .unwrap();
        let key = row["session_key"].as_str().unwrap();
        let run = sesame(&["inspect", "--store", &url, key], &django_env(), b"").await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        let shown = run.json();
        assert_eq!(shown["session"], json!({"counter": 1}));
        assert_eq!(shown["expire_date"], "2999-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn inspect_of_an_absent_or_expired_session_exits_1() {
        let (dir, url, _) = store_with_one_session(&SessionMap::new()).await;
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        conn.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) \
             VALUES ('expiredsession0000000000000001', 'x', '2000-01-01 00:00:00')",
            [],
        )
        .unwrap();
        let env = [("SECRET_KEY", OLD_KEY.to_owned())];
        for (key, prefix) in [
            ("nosuchsession000000000000000001", "nosu…"),
            ("expiredsession0000000000000001", "expi…"),
        ] {
            let run = sesame(&["inspect", "--store", &url, key], &env, b"").await;
            assert_eq!(run.code(), Some(1), "{run:?}");
            assert_eq!(run.stdout, "");
            assert!(
                run.stderr
                    .contains(&format!("no live session under {prefix}")),
                "{run:?}"
            );
            assert!(
                !run.stderr.contains(key),
                "the whole key was shown: {run:?}"
            );
        }
    }

    #[tokio::test]
    async fn inspect_with_the_wrong_secret_key_says_so_and_exits_1() {
        let (_dir, url, key) = store_with_one_session(&SessionMap::new()).await;
        let env = [("SECRET_KEY", NEW_KEY.to_owned())];
        let run = sesame(&["inspect", "--store", &url, &key], &env, b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("bad signature"), "{run:?}");
        assert!(run.stderr.contains("SECRET_KEY_FALLBACKS"), "{run:?}");
        assert!(
            !run.stderr.contains(&key),
            "the whole key was shown: {run:?}"
        );
        // Without any SECRET_KEY the command cannot read signed rows at all.
        let run = sesame(&["inspect", "--store", &url, &key], &[], b"").await;
        assert_eq!(run.code(), Some(2), "{run:?}");
        assert!(run.stderr.contains("SECRET_KEY is not set"), "{run:?}");
    }

    /// After `sesame serve` ran without `SECRET_KEY`, `inspect` on the same
    /// database uses the key it generated beside it, and says so.
    #[tokio::test]
    async fn inspect_uses_the_key_serve_generated_when_secret_key_is_unset() {
        let mut data = SessionMap::new();
        data.insert("counter".into(), 3.into());
        let (dir, url, key) = store_with_one_session(&data).await;
        std::fs::write(
            dir.path().join("db.sqlite3.secret_key"),
            format!("{OLD_KEY}\n"),
        )
        .unwrap();
        let run = sesame(&["inspect", "--store", &url, &key], &[], b"").await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert_eq!(run.json()["session"], json!({"counter": 3}));
        assert!(
            run.stderr.contains("using the one sesame serve generated"),
            "{run:?}"
        );
        // SECRET_KEY, when set, wins.
        let env = [("SECRET_KEY", NEW_KEY.to_owned())];
        let run = sesame(&["inspect", "--store", &url, &key], &env, b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert!(run.stderr.contains("bad signature"), "{run:?}");
        // An emptied key file is an error that says what to do, never a
        // session read with an empty key.
        std::fs::write(dir.path().join("db.sqlite3.secret_key"), "\n").unwrap();
        let run = sesame(&["inspect", "--store", &url, &key], &[], b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("is empty"), "{run:?}");
    }

    #[tokio::test]
    async fn inspect_of_a_malformed_key_exits_2_without_echoing_it() {
        let (_dir, url, _) = store_with_one_session(&SessionMap::new()).await;
        let env = [("SECRET_KEY", OLD_KEY.to_owned())];
        for bad in [
            "short",
            "UPPERCASE0000000000",
            "../../etc/passwd",
            "a;b=c0000000",
        ] {
            let run = sesame(&["inspect", "--store", &url, bad], &env, b"").await;
            assert_eq!(run.code(), Some(2), "{bad}: {run:?}");
            assert!(run.stderr.contains("not a session key"), "{run:?}");
            assert!(!run.stderr.contains(bad), "{bad} echoed: {run:?}");
        }
    }
}

#[tokio::test]
async fn inspect_refuses_a_store_only_the_serving_process_sees() {
    let env = [("SECRET_KEY", "k".to_owned())];
    for url in ["memory:", "sqlite::memory:"] {
        let run = sesame(&["inspect", "--store", url, "abcdefgh12345678"], &env, b"").await;
        assert_eq!(run.code(), Some(2), "{run:?}");
        assert!(
            run.stderr.contains("memory of the process serving them"),
            "{run:?}"
        );
    }
}

/// `inspect` on the database server `SESAME_TEST_<STORE>_URL` names (a skip
/// line when unset): a session the library wrote there, then an absent one.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn inspect_on_a_server<S: sesame::backends::SessionStore>(
    store_name: &str,
    store: impl AsyncFnOnce(&str, Signer) -> S,
    url_of: impl Fn(&str) -> String,
) {
    use sesame::backends::Record;

    let Some(url) = sesame_conformance::env_url(store_name) else {
        return;
    };
    let store = store(&url, Signer::new("inspect-server-key")).await;
    let mut data = sesame::codec::SessionMap::new();
    data.insert("name".into(), "élève".into());
    // With microseconds: PostgreSQL and MariaDB keep them.
    let expires =
        time::OffsetDateTime::from_unix_timestamp_nanos(4_102_444_800_123_456_000).unwrap();
    let saved = store.create(&Record::new(data, expires)).await.unwrap();
    let key = saved.key.as_str().to_owned();
    let env = [("SECRET_KEY", "inspect-server-key".to_owned())];
    let store_url = url_of(&url);
    let run = sesame(&["inspect", "--store", &store_url, &key], &env, b"").await;
    store.delete(&saved.key).await.unwrap();
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(
        run.json(),
        json!({
            "session_key": format!("{}…", &key[..4]),
            "expire_date": "2100-01-01T00:00:00.123456Z",
            "session": {"name": "élève"},
        })
    );
    let run = sesame(&["inspect", "--store", &store_url, &key], &env, b"").await;
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("no live session under"), "{run:?}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn inspect_on_postgres() {
    inspect_on_a_server(
        "postgres",
        async |url: &str, signer| {
            let store = sesame::backends::PostgresStore::connect(url, signer)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store
        },
        str::to_owned,
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn inspect_on_mariadb() {
    inspect_on_a_server(
        "mysql",
        async |url: &str, signer| {
            let store = sesame::backends::MySqlStore::connect(url, signer)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store
        },
        |url| url.replacen("mysql://", "mariadb://", 1),
    )
    .await;
}

/// `inspect --store signed-cookies: VALUE`: the cookie value is the session.
mod inspect_signed_cookies {
    use sesame::backends::{Record, SessionStore as _, SignedCookieStore};
    use sesame::codec::SessionMap;
    use time::{Duration as TimeDuration, OffsetDateTime};

    use super::*;

    #[tokio::test]
    async fn inspect_decodes_a_signed_cookie_and_honours_session_cookie_age() {
        let mut data = SessionMap::new();
        data.insert("counter".into(), 3.into());
        // Signed with the vectors' first fallback, valid for two more hours.
        let old = VECTORS["settings"]["SECRET_KEY_FALLBACKS"][0]
            .as_str()
            .unwrap();
        let store = SignedCookieStore::new(Signer::new(old));
        let expires = OffsetDateTime::now_utc() + TimeDuration::hours(2);
        let cookie = store.create(&Record::new(data, expires)).await.unwrap().key;
        let cookie = cookie.as_str();
        let run = sesame(
            &["inspect", "--store", "signed-cookies:", cookie],
            &django_env(),
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert_eq!(run.json()["session"], json!({"counter": 3}));
        assert!(!run.stdout.contains(cookie) && !run.stderr.contains(cookie));

        // Signed two weeks minus two hours ago: too old for a one-day age.
        let mut env = django_env();
        env.push(("SESSION_COOKIE_AGE", "86400".to_owned()));
        let run = sesame(
            &["inspect", "--store", "signed-cookies:", cookie],
            &env,
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert!(run.stderr.contains("cannot be decoded"), "{run:?}");

        // Tampered: a bad signature.
        let tampered = format!(
            "eyJjb3VudGVyIjo5fQ{}",
            &cookie["eyJjb3VudGVyIjozfQ".len()..]
        );
        let run = sesame(
            &["inspect", "--store", "signed-cookies:", &tampered],
            &django_env(),
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(1), "{run:?}");
    }
}

/// `sesame revoke`: a user's sessions deleted, others kept, on SQLite (and
/// `cached_db` on Redis when `SESAME_TEST_REDIS_URL` is set).
#[cfg(feature = "sqlite")]
mod revoke {
    use sesame::backends::{Record, SessionStore, SqliteStore};
    use sesame::codec::SessionMap;
    use time::OffsetDateTime;

    use super::*;
    use crate::common::TempDir;

    const KEY: &str = "revoke-secret";

    fn logged_in(user: &Value) -> SessionMap {
        let Value::Object(map) = json!({
            "_auth_user_id": user,
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        }) else {
            unreachable!()
        };
        map
    }

    fn in_2100() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap()
    }

    async fn create<S: SessionStore>(store: &S, data: SessionMap) -> String {
        let saved = store.create(&Record::new(data, in_2100())).await.unwrap();
        saved.key.as_str().to_owned()
    }

    /// A migrated SQLite file and its URL.
    async fn sqlite() -> (TempDir, SqliteStore, String) {
        let dir = TempDir::new("revoke");
        let path = dir.path().join("db.sqlite3");
        let store = SqliteStore::open(&path, Signer::new(KEY)).unwrap();
        store.migrate().await.unwrap();
        let url = format!("sqlite://{}", path.display());
        (dir, store, url)
    }

    async fn live<S: SessionStore>(store: &S, key: &str) -> bool {
        let key = sesame::SessionKey::from_bytes(key.as_bytes()).unwrap();
        store.exists(&key).await.unwrap()
    }

    #[tokio::test]
    async fn revoke_deletes_the_users_sessions_but_the_one_kept_and_never_prints_a_key() {
        let (_dir, store, url) = sqlite().await;
        let laptop = create(&store, logged_in(&json!("42"))).await;
        // An id stored as a number (an old Django, another client) is the same user.
        let phone = create(&store, logged_in(&json!(42))).await;
        let other = create(&store, logged_in(&json!("420"))).await;
        let anonymous = create(&store, SessionMap::new()).await;
        let env = [("SECRET_KEY", KEY.to_owned())];

        let run = sesame(
            &[
                "revoke",
                "--store",
                &url,
                "--user",
                "42",
                "--except",
                &laptop,
                "--dry-run",
            ],
            &env,
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(
            lines.pop(),
            Some("would revoke 1 session of user \"42\" (checked 4 sessions)"),
            "{run:?}"
        );
        lines.sort_unstable();
        let mut want = [
            format!("{}… expires 2100-01-01T00:00:00Z (kept)", &laptop[..4]),
            format!("{}… expires 2100-01-01T00:00:00Z", &phone[..4]),
        ];
        want.sort_unstable();
        assert_eq!(lines, want, "{run:?}");
        for key in [&laptop, &phone, &other, &anonymous] {
            assert!(live(&store, key).await, "--dry-run deleted a session");
        }

        let run = sesame(
            &[
                "revoke", "--store", &url, "--user", "42", "--except", &laptop,
            ],
            &env,
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert_eq!(
            run.stdout,
            format!(
                "revoked 1 session of user \"42\" (checked 4 sessions, kept {}…)\n",
                &laptop[..4]
            )
        );
        assert!(live(&store, &laptop).await, "the kept session");
        assert!(!live(&store, &phone).await, "the revoked session");
        assert!(live(&store, &other).await && live(&store, &anonymous).await);
        for key in [&laptop, &phone] {
            assert!(
                !run.stdout.contains(key.as_str()) && !run.stderr.contains(key.as_str()),
                "a whole key was printed: {run:?}"
            );
        }
    }

    #[tokio::test]
    async fn sessions_the_keys_cannot_decode_are_counted_and_fail_the_run() {
        let (_dir, store, url) = sqlite().await;
        let mine = create(&store, logged_in(&json!("7"))).await;
        create(&store, logged_in(&json!("8"))).await;
        // A row signed with another key: it may be user 7's, or not.
        let foreign = Signer::new("another-key").dumps_session(
            &logged_in(&json!("7")),
            sesame::codec::DB_SALT,
            OffsetDateTime::now_utc(),
        );
        let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
        conn.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) \
             VALUES ('foreignsession0000000000000001', ?1, '2999-01-01 00:00:00')",
            [foreign],
        )
        .unwrap();
        let env = [("SECRET_KEY", KEY.to_owned())];
        let run = sesame(&["revoke", "--store", &url, "--user", "7"], &env, b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert_eq!(
            run.stdout,
            "revoked 1 session of user \"7\" (checked 2 sessions)\n"
        );
        assert!(
            run.stderr
                .contains("could not decode 1 of the 3 sessions with SECRET_KEY"),
            "{run:?}"
        );
        assert!(!live(&store, &mine).await);

        // With the other key as a fallback, every session is checked.
        let env = [
            ("SECRET_KEY", KEY.to_owned()),
            ("SECRET_KEY_FALLBACKS", json!(["another-key"]).to_string()),
        ];
        let run = sesame(&["revoke", "--store", &url, "--user", "7"], &env, b"").await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert_eq!(
            run.stdout,
            "revoked 1 session of user \"7\" (checked 2 sessions)\n"
        );
    }

    #[tokio::test]
    async fn bad_arguments_and_stores_that_cannot_list_exit_2_before_anything_is_opened() {
        let (_dir, _store, url) = sqlite().await;
        let env = [("SECRET_KEY", KEY.to_owned())];
        for (args, says) in [
            (
                vec!["--store", url.as_str(), "--user", ""],
                "--user is empty",
            ),
            (
                vec![
                    "--store",
                    url.as_str(),
                    "--user",
                    "1",
                    "--except",
                    "../etc/passwd",
                ],
                "--except is not a session key",
            ),
            (
                vec!["--store", "memory:", "--user", "1"],
                "memory of the process",
            ),
            (
                vec!["--store", url.as_str(), "--cache", "memory:", "--user", "1"],
                "cannot delete its copies",
            ),
            (
                vec!["--store", "signed-cookies:", "--user", "1"],
                "replacing SECRET_KEY",
            ),
            // Nothing listens there: refused before any connection.
            (
                vec!["--store", "memcached://127.0.0.1:1", "--user", "1"],
                "cannot list its keys",
            ),
        ] {
            let mut all = vec!["revoke"];
            all.extend(args);
            let run = sesame(&all, &env, b"").await;
            assert_eq!(run.code(), Some(2), "{all:?}: {run:?}");
            assert!(run.stderr.contains(says), "{all:?}: {run:?}");
            assert!(!run.stderr.contains("../etc/passwd"), "echoed: {run:?}");
            assert_eq!(run.stdout, "");
        }
        // No SECRET_KEY and no key serve generated: nothing can be verified.
        let run = sesame(&["revoke", "--store", &url, "--user", "1"], &[], b"").await;
        assert_eq!(run.code(), Some(2), "{run:?}");
        assert!(run.stderr.contains("SECRET_KEY is not set"), "{run:?}");
        // An SQLite file that does not exist is never created.
        let missing = url.replace("db.sqlite3", "missing.sqlite3");
        let run = sesame(&["revoke", "--store", &missing, "--user", "1"], &env, b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert!(run.stderr.contains("sesame migrate"), "{run:?}");
        // Nor is a session directory: a mistyped one is an error, not "0 revoked".
        let dir = TempDir::new("revoke-files");
        let missing = format!("file://{}", dir.path().join("nowhere").display());
        let run = sesame(&["revoke", "--store", &missing, "--user", "1"], &env, b"").await;
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains("session directory does not exist"),
            "{run:?}"
        );
        assert!(
            !dir.path().join("nowhere").exists(),
            "created the directory"
        );
    }

    /// `cached_db`: the database is read, and each revoked session leaves
    /// the cache too.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn revoke_on_cached_db_deletes_from_the_database_and_the_cache() {
        use sesame::backends::{CacheKeys, CachedDbStore, RedisStore};

        let Some(redis_url) = sesame_conformance::env_url("REDIS") else {
            return;
        };
        let (_dir, db, url) = sqlite().await;
        let cache = RedisStore::connect(&redis_url)
            .await
            .unwrap()
            .with_keys(CacheKeys::cached_db());
        let store = CachedDbStore::new(cache.clone(), db.clone());
        let user = format!("user-{}", sesame::SessionKey::generate().as_str());
        let gone = create(&store, logged_in(&json!(user))).await;
        let kept = create(&store, logged_in(&json!("someone else"))).await;
        let cached = |key: &str| {
            let key = sesame::SessionKey::from_bytes(key.as_bytes()).unwrap();
            let cache = cache.clone();
            async move { cache.exists(&key).await.unwrap() }
        };
        assert!(cached(&gone).await, "create fills the cache");

        let env = [("SECRET_KEY", KEY.to_owned())];
        let run = sesame(
            &[
                "revoke", "--store", &url, "--cache", &redis_url, "--user", &user,
            ],
            &env,
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert!(
            run.stdout.starts_with("revoked 1 session of user"),
            "{run:?}"
        );
        assert!(!live(&db, &gone).await, "the row");
        assert!(!cached(&gone).await, "the cached copy");
        assert!(live(&db, &kept).await && cached(&kept).await);
    }

    /// `SESAME_REDIS_WAIT_REPLICAS`: each delete waits for that many
    /// replicas (`WAIT`). No test Redis has 64, so the wait gives up after
    /// `SESAME_REDIS_WAIT_TIMEOUT` with a warning, and the session is gone.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn revoke_on_redis_waits_for_the_replicas_asked_for() {
        use sesame::backends::RedisStore;

        let Some(redis_url) = sesame_conformance::env_url("REDIS") else {
            return;
        };
        let store = RedisStore::connect(&redis_url).await.unwrap();
        let user = format!("user-{}", sesame::SessionKey::generate().as_str());
        let gone = create(&store, logged_in(&json!(user))).await;
        let env = [
            ("SECRET_KEY", KEY.to_owned()),
            ("SESAME_REDIS_WAIT_REPLICAS", "64".to_owned()),
            ("SESAME_REDIS_WAIT_TIMEOUT", "0.05".to_owned()),
        ];
        let run = sesame(
            &["revoke", "--store", &redis_url, "--user", &user],
            &env,
            b"",
        )
        .await;
        assert_eq!(run.code(), Some(0), "{run:?}");
        assert!(!live(&store, &gone).await, "{run:?}");
        assert!(
            run.stderr.contains("fewer replicas than asked for"),
            "{run:?}"
        );
        assert!(!run.stderr.contains(&gone), "the key is never logged");
    }

    /// A wait that is not a number is a usage error, found before any
    /// store is reached.
    #[tokio::test]
    async fn an_invalid_replica_wait_is_a_usage_error() {
        for (name, value) in [
            ("SESAME_REDIS_WAIT_REPLICAS", "two"),
            ("SESAME_REDIS_WAIT_TIMEOUT", "0"),
        ] {
            let env = [("SECRET_KEY", KEY.to_owned()), (name, value.to_owned())];
            let run = sesame(
                &["revoke", "--store", "redis://127.0.0.1:1", "--user", "42"],
                &env,
                b"",
            )
            .await;
            assert_eq!(run.code(), Some(2), "{run:?}");
            assert!(run.stderr.contains(name), "{run:?}");
        }
    }
}
