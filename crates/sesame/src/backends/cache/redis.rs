//! `RedisStore`: Django's `cache` engine on `RedisCache`, standalone or Cluster.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, RedisWrite, Script, ServerErrorKind,
    ToRedisArgs, Value,
};
use time::OffsetDateTime;

use super::{CacheKeys, decode, encode};
use sesame_codec::SessionMap;

use crate::backends::list::{LIST_PAGE, paged};
use crate::backends::{
    Contents, ListSessions, Listed, Record, Saved, SessionCache, SessionStore, Version,
    create_unique,
};
use crate::{Error, Result, SessionKey};

/// How long one store call or connection attempt may take before it fails,
/// unless [`RedisStore::connect_with_timeout`] or
/// [`RedisStore::with_timeout`] says otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The conditional write: replace the value only while it is still the one
/// the session was loaded with. One round trip, atomic on the server.
///
/// `ARGV[3]`, `ARGV[4]` are the expiry arguments of `SET` ([`expiry_args`]).
/// Returns 1 when written, 0 when the value changed (a conflict), -1 when the
/// key is gone (deleted or expired: never re-created).
const SAVE_IF_UNCHANGED: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4])
return 1
";

/// [`SAVE_IF_UNCHANGED`] as a Redis function (Redis 7+), called with `FCALL`:
/// the same steps, at about two thirds of the server's cost of `EVALSHA`
/// (no `KEYS`/`ARGV` tables built per call). The library's name carries a
/// version, so processes of different Sesame versions sharing a server
/// never replace each other's function.
const SAVE_LIBRARY: &str = r"#!lua name=sesame_1
redis.register_function('sesame_1_save_if_unchanged', function(keys, args)
  local current = redis.call('GET', keys[1])
  if not current then return -1 end
  if current ~= args[1] then return 0 end
  redis.call('SET', keys[1], args[2], args[3], args[4])
  return 1
end)
";
/// The function [`SAVE_LIBRARY`] registers.
const SAVE_FUNCTION: &str = "sesame_1_save_if_unchanged";

/// [`RedisStore`]'s `functions`: not yet known whether the server runs
/// functions; it does (saves `FCALL`); it does not (saves `EVALSHA`).
const FUNCTIONS_UNKNOWN: u8 = 0;
const FUNCTIONS_YES: u8 = 1;
const FUNCTIONS_NO: u8 = 2;

/// Sessions in Redis, as Django's `cache` engine on `RedisCache` keeps them:
/// one key per session, `:1:django.contrib.sessions.cache<key>`, holding the
/// session dict pickled, with the session's expiry age as its TTL.
///
/// - **Django.** A Django app with `SESSION_ENGINE = "…backends.cache"` on
///   the same Redis (and the same `KEY_PREFIX`/`VERSION`, see
///   [`with_keys`](Self::with_keys)) shares the sessions both ways. Values
///   are read with a pickle reader that accepts only plain data (a pickle
///   that could run code is [`Error::Corrupt`]) and written as Django writes them.
/// - **Round trips.** A request's load ([`load_contents`](SessionStore::load_contents))
///   is one `GET`, as Django's; [`load`](SessionStore::load), which also
///   reads the expiry, one pipelined `GET` + `PTTL`; create is one
///   `SET NX PX`; save is one Lua function (`FCALL` on Redis 7; a script by
///   `EVALSHA` before, and on a Cluster) that compares the stored value with
///   the loaded one and writes only if they match (compare-and-swap), so a
///   concurrent change is [`Error::Conflict`] and a deleted session
///   [`Error::Missing`], never re-created; touch is one `PEXPIRE`.
/// - **Expiry** is Redis's own TTL: [`clear_expired`](SessionStore::clear_expired)
///   has nothing to do.
/// - **Cluster.** [`connect`](Self::connect) with `redis+cluster://host1:port,host2:port`
///   (feature `redis-cluster`). Each session is one key, so every command
///   is slot-local; redirections (`MOVED`, `ASK`) are followed by the client.
/// - **Replicas.** Redis replicates asynchronously: a replica promoted by
///   a failover may miss the latest writes. [`with_replica_wait`](Self::with_replica_wait)
///   makes deletes wait for replicas, so a failover does not undo a logout.
/// - **TLS.** `rediss://` and `rediss+cluster://` (feature `redis-tls`),
///   verified against the system's roots; for your own roots, build the
///   connection yourself and use [`new`](Self::new) or `from_cluster`.
/// - **Outages.** Every call (waiting for a connection included) and every
///   connection attempt times out after [`DEFAULT_REDIS_TIMEOUT`]
///   ([`Error::Timeout`]); a dropped connection is re-established in the
///   background, with at most 250 ms between attempts, so service resumes
///   within moments of Redis coming back. The store bounds its own calls, so
///   a [`Session`](crate::Session) arms no second timer around them when
///   this timeout is within [`Settings::store_timeout`](crate::Settings::store_timeout).
///
/// Cloning is cheap: clones share one multiplexed connection.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::backends::{CacheKeys, RedisStore};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0")
///     .await?
///     .with_keys(CacheKeys::default().with_key_prefix("myapp"));
/// # let _ = store; Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.cache"` with
/// `CACHES["default"]["BACKEND"] = "django.core.cache.backends.redis.RedisCache"`.
/// Django's update is a `GET` then a `SET` (two round trips, not atomic);
/// Sesame's is one atomic script.
#[doc(alias = "cache")]
#[doc(alias = "django.contrib.sessions.backends.cache")]
#[doc(alias = "RedisCache")]
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Arc<CacheKeys>,
    script: Arc<Script>,
    /// Whether saves call [`SAVE_FUNCTION`] (`FCALL`) rather than the
    /// script ([`FUNCTIONS_UNKNOWN`] until the first save finds out). A
    /// Cluster always uses the script.
    functions: Arc<AtomicU8>,
    /// How long one call may take ([`SessionStore::call_timeout`]).
    timeout: Duration,
    /// How [`connect`](Self::connect) reached the server (`None` for a
    /// connection the caller made): what [`with_replica_wait`](Self::with_replica_wait)
    /// opens its own connection with.
    opener: Option<Arc<Opener>>,
    /// Deletes that wait for replicas ([`with_replica_wait`](Self::with_replica_wait)).
    replica_wait: Option<Arc<ReplicaWait>>,
}

/// How a store reached the server, kept to open more connections the
/// same way.
#[allow(clippy::large_enum_variant)] // one per store, behind an Arc
enum Opener {
    /// A standalone server: its client, and the connection manager's
    /// options (no response timeout: the store bounds each call itself).
    Single(redis::Client, ConnectionManagerConfig),
    /// A cluster: its seed nodes (`redis://` URLs) and the timeout of a
    /// connection attempt.
    Cluster(Vec<String>, Duration),
}

impl Opener {
    /// A new connection; on a cluster, one whose commands may take up to
    /// `response_timeout` (the cluster client times its commands itself).
    async fn open(&self, response_timeout: Duration) -> Result<Conn> {
        match self {
            Self::Single(client, config) => Ok(Conn::Single(
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map_err(Error::backend)?,
            )),
            Self::Cluster(nodes, timeout) => {
                connect_cluster(nodes, *timeout, response_timeout).await
            }
        }
    }
}

/// Deletes that return once `replicas` replicas have them (Redis `WAIT`),
/// or `timeout` has passed.
struct ReplicaWait {
    /// A connection of its own: `WAIT` counts the writes sent on the
    /// connection it is sent on, and Redis holds that connection's later
    /// commands until it answers, so sharing the store's connection would
    /// stall every request behind a logout while a replica is slow.
    conn: Conn,
    replicas: u32,
    timeout: Duration,
}

impl ReplicaWait {
    /// `WAIT <replicas> <timeout>` (`WAIT n 0` would wait for ever).
    fn wait_command(&self) -> Cmd {
        let mut wait = redis::cmd("WAIT");
        let millis = u64::try_from(self.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        wait.arg(self.replicas).arg(millis);
        wait
    }

    /// `DEL` then `WAIT` on the connection of its own: pipelined (one round
    /// trip) on a standalone server; on a cluster, two calls, `WAIT` routed
    /// to the primary that owns the key's slot.
    async fn delete(&self, cache_key: &str) -> Result<()> {
        let mut del = redis::cmd("DEL");
        del.arg(cache_key);
        let acked = match &self.conn {
            Conn::Single(conn) => {
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                pipe.add_command(del)
                    .ignore()
                    .add_command(self.wait_command());
                let (acked,): (i64,) = pipe.query_async(&mut conn).await.map_err(Error::backend)?;
                acked
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => {
                self.conn.clone().send(&del).await.map_err(Error::backend)?;
                self.wait(cache_key).await?
            }
        };
        self.check(acked);
        Ok(())
    }

    /// `WAIT` after a write sent on the connection of its own (on a
    /// cluster, to the primary that owns `cache_key`'s slot).
    async fn wait_after_write(&self, cache_key: &str) -> Result<()> {
        let acked = self.wait(cache_key).await?;
        self.check(acked);
        Ok(())
    }

    #[cfg_attr(not(feature = "redis-cluster"), allow(unused_variables))]
    async fn wait(&self, cache_key: &str) -> Result<i64> {
        let wait = self.wait_command();
        match &self.conn {
            Conn::Single(_) => reply_as(
                self.conn
                    .clone()
                    .send(&wait)
                    .await
                    .map_err(Error::backend)?,
            ),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

                let mut conn = conn.clone();
                let primary = Route::with_key(cache_key.as_bytes(), SlotAddr::Master);
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(primary));
                reply_as(
                    conn.route_command(wait, route)
                        .await
                        .map_err(Error::backend)?,
                )
            }
        }
    }

    /// Fewer replicas than asked for is a warning, not an error: the
    /// session is deleted on the primary.
    fn check(&self, acked: i64) {
        if acked < i64::from(self.replicas) {
            tracing::warn!(
                target: "sesame::store",
                acked,
                replicas = self.replicas,
                timeout_ms = self.timeout.as_millis(),
                "a session was deleted on the Redis primary, but fewer replicas than asked \
                 for confirmed it in time: a failover now could bring it back"
            );
        }
    }
}

/// The connection: one multiplexed connection to a standalone server, or
/// the cluster client's.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Sends one command; a server's error reply is the error. A standalone
    /// connection is called directly, not through [`ConnectionLike`], whose
    /// boxed future costs an allocation of over a kilobyte per command.
    async fn send(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let reply = match self {
            Self::Single(c) => c.send_packed_command(cmd).await,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(c) => c.req_packed_command(cmd).await,
        };
        reply?.extract_error()
    }
}

/// A session's cache key as a command argument, written straight into the
/// command (`KEY_PREFIX:VERSION:<engine prefix><key>`), with no `String`
/// built for it first.
struct KeyArg<'a>(&'a CacheKeys, &'a SessionKey);

impl ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;

        let mut arg = out.writer_for_next_arg();
        // Writing to the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.full_prefix().as_bytes());
        let _ = arg.write_all(self.1.as_str().as_bytes());
    }

    fn num_of_args(&self) -> usize {
        1
    }
}

impl RedisStore {
    /// Connects to the Redis (or Redis Cluster) a URL names.
    ///
    /// | URL | connects to |
    /// |---|---|
    /// | `redis://[:password@]host[:port][/db]` | a standalone server |
    /// | `rediss://…` | the same over TLS (feature `redis-tls`) |
    /// | `redis+cluster://[:password@]host1:port,host2:port,…` | a Redis Cluster, discovered from these seed nodes (feature `redis-cluster`); `rediss+cluster://` for TLS |
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is invalid, names a feature that was
    /// not compiled in, or the server cannot be reached (each attempt is
    /// bounded by [`DEFAULT_REDIS_TIMEOUT`]; up to five attempts, a few
    /// seconds in all). Needs Redis 6.2 or later (`SET … PXAT`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_timeout(url, DEFAULT_REDIS_TIMEOUT).await
    }

    /// As [`connect`](Self::connect), with `timeout` for each command and
    /// each connection attempt.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        #[cfg(feature = "redis-tls")]
        install_crypto_provider();
        let opener = match cluster_nodes(url) {
            Some(nodes) => Opener::Cluster(nodes?, timeout),
            None => {
                let client = redis::Client::open(url).map_err(Error::backend)?;
                // No response timeout here: the store bounds each call
                // itself ([`RedisStore::bounded`]), one timer a call.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(None)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(250))
                    .set_number_of_retries(4);
                Opener::Single(client, config)
            }
        };
        let conn = opener.open(timeout).await?;
        let mut store = Self::with_conn(conn).with_timeout(timeout);
        store.opener = Some(Arc::new(opener));
        Ok(store)
    }

    fn with_conn(conn: Conn) -> Self {
        let functions = match conn {
            Conn::Single(_) => FUNCTIONS_UNKNOWN,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => FUNCTIONS_NO,
        };
        Self {
            conn,
            keys: Arc::new(CacheKeys::default()),
            script: Arc::new(Script::new(SAVE_IF_UNCHANGED)),
            functions: Arc::new(AtomicU8::new(functions)),
            timeout: DEFAULT_REDIS_TIMEOUT,
            opener: None,
            replica_wait: None,
        }
    }

    /// A store on a connection you manage (a `ConnectionManager` built with
    /// your own options). Its calls time out after [`DEFAULT_REDIS_TIMEOUT`]
    /// unless [`with_timeout`](Self::with_timeout) says otherwise.
    #[must_use]
    pub fn new(conn: ConnectionManager) -> Self {
        Self::with_conn(Conn::Single(conn))
    }

    /// A store on a Redis Cluster connection you manage (a client built
    /// with your own TLS roots, timeouts or retries, e.g. with
    /// `redis::cluster::ClusterClientBuilder::certs`). Feature `redis-cluster`.
    #[cfg(feature = "redis-cluster")]
    #[must_use]
    pub fn from_cluster(conn: redis::cluster_async::ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(conn))
    }

    /// Sets how long one call of this store may take, waiting for a
    /// connection included, before it fails with [`Error::Timeout`]
    /// (default [`DEFAULT_REDIS_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes every delete — a logout's [`flush`](crate::Session::flush),
    /// the old key of [`cycle_key`](crate::Session::cycle_key), a revoke
    /// ([`revoke_user_sessions`](crate::backends::revoke_user_sessions);
    /// `sesame revoke` with `SESAME_REDIS_WAIT_REPLICAS`) — return only
    /// once `replicas` replicas have it, or after `timeout` (Redis `WAIT`),
    /// so that a failover right after a logout does not bring the session
    /// back: Redis replicates asynchronously, and a replica promoted before
    /// it saw the `DEL` still holds the session.
    ///
    /// Deletes go through a connection of their own, opened here as
    /// [`connect`](Self::connect) opened the store's (`WAIT` holds the
    /// connection it is sent on). When fewer replicas confirm in time, the
    /// delete still succeeds (the primary has it) and logs a warning on
    /// `sesame::store`. A delete may take up to the store's timeout plus
    /// `timeout` (and, in a [`Session`](crate::Session), no longer than
    /// [`Settings::store_timeout`](crate::Settings::store_timeout)).
    /// `replicas = 0` turns the wait off.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// use std::time::Duration;
    /// use sesame::backends::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/0")
    ///     .await?
    ///     .with_replica_wait(1, Duration::from_millis(100))
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the store was made on a connection of yours
    /// ([`new`](Self::new), `from_cluster`), which this store cannot open
    /// again, or the new connection cannot be opened.
    pub async fn with_replica_wait(mut self, replicas: u32, timeout: Duration) -> Result<Self> {
        if replicas == 0 {
            self.replica_wait = None;
            return Ok(self);
        }
        let Some(opener) = &self.opener else {
            return Err(Error::backend(
                "with_replica_wait opens a connection of its own: make the store with RedisStore::connect",
            ));
        };
        // A delete's `WAIT` may take the whole wait, on top of the call.
        let conn = self
            .bounded(opener.open(self.timeout.saturating_add(timeout)))
            .await?;
        self.replica_wait = Some(Arc::new(ReplicaWait {
            conn,
            replicas,
            timeout,
        }));
        Ok(self)
    }

    /// Names entries with these keys: Django's cache `KEY_PREFIX` and
    /// `VERSION`, and the engine's prefix ([`CacheKeys::cached_db`] for the
    /// cache half of [`CachedDbStore`](crate::backends::CachedDbStore)).
    #[must_use]
    pub fn with_keys(mut self, keys: CacheKeys) -> Self {
        self.keys = Arc::new(keys);
        self
    }

    /// The keys this store names its entries with.
    #[must_use]
    pub fn keys(&self) -> &CacheKeys {
        &self.keys
    }

    /// Whether this store talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        !matches!(self.conn, Conn::Single(_))
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The connection a save with these expiry arguments goes through: one
    /// that deletes the record (it is already past its expiry, as a
    /// rotation retiring its old key writes it) goes where deletes go when
    /// they wait for replicas, so that the `WAIT` after it counts it.
    fn conn_for(&self, expiry: (&str, u64)) -> Conn {
        match self.waits_for(expiry) {
            Some(wait) => wait.conn.clone(),
            None => self.conn(),
        }
    }

    /// The replica wait of a save with these expiry arguments: only a save
    /// that deletes waits.
    fn waits_for(&self, expiry: (&str, u64)) -> Option<&ReplicaWait> {
        self.replica_wait.as_deref().filter(|_| expiry == GONE)
    }

    /// Runs one call of the store within its timeout: running out of time
    /// is [`Error::Timeout`].
    ///
    /// A combinator, not an `async fn`: an `async fn` would hold `call`
    /// twice in its state (as its argument, and inside the `Timeout`),
    /// doubling the boxed future of every store call.
    fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> impl Future<Output = Result<T>> {
        within(self.timeout, call)
    }

    /// Sends one command and reads its reply as a `T`.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        reply_as(self.conn().send(cmd).await.map_err(Error::backend)?)
    }

    /// `GET` and `PTTL` of one key, pipelined: one round trip.
    ///
    /// On a cluster whose slot for the key is migrating, the old owner
    /// answers `ASK`; `ASKING` admits only the one command after it, so the
    /// cluster client cannot follow an `ASK` for a pipeline. The two are then
    /// sent one by one, each followed (two round trips, during a migration
    /// only). `MOVED` the client follows for pipelines as well.
    async fn get_with_ttl(&self, cache_key: &str) -> redis::RedisResult<(Option<Vec<u8>>, i64)> {
        let mut conn = self.conn();
        let pipelined = redis::pipe()
            .get(cache_key)
            .pttl(cache_key)
            .query_async(&mut conn)
            .await;
        match pipelined {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::Ask) => {
                let value = redis::cmd("GET")
                    .arg(cache_key)
                    .query_async(&mut conn)
                    .await?;
                let pttl = redis::cmd("PTTL")
                    .arg(cache_key)
                    .query_async(&mut conn)
                    .await?;
                Ok((value, pttl))
            }
            outcome => outcome,
        }
    }

    /// A save's write: the compare-and-swap when the record carries the
    /// version it was loaded with, else `SET XX` (only while the key
    /// exists: a save never re-creates).
    async fn write(
        &self,
        key: &SessionKey,
        record: &Record,
        value: &[u8],
        (unit, ttl): (&'static str, u64),
    ) -> Result<()> {
        match &record.version {
            Some(version) => {
                let cas = Cas {
                    key,
                    expected: version.as_bytes(),
                    value,
                    unit,
                    ttl,
                };
                match self.save_if_unchanged(&cas).await? {
                    1 => Ok(()),
                    0 => Err(Error::Conflict),
                    _ => Err(Error::Missing),
                }
            }
            None => {
                let set = self.set_command(key, value, Some("XX"), (unit, ttl));
                let reply = self.conn_for((unit, ttl)).send(&set).await;
                match reply_as::<Option<String>>(reply.map_err(Error::backend)?)? {
                    Some(_) => Ok(()),
                    None => Err(Error::Missing),
                }
            }
        }
    }

    /// Saves with the compare-and-swap in one round trip: [`SAVE_FUNCTION`]
    /// by `FCALL` where the server has functions, else [`SAVE_IF_UNCHANGED`]
    /// by `EVALSHA`.
    ///
    /// The first save loads the library (`FUNCTION LOAD REPLACE`); a server
    /// that refuses it (before Redis 7, or an ACL without it) is sent the
    /// script from then on. A server that later lacks the function
    /// (restarted without persistence, `FUNCTION FLUSH`) answers "Function
    /// not found": the library is loaded again and the call sent once more.
    /// `FCALL` is never sent blind: a server without it would echo the
    /// pickled arguments in its error, which the client cannot read.
    async fn save_if_unchanged(&self, save: &Cas<'_>) -> Result<i64> {
        if self.functions.load(Ordering::Relaxed) == FUNCTIONS_UNKNOWN {
            match self
                .load_library(&mut self.conn_for((save.unit, save.ttl)))
                .await
            {
                Ok(()) => self.functions.store(FUNCTIONS_YES, Ordering::Relaxed),
                Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => {
                    self.save_by_script_from_now(&e);
                }
                Err(e) => return Err(Error::backend(e)),
            }
        }
        if self.functions.load(Ordering::Relaxed) == FUNCTIONS_YES {
            let cmd = self.cas_command("FCALL", SAVE_FUNCTION, save);
            let mut conn = self.conn_for((save.unit, save.ttl));
            let reply = match conn.send(&cmd).await {
                Err(e) if is_function_missing(&e) => match self.load_library(&mut conn).await {
                    Ok(()) => conn.send(&cmd).await,
                    // Not loadable here (denied, or functions refused): as
                    // a server without functions.
                    Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => Err(e),
                    Err(e) => return Err(Error::backend(e)),
                },
                reply => reply,
            };
            match reply {
                Ok(reply) => return reply_as(reply),
                Err(e) if cannot_use_functions(&e) => self.save_by_script_from_now(&e),
                Err(e) => return Err(Error::backend(e)),
            }
        }
        // Boxed: on Redis 7 the rare path, kept out of every save's future.
        Box::pin(self.save_by_script(save)).await
    }

    /// The server cannot run the save function (`why`): every save from
    /// now on is sent as the script.
    fn save_by_script_from_now(&self, why: &redis::RedisError) {
        tracing::info!(
            target: "sesame::store",
            error = %why,
            "Redis functions unavailable; saving with EVALSHA from now on"
        );
        self.functions.store(FUNCTIONS_NO, Ordering::Relaxed);
    }

    /// `SET <key> <value> [NX|XX] <unit> <ttl>`, the key written in place.
    fn set_command(
        &self,
        key: &SessionKey,
        value: &[u8],
        condition: Option<&str>,
        (unit, ttl): (&str, u64),
    ) -> Cmd {
        let mut set = Cmd::with_capacity(6, 64 + self.keys.full_prefix().len() + value.len());
        set.arg("SET").arg(KeyArg(&self.keys, key)).arg(value);
        if let Some(condition) = condition {
            set.arg(condition);
        }
        set.arg(unit).arg(ttl);
        set
    }

    /// `<verb> <name> 1 <key> <expected> <value> <unit> <ttl>`: the call of
    /// the compare-and-swap, by `FCALL` or by `EVALSHA`, built in place
    /// (redis-rs's `ScriptInvocation` copies every argument twice).
    fn cas_command(&self, verb: &str, name: &str, save: &Cas<'_>) -> Cmd {
        let mut cmd = Cmd::with_capacity(
            8,
            128 + self.keys.full_prefix().len() + save.expected.len() + save.value.len(),
        );
        cmd.arg(verb)
            .arg(name)
            .arg(1)
            .arg(KeyArg(&self.keys, save.key))
            .arg(save.expected)
            .arg(save.value)
            .arg(save.unit)
            .arg(save.ttl);
        cmd
    }

    /// `FUNCTION LOAD REPLACE` of [`SAVE_LIBRARY`].
    async fn load_library(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(SAVE_LIBRARY);
        conn.send(&load).await.map(|_| ())
    }

    /// Runs [`SAVE_IF_UNCHANGED`] as one `EVALSHA`. A server that does not
    /// know the script (restarted, `SCRIPT FLUSH`, a new cluster node)
    /// answers `NOSCRIPT`: the script is loaded and the call sent once more.
    async fn save_by_script(&self, save: &Cas<'_>) -> Result<i64> {
        let cmd = self.cas_command("EVALSHA", self.script.get_hash(), save);
        let mut conn = self.conn_for((save.unit, save.ttl));
        let reply = match conn.send(&cmd).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script
                    .load_async(&mut conn)
                    .await
                    .map_err(Error::backend)?;
                conn.send(&cmd).await
            }
            reply => reply,
        }
        .map_err(Error::backend)?;
        reply_as(reply)
    }
}

/// What a compare-and-swap save sends: the key, the value it was loaded
/// with, the value to write, and the `SET` expiry arguments ([`expiry_args`]).
struct Cas<'a> {
    key: &'a SessionKey,
    expected: &'a [u8],
    value: &'a [u8],
    unit: &'a str,
    ttl: u64,
}

/// `call` within `limit`: running out of time is [`Error::Timeout`].
fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T>>,
) -> impl Future<Output = Result<T>> {
    use futures_util::FutureExt as _;
    tokio::time::timeout(limit, call).map(|r| r.unwrap_or(Err(Error::Timeout)))
}

/// A reply read as a `T`.
fn reply_as<T: FromRedisValue>(reply: Value) -> Result<T> {
    T::from_redis_value(reply).map_err(|e| Error::backend(redis::RedisError::from(e)))
}

/// "ERR Function not found": the server has functions, not ours (yet).
fn is_function_missing(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && e.detail().is_some_and(|d| d.contains("Function not found"))
}

/// The server cannot run our function: no such command (before Redis 7,
/// or renamed away), not allowed (`NOPERM`), or still missing after a load
/// (or a load that failed, whose error this then is). An error the
/// function itself raised (a key of another type) is not this: it is the
/// save's error, and functions stay in use.
fn cannot_use_functions(e: &redis::RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::NoPerm) => true,
        ErrorKind::Server(ServerErrorKind::ResponseError) => {
            is_function_missing(e)
                || e.detail()
                    .is_some_and(|d| d.to_ascii_lowercase().starts_with("unknown command"))
        }
        _ => false,
    }
}

/// A Cluster's primaries, as `(host, port)`.
type Primaries = Arc<[(String, u16)]>;

/// Where a listing of a Redis store is: the `SCAN` cursor, and on a
/// Cluster which primary it is on.
struct ScanAt {
    cursor: u64,
    /// `None`: a standalone server. The Cluster's primaries (`host`,
    /// `port`), found on the first page, and the index of the one scanned.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    primaries: Option<(Primaries, usize)>,
}

impl RedisStore {
    /// One `SCAN` page of this store's keys, and where the next begins.
    async fn scan_page(&self, at: ScanAt) -> Result<(Vec<SessionKey>, Option<ScanAt>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(at.cursor)
            .arg("MATCH")
            .arg(self.keys.match_pattern())
            .arg("COUNT")
            .arg(LIST_PAGE);
        let (cursor, names, primaries): (u64, Vec<Vec<u8>>, Option<(Primaries, usize)>) =
            match &self.conn {
                Conn::Single(conn) => {
                    let (cursor, names) = scan
                        .query_async(&mut conn.clone())
                        .await
                        .map_err(Error::backend)?;
                    (cursor, names, None)
                }
                #[cfg(feature = "redis-cluster")]
                Conn::Cluster(conn) => {
                    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

                    let mut conn = conn.clone();
                    let (primaries, index) = match at.primaries {
                        Some(at) => at,
                        None => (cluster_primaries(&mut conn).await?, 0),
                    };
                    let Some((host, port)) = primaries.get(index) else {
                        return Ok((Vec::new(), None));
                    };
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    });
                    let reply = conn
                        .route_command(scan, routing)
                        .await
                        .map_err(Error::backend)?;
                    let (cursor, names) = redis::from_redis_value(reply)
                        .map_err(|e| Error::backend(redis::RedisError::from(e)))?;
                    (cursor, names, Some((primaries, index)))
                }
            };
        let keys = names
            .iter()
            .filter_map(|name| self.keys.session_key_of(name))
            .collect();
        let next = match (cursor, primaries) {
            (0, None) => None,
            (cursor, None) => Some(ScanAt {
                cursor,
                primaries: None,
            }),
            // This primary is done: on to the next one.
            (0, Some((primaries, index))) => (index + 1 < primaries.len()).then(|| ScanAt {
                cursor: 0,
                primaries: Some((primaries, index + 1)),
            }),
            (cursor, Some(primaries)) => Some(ScanAt {
                cursor,
                primaries: Some(primaries),
            }),
        };
        Ok((keys, next))
    }
}

/// The record a key's `GET` and `PTTL` replies make, read at `now`: `None`
/// when the key is gone.
fn record_of(value: Option<Vec<u8>>, pttl: i64, now: OffsetDateTime) -> Result<Option<Record>> {
    let Some(value) = value else {
        return Ok(None);
    };
    // No TTL: written by someone else without a timeout (Django's
    // `timeout=None`). It lives until deleted.
    let never = || now + time::Duration::days(365 * 100);
    let expires_at = match pttl {
        // Gone between the two commands, or expiring this millisecond.
        -2 | 0 => return Ok(None),
        ms if ms < 0 => never(),
        // A TTL past what a date holds (year 9999) is as good as none.
        ms => now
            .checked_add(time::Duration::milliseconds(ms))
            .unwrap_or_else(never),
    };
    let data = decode(&value)?;
    Ok(Some(Record {
        data: data.into(),
        expires_at,
        version: Some(Version::new(Bytes::from(value))),
    }))
}

impl RedisStore {
    /// One `SCAN` page of a standalone server's sessions, read with one
    /// pipeline of `GET` + `PTTL` per key: one more round trip per page.
    async fn session_page(&self, at: ScanAt) -> Result<(Vec<Listed>, Option<ScanAt>)> {
        let (keys, next) = self.scan_page(at).await?;
        if keys.is_empty() {
            return Ok((Vec::new(), next));
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            let cache_key = self.keys.key(key);
            pipe.get(&cache_key).pttl(&cache_key);
        }
        let replies: Vec<(Option<Vec<u8>>, i64)> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(Error::backend)?;
        let now = OffsetDateTime::now_utc();
        let mut listed = Vec::with_capacity(keys.len());
        for (key, (value, pttl)) in keys.into_iter().zip(replies) {
            match record_of(value, pttl, now) {
                Ok(record) => listed.push((key, Ok(record))),
                Err(e @ Error::Corrupt(_)) => listed.push((key, Err(e))),
                Err(e) => return Err(e),
            }
        }
        Ok((listed, next))
    }
}

/// The addresses of a Cluster's primaries, each once, in a stable order.
#[cfg(feature = "redis-cluster")]
async fn cluster_primaries(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> Result<Primaries> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

    // Without a response policy, a command sent to every primary answers
    // with a map from each primary's address to its reply.
    let reply = conn
        .route_command(
            redis::cmd("PING"),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await
        .map_err(Error::backend)?;
    let Value::Map(replies) = reply else {
        return Err(Error::backend(std::io::Error::other(
            "the cluster did not name its primaries",
        )));
    };
    let mut primaries = Vec::with_capacity(replies.len());
    for (address, _) in replies {
        let address: String = redis::from_redis_value(address)
            .map_err(|e| Error::backend(redis::RedisError::from(e)))?;
        // `host:port`, split at the last colon: an IPv6 host may come with or
        // without brackets.
        let parsed = address.rsplit_once(':').and_then(|(host, port)| {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            Some((host.to_owned(), port.parse().ok()?))
        });
        let Some(primary) = parsed else {
            return Err(Error::backend(std::io::Error::other(format!(
                "the cluster named a primary at {address:?}, not host:port"
            ))));
        };
        primaries.push(primary);
    }
    primaries.sort();
    primaries.dedup();
    Ok(primaries.into())
}

/// Lists with `SCAN … MATCH <prefix>* COUNT 500`: on a Cluster, every
/// primary in turn. A key that expires or moves to another primary (slot
/// migration) while the listing runs may be missed or listed twice.
impl ListSessions for RedisStore {
    fn session_keys(&self) -> impl futures_util::Stream<Item = Result<SessionKey>> + Send + '_ {
        let start = ScanAt {
            cursor: 0,
            primaries: None,
        };
        paged(start, move |at| self.bounded(self.scan_page(at)))
    }

    /// On a standalone server, each page's values in one pipeline; on a
    /// Cluster (whose keys a page spreads over slots), key by key.
    fn sessions(&self) -> impl futures_util::Stream<Item = Result<Listed>> + Send + '_ {
        match &self.conn {
            Conn::Single(_) => {
                let start = ScanAt {
                    cursor: 0,
                    primaries: None,
                };
                futures_util::StreamExt::boxed(paged(start, move |at| {
                    self.bounded(self.session_page(at))
                }))
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => futures_util::StreamExt::boxed(crate::backends::list::load_each(
                self,
                self.session_keys(),
            )),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("keys", &self.keys)
            .field(
                "replica_wait",
                &self.replica_wait.as_ref().map(|w| (w.replicas, w.timeout)),
            )
            .finish_non_exhaustive()
    }
}

impl SessionStore for RedisStore {
    fn call_timeout(&self) -> Option<Duration> {
        // A delete may also wait for replicas.
        let wait = self
            .replica_wait
            .as_ref()
            .map_or(Duration::ZERO, |w| w.timeout);
        Some(self.timeout.saturating_add(wait))
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.bounded(async {
            let cache_key = self.keys.key(key);
            let (value, pttl) = self
                .get_with_ttl(&cache_key)
                .await
                .map_err(Error::backend)?;
            record_of(value, pttl, OffsetDateTime::now_utc())
        })
        .await
    }

    /// One `GET`: the expiry is Redis's TTL, which a request need not read.
    async fn load_contents(&self, key: &SessionKey) -> Result<Option<Contents>> {
        self.bounded(async {
            let mut get = Cmd::with_capacity(2, 3 + self.keys.full_prefix().len() + 64);
            get.arg("GET").arg(KeyArg(&self.keys, key));
            let Some(value) = self.query::<Option<Vec<u8>>>(&get).await? else {
                return Ok(None);
            };
            Ok(Some(Contents {
                data: decode(&value)?.into(),
                version: Some(Version::new(value)),
            }))
        })
        .await
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let value = Bytes::from(encode(&record.data));
        let expiry = expiry_args(record.expires_at);
        self.bounded(create_unique(|key| {
            let value = value.clone();
            async move {
                let set = self.set_command(&key, &value, Some("NX"), expiry);
                match self.query::<Option<String>>(&set).await? {
                    Some(_) => Ok(Saved {
                        key,
                        version: Version::new(value),
                    }),
                    None => Err(Error::KeyCollision),
                }
            }
        }))
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let value = Bytes::from(encode(&record.data));
        let expiry = expiry_args(record.expires_at);
        match self.waits_for(expiry) {
            None => {
                self.bounded(self.write(key, record, &value, expiry))
                    .await?;
            }
            // A save of a record past its expiry deletes it: with a replica
            // wait, it waits as a delete does, and may take as long.
            Some(wait) => {
                let limit = self.timeout.saturating_add(wait.timeout);
                let write_then_wait = async {
                    self.write(key, record, &value, expiry).await?;
                    wait.wait_after_write(&self.keys.key(key)).await
                };
                // Boxed: the common save never waits, and keeps its future small.
                Box::pin(within(limit, write_then_wait)).await?;
            }
        }
        Ok(Saved {
            key: key.clone(),
            version: Version::new(value),
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        if let Some(wait) = &self.replica_wait {
            // The call's own time, and the wait's on top of it.
            let limit = self.timeout.saturating_add(wait.timeout);
            return within(limit, wait.delete(&self.keys.key(key))).await;
        }
        let mut del = redis::cmd("DEL");
        del.arg(KeyArg(&self.keys, key));
        self.bounded(self.query::<i64>(&del)).await?;
        Ok(())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(KeyArg(&self.keys, key));
        Ok(self.bounded(self.query::<i64>(&exists)).await? > 0)
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let (unit, ttl) = expiry_args(until);
        let mut expire = redis::cmd(if unit == "PX" { "PEXPIRE" } else { "PEXPIREAT" });
        expire.arg(KeyArg(&self.keys, key)).arg(ttl);
        if self.bounded(self.query::<i64>(&expire)).await? == 1 {
            Ok(())
        } else {
            Err(Error::Missing)
        }
    }
}

/// A `RedisStore` as the cache of a [`CachedDbStore`](crate::backends::CachedDbStore):
/// build it with [`CacheKeys::cached_db`] keys.
impl SessionCache for RedisStore {
    async fn get(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.load(key).await
    }

    async fn set(
        &self,
        key: &SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let set = self.set_command(key, &encode(data), None, expiry_args(expires_at));
        self.bounded(self.query::<Option<String>>(&set)).await?;
        Ok(())
    }

    async fn remove(&self, key: &SessionKey) -> Result<()> {
        SessionStore::delete(self, key).await
    }

    async fn expire_at(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        match SessionStore::touch(self, key, until).await {
            Err(Error::Missing) => Ok(()),
            other => other,
        }
    }
}

/// The expiry arguments of `SET` for a record expiring at `expires_at`:
/// `PX <ms>`, relative as Django's TTL is (so the app's and Redis's clocks
/// need not agree), or, for a record already past its expiry, `PXAT 1`: a
/// moment long gone, which Redis answers by dropping the key (`PX 0` is an
/// error). Saving an expired record thus leaves nothing to load.
fn expiry_args(expires_at: OffsetDateTime) -> (&'static str, u64) {
    let ms = (expires_at - OffsetDateTime::now_utc()).whole_milliseconds();
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => ("PX", ms),
        _ => GONE,
    }
}

/// The expiry arguments of a record already past its expiry: a `SET` with
/// them deletes the key.
const GONE: (&str, u64) = ("PXAT", 1);

/// The seed nodes of a `redis+cluster://` URL, as `redis://` URLs; `None`
/// when the URL names a standalone server.
fn cluster_nodes(url: &str) -> Option<Result<Vec<String>>> {
    let (scheme, rest) = url.split_once("://")?;
    let node_scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    // A trailing `/` (and `/0`, the only database a cluster has) is allowed.
    let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}"),
            None => format!("{node_scheme}://{host}"),
        })
        .collect();
    if nodes.is_empty() {
        return Some(Err(Error::backend(
            "a redis+cluster:// URL names at least one node: redis+cluster://host1:port,host2:port",
        )));
    }
    Some(Ok(nodes))
}

/// A cluster connection seeded by `nodes`: each connection attempt within
/// `timeout`, each command within `response_timeout`.
#[cfg(feature = "redis-cluster")]
async fn connect_cluster(
    nodes: &[String],
    timeout: Duration,
    response_timeout: Duration,
) -> Result<Conn> {
    let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(response_timeout)
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(250)
        .build()
        .map_err(Error::backend)?;
    let conn = client
        .get_async_connection()
        .await
        .map_err(Error::backend)?;
    Ok(Conn::Cluster(conn))
}

#[cfg(not(feature = "redis-cluster"))]
async fn connect_cluster(
    _nodes: &[String],
    _timeout: Duration,
    _response_timeout: Duration,
) -> Result<Conn> {
    Err(Error::backend(
        "redis+cluster:// needs the `redis-cluster` feature of sesame",
    ))
}

/// rustls needs one process-wide crypto provider; install ring's unless the
/// application installed one already.
#[cfg(feature = "redis-tls")]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        let nodes = cluster_nodes("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/")
            .expect("a cluster URL")
            .expect("valid");
        assert_eq!(nodes, ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
        let nodes = cluster_nodes("rediss+cluster://:pw@a:1, b:2")
            .expect("a cluster URL")
            .expect("valid");
        assert_eq!(nodes, ["rediss://:pw@a:1", "rediss://:pw@b:2"]);
        assert!(cluster_nodes("redis://127.0.0.1:6379/0").is_none());
        assert!(
            cluster_nodes("redis+cluster:///")
                .expect("a cluster URL")
                .is_err()
        );
    }
}
