//! `MemcachedStore`: Django's `cache` engine on `PyMemcacheCache`, over a
//! small hand-written client for memcached's meta text protocol.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use sesame_codec::{SESSION_COOKIE_AGE, SessionMap};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{CacheKeys, decode, encode, ttl_seconds};
use crate::backends::base::{Record, Saved, SessionStore, Version, create_unique};
use crate::backends::cached_db::SessionCache;
use crate::{Error, Result, SessionKey};

/// memcached's port when a URL names none.
const DEFAULT_PORT: u16 = 11211;

/// The longest key memcached accepts, in bytes.
const MAX_KEY_BYTES: usize = 250;

/// memcached's default item size limit (`-I 1m`).
const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;

/// How long one store call may take, connecting included, by default.
const DEFAULT_TIMEOUT: StdDuration = StdDuration::from_secs(2);

/// How many connections a store opens at most, by default.
const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// An exptime above this many seconds (30 days) is read by memcached as a
/// Unix timestamp, not a number of seconds.
const MAX_RELATIVE_EXPTIME: i64 = 2_592_000;

/// The latest Unix time memcached can take as an exptime: it reads exptime
/// as a signed 32-bit integer (`i32::MAX`, 2038-01-19T03:14:07Z). A later one
/// wraps: past 2^31 the item is gone at once, from 2^32 it never expires.
const MAX_ABSOLUTE_EXPTIME: i64 = i32::MAX as i64;

/// pymemcache's `FLAG_PICKLE`: the value is a pickle, and Django's
/// `PyMemcacheCache` unpickles it.
const FLAG_PICKLE: u32 = 1;

/// The longest reply line accepted (a header line is a few dozen bytes).
const MAX_LINE: usize = 1024;

/// Sessions in memcached, as Django's `cache` session engine keeps them on
/// `django.core.cache.backends.memcached.PyMemcacheCache`.
///
/// A Django app with `SESSION_ENGINE = "django.contrib.sessions.backends.cache"`
/// and a `PyMemcacheCache` on the same server (with the same `KEY_PREFIX` and
/// `VERSION`, see [`with_keys`](Self::with_keys)) shares the sessions:
///
/// - the key of session `k` is `:1:django.contrib.sessions.cache<k>`;
/// - the value is the session dict, pickled, with flags `1` (pymemcache's
///   `FLAG_PICKLE`);
/// - the item's time to live is the session's expiry age, in whole seconds
///   rounded up (an age over 30 days is sent as a Unix time, as memcached
///   requires and Django does).
///
/// memcached reads that Unix time as a signed 32-bit number, so no item can
/// outlive 2038-01-19T03:14:07Z (`i32::MAX`): a session set to expire later
/// (a date past it, or `Duration::MAX`) is kept until then, and loads with
/// that expiry.
///
/// # Concurrency and expiry
///
/// Every call is one round trip in memcached's meta protocol (memcached 1.6
/// or later): [`load`](SessionStore::load) reads the value, its CAS token and
/// its remaining time to live at once; [`create`](SessionStore::create) is an
/// add (never overwrites); [`save`](SessionStore::save) is a compare-and-swap
/// on the CAS token the record was loaded with ([`Error::Conflict`] when it
/// changed, [`Error::Missing`] when the item is gone), or a replace without a
/// version (never re-creates). The server must keep CAS tokens: one started
/// with `-C` (CAS disabled) answers every token as 0 and refuses every
/// compare-and-swap, so `load`, `create` and `save` fail with a backend error
/// that names the cause (logged, as every store error is, and answered as an
/// outage) rather than every save being an [`Error::Conflict`]. (A `create`,
/// or a `save` without a version, has then written the item.) As the cache
/// of a [`CachedDbStore`](crate::backends::CachedDbStore), which uses no
/// tokens, such a server works.
///
/// memcached expires items itself, so
/// [`clear_expired`](SessionStore::clear_expired) has nothing to do. It
/// keeps time in whole seconds: the time to live sent is rounded up to a
/// whole second, and a load reads the seconds left on a clock that ticks
/// once a second, so a loaded [`Record::expires_at`] is within 2 seconds of
/// the one written, not within one. An expiry over 30 days away is sent as
/// a Unix time, which memcached converts with its start time, also in whole
/// seconds: such a one loads within 4 seconds.
///
/// # Connections
///
/// Connections are pooled: idle ones are reused, at most
/// [`with_max_connections`](Self::with_max_connections) are open, and one
/// that saw an I/O error, a timeout or a reply it did not expect is closed,
/// never reused. Every call, connecting included, ends within
/// [`with_timeout`](Self::with_timeout) with [`Error::Timeout`] if the server
/// does not answer.
///
/// # Limits
///
/// - A session whose pickle exceeds the item size limit
///   ([`with_max_item_size`](Self::with_max_item_size), memcached's `-I`,
///   default 1 MiB) is refused with [`Error::TooLarge`], as is one the server
///   refuses as too large.
/// - A key longer than 250 bytes or holding whitespace or control characters
///   (a `KEY_PREFIX` with a space, say) is refused before anything is sent,
///   with a backend error whose source is [`InvalidCacheKey`].
/// - A stored value that is not a pickled dict flagged `1` is
///   [`Error::Corrupt`]: the request then gets an empty session.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::SessionManagerLayer;
/// use sesame::backends::{CacheKeys, MemcachedStore};
///
/// let store = MemcachedStore::connect("memcached://127.0.0.1:11211")
///     .await?
///     .with_keys(CacheKeys::default().with_key_prefix("myapp"));
/// let layer = SessionManagerLayer::new(store);
/// # let _ = layer; Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.cache"` with
/// `CACHES[SESSION_CACHE_ALIAS]` on `PyMemcacheCache`. Differences: Django
/// writes with a plain `set` after checking the key exists, so two
/// concurrent Django requests can overwrite each other, where this store's
/// saves are compare-and-swap; Django's `create` would loop forever on
/// an unreachable server, where this store returns the error; and Django
/// sends an expiry past 2038-01-19T03:14:07Z as is, which memcached drops
/// at once (or never expires), where this store keeps the session until then.
#[doc(alias = "cache")]
#[doc(alias = "django.contrib.sessions.backends.cache")]
#[doc(alias = "PyMemcacheCache")]
#[derive(Clone)]
pub struct MemcachedStore {
    config: Arc<Config>,
    pool: Arc<Pool>,
}

#[derive(Clone)]
struct Config {
    /// `host:port`, as `TcpStream::connect` resolves it.
    addr: String,
    keys: CacheKeys,
    timeout: StdDuration,
    max_connections: usize,
    max_item_size: usize,
}

impl MemcachedStore {
    /// A store on the memcached server at `addr` (`host:port`, such as
    /// `127.0.0.1:11211`).
    ///
    /// Nothing is connected until the first call; see
    /// [`connect`](Self::connect) to check the server answers.
    #[must_use]
    pub fn new(addr: impl Into<String>) -> Self {
        let config = Config {
            addr: addr.into(),
            keys: CacheKeys::default(),
            timeout: DEFAULT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
        };
        Self {
            pool: Arc::new(Pool::new(config.max_connections)),
            config: Arc::new(config),
        }
    }

    /// A store on the server a `memcached://host[:port]` URL names (port
    /// 11211 by default), checked with one round trip.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is not of that form or the server does
    /// not answer, [`Error::Timeout`] when it does not answer in time.
    pub async fn connect(url: &str) -> Result<Self> {
        let store = Self::new(parse_url(url).map_err(Error::backend)?);
        store.ping().await?;
        Ok(store)
    }

    /// Sets the cache's `KEY_PREFIX` and `VERSION` (default: Django's
    /// `:1:django.contrib.sessions.cache<key>`).
    #[doc(alias = "KEY_PREFIX")]
    #[must_use]
    pub fn with_keys(mut self, keys: CacheKeys) -> Self {
        Arc::make_mut(&mut self.config).keys = keys;
        self
    }

    /// Checks, before anything is sent, that `keys` make cache keys memcached
    /// takes for every session key: a `KEY_PREFIX` without whitespace or
    /// control characters, short enough to leave room for the longest
    /// session key (40 characters) within 250 bytes. Every call of a store
    /// with keys that fail this fails the same way, so check at start-up.
    ///
    /// # Examples
    ///
    /// ```
    /// use sesame::backends::{CacheKeys, MemcachedStore};
    ///
    /// assert!(MemcachedStore::check_keys(&CacheKeys::default()).is_ok());
    /// let spaced = CacheKeys::default().with_key_prefix("my app");
    /// assert!(MemcachedStore::check_keys(&spaced).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// The [`InvalidCacheKey`] the longest session key would meet.
    pub fn check_keys(keys: &CacheKeys) -> std::result::Result<(), InvalidCacheKey> {
        validate_key(&keys.key_for(&"a".repeat(crate::key::MAX_KEY_LENGTH)))
    }

    /// Sets the most connections the store opens at once (default 16, at
    /// least 1). Calls beyond it wait for a free connection, within the
    /// timeout. Idle connections are kept for reuse, up to the same number.
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        let max = max.max(1);
        Arc::make_mut(&mut self.config).max_connections = max;
        self.pool = Arc::new(Pool::new(max));
        self
    }

    /// Sets how long one call may take, waiting for a connection and
    /// connecting included (default 2 s). The middleware's own
    /// [`store_timeout`](crate::Settings::store_timeout) also applies.
    #[must_use]
    pub fn with_timeout(mut self, timeout: StdDuration) -> Self {
        Arc::make_mut(&mut self.config).timeout = timeout;
        self
    }

    /// Sets the largest value the store writes, in bytes: the server's item
    /// size limit (`memcached -I`, default 1 MiB). A larger session is
    /// refused with [`Error::TooLarge`].
    #[must_use]
    pub fn with_max_item_size(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).max_item_size = bytes;
        self
    }

    /// The server's address, `host:port`.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    /// How the store names its entries.
    #[must_use]
    pub fn keys(&self) -> &CacheKeys {
        &self.config.keys
    }

    /// Asks the server for its version: one round trip, to check it answers.
    async fn ping(&self) -> Result<()> {
        self.call(b"version\r\n".to_vec(), |mut conn| async move {
            let line = conn.read_line().await?;
            if line.starts_with(b"VERSION ") {
                Ok(((), conn))
            } else {
                Err(unexpected(&line))
            }
        })
        .await
    }

    /// The full key of `key`, checked as memcached (and Django's
    /// `memcache_key_warnings`) require.
    fn key(&self, key: &SessionKey) -> Result<String> {
        let full = self.config.keys.key(key);
        validate_key(&full).map_err(Error::backend)?;
        Ok(full)
    }

    /// The pickled value of `record`, refused when over the item size limit.
    fn value(&self, record: &Record) -> Result<Vec<u8>> {
        let value = encode(&record.data);
        let limit = self.config.max_item_size;
        if value.len() > limit {
            return Err(Error::TooLarge {
                len: value.len(),
                limit,
            });
        }
        Ok(value)
    }

    /// Runs one request/reply exchange within the timeout, on a pooled
    /// connection; the connection goes back to the pool only when `exchange`
    /// hands it back (a complete, expected reply).
    async fn call<T, F, Fut>(&self, request: Vec<u8>, exchange: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<(T, Conn), Failure>>,
    {
        let work = async {
            let _permit = self.pool.permits.acquire().await.map_err(Error::backend)?;
            let mut retried = false;
            loop {
                let (mut conn, reused) = match self.pool.take_idle() {
                    Some(conn) => (conn, true),
                    None => (Conn::open(&self.config.addr).await?, false),
                };
                let result = async {
                    conn.send(&request).await?;
                    exchange(conn).await
                }
                .await;
                match result {
                    Ok((value, conn)) => {
                        self.pool.put_idle(conn, self.config.max_connections);
                        return Ok(value);
                    }
                    // A pooled connection the server closed while it was
                    // idle (a restart): the request never reached a server
                    // that could answer it, so it is safe to send again,
                    // once, on a fresh connection.
                    Err(Failure::Io(err)) if reused && !retried && is_closed(&err) => {
                        retried = true;
                    }
                    Err(failure) => return Err(failure.into()),
                }
            }
        };
        tokio::time::timeout(self.config.timeout, work)
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// A `ms` (meta set) request: `mode` is `E` (add), `R` (replace) or `S`
    /// (set, with `cas` to compare).
    fn set_request(
        key: &str,
        value: &[u8],
        expires_at: OffsetDateTime,
        mode: u8,
        cas: Option<u64>,
    ) -> Vec<u8> {
        let exptime = exptime(expires_at, OffsetDateTime::now_utc());
        let mut req = Vec::with_capacity(key.len() + value.len() + 64);
        req.extend_from_slice(b"ms ");
        req.extend_from_slice(key.as_bytes());
        let mut header = format!(" {} c T{exptime} F{FLAG_PICKLE}", value.len());
        match cas {
            Some(cas) => header.push_str(&format!(" C{cas}")),
            None => header.push_str(&format!(" M{}", char::from(mode))),
        }
        req.extend_from_slice(header.as_bytes());
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        req
    }

    /// Sends a meta set and reads its status: `Ok(Ok(cas))` (the item's new
    /// CAS token) when stored, `Ok(Err(status))` for `NS`, `EX` or `NF`.
    async fn store_item(
        &self,
        request: Vec<u8>,
        value_len: usize,
    ) -> Result<std::result::Result<u64, SetStatus>> {
        let limit = self.config.max_item_size;
        self.call(request, move |mut conn| async move {
            let line = conn.read_line().await?;
            let status = match line.get(..2) {
                Some(b"HD") => {
                    let cas = meta_flag(&line, b'c')
                        .and_then(parse_u64)
                        .ok_or_else(|| unexpected(&line))?;
                    return Ok((Ok(cas), conn));
                }
                Some(b"NS") => SetStatus::NotStored,
                Some(b"EX") => SetStatus::Exists,
                Some(b"NF") => SetStatus::NotFound,
                _ if line.starts_with(b"SERVER_ERROR object too large") => {
                    return Err(Failure::TooLarge {
                        len: value_len,
                        limit,
                    });
                }
                _ => return Err(unexpected(&line)),
            };
            if line.len() > 2 && line[2] != b' ' {
                return Err(unexpected(&line));
            }
            Ok((Err(status), conn))
        })
        .await
    }
}

/// What a meta set answers when it does not store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetStatus {
    /// `NS`: an add found the key taken, or a replace found it absent.
    NotStored,
    /// `EX`: the CAS token no longer matches.
    Exists,
    /// `NF`: a compare-and-swap found no item.
    NotFound,
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("addr", &self.config.addr)
            .field("keys", &self.config.keys)
            .field("timeout", &self.config.timeout)
            .field("max_connections", &self.config.max_connections)
            .field("max_item_size", &self.config.max_item_size)
            .field("idle", &self.pool.idle_len())
            .finish()
    }
}

impl SessionStore for MemcachedStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let Some((mut record, cas)) = self.read(key).await? else {
            return Ok(None);
        };
        record.version = Some(cas_version(cas)?);
        Ok(Some(record))
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let value = self.value(record)?;
        create_unique(|key| {
            let value = &value;
            async move {
                let full = self.key(&key)?;
                let request = Self::set_request(&full, value, record.expires_at, b'E', None);
                match self.store_item(request, value.len()).await? {
                    Ok(cas) => Ok(Saved {
                        key,
                        version: cas_version(cas)?,
                    }),
                    Err(SetStatus::NotStored) => Err(Error::KeyCollision),
                    Err(other) => Err(Error::backend(unexpected_status(other))),
                }
            }
        })
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let full = self.key(key)?;
        let value = self.value(record)?;
        let cas = match &record.version {
            None => None,
            Some(version) => match <[u8; 8]>::try_from(version.as_bytes()) {
                Ok(bytes) => Some(u64::from_be_bytes(bytes)),
                // Not a CAS token this store made: it matches no item.
                Err(_) => return self.conflict_or_missing(key).await,
            },
        };
        let request = Self::set_request(&full, &value, record.expires_at, b'R', cas);
        match self.store_item(request, value.len()).await? {
            Ok(cas) => Ok(Saved {
                key: key.clone(),
                version: cas_version(cas)?,
            }),
            Err(SetStatus::Exists) => Err(Error::Conflict),
            Err(SetStatus::NotFound | SetStatus::NotStored) => Err(Error::Missing),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        let full = self.key(key)?;
        let request = format!("md {full}\r\n").into_bytes();
        self.call(request, |mut conn| async move {
            let line = conn.read_line().await?;
            if line == b"HD" || line == b"NF" {
                Ok(((), conn))
            } else {
                Err(unexpected(&line))
            }
        })
        .await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        let full = self.key(key)?;
        let request = format!("mg {full}\r\n").into_bytes();
        self.hit_or_miss(request).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let full = self.key(key)?;
        let exptime = exptime(until, OffsetDateTime::now_utc());
        let request = format!("mg {full} T{exptime}\r\n").into_bytes();
        if self.hit_or_miss(request).await? {
            Ok(())
        } else {
            Err(Error::Missing)
        }
    }
}

/// A `MemcachedStore` as the cache of a [`CachedDbStore`](crate::backends::CachedDbStore):
/// build it with [`CacheKeys::cached_db`] keys.
impl SessionCache for MemcachedStore {
    /// Loads as [`load`](SessionStore::load) does, but takes a CAS token
    /// of 0 (a server with CAS disabled): the cache's version is not used.
    async fn get(&self, key: &SessionKey) -> Result<Option<Record>> {
        Ok(self.read(key).await?.map(|(mut record, cas)| {
            record.version = Some(Version::from_u64(cas));
            record
        }))
    }

    async fn set(
        &self,
        key: &SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let full = self.key(key)?;
        let record = Record::new(data.clone(), expires_at);
        let value = self.value(&record)?;
        let request = Self::set_request(&full, &value, expires_at, b'S', None);
        match self.store_item(request, value.len()).await? {
            Ok(_) => Ok(()),
            Err(status) => Err(Error::backend(unexpected_status(status))),
        }
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

impl MemcachedStore {
    /// Reads the item of `key`: the record (without a version) and its CAS
    /// token, or `None` when there is none or it has expired.
    async fn read(&self, key: &SessionKey) -> Result<Option<(Record, u64)>> {
        let full = self.key(key)?;
        let request = format!("mg {full} v c t f\r\n").into_bytes();
        let limit = self.config.max_item_size;
        let item = self
            .call(request, move |mut conn| async move {
                let line = conn.read_line().await?;
                if line == b"EN" {
                    return Ok((None, conn));
                }
                let header = parse_value_header(&line).ok_or_else(|| unexpected(&line))?;
                if header.len > limit {
                    // Not ours (Sesame never writes one): refuse it without
                    // reading it; the unread bytes close the connection.
                    return Err(Failure::Corrupt(sesame_codec::Error::TooLarge {
                        len: header.len,
                        limit,
                    }));
                }
                let value = conn.read_value(header.len).await?;
                Ok((Some((header, value)), conn))
            })
            .await?;
        let Some((header, value)) = item else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let expires_at = match header.ttl {
            // No expiry: not written by a session engine. It lives as long
            // as a default session would, from now.
            -1 => now + Duration::seconds(SESSION_COOKIE_AGE),
            ttl if ttl <= 0 => return Ok(None),
            // A server's figure: one past what a date holds is a default age.
            ttl => now
                .checked_add(Duration::seconds(ttl))
                .unwrap_or_else(|| now + Duration::seconds(SESSION_COOKIE_AGE)),
        };
        if header.flags != FLAG_PICKLE {
            return Err(Error::Corrupt(sesame_codec::Error::Pickle(
                "the memcached item is not flagged as a pickle (pymemcache's FLAG_PICKLE)",
            )));
        }
        let record = Record {
            data: decode(&value)?.into(),
            expires_at,
            version: None,
        };
        Ok(Some((record, header.cas)))
    }

    /// Sends a meta get that returns no value: `HD` is a hit, `EN` a miss.
    async fn hit_or_miss(&self, request: Vec<u8>) -> Result<bool> {
        self.call(request, |mut conn| async move {
            let line = conn.read_line().await?;
            match line.as_slice() {
                b"HD" => Ok((true, conn)),
                b"EN" => Ok((false, conn)),
                _ => Err(unexpected(&line)),
            }
        })
        .await
    }

    /// The answer to a save whose version cannot match: `Conflict` while
    /// the item lives, `Missing` once it is gone.
    async fn conflict_or_missing(&self, key: &SessionKey) -> Result<Saved> {
        if self.exists(key).await? {
            Err(Error::Conflict)
        } else {
            Err(Error::Missing)
        }
    }
}

// ---- keys, URLs and expiry ---------------------------------------------------

/// A cache key memcached cannot take: longer than 250 bytes, or holding
/// whitespace or control characters. Nothing was sent.
///
/// The message says what is wrong without repeating the key (which holds a
/// session key).
///
/// # Django
///
/// `django.core.cache.backends.base.InvalidCacheKey`, which Django's
/// memcached backends raise after `memcache_key_warnings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCacheKey {
    len: usize,
    bad_byte: Option<(usize, u8)>,
}

impl fmt::Display for InvalidCacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bad_byte {
            Some((at, byte)) => write!(
                f,
                "the memcached key holds a whitespace or control character (0x{byte:02x} at byte {at}); check the cache KEY_PREFIX"
            ),
            None => write!(
                f,
                "the memcached key is {} bytes, over memcached's {MAX_KEY_BYTES}-byte limit",
                self.len
            ),
        }
    }
}

impl std::error::Error for InvalidCacheKey {}

/// Checks a key as memcached's text protocol and Django's
/// `memcache_key_warnings` require.
fn validate_key(key: &str) -> std::result::Result<(), InvalidCacheKey> {
    let bytes = key.as_bytes();
    let bad_byte = bytes
        .iter()
        .position(|&b| b <= b' ' || b == 0x7f)
        .map(|at| (at, bytes[at]));
    if bytes.len() > MAX_KEY_BYTES || bad_byte.is_some() {
        return Err(InvalidCacheKey {
            len: bytes.len(),
            bad_byte,
        });
    }
    Ok(())
}

/// Why a `memcached://` URL was refused.
#[derive(Debug)]
struct InvalidUrl(&'static str);

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidUrl {}

/// `memcached://host[:port][/]` → `host:port`.
fn parse_url(url: &str) -> std::result::Result<String, InvalidUrl> {
    const FORM: &str = "a memcached URL is memcached://host[:port]";
    let url = url.trim();
    let rest = url
        .get(..12)
        .filter(|scheme| scheme.eq_ignore_ascii_case("memcached://"))
        .map(|_| &url[12..])
        .ok_or(InvalidUrl(FORM))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(InvalidUrl(FORM));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(InvalidUrl(FORM))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(InvalidUrl(FORM))?),
        };
        (format!("[{host}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(InvalidUrl(
                "a memcached URL's port is a number from 1 to 65535",
            ))?,
    };
    if host.is_empty() || host == "[]" {
        return Err(InvalidUrl(FORM));
    }
    Ok(format!("{host}:{port}"))
}

/// The exptime memcached takes for an item expiring at `expires_at`:
/// seconds from now (rounded up), a Unix time past 30 days (at most
/// [`MAX_ABSOLUTE_EXPTIME`]: a later expiry is kept until then), `-1`
/// (expired at once) for a time already past.
fn exptime(expires_at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    if expires_at <= now {
        return -1;
    }
    let ttl = i64::try_from(ttl_seconds(expires_at, now)).unwrap_or(i64::MAX);
    if ttl > MAX_RELATIVE_EXPTIME {
        now.unix_timestamp()
            .saturating_add(ttl)
            .min(MAX_ABSOLUTE_EXPTIME)
    } else {
        ttl
    }
}

// ---- the connection pool -----------------------------------------------------

/// Idle connections, and permits bounding the connections in use.
///
/// A connection is made only when no idle one is left, so the open ones
/// (in use plus idle) never outnumber the permits.
struct Pool {
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    fn new(max_connections: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The list is only pushed to and popped from: a panic elsewhere
        // cannot leave it half-written.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn idle_len(&self) -> usize {
        self.idle().len()
    }

    /// The most recently used idle connection that still looks open.
    fn take_idle(&self) -> Option<Conn> {
        loop {
            let conn = self.idle().pop()?;
            if conn.looks_open() {
                return Some(conn);
            }
        }
    }

    fn put_idle(&self, conn: Conn, max_idle: usize) {
        let mut idle = self.idle();
        if idle.len() < max_idle {
            idle.push(conn);
        }
    }
}

/// One connection to the server.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.map_err(Error::backend)?;
        stream.set_nodelay(true).map_err(Error::backend)?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Whether an idle connection is still usable: the server has not
    /// closed it (it restarted, say) or sent anything unasked.
    fn looks_open(&self) -> bool {
        if !self.stream.buffer().is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(
            self.stream.get_ref().try_read(&mut probe),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock
        )
    }

    async fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        self.stream.get_mut().write_all(request).await?;
        Ok(())
    }

    /// Reads one reply line, without its `\r\n`.
    async fn read_line(&mut self) -> Result<Vec<u8>, Failure> {
        let mut line = Vec::new();
        loop {
            let available = self.stream.fill_buf().await?;
            if available.is_empty() {
                return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            let (taken, done) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            line.extend_from_slice(&available[..taken]);
            self.stream.consume(taken);
            if line.len() > MAX_LINE + 2 {
                return Err(Failure::Protocol("a reply line is too long".into()));
            }
            if done {
                break;
            }
        }
        if !line.ends_with(b"\r\n") {
            return Err(unexpected(&line));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Reads a value of `len` bytes and its `\r\n`.
    async fn read_value(&mut self, len: usize) -> Result<Vec<u8>, Failure> {
        let mut value = vec![0; len + 2];
        self.stream.read_exact(&mut value).await?;
        if !value.ends_with(b"\r\n") {
            return Err(Failure::Protocol("a value does not end with CRLF".into()));
        }
        value.truncate(len);
        Ok(value)
    }
}

// ---- replies -----------------------------------------------------------------

/// Why an exchange failed; the connection is then closed, never reused.
enum Failure {
    Io(io::Error),
    Protocol(String),
    TooLarge { len: usize, limit: usize },
    Corrupt(sesame_codec::Error),
    Store(Error),
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Store(err)
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Io(err) => Self::backend(err),
            Failure::Protocol(what) => Self::backend(ProtocolError(what)),
            Failure::TooLarge { len, limit } => Self::TooLarge { len, limit },
            Failure::Corrupt(err) => Self::Corrupt(err),
            Failure::Store(err) => err,
        }
    }
}

/// A reply memcached's protocol does not allow here, or an error reply.
#[derive(Debug)]
struct ProtocolError(String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcached: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A failure for a reply line that is not one the request allows; shows
/// the start of the line, escaped.
fn unexpected(line: &[u8]) -> Failure {
    let shown = line.get(..64).unwrap_or(line);
    Failure::Protocol(format!(
        "unexpected reply {:?}",
        shown.escape_ascii().to_string()
    ))
}

fn unexpected_status(status: SetStatus) -> ProtocolError {
    ProtocolError(format!("unexpected reply to an add: {status:?}"))
}

/// The version of an item whose CAS token is `cas`, or the error for a
/// token of 0, which memcached answers only when started with `-C`.
fn cas_version(cas: u64) -> Result<Version> {
    if cas == 0 {
        return Err(Error::backend(CasDisabled));
    }
    Ok(Version::from_u64(cas))
}

/// memcached answered a CAS token of 0: it runs with CAS disabled (`-C`),
/// so it refuses every compare-and-swap, and every save would be a
/// conflict.
struct CasDisabled;

impl fmt::Display for CasDisabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "memcached runs with CAS disabled (-C): it answers CAS token 0 and refuses every \
             compare-and-swap, so sessions cannot be saved; restart it without -C",
        )
    }
}

/// The text itself: the store's error log shows the source's `Debug`.
impl fmt::Debug for CasDisabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CasDisabled({self})")
    }
}

impl std::error::Error for CasDisabled {}

/// Whether an I/O error means the server had closed the connection.
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The header of a meta get hit: `VA <len> c<cas> t<ttl> f<flags>`.
#[derive(Debug, PartialEq, Eq)]
struct ValueHeader {
    len: usize,
    cas: u64,
    ttl: i64,
    flags: u32,
}

fn parse_value_header(line: &[u8]) -> Option<ValueHeader> {
    let rest = line.strip_prefix(b"VA ")?;
    let len = rest.split(|&b| b == b' ').next().and_then(parse_u64)?;
    Some(ValueHeader {
        len: usize::try_from(len).ok()?,
        cas: meta_flag(line, b'c').and_then(parse_u64)?,
        ttl: meta_flag(line, b't').and_then(parse_i64)?,
        flags: meta_flag(line, b'f')
            .and_then(parse_u64)
            .and_then(|f| u32::try_from(f).ok())?,
    })
}

/// The token of return flag `flag` in a meta reply line (after the status
/// and, for `VA`, the length).
fn meta_flag(line: &[u8], flag: u8) -> Option<&[u8]> {
    line.split(|&b| b == b' ')
        .skip(1)
        .find(|token| token.first() == Some(&flag))
        .map(|token| &token[1..])
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn parse_i64(digits: &[u8]) -> Option<i64> {
    match digits.strip_prefix(b"-") {
        Some(abs) => parse_u64(abs)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n),
        None => parse_u64(digits).and_then(|n| i64::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_and_port() {
        assert_eq!(
            parse_url("memcached://127.0.0.1:11212").unwrap(),
            "127.0.0.1:11212"
        );
        assert_eq!(parse_url("memcached://cache").unwrap(), "cache:11211");
        assert_eq!(parse_url("MEMCACHED://cache:1/").unwrap(), "cache:1");
        assert_eq!(parse_url("memcached://[::1]").unwrap(), "[::1]:11211");
        assert_eq!(parse_url("memcached://[::1]:2").unwrap(), "[::1]:2");
        for bad in [
            "",
            "memcached://",
            "memcached://:11211",
            "memcached://h:0",
            "memcached://h:x",
            "memcached://h:70000",
            "memcached://u@h",
            "memcached://h/db",
            "redis://h",
            "memcached:h",
            "memcached://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_checked_as_memcached_requires() {
        assert!(validate_key(":1:django.contrib.sessions.cacheabcdefgh").is_ok());
        assert!(validate_key(&"k".repeat(250)).is_ok());
        let long = validate_key(&"k".repeat(251)).unwrap_err();
        assert!(long.to_string().contains("251 bytes"), "{long}");
        for bad in ["a b", "a\r\nb", "a\tb", "a\u{7f}", "a\0"] {
            let err = validate_key(bad).unwrap_err();
            assert!(err.to_string().contains("control character"), "{err}");
        }
        // Non-ASCII is fine for memcached and for Django.
        assert!(validate_key("clé").is_ok());
    }

    #[test]
    fn exptime_is_relative_up_to_30_days_then_absolute() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(exptime(now - Duration::hours(1), now), -1);
        assert_eq!(exptime(now, now), -1);
        assert_eq!(exptime(now + Duration::milliseconds(10), now), 1);
        assert_eq!(exptime(now + Duration::seconds(300), now), 300);
        assert_eq!(exptime(now + Duration::days(30), now), 2_592_000);
        assert_eq!(
            exptime(now + Duration::days(30) + Duration::seconds(1), now),
            1_700_000_000 + 2_592_001
        );
    }

    #[test]
    fn exptime_past_2038_is_clamped_to_i32_max() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let last = OffsetDateTime::from_unix_timestamp(2_147_483_647).unwrap();
        assert_eq!(exptime(last - Duration::seconds(1), now), 2_147_483_646);
        assert_eq!(exptime(last, now), 2_147_483_647);
        // memcached would drop these at once (2^31 and up) or keep them
        // forever (2^32 and up).
        for later in [
            last + Duration::seconds(1),
            OffsetDateTime::from_unix_timestamp(2_200_000_000).unwrap(),
            OffsetDateTime::from_unix_timestamp(4_294_967_296).unwrap(),
            now.saturating_add(Duration::MAX),
        ] {
            assert_eq!(exptime(later, now), 2_147_483_647, "{later}");
        }
    }

    #[test]
    fn value_headers_are_parsed_strictly() {
        assert_eq!(
            parse_value_header(b"VA 3 c12 t-1 f1"),
            Some(ValueHeader {
                len: 3,
                cas: 12,
                ttl: -1,
                flags: 1
            })
        );
        assert_eq!(
            parse_value_header(b"VA 0 f0 t9 c1").map(|h| (h.len, h.ttl)),
            Some((0, 9))
        );
        for bad in [
            &b"VA"[..],
            b"VA x c1 t1 f1",
            b"VA 3 c1 t1",
            b"VA 3 cx t1 f1",
            b"VA 3 c1 t1 f99999999999",
            b"VA -3 c1 t1 f1",
            b"HD c1",
        ] {
            assert_eq!(parse_value_header(bad), None, "{:?}", bad.escape_ascii());
        }
    }
}
