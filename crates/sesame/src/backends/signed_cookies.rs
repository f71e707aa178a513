//! `SignedCookieStore`: the session lives in the signed cookie itself
//! (Django's `django.contrib.sessions.backends.signed_cookies`).

use std::fmt;
use std::time::Duration as StdDuration;

use sesame_codec::{SESSION_COOKIE_AGE, SESSION_COOKIE_NAME, SIGNED_COOKIES_SALT, Signer};
use time::{Duration, OffsetDateTime};

use super::base::{Record, Saved, SessionStore, Version};
use crate::{Error, KeyKind, Result, SessionKey};

/// The most bytes a browser keeps for one cookie's `name=value`.
///
/// RFC 6265 §6.1 asks browsers for at least 4096 bytes per cookie, and that
/// is what they give: a longer cookie is dropped without a word.
pub const MAX_COOKIE_BYTES: usize = 4096;

/// Sessions kept in the cookie itself, signed with `SECRET_KEY`: nothing is
/// stored on the server.
///
/// The session key *is* the cookie value: the session's JSON, compressed
/// when that is shorter, signed as Django's `signing.dumps` signs it with
/// the salt [`SIGNED_COOKIES_SALT`]. A Django app on the `signed_cookies`
/// engine with the same `SECRET_KEY` reads Sesame's cookies and Sesame
/// reads its cookies; values signed with one of `SECRET_KEY_FALLBACKS`
/// (the [`Signer`]'s fallbacks) are accepted.
///
/// - **Expiry.** A cookie is valid until its signing timestamp plus
///   `max_age` ([`with_max_age`](Self::with_max_age), Django's
///   `SESSION_COOKIE_AGE`), checked on every load, as Django checks it. The
///   store writes the timestamp `record.expires_at - max_age`, so the cookie
///   stops being valid exactly when the record expires, and
///   [`load`](SessionStore::load) reports `expires_at = timestamp + max_age`
///   (whole seconds). With the session's expiry at its default this *is*
///   the signing time, byte for byte what Django writes.
/// - **Nothing to revoke.** [`delete`](SessionStore::delete) succeeds and
///   does nothing: a copy of a cookie stays valid until it expires, after
///   `flush()` (logout) too. Only rotating `SECRET_KEY` without keeping the
///   old key as a fallback ends every session at once.
/// - **Nothing to compare.** [`save`](SessionStore::save) always writes
///   (never [`Error::Conflict`] or [`Error::Missing`]), and returns a new
///   key: the re-signed data. Concurrent requests on one session each get a
///   cookie, and the browser keeps the last one.
/// - **Size.** A cookie over [`MAX_COOKIE_BYTES`] (`name=value`) is
///   refused with [`Error::TooLarge`] rather than sent to a browser that
///   would drop it.
///
/// Cloning is cheap (the keys are shared); `Debug` never shows a key.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::backends::{Record, SessionStore, SignedCookieStore};
/// use sesame::{Signer, codec::SessionMap};
/// use time::{Duration, OffsetDateTime};
///
/// let store = SignedCookieStore::new(Signer::new("SECRET_KEY"));
/// let mut data = SessionMap::new();
/// data.insert("counter".into(), 1.into());
/// let record = Record::new(data.clone(), OffsetDateTime::now_utc() + Duration::weeks(2));
///
/// let saved = store.create(&record).await?;
/// assert!(saved.key.as_str().starts_with("eyJjb3VudGVyIjoxfQ:")); // {"counter":1}
/// let loaded = store.load(&saved.key).await?.expect("a valid cookie loads");
/// assert_eq!(*loaded.data, data);
/// # Ok(()) }
/// ```
///
/// With the middleware:
///
/// ```
/// use sesame::backends::SignedCookieStore;
/// use sesame::{SessionManagerLayer, Signer};
///
/// let signer = Signer::new("new SECRET_KEY").with_fallbacks(["old SECRET_KEY"]);
/// let layer = SessionManagerLayer::new(SignedCookieStore::new(signer).with_max_age(3600))
///     .with_cookie_age(3600);
/// # let _ = layer;
/// ```
///
/// # Django
///
/// `django.contrib.sessions.backends.signed_cookies.SessionStore`. The
/// differences:
///
/// - Django signs with the current time and validates against
///   `SESSION_COOKIE_AGE` whatever `set_expiry()` said (Django ticket
///   #19201). Sesame backdates (or postdates) the timestamp so that the
///   cookie's validity ends when the session expires: a cookie written
///   after `set_expiry(300)` is refused by both Sesame and Django five
///   minutes later, not two weeks later. Both accept each other's cookies.
/// - Django's `exists()` always answers `False` (it only serves its key
///   collision check); [`exists`](SessionStore::exists) here answers whether
///   the cookie value is a live session, as for every other store.
/// - Django sends a cookie of any size; Sesame refuses one a browser would drop.
#[doc(alias = "signed_cookies")]
#[derive(Clone)]
pub struct SignedCookieStore {
    signer: Signer,
    /// `SESSION_COOKIE_AGE`, in seconds; never negative.
    max_age: i64,
    /// Bytes the cookie's `name=` takes out of [`MAX_COOKIE_BYTES`].
    name_len: usize,
}

impl SignedCookieStore {
    /// A store signing with `signer`'s `SECRET_KEY` (and accepting its
    /// fallbacks), with Django's default `SESSION_COOKIE_AGE` of two weeks
    /// and cookie name `sessionid`.
    ///
    /// # Django
    ///
    /// `SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"`
    /// with `SECRET_KEY` and `SECRET_KEY_FALLBACKS`.
    #[must_use]
    pub fn new(signer: Signer) -> Self {
        Self {
            signer,
            max_age: SESSION_COOKIE_AGE,
            name_len: SESSION_COOKIE_NAME.len() + 1,
        }
    }

    /// Sets how long a cookie stays valid after its timestamp, in seconds
    /// (a negative value counts as 0).
    ///
    /// Use the same value as the layer's
    /// [`with_cookie_age`](crate::SessionManagerLayer::with_cookie_age), and
    /// as the Django app's `SESSION_COOKIE_AGE` if one shares the cookie:
    /// both sides check a cookie's age against it.
    ///
    /// # Django
    ///
    /// `SESSION_COOKIE_AGE`, which `signed_cookies` passes to
    /// `signing.loads(max_age=…)`.
    #[doc(alias = "SESSION_COOKIE_AGE")]
    #[must_use]
    pub fn with_max_age(mut self, seconds: i64) -> Self {
        self.max_age = seconds.max(0);
        self
    }

    /// Sets the cookie's name, as given to the layer's
    /// [`with_cookie_name`](crate::SessionManagerLayer::with_cookie_name);
    /// only used to keep `name=value` within [`MAX_COOKIE_BYTES`].
    ///
    /// # Django
    ///
    /// `SESSION_COOKIE_NAME`.
    #[must_use]
    pub fn with_cookie_name(mut self, name: &str) -> Self {
        self.name_len = name.len() + 1;
        self
    }

    /// The cookie's validity after its timestamp, in seconds.
    #[must_use]
    pub fn max_age(&self) -> i64 {
        self.max_age
    }

    /// The longest cookie value this store will issue.
    fn value_limit(&self) -> usize {
        MAX_COOKIE_BYTES.saturating_sub(self.name_len)
    }

    /// `load` with the clock passed in (tests use Django's frozen time).
    fn load_at(&self, key: &SessionKey, now: OffsetDateTime) -> Result<Option<Record>> {
        if key.kind() != KeyKind::Signed {
            // A random key is not a signed value: it names no session here.
            return Ok(None);
        }
        let signed = key.as_str();
        let max_age = StdDuration::from_secs(self.max_age.unsigned_abs());
        let data = self
            .signer
            .loads_session(signed, SIGNED_COOKIES_SALT, Some(max_age), now)?;
        let expires_at = signed_at(signed)?.saturating_add(Duration::seconds(self.max_age));
        Ok(Some(Record {
            data: data.into(),
            expires_at,
            version: Some(version_of(signed)),
        }))
    }

    /// Signs `record` into a new key whose validity ends at `record.expires_at`.
    fn sign(&self, record: &Record) -> Result<Saved> {
        let timestamp = record
            .expires_at
            .saturating_sub(Duration::seconds(self.max_age));
        let value = self
            .signer
            .dumps_session(&record.data, SIGNED_COOKIES_SALT, timestamp);
        let limit = self.value_limit();
        if value.len() > limit {
            return Err(Error::TooLarge {
                len: value.len() + self.name_len,
                limit: MAX_COOKIE_BYTES,
            });
        }
        let key = SessionKey::from_signed_bytes(value.as_bytes())
            .expect("a signed value is URL-safe base64, `:` and `.`, and its length was checked");
        Ok(Saved {
            version: version_of(key.as_str()),
            key,
        })
    }
}

/// The timestamp of a value that passed verification (`payload:ts:sig`).
fn signed_at(signed: &str) -> Result<OffsetDateTime> {
    let timestamp = signed
        .rsplit(':')
        .nth(1)
        .ok_or(sesame_codec::Error::Malformed("no timestamp field"))?;
    let seconds = sesame_codec::b62_decode(timestamp)?;
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| Error::Corrupt(sesame_codec::Error::Malformed("timestamp out of range")))
}

/// The version of a cookie value: its signature, which covers data and timestamp.
fn version_of(signed: &str) -> Version {
    let signature = signed.rsplit(':').next().unwrap_or(signed);
    Version::new(signature.as_bytes().to_vec())
}

impl fmt::Debug for SignedCookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCookieStore")
            .field("signer", &self.signer)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl SessionStore for SignedCookieStore {
    /// [`KeyKind::Signed`]: cookie values are signed sessions.
    fn key_kind(&self) -> KeyKind {
        KeyKind::Signed
    }

    /// Verifies the cookie value with every key and decodes it.
    ///
    /// A [`KeyKind::Random`] key is no signed value: `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a value Django would turn into an empty
    /// session: a bad signature (tampered, or signed with a key no longer
    /// configured), a timestamp older than `max_age`
    /// ([`codec::Error::Expired`](sesame_codec::Error::Expired)), a
    /// malformed value, or data that is not a JSON object. The
    /// [`Session`](crate::Session) logs it on `sesame::security` and
    /// re-issues a cookie holding an empty session, as Django does.
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.load_at(key, OffsetDateTime::now_utc())
    }

    /// Signs `record` into a new cookie value.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when `name=value` would exceed [`MAX_COOKIE_BYTES`].
    async fn create(&self, record: &Record) -> Result<Saved> {
        self.sign(record)
    }

    /// Signs `record` into a new cookie value; `key` and `record.version`
    /// are not consulted (nothing is stored to compare them with).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when `name=value` would exceed [`MAX_COOKIE_BYTES`].
    async fn save(&self, _key: &SessionKey, record: &Record) -> Result<Saved> {
        self.sign(record)
    }

    /// Does nothing: a signed cookie cannot be revoked on the server. The
    /// middleware removes it from the browser; a copy stays valid until it
    /// expires.
    ///
    /// # Errors
    ///
    /// None.
    async fn delete(&self, _key: &SessionKey) -> Result<()> {
        Ok(())
    }

    /// Whether `key` is a valid, live signed session.
    ///
    /// # Errors
    ///
    /// None: a value that does not verify is simply no session.
    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        Ok(matches!(
            self.load_at(key, OffsetDateTime::now_utc()),
            Ok(Some(_))
        ))
    }

    /// Always fails: a cookie's expiry is in its signed timestamp, so it
    /// moves only by re-signing, which gives a new key.
    /// [`save`](SessionStore::save) does that, and it is what the
    /// [`Session`](crate::Session) calls for a [`KeyKind::Signed`] store.
    ///
    /// # Errors
    ///
    /// Always [`Error::Unsaveable`].
    async fn touch(&self, _key: &SessionKey, _until: OffsetDateTime) -> Result<()> {
        Err(Error::Unsaveable(
            "a signed cookie's expiry moves only by re-signing it: save the session instead",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use sesame_codec::SessionMap;

    use super::*;

    /// `settings.SECRET_KEY` of `shared/django-compat/vectors.json`.
    const SECRET_KEY: &str = "djcompat-primary-secret-key-do-not-use-in-production-0123456789";
    const FALLBACK: &str = "djcompat-fallback-one-secret-key-0123456789abcdefghijklmnopqrstuv";
    /// The vectors' frozen time.
    const FROZEN: i64 = 1_700_000_000;

    /// `middleware_cases["signed_cookies_new"]`: Django's cookie for
    /// `{"counter": 1}` at the frozen time.
    const DJANGO_COUNTER_1: &str =
        "eyJjb3VudGVyIjoxfQ:1r31eq:4hmpoJlz8JKzeYAe22rQ6Js6jxDeO_ON1nZxdMdOPmE";
    /// `middleware_cases["signed_cookies_bad_cookie_read"]`: the tampered
    /// request cookie, and the empty session Django re-issues for it.
    const DJANGO_TAMPERED: &str =
        "eyAjb3VudGVyIjozfQ:1r31eq:AsBBUhT0keLCeSKs72RlOujopC1RkESymBLqlB8yftE";
    const DJANGO_EMPTY: &str = "e30:1r31eq:R4haS6xfjJs2YHEEvthRMSPYo4q55CjrT0aROgJZ3zI";
    /// `encode_cases["unicode_values"].signed_cookie`: compressed, non-ASCII,
    /// and the same data signed with `SECRET_KEY_FALLBACKS[0]`.
    const DJANGO_UNICODE: &str = ".eJw9jkEPwiAMhf-K6dlDlYHgb-Gy0TpZ2DBkxIPZf5di4uXLS997bT8wF-Y9bjPc4ekrIruU8ukt8mFKIjjD8mqmr0azbrxdg692dOyrwmCEIwkn1ye2NXjNS-wlsqqZxIh_HQZZWvbUA6jZCSl06k4JhLxOcft91m6hwgscXypoNsE:1r31eq:6yQYtYOJ_D0Z7cjmrIhYRptxwnD7hFF5SpufsjWH7J0";
    const DJANGO_UNICODE_FALLBACK: &str = ".eJw9jkEPwiAMhf-K6dlDlYHgb-Gy0TpZ2DBkxIPZf5di4uXLS997bT8wF-Y9bjPc4ekrIruU8ukt8mFKIjjD8mqmr0azbrxdg692dOyrwmCEIwkn1ye2NXjNS-wlsqqZxIh_HQZZWvbUA6jZCSl06k4JhLxOcft91m6hwgscXypoNsE:1r31eq:Gmb-3awMgVHHA2YoE21zWknlxtvZIgWVlPFhcKpiDAk";

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn store() -> SignedCookieStore {
        SignedCookieStore::new(Signer::new(SECRET_KEY).with_fallbacks([FALLBACK]))
    }

    fn key(value: &str) -> SessionKey {
        SessionKey::from_signed_bytes(value.as_bytes()).unwrap()
    }

    fn map(value: Value) -> SessionMap {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn djangos_cookie_loads_with_its_expiry() {
        let record = store()
            .load_at(&key(DJANGO_COUNTER_1), at(FROZEN))
            .unwrap()
            .unwrap();
        assert_eq!(*record.data, map(json!({"counter": 1})));
        assert_eq!(record.expires_at, at(FROZEN + SESSION_COOKIE_AGE));
        assert!(record.version.is_some());
    }

    #[test]
    fn djangos_compressed_unicode_cookie_loads_under_either_key() {
        let want = map(json!({
            "greeting": "h\u{e9}llo w\u{f6}rld",
            "jp": "\u{65e5}\u{672c}\u{8a9e}\u{30c6}\u{30ad}\u{30b9}\u{30c8}",
            "emoji": "\u{1f600}\u{1f44d}",
            "rtl": "\u{5e9}\u{5dc}\u{5d5}\u{5dd}",
            "combining": "e\u{301}",
        }));
        for value in [DJANGO_UNICODE, DJANGO_UNICODE_FALLBACK] {
            let record = store().load_at(&key(value), at(FROZEN)).unwrap().unwrap();
            assert_eq!(*record.data, want);
        }
        // Without the fallback key, the second is a bad signature.
        let current_only = SignedCookieStore::new(Signer::new(SECRET_KEY));
        assert!(matches!(
            current_only.load_at(&key(DJANGO_UNICODE_FALLBACK), at(FROZEN)),
            Err(Error::Corrupt(sesame_codec::Error::BadSignature))
        ));
    }

    #[test]
    fn what_we_sign_is_byte_identical_to_django() {
        let expires_at = at(FROZEN + SESSION_COOKIE_AGE);
        let saved = store()
            .sign(&Record::new(map(json!({"counter": 1})), expires_at))
            .unwrap();
        assert_eq!(saved.key.as_str(), DJANGO_COUNTER_1);
        let empty = store()
            .sign(&Record::new(SessionMap::new(), expires_at))
            .unwrap();
        assert_eq!(empty.key.as_str(), DJANGO_EMPTY);
    }

    #[test]
    fn a_tampered_cookie_is_corrupt() {
        assert!(matches!(
            store().load_at(&key(DJANGO_TAMPERED), at(FROZEN)),
            Err(Error::Corrupt(sesame_codec::Error::BadSignature))
        ));
        assert!(matches!(
            store().load_at(&key("not-a-signed-value"), at(FROZEN)),
            Err(Error::Corrupt(sesame_codec::Error::BadSignature))
        ));
    }

    #[test]
    fn a_cookie_older_than_max_age_is_corrupt_expired() {
        let store = store();
        let last_valid = at(FROZEN + SESSION_COOKIE_AGE);
        assert!(
            store
                .load_at(&key(DJANGO_COUNTER_1), last_valid)
                .unwrap()
                .is_some()
        );
        let too_late = last_valid + Duration::seconds(1);
        assert!(matches!(
            store.load_at(&key(DJANGO_COUNTER_1), too_late),
            Err(Error::Corrupt(sesame_codec::Error::Expired { .. }))
        ));
        // A shorter max_age refuses it sooner.
        let short = store.with_max_age(60);
        assert!(matches!(
            short.load_at(&key(DJANGO_COUNTER_1), at(FROZEN + 61)),
            Err(Error::Corrupt(sesame_codec::Error::Expired { .. }))
        ));
    }

    #[test]
    fn a_cookie_is_valid_exactly_until_the_record_expires() {
        let store = store().with_max_age(3600);
        let expires_at = at(FROZEN + 300);
        let saved = store
            .sign(&Record::new(map(json!({"a": 1})), expires_at))
            .unwrap();
        let loaded = store.load_at(&saved.key, at(FROZEN)).unwrap().unwrap();
        assert_eq!(loaded.expires_at, expires_at);
        assert!(store.load_at(&saved.key, expires_at).unwrap().is_some());
        assert!(matches!(
            store.load_at(&saved.key, expires_at + Duration::seconds(1)),
            Err(Error::Corrupt(sesame_codec::Error::Expired { .. }))
        ));
        // Beyond max_age from now: a timestamp in the future, valid until then.
        let far = at(FROZEN + 10 * 3600);
        let saved = store.sign(&Record::new(map(json!({"a": 1})), far)).unwrap();
        let loaded = store
            .load_at(&saved.key, far - Duration::seconds(1))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.expires_at, far);
    }

    /// `len` characters that zlib cannot shrink much (xorshift noise).
    fn noise(len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut state: u32 = 0x9e37_79b9;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(ALPHABET[state as usize % ALPHABET.len()])
            })
            .collect()
    }

    #[test]
    fn an_oversized_session_is_a_clear_error() {
        let record = Record::new(map(json!({"blob": noise(6000)})), at(FROZEN));
        match store().sign(&record) {
            Err(Error::TooLarge { len, limit }) => {
                assert!(len > MAX_COOKIE_BYTES, "{len}");
                assert_eq!(limit, MAX_COOKIE_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let err = store().sign(&record).unwrap_err().to_string();
        assert!(err.contains("4096"), "{err}");
    }

    #[test]
    fn the_cookie_name_counts_towards_the_limit() {
        let store = store();
        // Grow the data until `sessionid=value` is just under the limit.
        let mut len = 2500;
        let record = loop {
            let record = Record::new(map(json!({"v": noise(len)})), at(FROZEN));
            let value = store.sign(&record).unwrap().key;
            if value.as_str().len() + "sessionid=".len() > MAX_COOKIE_BYTES - 20 {
                break record;
            }
            len += 4;
        };
        let long_name = store.with_cookie_name(&"n".repeat(40));
        assert!(matches!(
            long_name.sign(&record),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn random_keys_name_no_session() {
        assert!(
            store()
                .load_at(&SessionKey::generate(), at(FROZEN))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn debug_never_shows_a_key() {
        let debug = format!("{:?}", store());
        assert!(!debug.contains("djcompat"), "{debug}");
        assert!(debug.contains("max_age: 1209600"), "{debug}");
    }

    #[test]
    fn is_send_sync_clone() {
        fn assert_bounds<T: Send + Sync + Clone + fmt::Debug>() {}
        assert_bounds::<SignedCookieStore>();
    }
}
