//! The real `sesame` binary: `serve` keeps counting across a restart, stops
//! cleanly on SIGTERM and refuses inconsistent settings; `migrate` and
//! `clearsessions` work on an SQLite file; `signed-cookies:` keeps the
//! session in the cookie.
#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::process::{Child, Command};

use common::{TempDir, http_get, shown_counter};
use sesame_conformance::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_sesame");

/// How long a server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a command may take to finish.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `sesame` run in `dir`, with none of the settings the command reads
/// inherited from the environment running the tests.
fn sesame(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
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
    cmd
}

/// A running `sesame serve`, its output going to a log file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    async fn start(dir: &Path, store: &str, log_name: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = dir.join(log_name);
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = sesame(dir);
        cmd.args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--store",
            store,
        ])
        .envs(env.iter().copied())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
        let mut server = Self {
            child: cmd.spawn().unwrap(),
            port,
            log,
        };
        server.wait_until_up().await;
        server
    }

    /// Polls `/healthz` until it answers, bounded by [`START_TIMEOUT`].
    async fn wait_until_up(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sesame serve exited with {status}:\n{}", self.log_text());
            }
            if let Ok(reply) = http_get(self.port, "/healthz", None).await
                && reply.status == StatusCode::OK
            {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "sesame serve did not answer within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to end.
    async fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("still running").to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .expect("sesame serve stops after SIGTERM")
            .unwrap();
        (status, self.log_text())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn counter(&self, key: Option<&str>) -> (i64, Option<String>) {
        let reply = http_get(self.port, "/", key).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        (shown_counter(&reply.body), reply.new_key())
    }
}

/// Runs `sesame args…` in `dir` to completion (bounded) and returns its output.
async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = tokio::time::timeout(
        EXIT_TIMEOUT,
        sesame(dir).args(args).envs(env.iter().copied()).output(),
    )
    .await
    .expect("the command finishes")
    .unwrap();
    (
        output.status,
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn serve_keeps_counting_across_a_restart() {
    let dir = TempDir::new("binary-restart");
    let db = dir.path().join("db.sqlite3");
    let store = format!("sqlite://{}", db.display());
    let key_file = dir.path().join("db.sqlite3.secret_key");

    let server = Server::start(dir.path(), &store, "first.log", &[]).await;
    let (n, key) = server.counter(None).await;
    assert_eq!(n, 0);
    let key = key.expect("a session cookie");
    assert_eq!(server.counter(Some(&key)).await, (1, Some(key.clone())));
    let (status, first_log) = server.terminate().await;
    assert!(status.success(), "{status}\n{first_log}");
    assert!(first_log.contains("generated a random one"), "{first_log}");
    let secret = std::fs::read_to_string(&key_file).expect("the secret key file");
    assert_eq!(secret.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let server = Server::start(dir.path(), &store, "second.log", &[]).await;
    assert_eq!(server.counter(Some(&key)).await, (2, Some(key.clone())));
    assert_eq!(server.counter(Some(&key)).await.0, 3);
    let (status, second_log) = server.terminate().await;
    assert!(status.success(), "{status}\n{second_log}");
    assert!(
        second_log.contains("using the one generated earlier"),
        "{second_log}"
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), secret);

    for log in [&first_log, &second_log] {
        assert!(!log.contains(secret.trim()), "the secret key was logged");
        assert!(!log.contains(&key), "a whole session key was logged");
    }
}

#[tokio::test]
async fn serve_with_a_secret_key_writes_no_key_file() {
    let dir = TempDir::new("binary-secret");
    let env = [("SECRET_KEY", "a-key-from-the-environment")];
    let server = Server::start(dir.path(), "memory:", "serve.log", &env).await;
    assert_eq!(server.counter(None).await.0, 0);
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");
    assert!(!dir.path().join("sesame.secret_key").exists());
    assert!(!log.contains("a-key-from-the-environment"));
}

#[tokio::test]
async fn serve_refuses_inconsistent_settings() {
    let dir = TempDir::new("binary-settings");
    for (name, value) in [
        ("SESSION_COOKIE_SAMESITE", "None"),
        ("SESSION_COOKIE_AGE", "two weeks"),
        ("SESSION_COOKIE_NAME", "__Host-id"),
    ] {
        let args = ["serve", "--addr", "127.0.0.1:0", "--store", "memory:"];
        let (status, _, stderr) = run(dir.path(), &args, &[(name, value)]).await;
        assert_eq!(status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains("invalid settings"), "{stderr}");
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
    // Settings are checked before anything is created.
    assert!(!dir.path().join("sesame.secret_key").exists());
}

/// A `SESAME_CACHE_VERSION` that is not an integer is an invalid setting
/// like the others: exit 2, named, before anything is created.
#[tokio::test]
async fn a_bad_cache_version_is_refused_before_anything_is_created() {
    let dir = TempDir::new("binary-cache-version");
    for command in ["serve", "migrate"] {
        let mut args = vec![command, "--store", "memory:", "--cache", "memory:"];
        if command == "serve" {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        let (status, _, stderr) = run(dir.path(), &args, &[("SESAME_CACHE_VERSION", "two")]).await;
        assert_eq!(status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("SESAME_CACHE_VERSION"), "{stderr}");
        assert!(!stderr.contains("cannot open"), "{stderr}");
    }
    assert!(!dir.path().join("sesame.secret_key").exists());
}

/// A memcached `KEY_PREFIX` that memcached cannot take (a space, or too
/// long for a session key to fit in 250 bytes) would fail every request:
/// it is an invalid setting at start-up, as the store or as the cache.
#[cfg(feature = "memcached")]
#[tokio::test]
async fn a_key_prefix_memcached_cannot_take_is_refused_at_start_up() {
    let dir = TempDir::new("binary-memcached-prefix");
    let long = "p".repeat(200);
    for prefix in ["my app", long.as_str()] {
        for stores in [
            &["--store", "memcached://127.0.0.1:1"][..],
            &["--store", "memory:", "--cache", "memcached://127.0.0.1:1"],
        ] {
            for command in ["serve", "migrate"] {
                let mut args = vec![command];
                args.extend(stores);
                if command == "serve" {
                    args.extend(["--addr", "127.0.0.1:0"]);
                }
                let (status, _, stderr) =
                    run(dir.path(), &args, &[("SESAME_CACHE_KEY_PREFIX", prefix)]).await;
                assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
                assert!(stderr.contains("SESAME_CACHE_KEY_PREFIX"), "{stderr}");
            }
        }
    }
    assert!(!dir.path().join("sesame.secret_key").exists());
}

#[tokio::test]
async fn unknown_store_url_is_a_usage_error() {
    let dir = TempDir::new("binary-url");
    let (status, _, stderr) = run(
        dir.path(),
        &["migrate", "--store", "mongodb://127.0.0.1"],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown store"), "{stderr}");
}

/// A malformed URL, a `--cache` that cannot be one, or a bad `--addr` is a
/// usage error (exit 2), found before anything is created or connected;
/// whatever features were built.
#[tokio::test]
async fn malformed_urls_and_addresses_are_usage_errors() {
    let dir = TempDir::new("binary-usage");
    for (args, why) in [
        (&["migrate", "--store", "postgres://[bad"][..], "IPv6"),
        (
            &["migrate", "--store", "mysql://root@127.0.0.1:99999/x"],
            "port",
        ),
        (
            &["clearsessions", "--store", "memcached://h:notaport"],
            "port",
        ),
        (&["migrate", "--store", "file://host/dir"], "localhost"),
        (
            &[
                "migrate",
                "--store",
                "signed-cookies:",
                "--cache",
                "memory:",
            ],
            "database --store",
        ),
        (
            &[
                "migrate",
                "--store",
                "redis://127.0.0.1:1",
                "--cache",
                "memory:",
            ],
            "database --store",
        ),
        (
            &["migrate", "--store", "memory:", "--cache", "file:///tmp"],
            "--cache takes",
        ),
        (
            &["serve", "--addr", "bogus", "--store", "memory:"],
            "HOST:PORT",
        ),
        (
            &[
                "serve",
                "--store",
                "sqlite://s.sqlite3",
                "--cache",
                "file:///tmp",
            ],
            "--cache takes",
        ),
    ] {
        let (status, stdout, stderr) = run(dir.path(), args, &[]).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
    }
    // Nothing was made: no directory for the file URL, no key for serve.
    let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(made.is_empty(), "{made:?}");
}

/// redis's errors repeat their source's text; it is printed once.
#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_server_is_named_once_and_exits_1() {
    let dir = TempDir::new("binary-refused");
    let store = format!("redis://127.0.0.1:{}/9", free_port());
    let (status, _, stderr) = run(dir.path(), &["migrate", "--store", &store], &[]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn migrate_then_clearsessions_removes_only_expired_sessions() {
    let dir = TempDir::new("binary-clear");
    let db = dir.path().join("db.sqlite3");
    let store = format!("sqlite://{}", db.display());

    let (status, stdout, stderr) = run(dir.path(), &["migrate", "--store", &store], &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("session table is ready"), "{stdout}");
    // Migrating twice is harmless.
    assert!(
        run(dir.path(), &["migrate", "--store", &store], &[])
            .await
            .0
            .success()
    );

    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        for (key, expires) in [
            ("expiredsession000000000000000001", "2000-01-01 00:00:00"),
            ("expiredsession000000000000000002", "2020-06-01 12:00:00.5"),
            ("livesession000000000000000000001", "2999-01-01 00:00:00"),
        ] {
            conn.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?1, '{}', ?2)",
                [key, expires],
            )
            .unwrap();
        }
    }

    let (status, stdout, stderr) =
        run(dir.path(), &["clearsessions", "--store", &store], &[]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "removed 2 expired sessions");
    let (_, stdout, _) = run(dir.path(), &["clearsessions", "--store", &store], &[]).await;
    assert_eq!(stdout.trim(), "removed 0 expired sessions");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let left: Vec<String> = conn
        .prepare("SELECT session_key FROM django_session")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["livesession000000000000000000001"]);
}

/// `clearsessions` on `file://` reads each session's expiry from its signed
/// data: a live session with a `set_expiry()` longer than
/// `SESSION_COOKIE_AGE` survives, whatever the environment. Invalid
/// settings, no `SECRET_KEY` (and no key `serve` generated) and a wrong one
/// stop it before it deletes anything.
#[tokio::test]
async fn clearsessions_on_files_never_deletes_a_live_session() {
    use sesame::backends::{FileStore, Record, SessionStore as _};
    use sesame::codec::{SessionMap, Signer};
    use time::{Duration as TimeDuration, OffsetDateTime};

    const KEY: &str = "the-project-secret-key";
    let dir = TempDir::new("binary-file-clear");
    let sessions = dir.path().join("sessions");
    let store = FileStore::new(&sessions, Signer::new(KEY));
    store.migrate().await.unwrap();
    let now = OffsetDateTime::now_utc();
    // set_expiry(30 days), written 15 days ago: its file's mtime is 15 days
    // old, past SESSION_COOKIE_AGE, yet the session lives 15 more days.
    let mut data = SessionMap::new();
    data.insert("_session_expiry".into(), 2_592_000.into());
    let live = store
        .create(&Record::new(data, now + TimeDuration::days(15)))
        .await
        .unwrap()
        .key;
    // The default expiry, written 20 days ago: expired.
    let expired = Record::new(SessionMap::new(), now - TimeDuration::days(6));
    store.create(&expired).await.unwrap();
    let files = || {
        std::fs::read_dir(&sessions)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("sessionid")
            })
            .count()
    };
    assert_eq!(files(), 2);

    let url = format!("file://{}", sessions.display());
    let args = ["clearsessions", "--store", &url];
    for (env, code, why) in [
        (
            &[("SECRET_KEY", KEY), ("SESSION_COOKIE_SAMESITE", "bogus")][..],
            2,
            "SESSION_COOKIE_SAMESITE",
        ),
        (&[], 2, "SECRET_KEY is not set"),
        (
            &[("SECRET_KEY", "not-the-key")],
            1,
            "verifies with SECRET_KEY",
        ),
    ] {
        let (status, stdout, stderr) = run(dir.path(), &args, env).await;
        assert_eq!(status.code(), Some(code), "{env:?}: {stderr}");
        assert!(stderr.contains(why), "{env:?}: {stderr}");
        assert_eq!(stdout, "", "{env:?}");
        assert_eq!(files(), 2, "{env:?}: a file was deleted");
    }

    // The key as a fallback verifies too; only the expired file goes.
    let env = [("SECRET_KEY", "a-newer-key"), ("SECRET_KEY_FALLBACKS", KEY)];
    let (status, stdout, stderr) = run(dir.path(), &args, &env).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "removed 1 expired session");
    assert_eq!(files(), 1);
    assert!(store.load(&live).await.unwrap().is_some());

    // Without SECRET_KEY, the key `sesame serve` generated in the working
    // directory (as it does for file://) is used, and said to be.
    store.create(&expired).await.unwrap();
    std::fs::write(dir.path().join("sesame.secret_key"), format!("{KEY}\n")).unwrap();
    let (status, stdout, stderr) = run(dir.path(), &args, &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("using the one sesame serve generated"),
        "{stderr}"
    );
    assert_eq!(stdout.trim(), "removed 1 expired session");
    assert!(store.load(&live).await.unwrap().is_some());
}

/// `migrate` and `clearsessions` say what they did, or why there is nothing
/// to do, in the store's own terms: a directory is not a table, Redis and
/// memcached expire sessions themselves, and a URL is never followed by a
/// second colon.
#[tokio::test]
async fn migrate_and_clearsessions_say_what_each_store_needs() {
    let dir = TempDir::new("binary-messages");
    let file = format!("file://{}", dir.path().join("sessions").display());
    #[cfg_attr(not(any(feature = "redis", feature = "memcached")), allow(unused_mut))]
    let mut cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec!["--store".into(), "memory:".into()],
            "nothing to migrate: memory: keeps sessions in the memory",
            "nothing to clear: memory: keeps sessions in the memory",
        ),
        (
            vec!["--store".into(), "sqlite::memory:".into()],
            "nothing to migrate: sqlite://:memory: keeps",
            "nothing to clear",
        ),
        (
            vec!["--store".into(), "signed-cookies:".into()],
            "nothing to migrate: signed-cookies: keeps sessions in the signed cookie",
            "nothing to clear: signed-cookies: keeps",
        ),
        (
            vec!["--store".into(), file.clone()],
            "the session directory is ready in file://",
            "removed 0 expired sessions",
        ),
        (
            vec![
                "--store".into(),
                file.clone(),
                "--cache".into(),
                "memory:".into(),
            ],
            "the session directory is ready in file://",
            "removed 0 expired sessions",
        ),
    ];
    #[cfg(feature = "redis")]
    if let Some(url) = sesame_conformance::env_url("redis") {
        cases.push((
            vec!["--store".into(), url],
            "nothing to migrate",
            "expires sessions itself",
        ));
    }
    #[cfg(feature = "memcached")]
    if let Some(url) = sesame_conformance::env_url("memcached") {
        cases.push((
            vec!["--store".into(), url],
            "nothing to migrate",
            "expires sessions itself",
        ));
    }
    let env = [("SECRET_KEY", "k")];
    for (store, migrated, cleared) in &cases {
        for (command, expected) in [("migrate", migrated), ("clearsessions", cleared)] {
            let args: Vec<&str> = std::iter::once(command)
                .chain(store.iter().map(String::as_str))
                .collect();
            let (status, stdout, stderr) = run(dir.path(), &args, &env).await;
            assert!(status.success(), "{args:?}: {stderr}");
            assert!(stdout.contains(expected), "{args:?}: {stdout}");
            assert_eq!(stdout.lines().count(), 1, "{args:?}: {stdout}");
            assert!(!stdout.contains("::"), "{args:?}: {stdout}");
            assert!(!stdout.contains("table"), "{args:?}: {stdout}");
        }
    }
}

/// A session directory no session can be written to fails `migrate` and
/// `serve` at start, naming the directory, rather than every request.
#[tokio::test]
async fn migrate_and_serve_refuse_a_directory_they_cannot_write() {
    let dir = TempDir::new("binary-unwritable");
    let sessions = dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    // A lock file's path taken by a directory: unwritable even for root.
    std::fs::create_dir(sessions.join(".sesame-lock-07")).unwrap();
    let url = format!("file://{}", sessions.display());
    let env = [("SECRET_KEY", "k")];
    let (status, stdout, stderr) = run(dir.path(), &["migrate", "--store", &url], &env).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!("session directory {}", sessions.display())),
        "{stderr}"
    );
    let args = ["serve", "--addr", "127.0.0.1:0", "--store", &url];
    let (status, _, stderr) = run(dir.path(), &args, &env).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&sessions.display().to_string()), "{stderr}");
}

/// `inspect` and `clearsessions` never create a database: a missing SQLite
/// file, or a file without the table, is an error that says to migrate.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn read_only_commands_create_no_database_and_say_to_migrate() {
    let dir = TempDir::new("binary-no-db");
    let env = [("SECRET_KEY", "k")];
    let missing = dir.path().join("missing.sqlite3");
    let empty = dir.path().join("empty.sqlite3");
    std::fs::write(&empty, "").unwrap();
    for db in [&missing, &empty] {
        let url = format!("sqlite://{}", db.display());
        for args in [
            &["clearsessions", "--store", &url][..],
            &["inspect", "--store", &url, "abcdefgh12345678"],
        ] {
            let (status, stdout, stderr) = run(dir.path(), args, &env).await;
            assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
            assert_eq!(stdout, "");
            assert!(
                stderr.contains(&format!("`sesame migrate --store {url}`")),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(!missing.exists());
}

/// `signed-cookies:`: the counter lives in the cookie (re-issued on every
/// save, signed with the key file serve creates, so it survives a restart);
/// `migrate` and `clearsessions` say there is nothing to do.
#[tokio::test]
async fn serve_on_signed_cookies_counts_in_the_cookie_across_a_restart() {
    let dir = TempDir::new("binary-signed");
    let store = "signed-cookies:";
    let server = Server::start(dir.path(), store, "first.log", &[]).await;
    let (n, cookie) = server.counter(None).await;
    assert_eq!(n, 0);
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("eyJjb3VudGVyIjoxfQ:"), "{cookie}"); // {"counter":1}
    let (n, cookie) = server.counter(Some(&cookie)).await;
    assert_eq!(n, 1);
    let cookie = cookie.expect("the cookie is re-issued");
    let whoami = http_get(server.port, "/whoami", Some(&cookie))
        .await
        .unwrap();
    assert_eq!(whoami.json()["engine"], "sesame.backends.SignedCookieStore");
    assert_eq!(whoami.json()["session"]["counter"], 2);
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");
    assert!(dir.path().join("sesame.secret_key").exists());
    assert!(!log.contains(&cookie), "a whole cookie was logged");

    let server = Server::start(dir.path(), store, "second.log", &[]).await;
    assert_eq!(server.counter(Some(&cookie)).await.0, 2);
    // A tampered cookie is an empty session with a fresh cookie.
    let tampered = format!(
        "eyJjb3VudGVyIjo5fQ{}",
        &cookie["eyJjb3VudGVyIjoyfQ".len()..]
    );
    let (n, fresh) = server.counter(Some(&tampered)).await;
    assert_eq!(n, 0);
    assert!(fresh.is_some_and(|f| f != tampered));
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");

    for command in ["migrate", "clearsessions"] {
        let (status, stdout, stderr) = run(dir.path(), &[command, "--store", store], &[]).await;
        assert!(status.success(), "{command}: {stderr}");
        assert!(stdout.contains("nothing to"), "{command}: {stdout}");
    }
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_store_left_out_of_the_build_names_its_feature() {
    let dir = TempDir::new("binary-feature");
    let (status, _, stderr) = run(
        dir.path(),
        &["migrate", "--store", "postgres://u@127.0.0.1/db"],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`postgres` feature"), "{stderr}");
}

/// A `--cache` URL of a store left out of the build names its feature too,
/// rather than saying `--cache` takes the very scheme it was given.
#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn a_cache_left_out_of_the_build_names_its_feature() {
    let dir = TempDir::new("binary-cache-feature");
    let (status, _, stderr) = run(
        dir.path(),
        &[
            "migrate",
            "--store",
            "memory:",
            "--cache",
            "redis://127.0.0.1:6379/0",
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`redis` feature"), "{stderr}");
    assert!(!stderr.contains("--cache takes"), "{stderr}");
}

/// `serve`, `migrate` and `clearsessions` on the database server
/// `SESAME_TEST_<STORE>_URL` names, or a skip line when it is unset.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn serve_on_a_server(store_name: &str, url_of: impl Fn(&str) -> String) {
    let Some(url) = sesame_conformance::env_url(store_name) else {
        return;
    };
    let store = url_of(&url);
    let dir = TempDir::new(&format!("binary-{store_name}"));
    let (status, stdout, stderr) = run(dir.path(), &["migrate", "--store", &store], &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("session table is ready"), "{stdout}");
    // Where, as the driver resolved the URL.
    assert!(stdout.contains("(database "), "{stdout}");

    let server = Server::start(dir.path(), &store, "serve.log", &[]).await;
    let (n, key) = server.counter(None).await;
    assert_eq!(n, 0);
    let key = key.expect("a session cookie");
    assert_eq!(server.counter(Some(&key)).await.0, 1);
    let whoami = http_get(server.port, "/whoami", Some(&key))
        .await
        .unwrap()
        .json();
    assert_eq!(whoami["session"]["counter"], serde_json::json!(2));
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");
    // The table exists: PostgreSQL's "already exists, skipping" notices are
    // not logged at RUST_LOG=info.
    assert!(!log.contains("already exists"), "{log}");
    // The server's password, if the URL has one, never reaches the log.
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'));
    if let Some((_, password)) = userinfo.and_then(|(info, _)| info.split_once(':')) {
        assert!(password.is_empty() || !log.contains(password), "{log}");
    }

    let (status, stdout, stderr) =
        run(dir.path(), &["clearsessions", "--store", &store], &[]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("removed "), "{stdout}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn serve_on_postgres() {
    serve_on_a_server("postgres", str::to_owned).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn serve_on_mariadb_with_the_mariadb_scheme() {
    serve_on_a_server("mysql", |url| url.replacen("mysql://", "mariadb://", 1)).await;
}
