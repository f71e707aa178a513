//! Helpers shared by the CLI's integration tests: temporary folders, an
//! in-process client for the demo router, a tiny HTTP/1.1 client for the
//! real binary, and readers for `Set-Cookie`.
// Each test crate uses a different subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tower::ServiceExt as _;

/// A folder under Cargo's per-package temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the temporary folder can be created");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// The one `Set-Cookie` header, if any.
    pub(crate) fn set_cookie(&self) -> Option<&str> {
        let mut all = self.headers.get_all(header::SET_COOKIE).iter();
        let first = all.next()?;
        assert!(all.next().is_none(), "more than one Set-Cookie: {self:?}");
        Some(first.to_str().expect("Set-Cookie is ASCII"))
    }

    /// The session key the response's `Set-Cookie` gives (`None` without one).
    pub(crate) fn new_key(&self) -> Option<String> {
        self.set_cookie().map(|c| cookie_value(c).to_owned())
    }

    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// The value of `sessionid=VALUE; …`.
pub(crate) fn cookie_value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.strip_prefix("sessionid=")
        .unwrap_or_else(|| panic!("not a sessionid cookie: {set_cookie}"))
}

/// Sends one request through the router, in-process.
pub(crate) async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .expect("the body can be read")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

fn request(method: &str, path: &str, key: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header(header::COOKIE, format!("sessionid={key}"));
    }
    builder.body(body).expect("a valid request")
}

/// `GET path`, with the session cookie `key` if given.
pub(crate) async fn get(app: &Router, path: &str, key: Option<&str>) -> Reply {
    send(app, request("GET", path, key, Body::empty())).await
}

/// `POST path` with `body`, with the session cookie `key` if given.
pub(crate) async fn post(
    app: &Router,
    path: &str,
    key: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    send(app, request("POST", path, key, body.into())).await
}

/// `GET path` over a real connection to `port` (HTTP/1.1, `Connection:
/// close`), with the session cookie `key` if given.
pub(crate) async fn http_get(port: u16, path: &str, key: Option<&str>) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let cookie = key
        .map(|k| format!("Cookie: sessionid={k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{cookie}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> Reply {
    let text = String::from_utf8(raw.to_vec()).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        headers.append(
            header::HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name"),
            value.trim().parse().expect("a header value"),
        );
    }
    // axum answers small bodies with Content-Length, not chunked.
    assert!(
        headers.get(header::TRANSFER_ENCODING).is_none(),
        "unexpected chunked body"
    );
    Reply {
        status: StatusCode::from_u16(code).expect("a valid status"),
        headers,
        body: body.to_owned(),
    }
}

/// The counter value the seed's page shows.
pub(crate) fn shown_counter(page: &str) -> i64 {
    let start = page.find("Counter : <b>").expect("the seed's page") + "Counter : <b>".len();
    let end = start + page[start..].find("</b>").expect("a closing </b>");
    page[start..end].parse().expect("a number")
}
