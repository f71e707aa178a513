//! `--store` URLs: parsing them, and opening the store they name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use axum::Router;
#[cfg(feature = "memcached")]
use sesame::backends::MemcachedStore;
#[cfg(feature = "mysql")]
use sesame::backends::MySqlStore;
#[cfg(feature = "postgres")]
use sesame::backends::PostgresStore;
use sesame::backends::SessionStore as _;
use sesame::backends::SignedCookieStore;
#[cfg(feature = "sqlite")]
use sesame::backends::SqliteStore;
use sesame::backends::{FileStore, MemoryStore};
use sesame::{Settings, SettingsError, Signer};

use crate::demo;

/// A parsed `--store` URL: which kind of store, and where.
///
/// | URL | store | feature |
/// |---|---|---|
/// | `sqlite://PATH`, `sqlite:PATH` (`sqlite::memory:` for a private in-memory database) | `SqliteStore` | `sqlite` (default) |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` | `postgres` |
/// | `mysql://…`, `mariadb://…` | `MySqlStore` | `mysql` |
/// | `file:///DIR`, `file:DIR` | `FileStore`: one file per session in `DIR` (Django's `file` engine) | always |
/// | `memory:` | `MemoryStore` | always |
/// | `signed-cookies:` (or `signed_cookies:`) | `SignedCookieStore`: the session in the signed cookie | always |
/// | `memcached://HOST[:PORT]` (port 11211 by default) | `MemcachedStore` (Django's `cache` engine on `PyMemcacheCache`) | `memcached` |
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
/// assert!("redis://localhost".parse::<StoreUrl>().is_err());
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
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    Err(InvalidStoreUrl(
                        "a file URL names a directory: file:///PATH (e.g. file:///var/lib/sesame/sessions)",
                    ))
                } else {
                    Ok(Self::File(PathBuf::from(path)))
                }
            }
            "postgres" | "postgresql" if rest.starts_with("//") => Ok(Self::Postgres(url.into())),
            "mysql" | "mariadb" if rest.starts_with("//") => {
                Ok(Self::MySql(format!("mysql:{rest}")))
            }
            "memcached" => match rest.strip_prefix("//") {
                Some(host) if !host.is_empty() && !host.starts_with([':', '/']) => {
                    Ok(Self::Memcached(url.into()))
                }
                _ => Err(InvalidStoreUrl(
                    "a memcached URL names a server: memcached://HOST[:PORT] (e.g. memcached://127.0.0.1:11211)",
                )),
            },
            "postgres" | "postgresql" | "mysql" | "mariadb" => Err(InvalidStoreUrl(
                "a server URL starts with scheme:// (e.g. postgres://user@host/db)",
            )),
            _ => Err(InvalidStoreUrl(
                "unknown store: expected sqlite://PATH, postgres://…, postgresql://…, mysql://…, mariadb://…, memcached://HOST, file:///DIR, memory: or signed-cookies:",
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
            Self::File(path) => write!(f, "file://{}", path.display()),
            Self::Postgres(url) | Self::MySql(url) | Self::Memcached(url) => {
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

impl StoreUrl {
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
    /// `memcached://…`.
    #[cfg(feature = "memcached")]
    Memcached(MemcachedStore),
}

impl Store {
    /// Opens (connects to) the store `url` names. Does not create the table:
    /// see [`migrate`](Self::migrate).
    ///
    /// # Errors
    ///
    /// The URL names a store this binary was built without (the message
    /// says which feature to enable), or the store cannot be opened.
    pub async fn open(url: &StoreUrl, signer: Signer) -> anyhow::Result<Self> {
        match url {
            StoreUrl::Memory => Ok(Self::Memory(MemoryStore::new())),
            StoreUrl::Sqlite(path) => open_sqlite(path, signer).await,
            StoreUrl::Postgres(raw) => open_postgres(raw, signer).await,
            StoreUrl::MySql(raw) => open_mysql(raw, signer).await,
            StoreUrl::SignedCookies => Ok(Self::SignedCookies(SignedCookieStore::new(signer))),
            StoreUrl::File(dir) => Ok(Self::File(file_store(dir, signer))),
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
            #[cfg(feature = "memcached")]
            Self::Memcached(_) => demo::engine::MEMCACHED,
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
        match self {
            Self::Memory(s) => s.clear_expired().await,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.clear_expired().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.clear_expired().await,
            #[cfg(feature = "mysql")]
            Self::MySql(s) => s.clear_expired().await,
            Self::SignedCookies(s) => s.clear_expired().await,
            Self::File(s) => s.clear_expired().await,
            #[cfg(feature = "memcached")]
            Self::Memcached(s) => s.clear_expired().await,
        }
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
                let mut store = s.clone().with_max_age(settings.cookie_age);
                // A name that cannot prefix a file (`.sid`) keeps the default
                // prefix: the files are then not Django's, but nothing breaks.
                if is_file_prefix(&settings.cookie_name) {
                    store = store.with_cookie_name(&settings.cookie_name);
                }
                demo::app(store, engine, settings)
            }
            #[cfg(feature = "memcached")]
            Self::Memcached(s) => demo::app(s.clone(), engine, settings),
        }
    }
}

/// The signer for commands that never encode or decode session data
/// (`migrate`, `clearsessions`): the environment's `SECRET_KEY` when set,
/// otherwise a placeholder, since these commands only run DDL and deletes.
#[must_use]
pub fn signer_for_maintenance() -> Signer {
    Settings::from_env()
        .ok()
        .and_then(|s| s.signer().ok())
        .unwrap_or_else(|| Signer::new("sesame: maintenance commands never sign session data"))
}

/// A file store on `dir`, with the environment's `SESSION_COOKIE_NAME` (the
/// file prefix) and `SESSION_COOKIE_AGE` when they are set, so `migrate` and
/// `clearsessions` see the files `serve` writes.
fn file_store(dir: &Path, signer: Signer) -> FileStore {
    let store = FileStore::new(dir, signer);
    match Settings::from_env() {
        Ok(settings) if is_file_prefix(&settings.cookie_name) => store
            .with_max_age(settings.cookie_age)
            .with_cookie_name(&settings.cookie_name),
        _ => store,
    }
}

/// Whether `name` can prefix session file names (see `FileStore::with_cookie_name`).
fn is_file_prefix(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
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
    missing_feature("sqlite")
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, signer: Signer) -> anyhow::Result<Store> {
    Ok(Store::Postgres(PostgresStore::connect(url, signer).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: Signer) -> anyhow::Result<Store> {
    missing_feature("postgres")
}

#[cfg(feature = "mysql")]
async fn open_mysql(url: &str, signer: Signer) -> anyhow::Result<Store> {
    Ok(Store::MySql(MySqlStore::connect(url, signer).await?))
}

#[cfg(not(feature = "mysql"))]
async fn open_mysql(_: &str, _: Signer) -> anyhow::Result<Store> {
    missing_feature("mysql")
}

#[cfg(feature = "memcached")]
async fn open_memcached(url: &str) -> anyhow::Result<Store> {
    Ok(Store::Memcached(MemcachedStore::connect(url).await?))
}

#[cfg(not(feature = "memcached"))]
async fn open_memcached(_: &str) -> anyhow::Result<Store> {
    missing_feature("memcached")
}

#[cfg(not(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "memcached"
)))]
fn missing_feature(feature: &str) -> anyhow::Result<Store> {
    anyhow::bail!(
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
            "redis://h",
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
