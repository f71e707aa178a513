//! Hostile input of issue 5, each with a defined outcome, never a 5xx or a
//! panic, and memory bounded by a documented limit (asserted as the limit,
//! not as RSS):
//!
//! - a zip bomb (1 GiB of zeros) inside a *correctly signed* Django value,
//!   stored in a SQL row or a session file, or sent as a signed-cookie
//!   session → the decoder stops at `MAX_DECOMPRESSED_LEN` (16 MiB) →
//!   empty session + a `sesame::security` warning;
//! - a 1 MiB `Cookie` header through a real hyper server → 431 (from hyper
//!   itself above its ~400 KB read buffer; from Sesame above 8 KiB).
//!
//! The per-store cases (431, 1 000 cookies, 413 for a 16 MiB value) are in
//! the conformance `http_suite!`, run on every store by `backends.rs`.

mod log_support;

use std::io;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use sesame::backends::{FileStore, SessionStore, SignedCookieStore};
use sesame::codec::{
    DB_SALT, MAX_DECOMPRESSED_LEN, SIGNED_COOKIES_SALT, b62_encode, b64_encode, salted_hmac,
};
use sesame::{Error, Session, SessionKey, SessionManagerLayer, Settings, Signer};
use sesame_conformance::CountingStore;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use log_support::Logs;

const SECRET: &str = "hostile-input-test-secret-key";

// ---- a zip bomb, built without inflating it ---------------------------------

/// Writes bits LSB-first, as DEFLATE packs them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// `len` low bits of `value`, least significant first (header fields).
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out
                .push(u8::try_from(self.acc & 0xff).expect("masked to a byte"));
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    /// A literal byte below 144 under DEFLATE's fixed codes.
    fn literal(&mut self, byte: u8) {
        assert!(byte < 144);
        self.code(0x30 + u64::from(byte), 8);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out
                .push(u8::try_from(self.acc & 0xff).expect("masked to a byte"));
        }
        self.out
    }
}

/// A zlib stream of `prefix`, then `fill` repeated up to `len` bytes in all,
/// then `suffix`: one fixed-Huffman block of 258-byte matches at distance 1
/// (13 bits per 258 bytes). Valid to the last byte, Adler-32 included.
fn bomb(prefix: &[u8], fill: u8, len: u64, suffix: &[u8]) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.out.extend_from_slice(&[0x78, 0x01]);
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = fixed Huffman
    for &b in prefix {
        bits.literal(b);
    }
    bits.literal(fill);
    let fill_len = len - prefix.len() as u64 - suffix.len() as u64;
    let mut left = fill_len - 1;
    while left >= 258 {
        bits.code(0b1100_0101, 8); // length symbol 285 = 258 bytes
        bits.code(0, 5); // distance symbol 0 = 1 byte back
        left -= 258;
    }
    for _ in 0..left {
        bits.literal(fill);
    }
    for &b in suffix {
        bits.literal(b);
    }
    bits.code(0, 7); // end of block
    let mut out = bits.finish();
    // Adler-32 over the whole output, computed from its shape.
    const MOD: u128 = 65_521;
    let (mut a, mut b) = (1_u128, 0_u128);
    // A run of `times` bytes `c`: a grows by times·c, b by the sum of the
    // successive a's, times·a + c·times·(times+1)/2.
    let mut add = |c: u8, times: u64| {
        let (c, t) = (u128::from(c), u128::from(times));
        b = (b + t * a + c * t * (t + 1) / 2) % MOD;
        a = (a + t * c) % MOD;
    };
    for &c in prefix {
        add(c, 1);
    }
    add(fill, fill_len);
    for &c in suffix {
        add(c, 1);
    }
    out.extend_from_slice(
        &u32::try_from((b << 16) | a)
            .expect("Adler-32 is 32 bits")
            .to_be_bytes(),
    );
    out
}

/// `compressed` signed as Django's `signing.dumps(..., compress=True)` signs
/// a compressed payload: `.<b64>:<b62 time>:<b64 HMAC-SHA256>`, with `SECRET`.
fn sign_compressed(compressed: &[u8], salt: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let value = format!(".{}:{}", b64_encode(compressed), b62_encode(now));
    let mac = salted_hmac(
        &format!("{salt}signer"),
        value.as_bytes(),
        SECRET.as_bytes(),
    );
    format!("{value}:{}", b64_encode(&mac))
}

const GIB: u64 = 1 << 30;

#[test]
fn the_bomb_builder_makes_what_it_says() {
    // Small enough to inflate: `{"a":"000…0"}` of 100 000 bytes.
    let z = bomb(br#"{"a":""#, b'0', 100_000, br#""}"#);
    let signed = sign_compressed(&z, DB_SALT);
    let data = Signer::new(SECRET)
        .loads_session(&signed, DB_SALT, None, OffsetDateTime::now_utc())
        .unwrap();
    let a = data["a"].as_str().unwrap();
    assert_eq!(a.len(), 100_000 - 8);
    assert!(a.bytes().all(|b| b == b'0'));
}

#[test]
fn a_signed_gibibyte_bomb_stops_at_the_decompression_limit() {
    let z = bomb(b"", 0, GIB, b"");
    eprintln!(
        "figure: 1 GiB of zeros = {} bytes compressed, {} bytes signed",
        z.len(),
        sign_compressed(&z, DB_SALT).len()
    );
    for salt in [DB_SALT, SIGNED_COOKIES_SALT] {
        let signed = sign_compressed(&z, salt);
        let got = Signer::new(SECRET).loads_session(&signed, salt, None, OffsetDateTime::now_utc());
        assert_eq!(
            got,
            Err(sesame::codec::Error::TooLarge {
                len: MAX_DECOMPRESSED_LEN + 1,
                limit: MAX_DECOMPRESSED_LEN,
            }),
            "{salt}"
        );
    }
}

// ---- through the layer ------------------------------------------------------

async fn read(session: Session) -> sesame::Result<String> {
    let n: Option<i64> = session.get("counter").await?;
    Ok(n.map_or_else(|| "none".to_owned(), |n| n.to_string()))
}

fn app<S: SessionStore>(store: S, settings: Settings) -> Router {
    Router::new()
        .route("/read", get(read))
        .layer(SessionManagerLayer::new(store).with_settings(settings))
}

async fn send(app: &Router, cookie: &[u8]) -> (StatusCode, Vec<String>, String) {
    let req = Request::get("/read")
        .header(
            COOKIE,
            HeaderValue::from_bytes(cookie).expect("a valid header"),
        )
        .body(Body::empty())
        .expect("a request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let cookies = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .collect();
    let body = res.into_body().collect().await.expect("a body").to_bytes();
    (status, cookies, String::from_utf8_lossy(&body).into_owned())
}

/// A bomb stored where a server-side store reads it: loads as an empty
/// session, 200, a security warning that names the limit, no ERROR.
async fn stored_bomb_is_an_empty_session(
    store: impl SessionStore + Clone,
    key: &SessionKey,
    logs: &Logs,
) {
    let err = store.load(key).await.expect_err("a bomb does not load");
    assert!(
        matches!(
            err,
            Error::Corrupt(sesame::codec::Error::TooLarge { limit, .. }) if limit == MAX_DECOMPRESSED_LEN
        ),
        "{err:?}"
    );
    let cookie = format!("sessionid={}", key.as_str());
    let (status, _, body) = send(&app(store, Settings::default()), cookie.as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "none");
    let text = logs.text();
    assert!(
        text.contains("WARN sesame::security") && text.contains("too large"),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_zip_bomb_in_a_sql_row_is_an_empty_session_and_a_warning() {
    let logs = Logs::default();
    let _guard = logs.install();
    let dir = std::env::temp_dir().join("sesame-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("bomb-{}.sqlite3", SessionKey::generate().as_str()));
    let store = sesame::backends::SqliteStore::open(&path, Signer::new(SECRET)).unwrap();
    store.migrate().await.unwrap();
    let key = SessionKey::generate();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO django_session VALUES (?1, ?2, '2099-01-01 00:00:00')",
        [
            key.as_str(),
            &sign_compressed(&bomb(b"", 0, GIB, b""), DB_SALT),
        ],
    )
    .unwrap();
    stored_bomb_is_an_empty_session(store, &key, &logs).await;
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn a_zip_bomb_in_a_session_file_is_an_empty_session_and_a_warning() {
    let logs = Logs::default();
    let _guard = logs.install();
    let dir = std::env::temp_dir()
        .join("sesame-tests-files")
        .join(format!("bomb-{}", SessionKey::generate().as_str()));
    let store = FileStore::new(&dir, Signer::new(SECRET));
    store.migrate().await.unwrap();
    let key = SessionKey::generate();
    // Django's file engine: the signed `session_data`, as is, in `sessionid<key>`.
    std::fs::write(
        dir.join(format!("sessionid{}", key.as_str())),
        sign_compressed(&bomb(b"", 0, GIB, b""), DB_SALT),
    )
    .unwrap();
    stored_bomb_is_an_empty_session(store, &key, &logs).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_zip_bomb_in_a_signed_cookie_never_inflates_past_its_bound() {
    let logs = Logs::default();
    let _guard = logs.install();
    let store = CountingStore::new(SignedCookieStore::new(Signer::new(SECRET)));

    // 1 GiB of zeros signed as a cookie is ~9 MB: over the 8 KiB Cookie
    // limit (431), and over the 4096-byte key limit when the limit is raised:
    // no session, no lookup, never inflated.
    let gib = format!(
        "sessionid={}",
        sign_compressed(&bomb(b"", 0, GIB, b""), SIGNED_COOKIES_SALT)
    );
    let (status, cookies, body) =
        send(&app(store.clone(), Settings::default()), gib.as_bytes()).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(cookies.is_empty() && body.is_empty());
    let roomy = Settings {
        cookie_header_limit: 16 << 20,
        ..Settings::default()
    };
    let (status, _, body) = send(&app(store.clone(), roomy), gib.as_bytes()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
    assert_eq!(store.calls().total(), 0);

    // The biggest bomb that fits a cookie (4096 bytes) inflates to under
    // 4096 × 1032 bytes (DEFLATE's ratio), far below the 16 MiB limit; its
    // zeros are not JSON, so it is an empty session (re-issued as Django
    // does) and a security warning.
    let mut len = 400_000;
    let value = loop {
        let v = sign_compressed(&bomb(b"", 0, len, b""), SIGNED_COOKIES_SALT);
        if v.len() > 4096 - "sessionid=".len() {
            break sign_compressed(&bomb(b"", 0, len - 20_000, b""), SIGNED_COOKIES_SALT);
        }
        len += 20_000;
    };
    assert!(len < 4096 * 1032, "{len}");
    eprintln!("figure: the biggest zero bomb that fits a signed cookie inflates to < {len} bytes");
    let cookie = format!("sessionid={value}");
    let (status, cookies, body) =
        send(&app(store.clone(), Settings::default()), cookie.as_bytes()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
    assert_eq!(
        cookies.len(),
        1,
        "an empty session is re-issued: {cookies:?}"
    );
    let text = logs.text();
    assert!(text.contains("WARN sesame::security"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

// ---- through a real server --------------------------------------------------

/// Sends a raw HTTP/1.1 request and returns the status code of the answer.
async fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything: a write
    // error then is part of the outcome, not a failure.
    let _ = conn.write_all(request).await;
    let mut head = Vec::new();
    let mut buf = [0_u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

async fn serve(
    app: Router,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    (
        addr,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    )
}

#[tokio::test]
async fn a_mebibyte_cookie_header_through_a_real_server_is_431() {
    let store = CountingStore::new(sesame::backends::MemoryStore::new());
    let (addr, server) = serve(app(store.clone(), Settings::default())).await;
    // The same app with Sesame's limit raised past 1 MiB: what is left is hyper's.
    let roomy = Settings {
        cookie_header_limit: 2 << 20,
        ..Settings::default()
    };
    let (roomy_addr, roomy_server) = serve(app(store.clone(), roomy)).await;
    let request = |cookie_len: usize| {
        format!(
            "GET /read HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: pad={}\r\n\r\n",
            "x".repeat(cookie_len)
        )
        .into_bytes()
    };
    let run = async {
        // Over hyper's own read buffer (~400 KB): hyper answers 431 first.
        assert_eq!(raw_status(addr, &request(1 << 20)).await, 431);
        // Under hyper's buffer, over Sesame's 8 KiB: Sesame answers 431.
        assert_eq!(raw_status(addr, &request(100 * 1024)).await, 431);
        assert_eq!(raw_status(addr, &request(9 * 1024)).await, 431);
        // Within both.
        assert_eq!(raw_status(addr, &request(4 * 1024)).await, 200);
        // Sesame's limit out of the way: hyper still refuses 1 MiB, and
        // 100 KiB goes through.
        assert_eq!(raw_status(roomy_addr, &request(1 << 20)).await, 431);
        assert_eq!(raw_status(roomy_addr, &request(100 * 1024)).await, 200);
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the server answers");
    assert_eq!(store.calls().total(), 0);
    server.abort();
    roomy_server.abort();
}
