//! Django's session framework for Rust web services.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backends;
mod error;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
mod key;
mod middleware;
mod session;
mod settings;

pub use error::{BoxError, Error, Result};
pub use expiry::{Expiry, expire_at_browser_close, expiry_age, expiry_date};
pub use key::{InvalidKey, KEY_LENGTH, MAX_KEY_LENGTH, MIN_KEY_LENGTH, Redacted, SessionKey};
pub use middleware::{SessionManager, SessionManagerLayer};
pub use sesame_codec as codec;
pub use session::{ConflictPolicy, Session};
pub use settings::{SameSite, Settings, SettingsError};
