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
    sesame_conformance::http_suite!(
        async { Some(sesame::backends::MemoryStore::new()) },
        sesame_conformance::Caps::default(),
    );
}
