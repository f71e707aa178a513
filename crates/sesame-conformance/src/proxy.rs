//! `ToggleProxy`: a TCP proxy that can take a real store server "down" and
//! bring it back, without touching the server other tests share.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::AbortHandle;

/// A TCP proxy on `127.0.0.1` in front of one server, with a switch.
///
/// [`stop`](Self::stop) is what a killed server looks like from the client:
/// every open connection is closed and new ones are refused (the listening
/// socket is closed, so `connect` fails at once). [`start`](Self::start)
/// listens again on the same port and forwards new connections. The
/// server behind it is never touched, so tests that share it run on.
///
/// Generic over the protocol (bytes are copied both ways): use it in front
/// of PostgreSQL, MariaDB, Redis or Memcached by pointing the store's URL at
/// [`addr`](Self::addr), or let [`in_front_of`](Self::in_front_of) rewrite
/// the URL.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::{TcpListener, TcpStream};
/// use sesame_conformance::ToggleProxy;
///
/// // An echo server stands in for the store.
/// let server = TcpListener::bind("127.0.0.1:0").await?;
/// let upstream = server.local_addr()?;
/// tokio::spawn(async move {
///     while let Ok((mut conn, _)) = server.accept().await {
///         tokio::spawn(async move {
///             let (mut r, mut w) = conn.split();
///             let _ = tokio::io::copy(&mut r, &mut w).await;
///         });
///     }
/// });
///
/// let proxy = ToggleProxy::new(upstream.to_string()).await?;
/// let mut conn = TcpStream::connect(proxy.addr()).await?;
/// conn.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// conn.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
///
/// proxy.stop();
/// assert!(TcpStream::connect(proxy.addr()).await.is_err());
/// proxy.start().await?;
/// assert!(TcpStream::connect(proxy.addr()).await.is_ok());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ToggleProxy {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Tasks>>,
    accepted: Arc<AtomicU64>,
}

#[derive(Default)]
struct Tasks {
    /// Bumped by every start and stop: a connection accepted by an older
    /// listener is closed at once, even if it raced with `stop`.
    generation: u64,
    running: bool,
    listener: Option<AbortHandle>,
    connections: Vec<AbortHandle>,
}

impl fmt::Debug for ToggleProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToggleProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("running", &self.is_running())
            .finish()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        abort_all(&self.tasks);
    }
}

fn lock(tasks: &Mutex<Tasks>) -> std::sync::MutexGuard<'_, Tasks> {
    // No code that can panic runs under the lock.
    tasks.lock().unwrap_or_else(PoisonError::into_inner)
}

fn abort_all(tasks: &Mutex<Tasks>) {
    let mut tasks = lock(tasks);
    tasks.generation += 1;
    tasks.running = false;
    if let Some(listener) = tasks.listener.take() {
        listener.abort();
    }
    for conn in tasks.connections.drain(..) {
        conn.abort();
    }
}

impl ToggleProxy {
    /// A running proxy on `127.0.0.1:<free port>` forwarding to `upstream`
    /// (`host:port`, connected afresh for each client connection).
    ///
    /// # Errors
    ///
    /// When no local port can be bound.
    pub async fn new(upstream: impl Into<String>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            shared: Arc::new(Shared {
                addr: listener.local_addr()?,
                upstream: upstream.into(),
                tasks: Arc::default(),
                accepted: Arc::default(),
            }),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// A running proxy in front of the server `url` names, and `url`
    /// rewritten to reach it through the proxy.
    ///
    /// `url` is `scheme://[user[:password]@]host[:port][/…]`; without a
    /// port, `default_port` is the server's.
    ///
    /// # Errors
    ///
    /// A URL without `://` or host, or no local port to bind.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let (proxy, url) =
    ///     sesame_conformance::ToggleProxy::in_front_of("postgres://app:pw@db.internal/app", 5432)
    ///         .await?;
    /// assert_eq!(url, format!("postgres://app:pw@{}/app", proxy.addr()));
    /// assert_eq!(proxy.upstream(), "db.internal:5432");
    /// # Ok(()) }
    /// ```
    pub async fn in_front_of(url: &str, default_port: u16) -> io::Result<(Self, String)> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "expected scheme://host[:port]");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        if host_port.is_empty() {
            return Err(bad());
        }
        // `[::1]:5432`, `[::1]`, `host:5432`, `host`.
        let has_port = match host_port.rfind(']') {
            Some(close) => host_port[close..].contains(':'),
            None => host_port.contains(':'),
        };
        let upstream = if has_port {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        let proxy = Self::new(upstream).await?;
        let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let url = format!("{scheme}://{user}{}{tail}", proxy.addr());
        Ok((proxy, url))
    }

    /// The proxy's own address: point the client here.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The server the proxy forwards to (`host:port`).
    #[must_use]
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Client connections accepted so far.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Whether the proxy listens now.
    #[must_use]
    pub fn is_running(&self) -> bool {
        lock(&self.shared.tasks).running
    }

    /// Closes every open connection and stops listening: new connections
    /// are refused until [`start`](Self::start).
    pub fn stop(&self) {
        abort_all(&self.shared.tasks);
    }

    /// Listens again on the same address (a no-op when running).
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again (another process took it).
    pub async fn start(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.shared.addr)?;
        let listener = socket.listen(1024)?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = Arc::clone(&self.shared.tasks);
        let accepted = Arc::clone(&self.shared.accepted);
        let upstream = self.shared.upstream.clone();
        let generation = {
            let mut tasks = lock(&tasks);
            tasks.generation += 1;
            tasks.running = true;
            tasks.generation
        };
        let handle = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let conn = tokio::spawn(forward(client, upstream.clone()));
                let mut tasks = lock(&tasks);
                if tasks.generation == generation {
                    tasks.connections.retain(|c| !c.is_finished());
                    tasks.connections.push(conn.abort_handle());
                } else {
                    conn.abort();
                }
            }
        });
        let mut tasks = lock(&self.shared.tasks);
        if tasks.generation == generation {
            tasks.listener = Some(handle.abort_handle());
        } else {
            handle.abort();
        }
    }
}

/// Copies bytes both ways until either side closes (or the task is aborted,
/// which closes both sockets).
async fn forward(mut client: TcpStream, upstream: String) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
