//! No lost writes, no resurrected sessions: the race suite on every store,
//! and a property test that interleaved saves equal some serial order.
//!
//! Each case prints its figure on stderr; collect them with
//! `cargo test -p sesame --all-features --test races -- --nocapture 2>&1 | grep '^figure:'`.
//! External stores read `SESAME_TEST_POSTGRES_URL` and `SESAME_TEST_MYSQL_URL`
//! and skip when they are unset.

mod sql_support;

mod memory {
    sesame_conformance::race_suite!(
        async { Some(sesame::backends::MemoryStore::new()) },
        sesame_conformance::Caps::default(),
    );
}

/// A fresh database file per case.
#[cfg(feature = "sqlite")]
mod sqlite {
    use super::sql_support::sqlite::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {
    use super::sql_support::postgres::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh table per case on `SESAME_TEST_MYSQL_URL`.
#[cfg(feature = "mysql")]
mod mysql {
    use super::sql_support::mysql::store;

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}

/// A fresh directory per case, under `<tmp>/sesame-tests-files/`.
mod file {
    use sesame::backends::FileStore;

    use super::sql_support::{fresh_name, signer};

    async fn store() -> Option<FileStore> {
        let root = std::env::temp_dir().join("sesame-tests-files");
        let store = FileStore::new(root.join(fresh_name()), signer());
        store.migrate().await.expect("migrate");
        Some(store)
    }

    sesame_conformance::race_suite!(store(), sesame_conformance::Caps::default());
}
