//! Every store passes the conformance suites unchanged: Django's
//! `SessionTestsMixin` subclasses, one module per store.
//!
//! A module just calls the suites. A store that needs a server reads its URL
//! with `sesame_conformance::env_url("<STORE>")` (from
//! `SESAME_TEST_<STORE>_URL`), which prints the skip line and returns `None`
//! when it is unset:
//!
//! ```text
//! #[cfg(feature = "postgres")]
//! mod postgres {
//!     async fn make() -> Option<sesame::backends::PostgresStore> {
//!         let url = sesame_conformance::env_url("POSTGRES")?;
//!         // connect to `url`, run `migrate()`, return Some(store)
//!     }
//!     sesame_conformance::store_suite!(make(), sesame_conformance::Caps::default());
//! }
//! ```

mod memory {
    sesame_conformance::store_suite!(
        async { Some(sesame::backends::MemoryStore::new()) },
        sesame_conformance::Caps::default(),
    );
    sesame_conformance::list_suite!(async { Some(sesame::backends::MemoryStore::new()) });
    sesame_conformance::http_suite!(
        async { Some(sesame::backends::MemoryStore::new()) },
        sesame_conformance::Caps::default(),
    );
}

mod sql_support;

/// A fresh database file per case (WAL, one writer and reader connections).
#[cfg(feature = "sqlite")]
mod sqlite {
    use super::sql_support::sqlite::store;

    sesame_conformance::store_suite!(store(), sesame_conformance::Caps::default());
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {
    use super::sql_support::postgres::store;

    sesame_conformance::store_suite!(store(), sesame_conformance::Caps::default());
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_MYSQL_URL`.
#[cfg(feature = "mysql")]
mod mysql {
    use super::sql_support::mysql::store;

    sesame_conformance::store_suite!(store(), sesame_conformance::Caps::default());
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh directory per case, under `<tmp>/sesame-tests-files/`.
mod file {
    use sesame::backends::FileStore;

    use super::sql_support::{fresh_name, is_stale, signer};

    async fn store() -> Option<FileStore> {
        let root = std::env::temp_dir().join("sesame-tests-files");
        std::fs::create_dir_all(&root).expect("create the test directory");
        for entry in std::fs::read_dir(&root).expect("list the test directory") {
            let path = entry.expect("a directory entry").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_stale)
            {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        let store = FileStore::new(root.join(fresh_name()), signer());
        store.migrate().await.expect("migrate");
        Some(store)
    }

    // File timestamps here are nanoseconds (ext4, tmpfs, overlayfs), finer
    // than the default microsecond resolution the cases allow.
    sesame_conformance::store_suite!(store(), sesame_conformance::Caps::default());
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), sesame_conformance::Caps::default());
}

/// Sessions in the signed cookie: nothing server-side to revoke, compare or
/// touch, whole-second timestamps, and a browser's 4096-byte cookie limit.
mod signed_cookies {
    use sesame::Signer;
    use sesame::backends::SignedCookieStore;
    use sesame_conformance::Caps;

    async fn store() -> Option<SignedCookieStore> {
        Some(SignedCookieStore::new(
            Signer::new("sesame-test-secret-key").with_fallbacks(["an-older-key"]),
        ))
    }

    const CAPS: Caps = Caps {
        // A copy of a deleted (logged out) cookie stays valid until it expires.
        revocable: false,
        // No stored version or record: no Conflict, no Missing, no touch.
        server_side: false,
        native_ttl: false,
        // The signed timestamp is in whole seconds.
        expiry_resolution: time::Duration::seconds(1),
        size_limit: Some(sesame::backends::MAX_COOKIE_BYTES),
    };

    sesame_conformance::store_suite!(store(), CAPS);
    sesame_conformance::http_suite!(store(), CAPS);
}

/// Django's `cache` engine on `SESAME_TEST_REDIS_URL` (a standalone Redis).
/// Every case mints its own random keys, so cases share the server.
#[cfg(feature = "redis")]
mod redis {
    use sesame::backends::RedisStore;
    use sesame_conformance::Caps;

    async fn store() -> Option<RedisStore> {
        let url = sesame_conformance::env_url("REDIS")?;
        Some(RedisStore::connect(&url).await.expect("connect to Redis"))
    }

    const CAPS: Caps = Caps {
        native_ttl: true,
        // The expiry is read back as now + PTTL: off by the time between
        // the write and the read.
        expiry_resolution: time::Duration::seconds(1),
        ..Caps::DEFAULT
    };

    sesame_conformance::store_suite!(store(), CAPS);
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), CAPS);
}

/// The same on `SESAME_TEST_REDIS_CLUSTER_URL` (`redis+cluster://…`).
#[cfg(feature = "redis-cluster")]
mod redis_cluster {
    use sesame::backends::RedisStore;
    use sesame_conformance::Caps;

    async fn store() -> Option<RedisStore> {
        let url = sesame_conformance::env_url("REDIS_CLUSTER")?;
        let store = RedisStore::connect(&url)
            .await
            .expect("connect to the Redis Cluster");
        assert!(store.is_cluster());
        Some(store)
    }

    const CAPS: Caps = Caps {
        native_ttl: true,
        expiry_resolution: time::Duration::seconds(1),
        ..Caps::DEFAULT
    };

    sesame_conformance::store_suite!(store(), CAPS);
    sesame_conformance::list_suite!(store());
    sesame_conformance::http_suite!(store(), CAPS);
}

/// Django's `cached_db`: a cache in front of a database, in three pairings.
mod cached_db {
    // Used by whichever pairings the enabled features build.
    #[allow(unused_imports)]
    use sesame::backends::{CachedDbStore, MemoryStore};
    #[allow(unused_imports)]
    use sesame_conformance::Caps;

    /// `LocMemCache`-like cache in front of SQLite: runs everywhere.
    #[cfg(feature = "sqlite")]
    mod memory_sqlite {
        use super::*;

        async fn store() -> Option<CachedDbStore<MemoryStore, sesame::backends::SqliteStore>> {
            let db = crate::sql_support::sqlite::store().await?;
            Some(CachedDbStore::new(MemoryStore::new(), db))
        }

        sesame_conformance::store_suite!(store(), Caps::default());
        sesame_conformance::list_suite!(store());
        sesame_conformance::http_suite!(store(), Caps::default());
    }

    #[cfg(all(feature = "redis", any(feature = "sqlite", feature = "postgres")))]
    async fn redis() -> Option<sesame::backends::RedisStore> {
        let url = sesame_conformance::env_url("REDIS")?;
        let cache = sesame::backends::RedisStore::connect(&url)
            .await
            .expect("connect to Redis");
        Some(cache.with_keys(sesame::backends::CacheKeys::cached_db()))
    }

    /// A cache hit reads its expiry back from Redis's PTTL.
    #[cfg(all(feature = "redis", any(feature = "sqlite", feature = "postgres")))]
    const CAPS: Caps = Caps {
        expiry_resolution: time::Duration::seconds(1),
        ..Caps::DEFAULT
    };

    /// Redis in front of SQLite.
    #[cfg(all(feature = "redis", feature = "sqlite"))]
    mod redis_sqlite {
        use super::*;

        async fn store()
        -> Option<CachedDbStore<sesame::backends::RedisStore, sesame::backends::SqliteStore>>
        {
            let cache = redis().await?;
            let db = crate::sql_support::sqlite::store().await?;
            Some(CachedDbStore::new(cache, db))
        }

        sesame_conformance::store_suite!(store(), CAPS);
        sesame_conformance::list_suite!(store());
        sesame_conformance::http_suite!(store(), CAPS);
    }

    /// Redis in front of PostgreSQL.
    #[cfg(all(feature = "redis", feature = "postgres"))]
    mod redis_postgres {
        use super::*;

        async fn store()
        -> Option<CachedDbStore<sesame::backends::RedisStore, sesame::backends::PostgresStore>>
        {
            let cache = redis().await?;
            let db = crate::sql_support::postgres::store().await?;
            Some(CachedDbStore::new(cache, db))
        }

        sesame_conformance::store_suite!(store(), CAPS);
        sesame_conformance::list_suite!(store());
        sesame_conformance::http_suite!(store(), CAPS);
    }

    /// Memcached in front of SQLite (`SESAME_TEST_MEMCACHED_URL`).
    #[cfg(all(feature = "memcached", feature = "sqlite"))]
    mod memcached_sqlite {
        use super::*;

        async fn store()
        -> Option<CachedDbStore<sesame::backends::MemcachedStore, sesame::backends::SqliteStore>>
        {
            let url = sesame_conformance::env_url("MEMCACHED")?;
            let cache = sesame::backends::MemcachedStore::connect(&url)
                .await
                .expect("connect to memcached")
                .with_keys(sesame::backends::CacheKeys::cached_db());
            let db = crate::sql_support::sqlite::store().await?;
            Some(CachedDbStore::new(cache, db))
        }

        /// Memcached keeps expiry in whole seconds.
        const CAPS: Caps = Caps {
            expiry_resolution: time::Duration::seconds(1),
            ..Caps::DEFAULT
        };

        sesame_conformance::store_suite!(store(), CAPS);
        sesame_conformance::list_suite!(store());
        sesame_conformance::http_suite!(store(), CAPS);
    }
}
