//! `--store` URLs: parsing them, and opening the store they name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use axum::Router;
use futures_util::stream::{self, BoxStream, Stream, StreamExt as _};
#[cfg(feature = "memcached")]
use sesame::backends::MemcachedStore;
#[cfg(feature = "mysql")]
use sesame::backends::MySqlStore;
#[cfg(feature = "postgres")]
use sesame::backends::PostgresStore;
#[cfg(feature = "redis")]
use sesame::backends::RedisStore;
use sesame::backends::SignedCookieStore;
#[cfg(feature = "sqlite")]
use sesame::backends::SqliteStore;
use sesame::backends::{
    CacheKeys, CachedDbStore, FileStore, ListSessions, Listed, MemoryStore, Record, Saved,
    SessionCache, SessionStore,
};
use sesame::codec::SessionMap;
use sesame::{Settings, SettingsError, Signer};
use time::OffsetDateTime;

use crate::cli::StoreArgs;
use crate::cmd::UsageError;
use crate::demo;

mod authority;

/// A parsed `--store` URL: which kind of store, and where.
///
/// | URL | store | feature |
/// |---|---|---|
/// | `sqlite://PATH`, `sqlite:PATH` (`sqlite::memory:` for a private in-memory database) | `SqliteStore` | `sqlite` (default) |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` | `postgres` |
/// | `mysql://…`, `mariadb://…` | `MySqlStore` | `mysql` |
/// | `file:///DIR` (also `file://localhost/DIR`), `file:DIR` (relative) | `FileStore`: one file per session in `DIR` (Django's `file` engine); another host is refused | always |
/// | `redis://…`, `rediss://…` (TLS) | `RedisStore`: Django's `cache` engine on Redis | `redis` (`redis-tls` for `rediss`) |
/// | `redis+cluster://host1:port,host2:port,…` | `RedisStore` on a Redis Cluster | `redis-cluster` |
/// | `memory:` | `MemoryStore` | always |
/// | `signed-cookies:` (or `signed_cookies:`) | `SignedCookieStore`: the session in the signed cookie | always |
/// | `memcached://HOST[:PORT]` (port 11211 by default) | `MemcachedStore` (Django's `cache` engine on `PyMemcacheCache`) | `memcached` |
///
/// With `--cache URL` (a `redis://…`, `memcached://…` or `memory:` cache), the store is the
/// database half of Django's `cached_db` ([`CachedDbStore`]).
///
/// Every scheme parses whatever features were compiled in; opening a store
/// whose feature is missing is an error that says which feature to enable.
/// `Display` hides any password in the URL.
///
/// # Examples
///
/// ```
/// use sesame_cli::store_url::StoreUrl;
///
/// let url: StoreUrl = "sqlite://data/sessions.sqlite3".parse().unwrap();
/// assert_eq!(url, StoreUrl::Sqlite("data/sessions.sqlite3".into()));
/// let url: StoreUrl = "postgres://app:hunter2@db/app".parse().unwrap();
/// assert_eq!(url.to_string(), "postgres://app:***@db/app");
/// assert!("mongodb://localhost".parse::<StoreUrl>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: sessions in this process, lost on exit.
    Memory,
    /// An SQLite database file (`:memory:` for a private in-memory database).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as given.
    Postgres(String),
    /// A MySQL or MariaDB connection URL, with the scheme `mysql://`.
    MySql(String),
    /// `signed-cookies:`: sessions in the signed cookie (Django's
    /// `signed_cookies` engine); nothing is stored server-side.
    SignedCookies,
    /// `file:///DIR`: one file per session in a directory (Django's `file`
    /// engine with `SESSION_FILE_PATH`).
    File(PathBuf),
    /// A Redis URL, as given: `redis://`, `rediss://`, `redis+cluster://`
    /// or `rediss+cluster://`.
    Redis(String),
    /// `memcached://HOST[:PORT]`: Django's `cache` engine on memcached, as given.
    Memcached(String),
}

/// Why a `--store` URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidStoreUrl(&'static str);

impl fmt::Display for InvalidStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidStoreUrl {}

/// The SQLite path meaning "a private in-memory database".
const SQLITE_MEMORY: &str = ":memory:";

impl FromStr for StoreUrl {
    type Err = InvalidStoreUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = url.trim();
        let (scheme, rest) = url.split_once(':').ok_or(InvalidStoreUrl(
            "expected a URL such as sqlite://sesame.sqlite3, postgres://…, mysql://…, file:///DIR, memory: or signed-cookies:",
        ))?;
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() || rest == "//" => Ok(Self::Memory),
            "memory" => Err(InvalidStoreUrl(
                "the memory store takes no path: use memory:",
            )),
            "signed-cookies" | "signed_cookies" if rest.is_empty() || rest == "//" => {
                Ok(Self::SignedCookies)
            }
            "signed-cookies" | "signed_cookies" => Err(InvalidStoreUrl(
                "the signed-cookies store takes no path: use signed-cookies:",
            )),
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                // `?mode=rwc` and friends (sqlx's options) do not apply here.
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                if path.is_empty() {
                    Err(InvalidStoreUrl(
                        "an SQLite URL names a file: sqlite://PATH (e.g. sqlite://sesame.sqlite3)",
                    ))
                } else {
                    Ok(Self::Sqlite(PathBuf::from(path)))
                }
            }
            "file" => {
                // `file:///srv/sessions` (an absolute path) or `file:sessions`.
                let path = match rest.strip_prefix("//") {
                    Some(after) => {
                        let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                        if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                            return Err(InvalidStoreUrl(
                                "a file URL names a directory on this machine: file:///ABSOLUTE/PATH \
                                 or file:RELATIVE/PATH (its host can only be empty or localhost)",
                            ));
                        }
                        path
                    }
                    None => rest,
                };
                if path.is_empty() {
                    Err(InvalidStoreUrl(
                        "a file URL names a directory: file:///PATH (e.g. file:///var/lib/sesame/sessions)",
                    ))
                } else {
                    Ok(Self::File(PathBuf::from(path)))
                }
            }
            "postgres" | "postgresql" if rest.starts_with("//") => {
                authority::check(&rest[2..], false).map_err(InvalidStoreUrl)?;
                Ok(Self::Postgres(url.into()))
            }
            "mysql" | "mariadb" if rest.starts_with("//") => {
                authority::check(&rest[2..], false).map_err(InvalidStoreUrl)?;
                Ok(Self::MySql(format!("mysql:{rest}")))
            }
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" if rest.starts_with("//") => {
                let cluster = scheme.to_ascii_lowercase().ends_with("+cluster");
                authority::check(&rest[2..], cluster).map_err(InvalidStoreUrl)?;
                Ok(Self::Redis(url.into()))
            }
            "memcached" => match rest.strip_prefix("//") {
                Some(host)
                    if !host.is_empty()
                        && !host.starts_with([':', '/'])
                        && matches!(host.find('/').map(|i| &host[i..]), None | Some("/")) =>
                {
                    authority::check(host, false).map_err(InvalidStoreUrl)?;
                    Ok(Self::Memcached(url.into()))
                }
                _ => Err(InvalidStoreUrl(
                    "a memcached URL names a server: memcached://HOST[:PORT] (e.g. memcached://127.0.0.1:11211)",
                )),
            },
            "postgres" | "postgresql" | "mysql" | "mariadb" | "redis" | "rediss"
            | "redis+cluster" | "rediss+cluster" => Err(InvalidStoreUrl(
                "a server URL starts with scheme:// (e.g. postgres://user@host/db)",
            )),
            _ => Err(InvalidStoreUrl(
                "unknown store: expected sqlite://PATH, postgres://…, postgresql://…, mysql://…, mariadb://…, redis://…, rediss://…, redis+cluster://…, memcached://HOST, file:///DIR, memory: or signed-cookies:",
            )),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::SignedCookies => f.write_str("signed-cookies:"),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // As given: `file:///abs` or `file:relative`.
            Self::File(path) if path.is_absolute() => write!(f, "file://{}", path.display()),
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Postgres(url) | Self::MySql(url) | Self::Redis(url) | Self::Memcached(url) => {
                f.write_str(&hide_password(url))
            }
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// What `migrate` and `clearsessions` have to do on a store, and what
/// `inspect` can see there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    /// A database: `migrate` creates the session table, `clearsessions`
    /// deletes the expired rows.
    Table,
    /// `file:///DIR`: `migrate` creates the directory, `clearsessions`
    /// deletes the expired files.
    Directory,
    /// Redis or memcached: no schema, and the server expires sessions by
    /// their TTL.
    ExpiresItself,
    /// `memory:` or `sqlite::memory:`: sessions live in the memory of the
    /// process serving them, which no other process sees.
    InProcess,
    /// `signed-cookies:`: sessions live in the browser's cookie.
    InCookie,
}

impl StoreUrl {
    /// What `migrate` and `clearsessions` have to do on this store (with
    /// `--cache`, on this database).
    #[must_use]
    pub fn upkeep(&self) -> Upkeep {
        match self {
            Self::Memory => Upkeep::InProcess,
            Self::Sqlite(path) if path.as_os_str() == SQLITE_MEMORY => Upkeep::InProcess,
            Self::Sqlite(_) | Self::Postgres(_) | Self::MySql(_) => Upkeep::Table,
            Self::File(_) => Upkeep::Directory,
            Self::Redis(_) | Self::Memcached(_) => Upkeep::ExpiresItself,
            Self::SignedCookies => Upkeep::InCookie,
        }
    }

    /// Whether this URL can be `--cache`.
    fn is_cache(&self) -> bool {
        matches!(self, Self::Memory | Self::Redis(_) | Self::Memcached(_))
    }

    /// Where the demo keeps the `SECRET_KEY` it generates: beside an SQLite
    /// database file (`<db path>.secret_key`), else `./sesame.secret_key`.
    #[must_use]
    pub fn secret_key_path(&self) -> PathBuf {
        match self {
            Self::Sqlite(path) if path.as_os_str() != SQLITE_MEMORY => {
                let mut name = path.as_os_str().to_owned();
                name.push(".secret_key");
                PathBuf::from(name)
            }
            _ => PathBuf::from("sesame.secret_key"),
        }
    }
}

/// An open store of any kind the CLI was built with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Store {
    /// `memory:`.
    Memory(MemoryStore),
    /// `sqlite://…`.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// `postgres://…`.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
    /// `mysql://…`.
    #[cfg(feature = "mysql")]
    MySql(MySqlStore),
    /// `signed-cookies:`.
    SignedCookies(SignedCookieStore),
    /// `file:///DIR`.
    File(FileStore),
    /// `redis://…`, `redis+cluster://…`.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
    /// Any database store with `--cache URL`: Django's `cached_db`.
    CachedDb(CachedDbStore<Cache, Db>),
    /// `memcached://…`.
    #[cfg(feature = "memcached")]
    Memcached(MemcachedStore),
}

/// Calls `$body` with `$s` bound to the store inside any variant of `Store`.
macro_rules! each_store {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::Memory($s) => $body,
            #[cfg(feature = "sqlite")]
            Store::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Store::MySql($s) => $body,
            Store::SignedCookies($s) => $body,
            Store::File($s) => $body,
            #[cfg(feature = "redis")]
            Store::Redis($s) => $body,
            Store::CachedDb($s) => $body,
            #[cfg(feature = "memcached")]
            Store::Memcached($s) => $body,
        }
    };
}

/// Any store of the CLI is a [`SessionStore`] (for `inspect`, tests and
/// tools that do not care which).
impl SessionStore for Store {
    fn key_kind(&self) -> sesame::KeyKind {
        each_store!(self, s => s.key_kind())
    }

    fn call_timeout(&self) -> Option<std::time::Duration> {
        each_store!(self, s => s.call_timeout())
    }

    async fn load(&self, key: &sesame::SessionKey) -> sesame::Result<Option<Record>> {
        each_store!(self, s => s.load(key).await)
    }

    async fn load_contents(
        &self,
        key: &sesame::SessionKey,
    ) -> sesame::Result<Option<sesame::backends::Contents>> {
        each_store!(self, s => s.load_contents(key).await)
    }

    async fn create(&self, record: &Record) -> sesame::Result<Saved> {
        each_store!(self, s => s.create(record).await)
    }

    async fn save(&self, key: &sesame::SessionKey, record: &Record) -> sesame::Result<Saved> {
        each_store!(self, s => s.save(key, record).await)
    }

    async fn delete(&self, key: &sesame::SessionKey) -> sesame::Result<()> {
        each_store!(self, s => s.delete(key).await)
    }

    async fn exists(&self, key: &sesame::SessionKey) -> sesame::Result<bool> {
        each_store!(self, s => s.exists(key).await)
    }

    async fn touch(&self, key: &sesame::SessionKey, until: OffsetDateTime) -> sesame::Result<()> {
        each_store!(self, s => s.touch(key, until).await)
    }

    async fn clear_expired(&self) -> sesame::Result<u64> {
        each_store!(self, s => s.clear_expired().await)
    }
}

/// A store that cannot list its sessions: its listing is this one error.
fn cannot_list<T: Send + 'static>(why: &'static str) -> BoxStream<'static, sesame::Result<T>> {
    stream::once(std::future::ready(Err(sesame::Error::backend(why)))).boxed()
}

/// Calls `$body` with `$s` bound to the store inside any variant of `Store`
/// that can list its sessions; the others' listing is an error.
macro_rules! each_listing {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::Memory($s) => $body,
            #[cfg(feature = "sqlite")]
            Store::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Store::MySql($s) => $body,
            Store::File($s) => $body,
            #[cfg(feature = "redis")]
            Store::Redis($s) => $body,
            Store::CachedDb($s) => $body,
            Store::SignedCookies(_) => cannot_list("signed cookies are stored nowhere to list"),
            #[cfg(feature = "memcached")]
            Store::Memcached(_) => cannot_list("memcached cannot list its keys"),
        }
    };
}

/// Lists the sessions of every store that can (see [`ListSessions`]); on
/// `signed-cookies:` and `memcached://` the listing is an error (`revoke`
/// refuses those stores before opening them).
impl ListSessions for Store {
    fn session_keys(&self) -> impl Stream<Item = sesame::Result<sesame::SessionKey>> + Send + '_ {
        each_listing!(self, s => s.session_keys().boxed())
    }

    fn sessions(&self) -> impl Stream<Item = sesame::Result<Listed>> + Send + '_ {
        each_listing!(self, s => s.sessions().boxed())
    }
}

const CACHE_NEEDS_A_DATABASE: &str = "--cache needs a database --store (sqlite://, postgres://, \
     mysql://, file:// or memory:): this one cannot sit behind a cache";

const NOT_A_CACHE: &str = "--cache takes redis://…, redis+cluster://…, memcached://… or memory:";

/// The database half of `cached_db`: a store that keeps sessions durably.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Db {
    /// `memory:` (for tests: not durable).
    Memory(MemoryStore),
    /// `sqlite://…`.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// `postgres://…`.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
    /// `mysql://…`.
    #[cfg(feature = "mysql")]
    MySql(MySqlStore),
    /// `file:///DIR`.
    File(FileStore),
}

/// Calls `$body` with `$s` bound to the store inside any variant of `Db`.
macro_rules! each_db {
    ($db:expr, $s:ident => $body:expr) => {
        match $db {
            Db::Memory($s) => $body,
            #[cfg(feature = "sqlite")]
            Db::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Db::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Db::MySql($s) => $body,
            Db::File($s) => $body,
        }
    };
}

impl Db {
    /// The database half of `store`, if it can be one.
    fn from_store(store: Store) -> anyhow::Result<Self> {
        match store {
            Store::Memory(s) => Ok(Self::Memory(s)),
            #[cfg(feature = "sqlite")]
            Store::Sqlite(s) => Ok(Self::Sqlite(s)),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => Ok(Self::Postgres(s)),
            #[cfg(feature = "mysql")]
            Store::MySql(s) => Ok(Self::MySql(s)),
            Store::File(s) => Ok(Self::File(s)),
            _ => Err(UsageError(CACHE_NEEDS_A_DATABASE.to_owned()).into()),
        }
    }

    async fn migrate(&self) -> sesame::Result<()> {
        match self {
            Self::Memory(_) => Ok(()),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.migrate().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.migrate().await,
            #[cfg(feature = "mysql")]
            Self::MySql(s) => s.migrate().await,
            Self::File(s) => s.migrate().await,
        }
    }
}

impl SessionStore for Db {
    fn call_timeout(&self) -> Option<std::time::Duration> {
        each_db!(self, s => s.call_timeout())
    }

    async fn load(&self, key: &sesame::SessionKey) -> sesame::Result<Option<Record>> {
        each_db!(self, s => s.load(key).await)
    }

    async fn load_contents(
        &self,
        key: &sesame::SessionKey,
    ) -> sesame::Result<Option<sesame::backends::Contents>> {
        each_db!(self, s => s.load_contents(key).await)
    }

    async fn create(&self, record: &Record) -> sesame::Result<Saved> {
        each_db!(self, s => s.create(record).await)
    }

    async fn save(&self, key: &sesame::SessionKey, record: &Record) -> sesame::Result<Saved> {
        each_db!(self, s => s.save(key, record).await)
    }

    async fn delete(&self, key: &sesame::SessionKey) -> sesame::Result<()> {
        each_db!(self, s => s.delete(key).await)
    }

    async fn exists(&self, key: &sesame::SessionKey) -> sesame::Result<bool> {
        each_db!(self, s => s.exists(key).await)
    }

    async fn touch(&self, key: &sesame::SessionKey, until: OffsetDateTime) -> sesame::Result<()> {
        each_db!(self, s => s.touch(key, until).await)
    }

    async fn clear_expired(&self) -> sesame::Result<u64> {
        each_db!(self, s => s.clear_expired().await)
    }
}

impl ListSessions for Db {
    fn session_keys(&self) -> impl Stream<Item = sesame::Result<sesame::SessionKey>> + Send + '_ {
        each_db!(self, s => s.session_keys().boxed())
    }

    fn sessions(&self) -> impl Stream<Item = sesame::Result<Listed>> + Send + '_ {
        each_db!(self, s => s.sessions().boxed())
    }
}

/// The cache half of `cached_db` (`--cache URL`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Cache {
    /// `memory:`: a cache in this process (Django's `LocMemCache`).
    Memory(MemoryStore),
    /// `redis://…`, `redis+cluster://…`.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
    /// `memcached://…`.
    #[cfg(feature = "memcached")]
    Memcached(MemcachedStore),
}

/// Calls `$body` with `$c` bound to the cache inside any variant of `Cache`.
macro_rules! each_cache {
    ($cache:expr, $c:ident => $body:expr) => {
        match $cache {
            Cache::Memory($c) => $body,
            #[cfg(feature = "redis")]
            Cache::Redis($c) => $body,
            #[cfg(feature = "memcached")]
            Cache::Memcached($c) => $body,
        }
    };
}

impl Cache {
    /// Opens the cache `url` names, with `cached_db`'s keys.
    ///
    /// # Errors
    ///
    /// The URL does not name a cache, or the cache cannot be reached.
    pub async fn open(url: &StoreUrl) -> anyhow::Result<Self> {
        let keys = cache_keys_from_env(CacheKeys::cached_db())?;
        let cache: anyhow::Result<Self> = match url {
            StoreUrl::Memory => Ok(Self::Memory(MemoryStore::new())),
            #[cfg(feature = "redis")]
            StoreUrl::Redis(raw) => open_redis_store(raw, keys).await.map(Self::Redis),
            #[cfg(feature = "memcached")]
            StoreUrl::Memcached(raw) => MemcachedStore::connect(raw)
                .await
                .map(|s| Self::Memcached(s.with_keys(keys)))
                .map_err(Into::into),
            // A cache URL, but of a store left out of the build: say which
            // feature, as `--store` does, rather than "--cache takes redis://…".
            #[cfg(not(feature = "redis"))]
            StoreUrl::Redis(_) => Err(missing_feature_error("redis")),
            #[cfg(not(feature = "memcached"))]
            StoreUrl::Memcached(_) => Err(missing_feature_error("memcached")),
            _ => {
                drop(keys);
                Err(UsageError(NOT_A_CACHE.to_owned()).into())
            }
        };
        cache.with_context(|| format!("cannot open the cache {url}"))
    }
}

impl SessionCache for Cache {
    async fn get(&self, key: &sesame::SessionKey) -> sesame::Result<Option<Record>> {
        each_cache!(self, c => c.get(key).await)
    }

    async fn set(
        &self,
        key: &sesame::SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> sesame::Result<()> {
        each_cache!(self, c => c.set(key, data, expires_at).await)
    }

    async fn remove(&self, key: &sesame::SessionKey) -> sesame::Result<()> {
        each_cache!(self, c => c.remove(key).await)
    }

    async fn expire_at(
        &self,
        key: &sesame::SessionKey,
        until: OffsetDateTime,
    ) -> sesame::Result<()> {
        each_cache!(self, c => c.expire_at(key, until).await)
    }
}

/// How many replicas a delete on Redis waits for, and for how long at
/// most (`RedisStore::with_replica_wait`): `SESAME_REDIS_WAIT_REPLICAS`
/// (default 0, no wait) and `SESAME_REDIS_WAIT_TIMEOUT` (seconds, default
/// 0.1).
fn replica_wait_from_env() -> anyhow::Result<(u32, std::time::Duration)> {
    let replicas = match std::env::var("SESAME_REDIS_WAIT_REPLICAS") {
        Ok(v) => v.trim().parse().map_err(|_| {
            UsageError(format!(
                "invalid settings: SESAME_REDIS_WAIT_REPLICAS: expected a number of replicas \
                 (0 or more), got {v:?}"
            ))
        })?,
        Err(_) => 0,
    };
    let timeout = match std::env::var("SESAME_REDIS_WAIT_TIMEOUT") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                UsageError(format!(
                    "invalid settings: SESAME_REDIS_WAIT_TIMEOUT: expected seconds, more than 0 \
                     and at most 3600, got {v:?}"
                ))
            })?,
        Err(_) => std::time::Duration::from_millis(100),
    };
    Ok((replicas, timeout))
}

/// Django's `CACHES` `KEY_PREFIX` and `VERSION` from `SESAME_CACHE_KEY_PREFIX`
/// and `SESAME_CACHE_VERSION`, when set.
fn cache_keys_from_env(keys: CacheKeys) -> anyhow::Result<CacheKeys> {
    let keys = match std::env::var("SESAME_CACHE_KEY_PREFIX") {
        Ok(prefix) => keys.with_key_prefix(prefix),
        Err(_) => keys,
    };
    match std::env::var("SESAME_CACHE_VERSION") {
        Ok(version) => {
            let version = version.trim().parse().map_err(|_| {
                UsageError(format!(
                    "invalid settings: SESAME_CACHE_VERSION: expected an integer (Django's \
                     CACHES VERSION), got {version:?}"
                ))
            })?;
            Ok(keys.with_version(version))
        }
        Err(_) => Ok(keys),
    }
}

impl Store {
    /// Checks that `--cache`, if given, is a cache and sits in front of a
    /// database `--store`, and that the cache key settings
    /// (`SESAME_CACHE_VERSION`) are valid when a cache is used: before
    /// anything is opened, connected or created.
    ///
    /// # Errors
    ///
    /// A [`UsageError`] naming the mistake.
    pub fn check_args(args: &StoreArgs) -> anyhow::Result<()> {
        if let Some(cache) = &args.cache {
            let is_database = matches!(
                args.store.upkeep(),
                Upkeep::Table | Upkeep::Directory | Upkeep::InProcess
            );
            if !is_database {
                return Err(UsageError(CACHE_NEEDS_A_DATABASE.to_owned()).into());
            }
            if !cache.is_cache() {
                return Err(UsageError(NOT_A_CACHE.to_owned()).into());
            }
        }
        let uses_cache_keys = args.cache.is_some()
            || matches!(args.store, StoreUrl::Redis(_) | StoreUrl::Memcached(_));
        if uses_cache_keys {
            cache_keys_from_env(CacheKeys::default())?;
        }
        if matches!(args.store, StoreUrl::Redis(_))
            || matches!(args.cache, Some(StoreUrl::Redis(_)))
        {
            replica_wait_from_env()?;
        }
        #[cfg(feature = "memcached")]
        {
            // A KEY_PREFIX memcached cannot take would fail every request.
            let keys = match (&args.store, &args.cache) {
                (_, Some(StoreUrl::Memcached(_))) => Some(CacheKeys::cached_db()),
                (StoreUrl::Memcached(_), None) => Some(CacheKeys::default()),
                _ => None,
            };
            if let Some(keys) = keys {
                MemcachedStore::check_keys(&cache_keys_from_env(keys)?).map_err(|e| {
                    UsageError(format!("invalid settings: SESAME_CACHE_KEY_PREFIX: {e}"))
                })?;
            }
        }
        Ok(())
    }

    /// Opens the store `args` name: `--store`, behind `--cache` when given.
    /// A file store takes its file prefix and default age from `settings`
    /// (`SESSION_COOKIE_NAME`, `SESSION_COOKIE_AGE`), as `serve` writes them.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) and [`Cache::open`]; also a `--cache` with a
    /// `--store` that is not a database.
    pub async fn open_args(
        args: &StoreArgs,
        settings: &Settings,
        signer: Signer,
    ) -> anyhow::Result<Self> {
        Self::check_args(args)?;
        let store = Self::open_with(&args.store, settings, signer).await?;
        match &args.cache {
            None => Ok(store),
            Some(cache) => {
                let db = Db::from_store(store)?;
                let cache = Cache::open(cache).await?;
                Ok(Self::CachedDb(CachedDbStore::new(cache, db)))
            }
        }
    }

    /// Opens (connects to) the store `url` names, with Django's default
    /// settings. Does not create the table: see [`migrate`](Self::migrate).
    ///
    /// # Errors
    ///
    /// The URL names a store this binary was built without (the message
    /// says which feature to enable), or the store cannot be opened.
    pub async fn open(url: &StoreUrl, signer: Signer) -> anyhow::Result<Self> {
        Self::open_with(url, &Settings::default(), signer).await
    }

    /// Opens the store `url` names; a file store takes its file prefix and
    /// default age from `settings`.
    async fn open_with(
        url: &StoreUrl,
        settings: &Settings,
        signer: Signer,
    ) -> anyhow::Result<Self> {
        match url {
            StoreUrl::Memory => Ok(Self::Memory(MemoryStore::new())),
            StoreUrl::Sqlite(path) => open_sqlite(path, signer).await,
            StoreUrl::Postgres(raw) => open_postgres(raw, signer).await,
            StoreUrl::MySql(raw) => open_mysql(raw, signer).await,
            StoreUrl::SignedCookies => Ok(Self::SignedCookies(SignedCookieStore::new(signer))),
            StoreUrl::File(dir) => Ok(Self::File(file_store(dir, settings, signer))),
            StoreUrl::Redis(raw) => open_redis(raw).await,
            StoreUrl::Memcached(raw) => open_memcached(raw).await,
        }
        .with_context(|| format!("cannot open the session store {url}"))
    }

    /// The store's name, as `/whoami` shows it in `engine`.
    #[must_use]
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Memory(_) => demo::engine::MEMORY,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => demo::engine::SQLITE,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => demo::engine::POSTGRES,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => demo::engine::MYSQL,
            Self::SignedCookies(_) => demo::engine::SIGNED_COOKIES,
            Self::File(_) => demo::engine::FILE,
            #[cfg(feature = "redis")]
            Self::Redis(_) => demo::engine::REDIS,
            Self::CachedDb(_) => demo::engine::CACHED_DB,
            #[cfg(feature = "memcached")]
            Self::Memcached(_) => demo::engine::MEMCACHED,
        }
    }

    /// Where a PostgreSQL or MySQL store's table is, as the driver resolved
    /// the URL (defaults and `PG*` variables included): `database app, user
    /// app, on db.internal:5432`; `None` for other stores.
    #[must_use]
    pub fn location(&self) -> Option<String> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Some(postgres_location(s)),
            #[cfg(feature = "mysql")]
            Self::MySql(s) => Some(mysql_location(s)),
            Self::CachedDb(s) => match s.db() {
                #[cfg(feature = "postgres")]
                Db::Postgres(s) => Some(postgres_location(s)),
                #[cfg(feature = "mysql")]
                Db::MySql(s) => Some(mysql_location(s)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the store keeps sessions server-side: `false` for
    /// `signed-cookies:`, whose sessions live in the browser's cookie (there
    /// is no table to create and nothing to clear).
    #[must_use]
    pub fn is_server_side(&self) -> bool {
        !matches!(self, Self::SignedCookies(_))
    }

    /// Creates the session table and index if missing, or the directory of
    /// a file store (a no-op for memory and signed cookies).
    ///
    /// # Errors
    ///
    /// The store's error when the DDL fails.
    pub async fn migrate(&self) -> sesame::Result<()> {
        match self {
            Self::Memory(_) => Ok(()),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.migrate().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.migrate().await,
            #[cfg(feature = "mysql")]
            Self::MySql(s) => s.migrate().await,
            Self::SignedCookies(_) => Ok(()),
            Self::File(s) => s.migrate().await,
            #[cfg(feature = "redis")]
            Self::Redis(_) => Ok(()),
            Self::CachedDb(s) => s.db().migrate().await,
            // memcached has no schema.
            #[cfg(feature = "memcached")]
            Self::Memcached(_) => Ok(()),
        }
    }

    /// Removes expired sessions; returns how many (always 0 for signed
    /// cookies, which expire on their own).
    ///
    /// # Errors
    ///
    /// The store's error when the delete fails.
    pub async fn clear_expired(&self) -> sesame::Result<u64> {
        SessionStore::clear_expired(self).await
    }

    /// The demo app on this store.
    ///
    /// A signed-cookie store takes its `max_age` and cookie name from
    /// `settings` (`SESSION_COOKIE_AGE`, `SESSION_COOKIE_NAME`), as Django's
    /// engine does.
    ///
    /// # Errors
    ///
    /// The first inconsistent setting.
    pub fn app(&self, settings: Settings) -> Result<Router, SettingsError> {
        let engine = self.engine();
        match self {
            Self::Memory(s) => demo::app(s.clone(), engine, settings),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => demo::app(s.clone(), engine, settings),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => demo::app(s.clone(), engine, settings),
            #[cfg(feature = "mysql")]
            Self::MySql(s) => demo::app(s.clone(), engine, settings),
            Self::SignedCookies(s) => {
                let store = s
                    .clone()
                    .with_max_age(settings.cookie_age)
                    .with_cookie_name(&settings.cookie_name);
                demo::app(store, engine, settings)
            }
            Self::File(s) => {
                let store = s
                    .clone()
                    .with_max_age(settings.cookie_age)
                    .with_cookie_name(file_prefix(&settings));
                demo::app(store, engine, settings)
            }
            #[cfg(feature = "redis")]
            Self::Redis(s) => demo::app(s.clone(), engine, settings),
            Self::CachedDb(s) => demo::app(s.clone(), engine, settings),
            #[cfg(feature = "memcached")]
            Self::Memcached(s) => demo::app(s.clone(), engine, settings),
        }
    }
}

/// A file store on `dir` with `settings`' `SESSION_COOKIE_AGE` and file
/// prefix ([`file_prefix`]), so every command sees the files `serve` writes.
fn file_store(dir: &Path, settings: &Settings, signer: Signer) -> FileStore {
    FileStore::new(dir, signer)
        .with_max_age(settings.cookie_age)
        .with_cookie_name(file_prefix(settings))
}

/// The prefix of session file names: `SESSION_COOKIE_NAME`, as Django's
/// `file` engine names them, unless it cannot prefix a file (`.sid`): then
/// Django's default, `sessionid` (the files are then not the ones Django
/// would look for, but nothing breaks).
#[must_use]
pub fn file_prefix(settings: &Settings) -> &str {
    let name = settings.cookie_name.as_str();
    if !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']) {
        name
    } else {
        sesame::codec::SESSION_COOKIE_NAME
    }
}

/// See [`Store::location`]. PostgreSQL names a missing database after the user.
#[cfg(feature = "postgres")]
fn postgres_location(store: &PostgresStore) -> String {
    let options = store.pool().connect_options();
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_owned(),
    };
    format!(
        "database {database}, user {user}, on {host}:{}",
        options.get_port()
    )
}

/// See [`Store::location`].
#[cfg(feature = "mysql")]
fn mysql_location(store: &MySqlStore) -> String {
    let options = store.pool().connect_options();
    let database = options.get_database().unwrap_or("(none)");
    let host = match options.get_socket() {
        Some(path) => path.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "database {database}, user {}, on {host}",
        options.get_username()
    )
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(path: &Path, signer: Signer) -> anyhow::Result<Store> {
    let store = if path.as_os_str() == SQLITE_MEMORY {
        SqliteStore::open_in_memory(signer)?
    } else {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || SqliteStore::open(path, signer)).await??
    };
    Ok(Store::Sqlite(store))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &Path, _: Signer) -> anyhow::Result<Store> {
    Err(missing_feature_error("sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, signer: Signer) -> anyhow::Result<Store> {
    Ok(Store::Postgres(PostgresStore::connect(url, signer).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: Signer) -> anyhow::Result<Store> {
    Err(missing_feature_error("postgres"))
}

#[cfg(feature = "mysql")]
async fn open_mysql(url: &str, signer: Signer) -> anyhow::Result<Store> {
    Ok(Store::MySql(MySqlStore::connect(url, signer).await?))
}

#[cfg(not(feature = "mysql"))]
async fn open_mysql(_: &str, _: Signer) -> anyhow::Result<Store> {
    Err(missing_feature_error("mysql"))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> anyhow::Result<Store> {
    let keys = cache_keys_from_env(CacheKeys::default())?;
    Ok(Store::Redis(open_redis_store(url, keys).await?))
}

/// A `RedisStore` on `url` with `keys`, its deletes waiting for the
/// replicas `SESAME_REDIS_WAIT_REPLICAS` asks for.
#[cfg(feature = "redis")]
async fn open_redis_store(url: &str, keys: CacheKeys) -> anyhow::Result<RedisStore> {
    let (replicas, timeout) = replica_wait_from_env()?;
    Ok(RedisStore::connect(url)
        .await?
        .with_keys(keys)
        .with_replica_wait(replicas, timeout)
        .await?)
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_: &str) -> anyhow::Result<Store> {
    Err(missing_feature_error("redis"))
}

#[cfg(feature = "memcached")]
async fn open_memcached(url: &str) -> anyhow::Result<Store> {
    let keys = cache_keys_from_env(CacheKeys::default())?;
    Ok(Store::Memcached(
        MemcachedStore::connect(url).await?.with_keys(keys),
    ))
}

#[cfg(not(feature = "memcached"))]
async fn open_memcached(_: &str) -> anyhow::Result<Store> {
    Err(missing_feature_error("memcached"))
}

#[cfg(not(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "memcached"
)))]
fn missing_feature_error(feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this sesame was built without the `{feature}` feature; rebuild with \
         `cargo build --release --features {feature}` (or `--features full`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<StoreUrl, InvalidStoreUrl> {
        url.parse()
    }

    #[test]
    fn sqlite_urls_name_a_path() {
        assert_eq!(
            parse("sqlite://sesame.sqlite3"),
            Ok(StoreUrl::Sqlite("sesame.sqlite3".into()))
        );
        assert_eq!(
            parse("sqlite:sesame.sqlite3"),
            Ok(StoreUrl::Sqlite("sesame.sqlite3".into()))
        );
        assert_eq!(
            parse("sqlite:///var/db/s.db"),
            Ok(StoreUrl::Sqlite("/var/db/s.db".into()))
        );
        assert_eq!(
            parse("sqlite://a.db?mode=rwc"),
            Ok(StoreUrl::Sqlite("a.db".into()))
        );
        assert_eq!(
            parse("sqlite::memory:"),
            Ok(StoreUrl::Sqlite(":memory:".into()))
        );
        assert!(parse("sqlite://").is_err());
        assert!(parse("sqlite:").is_err());
    }

    #[test]
    fn server_and_memory_urls() {
        assert_eq!(parse("memory:"), Ok(StoreUrl::Memory));
        assert_eq!(
            parse("postgres://u@h/db"),
            Ok(StoreUrl::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            parse("postgresql://u@h/db"),
            Ok(StoreUrl::Postgres("postgresql://u@h/db".into()))
        );
        assert_eq!(
            parse("mysql://root@h/test"),
            Ok(StoreUrl::MySql("mysql://root@h/test".into()))
        );
        assert_eq!(
            parse("mariadb://root@h/test"),
            Ok(StoreUrl::MySql("mysql://root@h/test".into()))
        );
    }

    #[test]
    fn redis_urls_are_kept_whole_and_hide_their_password() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://cache.internal:6380",
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
            "rediss+cluster://a:1,b:2",
        ] {
            assert_eq!(parse(url), Ok(StoreUrl::Redis(url.into())), "{url}");
        }
        assert_eq!(
            parse("redis://:hunter2@h:6379/1").unwrap().to_string(),
            "redis://:***@h:6379/1"
        );
        assert!(parse("redis:h").is_err());
    }

    #[tokio::test]
    async fn a_cache_needs_a_database_store() {
        let args = |store: &str, cache: &str| StoreArgs {
            store: parse(store).unwrap(),
            cache: Some(parse(cache).unwrap()),
        };
        let store = Store::open_args(
            &args("memory:", "memory:"),
            &Settings::default(),
            Signer::new("test"),
        )
        .await
        .unwrap();
        assert_eq!(store.engine(), demo::engine::CACHED_DB);
        assert!(store.is_server_side());
        // The Redis case is checked before connecting: no server needed.
        for (store, cache, why) in [
            ("signed-cookies:", "memory:", "database --store"),
            ("memory:", "file:///tmp/x", "--cache takes"),
            ("redis://127.0.0.1:1", "memory:", "database --store"),
        ] {
            let err = Store::open_args(
                &args(store, cache),
                &Settings::default(),
                Signer::new("test"),
            )
            .await
            .unwrap_err();
            assert!(format!("{err:#}").contains(why), "{err:#}");
            assert_eq!(crate::cmd::exit_status(&err), 2, "{err:#}");
        }
    }

    #[test]
    fn memcached_urls_name_a_server() {
        for url in [
            "memcached://127.0.0.1:11211",
            "memcached://cache",
            "MEMCACHED://[::1]:11211",
        ] {
            assert_eq!(parse(url), Ok(StoreUrl::Memcached(url.into())), "{url}");
        }
        assert_eq!(
            parse("memcached://cache:11211").unwrap().to_string(),
            "memcached://cache:11211"
        );
        for bad in [
            "memcached:",
            "memcached:cache",
            "memcached://",
            "memcached://:1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_cookies_urls_take_no_path() {
        for url in ["signed-cookies:", "signed_cookies:", "SIGNED-COOKIES://"] {
            assert_eq!(parse(url), Ok(StoreUrl::SignedCookies), "{url}");
        }
        assert_eq!(
            parse("signed-cookies:").unwrap().to_string(),
            "signed-cookies:"
        );
        assert!(parse("signed-cookies:x").is_err());
        assert_eq!(
            parse("signed-cookies:").unwrap().secret_key_path(),
            PathBuf::from("sesame.secret_key")
        );
    }

    #[tokio::test]
    async fn the_signed_cookies_store_keeps_nothing_server_side() {
        let store = Store::open(&StoreUrl::SignedCookies, Signer::new("test"))
            .await
            .unwrap();
        assert_eq!(store.engine(), "sesame.backends.SignedCookieStore");
        assert!(!store.is_server_side());
        store.migrate().await.unwrap();
        assert_eq!(store.clear_expired().await.unwrap(), 0);
        let memory = Store::open(&StoreUrl::Memory, Signer::new("test"))
            .await
            .unwrap();
        assert!(memory.is_server_side());
    }

    /// The CLI's store passes on what the session layer asks of the store
    /// it wraps: its call bound (so a Redis call is timed once) and its
    /// expiry-less load (so a request's Redis load is one `GET`).
    #[tokio::test]
    async fn the_cli_store_passes_on_the_wrapped_stores_bound_and_load() {
        let memory = Store::open(&StoreUrl::Memory, Signer::new("test"))
            .await
            .unwrap();
        assert_eq!(memory.call_timeout(), None);
        let record = Record::new(
            [("n".to_owned(), 1.into())].into_iter().collect(),
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        );
        let saved = memory.create(&record).await.unwrap();
        let contents = memory.load_contents(&saved.key).await.unwrap().unwrap();
        assert_eq!(contents.data, record.data);
        assert_eq!(contents.version, Some(saved.version));

        #[cfg(feature = "redis")]
        {
            let Some(url) = std::env::var("SESAME_TEST_REDIS_URL")
                .ok()
                .filter(|u| !u.is_empty())
            else {
                eprintln!("SKIP redis: SESAME_TEST_REDIS_URL unset");
                return;
            };
            let redis = Store::open(&parse(&url).unwrap(), Signer::new("test"))
                .await
                .unwrap();
            assert_eq!(
                redis.call_timeout(),
                Some(sesame::backends::DEFAULT_REDIS_TIMEOUT)
            );
            let saved = redis.create(&record).await.unwrap();
            let contents = redis.load_contents(&saved.key).await.unwrap().unwrap();
            assert_eq!(contents.data, record.data);
            redis.delete(&saved.key).await.unwrap();
        }
    }

    #[test]
    fn file_urls_name_a_directory() {
        assert_eq!(
            parse("file:///var/lib/sesame"),
            Ok(StoreUrl::File("/var/lib/sesame".into()))
        );
        assert_eq!(
            parse("file:sessions"),
            Ok(StoreUrl::File("sessions".into()))
        );
        assert_eq!(parse("file:///srv/s").unwrap().to_string(), "file:///srv/s");
        assert!(parse("file://").is_err());
        assert!(parse("file:").is_err());
    }

    #[test]
    fn a_file_url_names_a_local_directory_and_shows_as_given() {
        assert_eq!(
            parse("file://localhost/srv/s"),
            Ok(StoreUrl::File("/srv/s".into()))
        );
        assert_eq!(
            parse("file:relative/dir").unwrap().to_string(),
            "file:relative/dir"
        );
        for remote in [
            "file://host/dir",
            "file://./dir",
            "file://localhost",
            "file://h",
        ] {
            let err = parse(remote).unwrap_err();
            assert!(
                remote == "file://localhost" || err.0.contains("localhost"),
                "{remote}: {err}"
            );
        }
    }

    #[test]
    fn a_malformed_host_or_port_is_refused_when_parsed() {
        for bad in [
            "postgres://[bad",
            "postgresql://u@h:99999/db",
            "mysql://root@127.0.0.1:99999/x",
            "mariadb://root@h:x/x",
            "redis://h:0",
            "redis+cluster://a:7000,b:port",
            "memcached://h:notaport",
            "memcached://h:11211/x",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
        for good in [
            "postgres://",
            "postgres:///db?host=/var/run/postgresql",
            "postgres://u:p@[::1]:5432/db",
            "memcached://h:11211/",
            "redis+cluster://a:7000, b:7001/",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn the_file_store_migrates_its_directory_and_clears_sessions() {
        let dir = std::env::temp_dir().join(format!(
            "sesame-cli-file-{}-{}",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        let url = parse(&format!("file://{}", dir.display())).unwrap();
        let store = Store::open(&url, Signer::new("test")).await.unwrap();
        assert_eq!(store.engine(), "sesame.backends.FileStore");
        assert!(store.is_server_side());
        store.migrate().await.unwrap();
        assert!(dir.is_dir());
        assert_eq!(store.clear_expired().await.unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_or_malformed_urls_are_rejected() {
        for bad in [
            "",
            "sesame.sqlite3",
            "mongodb://h",
            "redis:h",
            "memory:x",
            "postgres:db",
            "mysql:h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_hides_passwords() {
        let url = parse("postgres://app:s3cret@db.local:5432/app?sslmode=disable").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.local:5432/app?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let url = parse("mysql://root@127.0.0.1/test").unwrap();
        assert_eq!(url.to_string(), "mysql://root@127.0.0.1/test");
        assert_eq!(
            hide_password("mysql://u:p:q@h/x?a=@"),
            "mysql://u:***@h/x?a=@"
        );
    }

    #[test]
    fn secret_key_lives_beside_the_sqlite_file() {
        assert_eq!(
            parse("sqlite:///tmp/x/db.sqlite3")
                .unwrap()
                .secret_key_path(),
            PathBuf::from("/tmp/x/db.sqlite3.secret_key")
        );
        for other in ["memory:", "sqlite::memory:", "postgres://u@h/d"] {
            assert_eq!(
                parse(other).unwrap().secret_key_path(),
                PathBuf::from("sesame.secret_key")
            );
        }
    }

    #[tokio::test]
    async fn a_store_without_its_feature_says_which_feature() {
        #[cfg(not(feature = "postgres"))]
        {
            let err = Store::open(&parse("postgres://u@h/d").unwrap(), Signer::new("test"))
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("`postgres` feature"), "{err:#}");
        }
        #[cfg(not(feature = "memcached"))]
        {
            let err = Store::open(&parse("memcached://h").unwrap(), Signer::new("test"))
                .await
                .unwrap_err();
            assert!(
                format!("{err:#}").contains("`memcached` feature"),
                "{err:#}"
            );
        }
        let store = Store::open(&StoreUrl::Memory, Signer::new("test"))
            .await
            .unwrap();
        assert_eq!(store.engine(), demo::engine::MEMORY);
    }
}
