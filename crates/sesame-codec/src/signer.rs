//! [`Signer`]: `SECRET_KEY` and `SECRET_KEY_FALLBACKS`, and what is signed with them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, SessionMap, auth, json, session_auth_hash, signing};

/// Django's secret keys: `SECRET_KEY` signs, `SECRET_KEY_FALLBACKS` are also accepted.
///
/// Everything is signed with the current key; verification tries it first,
/// then each fallback in order. Cloning is cheap (the keys are shared), and
/// `Debug` never prints a key.
///
/// # Examples
///
/// ```
/// use sesame_codec::{DB_SALT, SessionMap, Signer};
/// use time::OffsetDateTime;
///
/// let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
/// let mut data = SessionMap::new();
/// data.insert("counter".into(), 1.into());
///
/// let signer = Signer::new("new-key").with_fallbacks(["old-key"]);
/// let stored = signer.dumps_session(&data, DB_SALT, now);
/// assert!(stored.starts_with("eyJjb3VudGVyIjoxfQ:1r31eq:"));
/// assert_eq!(signer.loads_session(&stored, DB_SALT, None, now), Ok(data.clone()));
///
/// // A row written before the key rotation still loads.
/// let before_rotation = Signer::new("old-key");
/// let old_row = before_rotation.dumps_session(&data, DB_SALT, now);
/// assert_eq!(signer.loads_session(&old_row, DB_SALT, None, now), Ok(data));
/// ```
///
/// # Django
///
/// The `key` and `fallback_keys` of `Signer`/`TimestampSigner` in
/// `django/core/signing.py`, which default to `settings.SECRET_KEY` and
/// `settings.SECRET_KEY_FALLBACKS`. Django's `Signer` also holds the salt;
/// here the salt is an argument, because one set of keys serves every salt.
#[doc(alias = "TimestampSigner")]
#[derive(Clone)]
pub struct Signer {
    /// `SECRET_KEY` first, then the fallbacks in order; never empty.
    keys: Arc<[Box<[u8]>]>,
}

/// Which of a [`Signer`]'s keys produced a signature or hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// The current key, `SECRET_KEY`.
    Current,
    /// `SECRET_KEY_FALLBACKS[i]`.
    Fallback(usize),
}

impl Signer {
    /// Holds `SECRET_KEY`, with no fallbacks.
    ///
    /// Keys are bytes: Django encodes a `str` key as UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// let signer = sesame_codec::Signer::new("current");
    /// assert_eq!(format!("{signer:?}"), "Signer { secret_key: .., fallbacks: 0 }");
    /// ```
    #[must_use]
    pub fn new(secret_key: impl Into<Vec<u8>>) -> Self {
        let keys: [Box<[u8]>; 1] = [secret_key.into().into_boxed_slice()];
        Self { keys: keys.into() }
    }

    /// Sets `SECRET_KEY_FALLBACKS`: keys still accepted, tried in this order after `SECRET_KEY`.
    ///
    /// Replaces any fallbacks set before.
    ///
    /// # Examples
    ///
    /// ```
    /// let signer = sesame_codec::Signer::new("current").with_fallbacks(["previous", "older"]);
    /// assert_eq!(format!("{signer:?}"), "Signer { secret_key: .., fallbacks: 2 }");
    /// ```
    #[must_use]
    pub fn with_fallbacks<F>(self, fallbacks: F) -> Self
    where
        F: IntoIterator,
        F::Item: Into<Vec<u8>>,
    {
        let keys: Vec<Box<[u8]>> = self
            .keys
            .first()
            .cloned()
            .into_iter()
            .chain(
                fallbacks
                    .into_iter()
                    .map(|key| key.into().into_boxed_slice()),
            )
            .collect();
        Self { keys: keys.into() }
    }

    /// Signs a JSON value with `SECRET_KEY`: Django's `signing.dumps`.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// use time::OffsetDateTime;
    ///
    /// let signer = sesame_codec::Signer::new("key");
    /// let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    /// let signed = signer.dumps(&json!([1, 2]), "my.salt", false, now);
    /// assert_eq!(signer.loads(&signed, "my.salt", None, now), Ok(json!([1, 2])));
    /// ```
    ///
    /// # Django
    ///
    /// See [`dumps`](crate::dumps).
    #[must_use]
    pub fn dumps(&self, value: &Value, salt: &str, compress: bool, now: OffsetDateTime) -> String {
        signing::dumps(value, self.secret_key(), salt, compress, now)
    }

    /// Verifies a signed value with every key and decodes it: Django's `signing.loads`.
    ///
    /// # Errors
    ///
    /// As [`loads`](crate::loads).
    ///
    /// # Examples
    ///
    /// ```
    /// use time::OffsetDateTime;
    ///
    /// let signer = sesame_codec::Signer::new("key");
    /// let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    /// assert_eq!(
    ///     signer.loads("e30:1r31eq:forged", "my.salt", None, now),
    ///     Err(sesame_codec::Error::BadSignature)
    /// );
    /// ```
    ///
    /// # Django
    ///
    /// See [`loads`](crate::loads).
    pub fn loads(
        &self,
        signed: &str,
        salt: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Value, Error> {
        signing::loads(signed, &self.keys[..], salt, max_age, now)
    }

    /// Encodes a session's contents as Django stores them: signed, compressed when it pays.
    ///
    /// `salt` is [`DB_SALT`](crate::DB_SALT) for the `db`, `cached_db` and
    /// `file` engines and [`SIGNED_COOKIES_SALT`](crate::SIGNED_COOKIES_SALT)
    /// for `signed_cookies`. The result is the `session_data` column, or the
    /// cookie value.
    ///
    /// # Examples
    ///
    /// See [`Signer`].
    ///
    /// # Django
    ///
    /// `SessionBase.encode` in `django/contrib/sessions/backends/base.py`
    /// (`signing.dumps(session_dict, salt=self.key_salt, compress=True)`) and
    /// `SessionStore._get_session_key` in `signed_cookies.py`.
    #[doc(alias = "encode")]
    #[must_use]
    pub fn dumps_session(&self, data: &SessionMap, salt: &str, now: OffsetDateTime) -> String {
        signing::sign_json(
            &json::dumps_object(data),
            self.secret_key(),
            salt,
            true,
            now,
        )
    }

    /// Decodes a session's contents written by Django or by [`Signer::dumps_session`].
    ///
    /// `max_age` is `None` for the `db`-family engines (their expiry is the
    /// `expire_date` column) and `SESSION_COOKIE_AGE` for `signed_cookies`.
    ///
    /// # Errors
    ///
    /// Everything [`loads`](crate::loads) returns, and
    /// [`Error::NotAnObject`] for a signed JSON value that is not an object.
    /// Django turns each into an empty session (a non-object would make it
    /// fail later; Sesame treats it as empty at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sesame_codec::{SIGNED_COOKIES_SALT, SessionMap, Signer};
    /// use time::OffsetDateTime;
    ///
    /// let signer = Signer::new("key");
    /// let issued = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    /// let cookie = signer.dumps_session(&SessionMap::new(), SIGNED_COOKIES_SALT, issued);
    /// let two_weeks = Some(Duration::from_secs(1_209_600));
    /// let later = issued + Duration::from_secs(1_209_601);
    /// assert!(signer.loads_session(&cookie, SIGNED_COOKIES_SALT, two_weeks, later).is_err());
    /// ```
    ///
    /// # Django
    ///
    /// `SessionBase.decode` in `django/contrib/sessions/backends/base.py`,
    /// and `SessionStore.load` in `signed_cookies.py` (with
    /// `max_age=settings.SESSION_COOKIE_AGE`).
    #[doc(alias = "decode")]
    pub fn loads_session(
        &self,
        signed: &str,
        salt: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<SessionMap, Error> {
        match self.loads(signed, salt, max_age, now)? {
            Value::Object(map) => Ok(map),
            _ => Err(Error::NotAnObject),
        }
    }

    /// Computes `_auth_user_hash` for a user's password field with `SECRET_KEY`.
    ///
    /// # Examples
    ///
    /// ```
    /// let signer = sesame_codec::Signer::new("key");
    /// assert_eq!(
    ///     signer.session_auth_hash("pbkdf2_sha256$1$s$h="),
    ///     sesame_codec::session_auth_hash("pbkdf2_sha256$1$s$h=", "key")
    /// );
    /// ```
    ///
    /// # Django
    ///
    /// `AbstractBaseUser.get_session_auth_hash`; see [`session_auth_hash`].
    #[doc(alias = "get_session_auth_hash")]
    #[must_use]
    pub fn session_auth_hash(&self, password_field: &str) -> String {
        session_auth_hash(password_field, self.secret_key())
    }

    /// Finds which key, if any, produced a stored `_auth_user_hash` (constant-time compares).
    ///
    /// `Some(KeyMatch::Current)`: the session stays logged in.
    /// `Some(KeyMatch::Fallback(_))`: Django keeps the login but cycles the
    /// session key and rewrites the hash with [`Signer::session_auth_hash`].
    /// `None`: Django flushes the session (logout).
    ///
    /// # Examples
    ///
    /// ```
    /// use sesame_codec::{KeyMatch, Signer};
    ///
    /// let stored = sesame_codec::session_auth_hash("pw-field", "old");
    /// let signer = Signer::new("new").with_fallbacks(["old"]);
    /// assert_eq!(signer.verify_session_auth_hash(&stored, "pw-field"), Some(KeyMatch::Fallback(0)));
    /// assert_eq!(signer.verify_session_auth_hash(&stored, "changed"), None);
    /// ```
    ///
    /// # Django
    ///
    /// The hash check in `django.contrib.auth.get_user`
    /// (`django/contrib/auth/__init__.py`).
    #[must_use]
    pub fn verify_session_auth_hash(&self, stored: &str, password_field: &str) -> Option<KeyMatch> {
        self.keys.iter().enumerate().find_map(|(i, key)| {
            let expected = session_auth_hash(password_field, key);
            auth::hash_matches(stored, &expected).then(|| match i {
                0 => KeyMatch::Current,
                _ => KeyMatch::Fallback(i - 1),
            })
        })
    }

    fn secret_key(&self) -> &[u8] {
        // `new` puts SECRET_KEY first and `with_fallbacks` keeps it there.
        self.keys.first().map_or(&[][..], |key| &key[..])
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("secret_key", &format_args!(".."))
            .field("fallbacks", &self.keys.len().saturating_sub(1))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn signs_with_the_current_key_only() {
        let now = OffsetDateTime::from_unix_timestamp(1).unwrap();
        let rotated = Signer::new("new").with_fallbacks(["old"]);
        let signed = rotated.dumps_session(&SessionMap::new(), "s", now);
        let new_only = Signer::new("new");
        let old_only = Signer::new("old");
        assert!(new_only.loads_session(&signed, "s", None, now).is_ok());
        assert_eq!(
            old_only.loads_session(&signed, "s", None, now),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn a_signed_non_object_is_not_a_session() {
        let now = OffsetDateTime::from_unix_timestamp(1).unwrap();
        let signer = Signer::new("k");
        let signed = signer.dumps(&json!([1, 2, 3]), "s", true, now);
        assert_eq!(
            signer.loads_session(&signed, "s", None, now),
            Err(Error::NotAnObject)
        );
    }

    #[test]
    fn auth_hash_prefers_the_current_key() {
        let signer = Signer::new("same").with_fallbacks(["same", "other"]);
        let stored = session_auth_hash("pw", "same");
        assert_eq!(
            signer.verify_session_auth_hash(&stored, "pw"),
            Some(KeyMatch::Current)
        );
        let stored = session_auth_hash("pw", "other");
        assert_eq!(
            signer.verify_session_auth_hash(&stored, "pw"),
            Some(KeyMatch::Fallback(1))
        );
        assert_eq!(signer.verify_session_auth_hash("", "pw"), None);
    }

    #[test]
    fn debug_never_shows_a_key() {
        let signer = Signer::new("super-secret").with_fallbacks(["older-secret"]);
        let debug = format!("{signer:?}");
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(!debug.contains("super"), "{debug}");
    }

    #[test]
    fn is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Signer>();
    }
}
