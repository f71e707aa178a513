//! `RedisStore` over TLS (`rediss://`, feature `redis-tls`): a private
//! `redis-server` that only speaks TLS, with a self-signed certificate for
//! 127.0.0.1.
//!
//! - An untrusted certificate is refused (`RedisStore::connect` verifies
//!   against the system's roots), and so is plain text on the TLS port.
//! - A client that trusts the certificate (`redis::Client::build_with_tls`)
//!   gives a store that creates, loads, saves (CAS), touches and deletes, and
//!   serves the middleware: the session counts up over TLS.
//! - Both conformance suites run on that store.
//! - A 3-master Redis Cluster over TLS (`--tls-cluster yes`) serves sessions
//!   through `RedisStore::from_cluster` on a trusting cluster client, and
//!   `rediss+cluster://` with the system's roots is refused.
//!
//! The certificate is made with the `openssl` CLI. The tests skip (with a
//! `SKIP redis tls:` line) when `openssl` or `redis-server` is missing. One
//! server is shared by every test of this binary; it runs under a small
//! `sh` wrapper that kills it (and removes the temp dir) when its stdin
//! closes, that is when the test process exits, however it exits. Run:
//! `cargo test -p sesame --all-features --test redis_tls -- --nocapture`.

#![cfg(feature = "redis-tls")]
#![allow(
    clippy::unwrap_used,
    reason = "helpers are not #[test] fns; a failed unwrap is a failed test"
)]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration as StdDuration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::json;
use sesame::backends::{Record, RedisStore, SessionStore};
use sesame::codec::SessionMap;
use sesame::{Error, Session, SessionKey, SessionManagerLayer};
use sesame_conformance::{Caps, free_port};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

/// Each client command and connection attempt.
const TIMEOUT: StdDuration = StdDuration::from_secs(2);
/// How long the server may take to start and accept TLS connections.
const STARTUP: StdDuration = StdDuration::from_secs(10);
/// A test step that takes longer than this is a hang.
const STEP: StdDuration = StdDuration::from_secs(15);

// ---- a private TLS-only redis-server ------------------------------------------

/// A `redis-server` listening only on a TLS port, with its certificate.
#[derive(Debug)]
struct TlsServer {
    /// The `sh` wrapper: closing its stdin kills the server.
    wrapper: Option<Child>,
    port: u16,
    /// `cert.pem`: the server's self-signed certificate, PEM.
    cert: Vec<u8>,
}

impl TlsServer {
    /// Makes the certificate and starts the server, or `None` (and a skip
    /// line) when `openssl` or `redis-server` is missing.
    fn start() -> Option<Self> {
        for (tool, version) in [("openssl", "version"), ("redis-server", "--version")] {
            if !on_path(tool, version) {
                eprintln!("SKIP redis tls: `{tool}` not found");
                return None;
            }
        }
        let dir = temp_dir();
        let cert = make_certificate(&dir);

        let port = free_port();
        // The wrapper runs the server in the background and waits for EOF on
        // its stdin (a pipe from this process), then kills it and cleans up.
        let script = r#"redis-server "$@" >redis.log 2>&1 </dev/null &
r=$!
read _ignored
kill $r 2>/dev/null
wait $r
cd / && rm -rf "$SESAME_TLS_DIR""#;
        let wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
            .args(["--tls-ca-cert-file", "cert.pem", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .env("SESAME_TLS_DIR", &dir)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sh");
        let server = Self {
            wrapper: Some(wrapper),
            port,
            cert,
        };
        server.wait_listening(&dir);
        Some(server)
    }

    /// Waits until the TLS port accepts TCP connections (Redis opens its
    /// listeners once the TLS context is loaded); panics with the server's
    /// log after [`STARTUP`].
    #[expect(
        clippy::disallowed_methods,
        reason = "runs on spawn_blocking's thread (see `server`), not on the runtime"
    )]
    fn wait_listening(&self, dir: &Path) {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(StdDuration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        panic!(
            "redis-server did not listen on TLS port {} within {STARTUP:?}:\n{log}",
            self.port
        );
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(mut wrapper) = self.wrapper.take() {
            // EOF on the wrapper's stdin: it kills the server and exits.
            drop(wrapper.stdin.take());
            let _ = wrapper.wait();
        }
    }
}

/// Makes `key.pem` and `cert.pem` in `dir`: a self-signed certificate for
/// 127.0.0.1 that webpki accepts as a server's. Returns the certificate.
fn make_certificate(dir: &Path) -> Vec<u8> {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // openssl marks a self-signed certificate CA:TRUE by default,
        // which webpki refuses as a server's (`CaUsedAsEndEntity`).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        // clientAuth too: cluster nodes present it to each other on the bus.
        .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read(dir.join("cert.pem")).expect("cert.pem")
}

/// Whether `tool` runs (`tool version_arg`).
fn on_path(tool: &str, version_arg: &str) -> bool {
    match Command::new(tool)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(err) if err.kind() == ErrorKind::NotFound => false,
        Err(err) => panic!("cannot run {tool}: {err}"),
    }
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("sesame-redis-tls-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the temp dir");
    dir
}

/// The server shared by every test, started on first use (`None`: skipped).
async fn server() -> Option<&'static TlsServer> {
    static SERVER: OnceLock<Option<TlsServer>> = OnceLock::new();
    tokio::task::spawn_blocking(|| SERVER.get_or_init(TlsServer::start).as_ref())
        .await
        .unwrap()
}

// ---- clients -------------------------------------------------------------------

/// `RedisStore::connect` on the server: it installs the process-wide rustls
/// provider and verifies against the system's roots, which do not hold the
/// self-signed certificate, so it must fail.
async fn connect_untrusted(server: &TlsServer) -> sesame::Result<RedisStore> {
    tokio::time::timeout(
        STEP,
        RedisStore::connect_with_timeout(&server.url(), TIMEOUT),
    )
    .await
    .expect("connect to an untrusted server hung")
}

/// Installs the rustls crypto provider (through `RedisStore::connect`, see
/// [`connect_untrusted`]) once per process, checking on the way that the
/// untrusted certificate is refused.
async fn install_provider(server: &TlsServer) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let refused = connect_untrusted(server).await;
            assert!(
                matches!(refused, Err(Error::Backend(_))),
                "a self-signed certificate was accepted: {refused:?}"
            );
        })
        .await;
}

/// A client that trusts the server's certificate (and only it).
fn trusted_client(server: &TlsServer) -> redis::Client {
    redis::Client::build_with_tls(
        server.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(server.cert.clone()),
        },
    )
    .expect("a TLS client")
}

/// A connection manager on [`trusted_client`], retried until the server
/// answers over TLS (it may still be starting), for at most [`STARTUP`].
async fn trusted_manager(server: &TlsServer) -> ConnectionManager {
    install_provider(server).await;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_min_delay(StdDuration::from_millis(20))
        .set_max_delay(StdDuration::from_millis(250))
        .set_number_of_retries(4);
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        let attempt = tokio::time::timeout(
            STEP,
            ConnectionManager::new_with_config(trusted_client(server), config.clone()),
        )
        .await
        .expect("a TLS connection attempt hung");
        match attempt {
            Ok(mut manager) => {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut manager).await;
                if matches!(pong.as_deref(), Ok("PONG")) {
                    return manager;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no PONG over TLS: {pong:?}"
                );
            }
            Err(err) => assert!(
                tokio::time::Instant::now() < deadline,
                "no TLS connection within {STARTUP:?}: {err}"
            ),
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// The store under test: `RedisStore::new` on a trusting TLS connection, or
/// `None` (skipped).
async fn tls_store() -> Option<RedisStore> {
    let server = server().await?;
    Some(RedisStore::new(trusted_manager(server).await))
}

// ---- conformance ---------------------------------------------------------------

/// As for plain Redis (`tests/backends.rs`): the expiry is read back as
/// now + PTTL.
const CAPS: Caps = Caps {
    native_ttl: true,
    expiry_resolution: Duration::seconds(1),
    ..Caps::DEFAULT
};

mod suites {
    use super::{CAPS, tls_store};

    sesame_conformance::store_suite!(tls_store(), CAPS);
    sesame_conformance::http_suite!(tls_store(), CAPS);
}

// ---- refusals ------------------------------------------------------------------

/// An untrusted (self-signed) certificate is refused, and so is plain text
/// on the TLS port; both within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_and_plain_text_are_refused() {
    let Some(server) = server().await else { return };
    let refused = connect_untrusted(server).await;
    let Err(Error::Backend(err)) = refused else {
        panic!("a self-signed certificate was accepted: {refused:?}");
    };
    let text = format!("{err} {err:?}");
    assert!(
        text.to_lowercase().contains("certificate"),
        "not refused for its certificate: {text}"
    );
    eprintln!("untrusted certificate refused: {err}");

    let plain = format!("redis://127.0.0.1:{}/", server.port);
    let refused = tokio::time::timeout(
        STEP,
        RedisStore::connect_with_timeout(&plain, StdDuration::from_millis(500)),
    )
    .await
    .expect("a plain-text connect to the TLS port hung");
    assert!(
        refused.is_err(),
        "plain text was accepted on the TLS port: {refused:?}"
    );

    // The trusted client still works after the refusals.
    let store = tls_store().await.expect("the server runs");
    let saved = store
        .create(&Record::new(map(json!({"n": 1})), in_hours(1)))
        .await
        .unwrap();
    assert!(store.exists(&saved.key).await.unwrap());
}

// ---- the store over TLS --------------------------------------------------------

fn map(value: serde_json::Value) -> SessionMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn in_hours(h: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(h)
}

/// Django's cache key for a session.
fn django_key(key: &SessionKey) -> String {
    format!(":1:django.contrib.sessions.cache{}", key.as_str())
}

/// Create, load, save with the current version, a stale save (`Conflict`),
/// touch, delete, and a save after delete (`Missing`), all over TLS; the
/// item is where Django's `RedisCache` looks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_round_trips_over_tls() {
    let Some(server) = server().await else { return };
    let store = tls_store().await.expect("the server runs");
    let mut raw = trusted_manager(server).await;

    let data = map(json!({"_auth_user_id": "42", "counter": 1, "name": "Grüße"}));
    let saved = store
        .create(&Record::new(data.clone(), in_hours(1)))
        .await
        .unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(django_key(&saved.key))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(stored.is_some(), "no item under Django's key");

    let loaded = store.load(&saved.key).await.unwrap().expect("created");
    assert_eq!(*loaded.data, data);
    assert_eq!(loaded.version.as_ref(), Some(&saved.version));
    assert!((loaded.expires_at - in_hours(1)).abs() <= Duration::seconds(2));

    // A save with the current version wins and returns a new one.
    let mut next = loaded.clone();
    next.data_mut().insert("counter".into(), json!(2));
    let resaved = store.save(&saved.key, &next).await.unwrap();
    assert_eq!(resaved.key, saved.key);
    assert_ne!(resaved.version, saved.version);
    // A save with the version loaded before is a conflict, and changes nothing.
    let mut stale = loaded.clone();
    stale.data_mut().insert("counter".into(), json!(99));
    assert!(matches!(
        store.save(&saved.key, &stale).await,
        Err(Error::Conflict)
    ));
    let current = store.load(&saved.key).await.unwrap().expect("saved");
    assert_eq!(current.data["counter"], 2);

    // Touch moves the expiry and keeps the data.
    let later = OffsetDateTime::now_utc() + Duration::hours(5);
    store.touch(&saved.key, later).await.unwrap();
    let touched = store.load(&saved.key).await.unwrap().expect("touched");
    assert_eq!(touched.data["counter"], 2);
    assert!((touched.expires_at - later).abs() <= Duration::seconds(2));
    let ttl: i64 = redis::cmd("TTL")
        .arg(django_key(&saved.key))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((5 * 3600 - 3..=5 * 3600).contains(&ttl), "ttl {ttl}");

    // Delete; a save afterwards recreates nothing.
    store.delete(&saved.key).await.unwrap();
    assert!(store.load(&saved.key).await.unwrap().is_none());
    assert!(matches!(
        store.save(&saved.key, &current).await,
        Err(Error::Missing)
    ));
    assert!(!store.exists(&saved.key).await.unwrap());
}

// ---- the middleware over TLS ---------------------------------------------------

fn counter_app(store: RedisStore) -> Router {
    async fn counter(session: Session) -> sesame::Result<String> {
        let n: i64 = session.get("counter").await?.unwrap_or(0) + 1;
        session.insert("counter", n).await?;
        Ok(n.to_string())
    }
    Router::new()
        .route("/", get(counter))
        .layer(SessionManagerLayer::new(store))
}

struct Reply {
    status: StatusCode,
    key: Option<SessionKey>,
    body: String,
}

async fn send(app: &Router, key: Option<&SessionKey>) -> Reply {
    let mut request = Request::get("/");
    if let Some(key) = key {
        request = request.header(COOKIE, format!("sessionid={}", key.as_str()));
    }
    let response = tokio::time::timeout(
        STEP,
        app.clone().oneshot(request.body(Body::empty()).unwrap()),
    )
    .await
    .expect("a request hung")
    .unwrap();
    let key = response.headers().get(SET_COOKIE).and_then(|c| {
        let pair = c.to_str().ok()?.split(';').next()?;
        pair.split_once('=')?.1.parse().ok()
    });
    Reply {
        status: response.status(),
        key,
        body: String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    }
}

/// The session counts up through the layer, stored over TLS, and
/// concurrent new sessions each get their own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_counts_up_over_tls() {
    let Some(server) = server().await else { return };
    let store = tls_store().await.expect("the server runs");
    let app = counter_app(store.clone());

    let first = send(&app, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    let key = first.key.expect("a session cookie");
    for n in 2..=5 {
        let reply = send(&app, Some(&key)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, n.to_string());
    }
    let record = store.load(&key).await.unwrap().expect("stored");
    assert_eq!(record.data["counter"], 5);
    let mut raw = trusted_manager(server).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(django_key(&key))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(exists, "the session is not under Django's key");

    let concurrent: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, None).await })
        })
        .collect();
    let mut keys = Vec::new();
    for request in concurrent {
        let reply = request.await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "1"));
        keys.push(reply.key.expect("a session cookie"));
    }
    keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    keys.dedup();
    assert_eq!(keys.len(), 8, "two new sessions shared a key");
}

// ---- a Redis Cluster over TLS --------------------------------------------------

/// Three TLS-only masters (`--tls-cluster yes`: the cluster bus speaks TLS
/// too) made one cluster; a store on `RedisStore::from_cluster` with a client
/// that trusts their certificate; `rediss+cluster://` with the system's
/// roots refused.
#[cfg(feature = "redis-cluster")]
mod cluster {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use redis::cluster::ClusterClientBuilder;
    use sesame::Error;
    use sesame::backends::{RedisStore, SessionStore};

    use super::{
        STARTUP, STEP, StatusCode, TIMEOUT, counter_app, free_port, install_provider,
        make_certificate, on_path, send, server, temp_dir,
    };

    /// The three servers under one `sh` wrapper: closing its stdin kills them.
    struct TlsCluster {
        wrapper: Option<Child>,
        ports: [u16; 3],
        cert: Vec<u8>,
    }

    impl Drop for TlsCluster {
        fn drop(&mut self) {
            if let Some(mut wrapper) = self.wrapper.take() {
                drop(wrapper.stdin.take());
                let _ = wrapper.wait();
            }
        }
    }

    /// `redis-cli --tls` with `args`, bounded by [`STEP`]: its stdout.
    async fn cli(dir: &Path, args: &[String]) -> String {
        let mut child = Command::new("redis-cli")
            .args(["--tls", "--cacert", "cert.pem"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli");
        let deadline = tokio::time::Instant::now() + STEP;
        while child.try_wait().expect("wait for redis-cli").is_none() {
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli {args:?} hung");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let output = child.wait_with_output().expect("redis-cli's output");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn start() -> Option<TlsCluster> {
        if !on_path("redis-cli", "--version") {
            eprintln!("SKIP redis tls cluster: `redis-cli` not found");
            return None;
        }
        let dir = temp_dir();
        let cert = make_certificate(&dir);
        let ports = [free_port(), free_port(), free_port()];
        let script = r#"pids=
for p in "$@"; do
    b=${p#*:}; p=${p%:*}
    redis-server --port 0 --tls-port "$p" --bind 127.0.0.1 \
        --tls-cert-file cert.pem --tls-key-file key.pem --tls-ca-cert-file cert.pem \
        --tls-auth-clients no --tls-cluster yes --cluster-enabled yes \
        --cluster-config-file "nodes-$p.conf" --cluster-port "$b" \
        --save '' --appendonly no >"redis-$p.log" 2>&1 </dev/null &
    pids="$pids $!"
done
read _ignored
kill $pids 2>/dev/null
wait
cd / && rm -rf "$SESAME_TLS_DIR""#;
        let mut wrapper = Command::new("sh");
        wrapper.arg("-c").arg(script).arg("sh");
        for port in ports {
            wrapper.arg(format!("{port}:{}", free_port()));
        }
        let wrapper = wrapper
            .env("SESAME_TLS_DIR", &dir)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sh");
        let cluster = TlsCluster {
            wrapper: Some(wrapper),
            ports,
            cert,
        };
        let deadline = tokio::time::Instant::now() + STARTUP;
        for port in ports {
            let ping = ["-p".to_owned(), port.to_string(), "ping".to_owned()];
            while !cli(&dir, &ping).await.contains("PONG") {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {port} did not answer over TLS"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let created = cli(&dir, &create).await;
        assert!(created.contains("All 16384 slots covered"), "{created}");
        let deadline = tokio::time::Instant::now() + STEP;
        for port in ports {
            let info = [
                "-p".to_owned(),
                port.to_string(),
                "cluster".to_owned(),
                "info".to_owned(),
            ];
            while !cli(&dir, &info).await.contains("cluster_state:ok") {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {port}: no cluster_state:ok"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Some(cluster)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_over_tls_serves_sessions() {
        // The shared single server installs rustls's process-wide provider.
        let Some(server) = server().await else { return };
        install_provider(server).await;
        let Some(cluster) = start().await else { return };
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}"))
            .collect();

        // The system's roots do not hold the self-signed certificate.
        let seeds = cluster.ports.map(|p| format!("127.0.0.1:{p}")).join(",");
        let refused = tokio::time::timeout(
            STEP,
            RedisStore::connect_with_timeout(&format!("rediss+cluster://{seeds}"), TIMEOUT),
        )
        .await
        .expect("connecting to an untrusted cluster hung");
        assert!(
            matches!(refused, Err(Error::Backend(_))),
            "a self-signed certificate was accepted: {refused:?}"
        );

        let conn = ClusterClientBuilder::new(nodes)
            .certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(cluster.cert.clone()),
            })
            .connection_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .build()
            .expect("a TLS cluster client")
            .get_async_connection()
            .await
            .expect("a TLS cluster connection");
        let store = RedisStore::from_cluster(conn);
        assert!(store.is_cluster());
        let app = counter_app(store.clone());
        // Enough sessions to reach every master, each counting up.
        let mut keys = Vec::new();
        for _ in 0..12 {
            let first = send(&app, None).await;
            assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
            keys.push(first.key.expect("a session cookie"));
        }
        for key in &keys {
            let reply = send(&app, Some(key)).await;
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "2"));
            let record = store.load(key).await.unwrap().expect("stored");
            assert_eq!(record.data["counter"], 2);
        }
        store.delete(&keys[0]).await.unwrap();
        assert!(!store.exists(&keys[0]).await.unwrap());
        drop(cluster);
    }
}
