//! Session stores, one module per Django engine (`django/contrib/sessions/backends/`).
//!
//! | store | Django `SESSION_ENGINE` | feature |
//! |---|---|---|
//! | [`MemoryStore`] | (`cache` on `LocMemCache`) | always |
//! | `SqliteStore` | `db` on SQLite | `sqlite` (default) |
//! | `PostgresStore` | `db` on PostgreSQL | `postgres` |
//! | `MySqlStore` | `db` on MySQL / MariaDB | `mysql` |

mod base;
mod memory;

pub(crate) use base::DynStore;
pub use base::{CREATE_ATTEMPTS, Record, Saved, SessionStore, Version, create_unique};
pub use memory::MemoryStore;
