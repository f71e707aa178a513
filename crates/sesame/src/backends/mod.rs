//! Session stores, one module per Django engine (`django/contrib/sessions/backends/`).
//!
//! | store | Django `SESSION_ENGINE` | feature |
//! |---|---|---|
//! | [`MemoryStore`] | (`cache` on `LocMemCache`) | always |
//! | `SqliteStore` | `db` on SQLite | `sqlite` (default) |
//! | `PostgresStore` | `db` on PostgreSQL | `postgres` |
//! | `MySqlStore` | `db` on MySQL / MariaDB | `mysql` |
//! | `RedisStore` | `cache` on `RedisCache` (standalone or Cluster) | `redis`, `redis-cluster`, `redis-tls` |
//! | [`CachedDbStore`] | `cached_db`: any [`SessionCache`] in front of any store | always |
//! | [`FileStore`] | `file` | always |
//! | `MemcachedStore` | `cache` on `PyMemcacheCache` | `memcached` |
//! | [`SignedCookieStore`] | `signed_cookies` | always |

mod base;
mod by_user;
mod cache;
mod cached_db;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod db;
mod file;
mod list;
mod memory;
mod signed_cookies;

pub(crate) use base::DynStore;
pub use base::{CREATE_ATTEMPTS, Contents, Record, Saved, SessionStore, Version, create_unique};
pub use by_user::{Revoked, UserSessions, revoke_user_sessions, sessions_of_user};
pub use cache::CacheKeys;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub use cache::memcached::{InvalidCacheKey, MemcachedStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use cache::redis::{DEFAULT_REDIS_TIMEOUT, RedisStore};
pub use cached_db::{CachedDbStore, SessionCache};
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use db::MySqlStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use db::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use db::SqliteStore;
pub use file::FileStore;
pub use list::{ListSessions, Listed};
pub use memory::MemoryStore;
pub use signed_cookies::{MAX_COOKIE_BYTES, SignedCookieStore};
