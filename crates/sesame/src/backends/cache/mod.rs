//! What every cache store shares: Django's cache keys and the pickled value.
//!
//! Django's `cache` engine (and the cache half of `cached_db`) stores the
//! session dict itself, pickled by the cache backend, under
//! `KEY_PREFIX:VERSION:<engine prefix><session key>`, with the session's
//! expiry age as the entry's time to live. [`CacheKeys`] builds those keys;
//! [`encode`] and [`decode`] are the value format.

// The helpers serve the cache stores, each behind its own feature.
#![cfg_attr(not(any(feature = "redis", feature = "memcached")), allow(dead_code))]

use sesame_codec::{CACHE_KEY_PREFIX, CACHED_DB_KEY_PREFIX, SessionMap};
use time::OffsetDateTime;

use crate::{Result, SessionKey};

#[cfg(feature = "memcached")]
pub(crate) mod memcached;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// How a cache store names its entries: Django's `KEY_PREFIX`, `VERSION`
/// and the engine's prefix.
///
/// The default is Django's for the `cache` engine with a default `CACHES`
/// entry: `:1:django.contrib.sessions.cache<key>`.
///
/// # Examples
///
/// ```
/// use sesame::backends::CacheKeys;
///
/// let keys = CacheKeys::default().with_key_prefix("myapp").with_version(2);
/// assert_eq!(keys.key_for("abcdefgh"), "myapp:2:django.contrib.sessions.cacheabcdefgh");
/// assert_eq!(
///     CacheKeys::cached_db().key_for("abcdefgh"),
///     ":1:django.contrib.sessions.cached_dbabcdefgh"
/// );
/// ```
///
/// # Django
///
/// `CACHES[SESSION_CACHE_ALIAS]['KEY_PREFIX']` and `['VERSION']`, and
/// `cache_key_prefix` of `backends/cache.py` / `backends/cached_db.py`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeys {
    key_prefix: String,
    version: i64,
    engine_prefix: &'static str,
    /// Every key's beginning, `KEY_PREFIX:VERSION:<engine prefix>`, built
    /// once: a key is then one allocation and a copy.
    full_prefix: String,
}

impl Default for CacheKeys {
    fn default() -> Self {
        Self::build(String::new(), 1, CACHE_KEY_PREFIX)
    }
}

impl CacheKeys {
    fn build(key_prefix: String, version: i64, engine_prefix: &'static str) -> Self {
        let full_prefix = sesame_codec::session_cache_key(&key_prefix, version, engine_prefix, "");
        Self {
            key_prefix,
            version,
            engine_prefix,
            full_prefix,
        }
    }

    /// The keys Django's `cached_db` engine uses for its cache half.
    #[must_use]
    pub fn cached_db() -> Self {
        Self::build(String::new(), 1, CACHED_DB_KEY_PREFIX)
    }

    /// Sets the cache's `KEY_PREFIX` (default `""`).
    #[must_use]
    pub fn with_key_prefix(self, key_prefix: impl Into<String>) -> Self {
        Self::build(key_prefix.into(), self.version, self.engine_prefix)
    }

    /// Sets the cache's `VERSION` (default `1`).
    #[must_use]
    pub fn with_version(self, version: i64) -> Self {
        Self::build(self.key_prefix, version, self.engine_prefix)
    }

    /// The cache's `KEY_PREFIX`.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The cache's `VERSION`.
    #[must_use]
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The engine's prefix: `django.contrib.sessions.cache` or `…cached_db`.
    #[must_use]
    pub fn engine_prefix(&self) -> &'static str {
        self.engine_prefix
    }

    /// The cache key of the session stored under `session_key`.
    #[must_use]
    pub fn key_for(&self, session_key: &str) -> String {
        let mut key = String::with_capacity(self.full_prefix.len() + session_key.len());
        key.push_str(&self.full_prefix);
        key.push_str(session_key);
        key
    }

    /// Every key's beginning: `KEY_PREFIX:VERSION:<engine prefix>`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn full_prefix(&self) -> &str {
        &self.full_prefix
    }

    /// The cache key of `key`.
    pub(crate) fn key(&self, key: &SessionKey) -> String {
        self.key_for(key.as_str())
    }

    /// A Redis `MATCH` pattern for every cache key these keys make: the
    /// full prefix, its glob characters escaped, then `*`.
    #[allow(dead_code, reason = "for RedisStore")]
    pub(crate) fn match_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.full_prefix.len() + 2);
        for c in self.full_prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// The session key a cache key names, if it is one of these keys.
    #[allow(dead_code, reason = "for RedisStore")]
    pub(crate) fn session_key_of(&self, cache_key: &[u8]) -> Option<SessionKey> {
        let key = cache_key.strip_prefix(self.full_prefix.as_bytes())?;
        super::list::parse_listed(key)
    }
}

/// The bytes a cache holds for a session: the dict pickled as Django's
/// cache backends pickle it.
pub(crate) fn encode(data: &SessionMap) -> Vec<u8> {
    sesame_codec::pickle_dumps(data)
}

/// Reads a cached session, refusing anything but a pickled dict of plain data.
///
/// # Errors
///
/// [`Error::Corrupt`](crate::Error::Corrupt) when the bytes are not such a pickle.
pub(crate) fn decode(bytes: &[u8]) -> Result<SessionMap> {
    Ok(sesame_codec::pickle_loads_session(bytes)?)
}

/// The time to live of a record expiring at `expires_at`, in whole
/// milliseconds and at least one (a cache treats 0 as "never" or "now",
/// depending on the cache; neither is what an about-to-expire session wants).
#[allow(dead_code, reason = "for MemcachedStore")]
pub(crate) fn ttl_millis(expires_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let ms = (expires_at - now).whole_milliseconds();
    u64::try_from(ms).unwrap_or(0).max(1)
}

/// The time to live of a record expiring at `expires_at`, in whole seconds
/// rounded up, at least one.
#[allow(dead_code, reason = "for MemcachedStore")]
pub(crate) fn ttl_seconds(expires_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    ttl_millis(expires_at, now).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    #[test]
    fn keys_are_djangos() {
        let keys = CacheKeys::default();
        assert_eq!(
            keys.key_for("v1h62uz2jx0nc07kz04lmec1s8v9wsml"),
            ":1:django.contrib.sessions.cachev1h62uz2jx0nc07kz04lmec1s8v9wsml"
        );
        assert_eq!(
            CacheKeys::cached_db()
                .with_key_prefix("p")
                .key_for("abcdefgh"),
            "p:1:django.contrib.sessions.cached_dbabcdefgh"
        );
        for (prefix, version) in [("", 1), ("a:b", -3), ("x", 0)] {
            let keys = CacheKeys::default()
                .with_version(version)
                .with_key_prefix(prefix);
            assert_eq!(
                keys.key_for("abcdefgh"),
                sesame_codec::session_cache_key(prefix, version, CACHE_KEY_PREFIX, "abcdefgh")
            );
        }
    }

    #[test]
    fn match_patterns_escape_glob_characters_and_keys_strip_back() {
        assert_eq!(
            CacheKeys::default().match_pattern(),
            ":1:django.contrib.sessions.cache*"
        );
        assert_eq!(
            CacheKeys::default()
                .with_key_prefix(r"a*b?[c]\d")
                .match_pattern(),
            r"a\*b\?\[c\]\\d:1:django.contrib.sessions.cache*"
        );
        let keys = CacheKeys::default();
        let session = SessionKey::generate();
        assert_eq!(
            keys.session_key_of(keys.key(&session).as_bytes()),
            Some(session.clone())
        );
        // `cache` is a prefix of `cached_db`: the rest (`d_db…`) is no key.
        let cached_db = CacheKeys::cached_db().key(&session);
        assert_eq!(keys.session_key_of(cached_db.as_bytes()), None);
        assert_eq!(
            keys.session_key_of(b":1:django.contrib.sessions.cache"),
            None
        );
        assert_eq!(keys.session_key_of(b"other"), None);
    }

    #[test]
    fn ttl_is_never_zero_or_negative() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(ttl_millis(now - Duration::seconds(5), now), 1);
        assert_eq!(ttl_millis(now, now), 1);
        assert_eq!(ttl_millis(now + Duration::milliseconds(1500), now), 1500);
        assert_eq!(ttl_seconds(now + Duration::milliseconds(1500), now), 2);
        assert_eq!(
            ttl_seconds(now + Duration::seconds(1_209_600), now),
            1_209_600
        );
    }

    #[test]
    fn values_round_trip_and_reject_non_dicts() {
        let mut data = SessionMap::new();
        data.insert("counter".into(), 3.into());
        assert_eq!(decode(&encode(&data)).expect("decodes"), data);
        assert!(decode(b"7").is_err());
        assert!(decode(b"not a pickle").is_err());
    }
}
