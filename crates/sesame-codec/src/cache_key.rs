//! Cache keys of the `cache` and `cached_db` engines.

/// Builds a cache key as Django's default `KEY_FUNCTION` does: `KEY_PREFIX:VERSION:key`.
///
/// `key_prefix` and `version` are the cache's `KEY_PREFIX` (default `""`)
/// and `VERSION` (default `1`) from `CACHES`.
///
/// # Examples
///
/// ```
/// assert_eq!(sesame_codec::make_cache_key("", 1, "k"), ":1:k");
/// assert_eq!(sesame_codec::make_cache_key("my:app", 3, "k"), "my:app:3:k");
/// ```
///
/// # Django
///
/// `default_key_func` in `django/core/cache/backends/base.py`:
/// `"%s:%s:%s" % (key_prefix, version, key)`.
#[doc(alias = "default_key_func")]
#[must_use]
pub fn make_cache_key(key_prefix: &str, version: i64, key: &str) -> String {
    format!("{key_prefix}:{version}:{key}")
}

/// Builds the cache key of a session: the engine's prefix and the session key, with no separator.
///
/// `engine_prefix` is [`CACHE_KEY_PREFIX`](crate::CACHE_KEY_PREFIX) for the
/// `cache` engine or [`CACHED_DB_KEY_PREFIX`](crate::CACHED_DB_KEY_PREFIX)
/// for `cached_db`.
///
/// # Examples
///
/// ```
/// use sesame_codec::{CACHE_KEY_PREFIX, session_cache_key};
///
/// assert_eq!(
///     session_cache_key("", 1, CACHE_KEY_PREFIX, "abc12345"),
///     ":1:django.contrib.sessions.cacheabc12345"
/// );
/// ```
///
/// # Django
///
/// `SessionStore.cache_key` in `django/contrib/sessions/backends/cache.py`
/// (`self.cache_key_prefix + self._get_or_create_session_key()`), passed
/// through the cache's `make_key` ([`make_cache_key`]).
#[must_use]
pub fn session_cache_key(
    key_prefix: &str,
    version: i64,
    engine_prefix: &str,
    session_key: &str,
) -> String {
    make_cache_key(
        key_prefix,
        version,
        &format!("{engine_prefix}{session_key}"),
    )
}
