//! Django's `django.contrib.auth` session keys: log a user in and out, read
//! who is logged in, and check the password hash Django ties a login to.

use serde_json::Value;
use sesame_codec::{AUTH_USER_BACKEND_KEY, AUTH_USER_HASH_KEY, AUTH_USER_ID_KEY, KeyMatch};

use crate::{Error, Result, Session};

impl Session {
    /// The id of the logged-in user (`_auth_user_id`), as Django stores it: a string.
    ///
    /// A number (written by an old Django or another client) is returned as its text.
    ///
    /// # Errors
    ///
    /// A store error while loading.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
    /// # let session = sesame::Session::new(sesame::backends::MemoryStore::new(), None);
    /// assert_eq!(session.auth_user_id().await?, None);
    /// session.login("42", "django.contrib.auth.backends.ModelBackend", None).await?;
    /// assert_eq!(session.auth_user_id().await?.as_deref(), Some("42"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Django
    ///
    /// `django.contrib.auth._get_user_session_key(request)`.
    pub async fn auth_user_id(&self) -> Result<Option<String>> {
        Ok(match self.get_value(AUTH_USER_ID_KEY).await? {
            Some(Value::String(id)) => Some(id),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }

    /// Logs `user_id` in, as Django's `login()` does: a new session key
    /// against fixation (or a fresh, empty session when another user was
    /// logged in), then `_auth_user_id`, `_auth_user_backend` and
    /// `_auth_user_hash`.
    ///
    /// `password_field` is the user's stored password hash (Django's
    /// `user.password`, e.g. `pbkdf2_sha256$…`); with it, `_auth_user_hash` is
    /// computed as Django's `get_session_auth_hash()` does, so a Django app
    /// sharing the session honours the login and ends it when the password
    /// changes. Without it, the hash is empty, as for a user model without
    /// passwords.
    ///
    /// # Errors
    ///
    /// A store error, or [`Error::Unsaveable`] when `password_field` is given
    /// but the settings have no `SECRET_KEY` to compute the hash with.
    ///
    /// # Django
    ///
    /// `django.contrib.auth.login(request, user, backend)`.
    pub async fn login(
        &self,
        user_id: &str,
        backend: &str,
        password_field: Option<&str>,
    ) -> Result<()> {
        let hash = match password_field {
            Some(field) => self
                .settings()
                .signer()
                .map_err(|_| Error::Unsaveable("SECRET_KEY is needed for _auth_user_hash"))?
                .session_auth_hash(field),
            None => String::new(),
        };
        if self.contains(AUTH_USER_ID_KEY).await? {
            let same_user = self.auth_user_id().await?.as_deref() == Some(user_id);
            let stored_hash: Option<String> = self.get(AUTH_USER_HASH_KEY).await.unwrap_or(None);
            let same_hash = hash.is_empty() || stored_hash.as_deref() == Some(hash.as_str());
            if !(same_user && same_hash) {
                // Never reuse another user's session.
                self.flush().await?;
            }
        } else {
            self.cycle_key().await?;
        }
        self.insert(AUTH_USER_ID_KEY, user_id).await?;
        self.insert(AUTH_USER_BACKEND_KEY, backend).await?;
        self.insert(AUTH_USER_HASH_KEY, hash).await
    }

    /// Logs the user out: the session is flushed (Django's `logout()`).
    ///
    /// # Errors
    ///
    /// A store error while deleting.
    pub async fn logout(&self) -> Result<()> {
        self.flush().await
    }

    /// Checks the session's `_auth_user_hash` against the user's current
    /// password field, as Django does on every request that resolves
    /// `request.user`.
    ///
    /// Returns `true` when the login stands. A hash made with a key in
    /// `SECRET_KEY_FALLBACKS` is rewritten with `SECRET_KEY` after cycling the
    /// session key; a hash that matches no key flushes the session (the
    /// password changed, or the session was forged) and returns `false`.
    ///
    /// # Errors
    ///
    /// A store error, or [`Error::Unsaveable`] without a `SECRET_KEY`.
    ///
    /// # Django
    ///
    /// The session check in `django.contrib.auth.get_user()`.
    pub async fn verify_auth_user_hash(&self, password_field: &str) -> Result<bool> {
        let signer = self
            .settings()
            .signer()
            .map_err(|_| Error::Unsaveable("SECRET_KEY is needed for _auth_user_hash"))?;
        let stored: Option<String> = self.get(AUTH_USER_HASH_KEY).await.unwrap_or(None);
        match stored.and_then(|s| signer.verify_session_auth_hash(&s, password_field)) {
            Some(KeyMatch::Current) => Ok(true),
            Some(KeyMatch::Fallback(_)) => {
                self.cycle_key().await?;
                self.insert(AUTH_USER_HASH_KEY, signer.session_auth_hash(password_field))
                    .await?;
                Ok(true)
            }
            None => {
                self.flush().await?;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::backends::MemoryStore;
    use crate::{Session, Settings};

    const BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
    const PASSWORD: &str = "pbkdf2_sha256$1000000$djcompat7$hash=";

    fn session(secret: &str, fallbacks: &[&str]) -> (MemoryStore, Session) {
        let store = MemoryStore::new();
        let settings = Settings {
            secret_key: Some(secret.to_owned()),
            secret_key_fallbacks: fallbacks.iter().map(|k| (*k).to_owned()).collect(),
            ..Settings::default()
        };
        (store.clone(), Session::with_settings(store, None, settings))
    }

    #[tokio::test]
    async fn login_rotates_the_key_and_writes_djangos_keys() {
        let (_, s) = session("k", &[]);
        s.insert("cart", 3).await.unwrap();
        s.save().await.unwrap();
        let before = s.session_key();
        s.login("7", BACKEND, Some(PASSWORD)).await.unwrap();
        assert_ne!(s.session_key(), before);
        assert_eq!(
            s.get::<i64>("cart").await.unwrap(),
            Some(3),
            "data survives"
        );
        assert_eq!(s.auth_user_id().await.unwrap().as_deref(), Some("7"));
        let hash: String = s.get("_auth_user_hash").await.unwrap().unwrap();
        assert_eq!(hash, sesame_codec::session_auth_hash(PASSWORD, "k"));
        assert!(s.verify_auth_user_hash(PASSWORD).await.unwrap());
    }

    #[tokio::test]
    async fn login_as_another_user_starts_an_empty_session() {
        let (_, s) = session("k", &[]);
        s.login("7", BACKEND, None).await.unwrap();
        s.insert("private", true).await.unwrap();
        s.login("8", BACKEND, None).await.unwrap();
        assert_eq!(s.get::<bool>("private").await.unwrap(), None);
        assert_eq!(s.auth_user_id().await.unwrap().as_deref(), Some("8"));
    }

    #[tokio::test]
    async fn a_changed_password_logs_the_session_out() {
        let (_, s) = session("k", &[]);
        s.login("7", BACKEND, Some(PASSWORD)).await.unwrap();
        assert!(!s.verify_auth_user_hash("pbkdf2_sha256$new").await.unwrap());
        assert_eq!(s.auth_user_id().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_hash_under_a_fallback_key_is_renewed() {
        let (store, old) = session("old", &[]);
        old.login("7", BACKEND, Some(PASSWORD)).await.unwrap();
        old.save().await.unwrap();
        let settings = Settings {
            secret_key: Some("new".into()),
            secret_key_fallbacks: vec!["old".into()],
            ..Settings::default()
        };
        let s = Session::with_settings(store, old.session_key(), settings);
        assert!(s.verify_auth_user_hash(PASSWORD).await.unwrap());
        assert_ne!(s.session_key(), old.session_key(), "the key is cycled");
        let hash: String = s.get("_auth_user_hash").await.unwrap().unwrap();
        assert_eq!(hash, sesame_codec::session_auth_hash(PASSWORD, "new"));
    }

    #[tokio::test]
    async fn a_numeric_user_id_reads_as_text() {
        let (_, s) = session("k", &[]);
        s.insert("_auth_user_id", 12).await.unwrap();
        assert_eq!(s.auth_user_id().await.unwrap().as_deref(), Some("12"));
    }
}
