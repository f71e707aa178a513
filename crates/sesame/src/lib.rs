//! Django's session framework for Rust web services.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backends;
mod error;
mod expiry;
mod key;
mod settings;

pub use error::{BoxError, Error, Result};
pub use expiry::{Expiry, expire_at_browser_close, expiry_age, expiry_date};
pub use key::{InvalidKey, KEY_LENGTH, MAX_KEY_LENGTH, MIN_KEY_LENGTH, Redacted, SessionKey};
pub use sesame_codec as codec;
pub use settings::{SameSite, Settings, SettingsError};
