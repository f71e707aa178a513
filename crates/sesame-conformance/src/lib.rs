//! Conformance suites every Sesame session store must pass, and test doubles.
//!
//! - [`store_suite!`] expands to one test per rule of the
//!   [`SessionStore`](sesame::backends::SessionStore) trait, so a new store is
//!   checked against the same cases as every other (Django's
//!   `SessionTestsMixin`). [`Caps`] says what the store under test can do.
//! - [`list_suite!`] expands to one test per rule of
//!   [`ListSessions`](sesame::backends::ListSessions), for the stores that
//!   list their sessions: listing, finding and revoking a user's sessions.
//! - [`race_suite!`] expands to one test per race rule: concurrent requests
//!   on one session lose no write and bring no session back; each case
//!   prints its [`figure`].
//! - [`env_url`] reads `SESAME_TEST_<STORE>_URL` for stores that need an
//!   external server, and prints the skip line when it is unset.
//! - [`FailingStore`], [`CountingStore`], [`SlowStore`] and [`ToggleStore`]
//!   are test doubles: an outage, a call counter, a slow store and a store
//!   that can be switched off and on. No mocking framework.
//! - [`ToggleProxy`] is a TCP proxy with a switch, to take a real store
//!   server down and back without touching the server itself.
//! - [`free_port`] and [`free_ports`] give loopback ports for servers a
//!   test starts itself: not twice in one process, and none the kernel
//!   could give an outgoing connection meanwhile.
//!
//! # Examples
//!
//! In `crates/sesame/tests/backends.rs`, one module per store:
//!
//! ```
//! mod memory {
//!     sesame_conformance::store_suite!(
//!         async { Some(sesame::backends::MemoryStore::new()) },
//!         sesame_conformance::Caps::default()
//!     );
//! }
//! # fn main() {}
//! ```
//!
//! A doc-test compiles but does not run `#[test]` functions;
//! `crates/sesame/tests/backends.rs` runs exactly this.

mod doubles;
mod http;
mod listing;
mod ports;
mod proxy;
mod races;
mod store;

pub use doubles::{Calls, CountingStore, FailingStore, Outage, SlowStore, ToggleStore};
pub use ports::{free_port, free_ports};
pub use proxy::ToggleProxy;
pub use races::{Scale, figure};
pub use store::{Caps, env_url};

/// What the exported macros reach through `$crate`, so callers need no
/// dependency of their own on tokio. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use ::sesame;
    pub use ::tokio;

    pub use crate::http::cases as http_cases;
    pub use crate::listing::cases as list_cases;
    pub use crate::races::cases as race_cases;
    pub use crate::store::{cases, run};
}
