//! Django's wire names. Each is spelled exactly as Django spells it, so that a
//! Rust service and a Django app can share one cookie and one store.

/// Default session cookie name (`SESSION_COOKIE_NAME`, `django/conf/global_settings.py`).
pub const SESSION_COOKIE_NAME: &str = "sessionid";

/// Default session lifetime in seconds: two weeks (`SESSION_COOKIE_AGE`, `django/conf/global_settings.py`).
pub const SESSION_COOKIE_AGE: i64 = 60 * 60 * 24 * 7 * 2;

/// The database table of the `db` engine (`django/contrib/sessions/models.py`, `Session.Meta.db_table`).
pub const DB_TABLE: &str = "django_session";

/// Reserved session key holding a per-session expiry (`django/contrib/sessions/backends/base.py`).
pub const SESSION_EXPIRY_KEY: &str = "_session_expiry";

/// Key written by `set_test_cookie` (`TEST_COOKIE_NAME`, `django/contrib/sessions/backends/base.py`).
pub const TEST_COOKIE_NAME: &str = "testcookie";

/// Value written by `set_test_cookie` (`TEST_COOKIE_VALUE`, `django/contrib/sessions/backends/base.py`).
pub const TEST_COOKIE_VALUE: &str = "worked";

/// Session key of the logged-in user's id (`SESSION_KEY`, `django/contrib/auth/__init__.py`).
pub const AUTH_USER_ID_KEY: &str = "_auth_user_id";

/// Session key of the logged-in user's auth backend (`BACKEND_SESSION_KEY`, `django/contrib/auth/__init__.py`).
pub const AUTH_USER_BACKEND_KEY: &str = "_auth_user_backend";

/// Session key of the logged-in user's password hash (`HASH_SESSION_KEY`, `django/contrib/auth/__init__.py`).
pub const AUTH_USER_HASH_KEY: &str = "_auth_user_hash";

/// Signing salt of the `db`, `cache`, `cached_db` and `file` engines: the
/// qualified name of `SessionStore` (`SessionBase.key_salt`, `django/contrib/sessions/backends/base.py`).
pub const DB_SALT: &str = "django.contrib.sessions.SessionStore";

/// Signing salt of the `signed_cookies` engine (`django/contrib/sessions/backends/signed_cookies.py`).
pub const SIGNED_COOKIES_SALT: &str = "django.contrib.sessions.backends.signed_cookies";

/// Cache key prefix of the `cache` engine (`KEY_PREFIX`, `django/contrib/sessions/backends/cache.py`).
pub const CACHE_KEY_PREFIX: &str = "django.contrib.sessions.cache";

/// Cache key prefix of the `cached_db` engine (`KEY_PREFIX`, `django/contrib/sessions/backends/cached_db.py`).
pub const CACHED_DB_KEY_PREFIX: &str = "django.contrib.sessions.cached_db";

/// Key salt of `_auth_user_hash`, used as is (no `signer` suffix)
/// (`AbstractBaseUser.get_session_auth_hash`, `django/contrib/auth/base_user.py`).
pub const AUTH_HASH_SALT: &str =
    "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash";
