//! Settings: every `SESSION_*` setting with Django's name and default.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// The `SameSite` attribute of the session cookie (`SESSION_COOKIE_SAMESITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax`, Django's default.
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None`; browsers require `Secure` with it.
    None,
}

impl SameSite {
    /// The attribute value as sent in `Set-Cookie`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
            Self::None => "None",
        }
    }
}

/// What a request gets when the session store is down or slower than
/// [`Settings::store_timeout`]: one switch, applied to every store call.
///
/// | | `FailClosed` (default) | `FailOpen` |
/// |---|---|---|
/// | a handler's first session access | the error ([`Error::Timeout`](crate::Error::Timeout) or [`Error::Backend`](crate::Error::Backend)) | an empty session, `Ok` |
/// | the response | 503, `Retry-After: 1`, empty body, whatever the handler returned | the handler's own |
/// | `Set-Cookie` | none | none, not even a removal cookie: the browser keeps its cookie |
/// | writes during the request | not saved | kept in memory for the request, not saved |
/// | `save()`, `flush()`, `cycle_key()` | the error | [`Error::Unsaveable`](crate::Error::Unsaveable), without another store call |
/// | log | `error!` on `sesame::store` | the same |
///
/// Either way a request waits at most one `store_timeout` for the store,
/// and routes that never touch the session never wait for it at all.
/// Under `FailOpen` a save that fails *after* a good load (the store died
/// mid-request) drops the changes, keeps the handler's response and sends
/// no cookie; under `FailClosed` it is a 503.
///
/// # Examples
///
/// ```
/// use sesame::{OutagePolicy, SessionManagerLayer, backends::MemoryStore};
///
/// let layer = SessionManagerLayer::new(MemoryStore::new())
///     .with_outage_policy(OutagePolicy::FailOpen);
/// assert_eq!(layer.settings().outage_policy, OutagePolicy::FailOpen);
/// ```
///
/// # Django
///
/// Django has no such switch: a store error propagates out of
/// `SessionMiddleware` and the request ends in a 500 (a cache backend that
/// cannot create a key raises "Unable to create a new session key").
/// `FailClosed` is that, with the right status (503 + `Retry-After`) and no
/// error page; `FailOpen` is what a site that must stay up for anonymous
/// readers wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutagePolicy {
    /// Answer 503 with `Retry-After` and an empty body.
    #[default]
    FailClosed,
    /// Run the handler with an empty session that cannot be saved, and
    /// send no `Set-Cookie`.
    FailOpen,
}

impl OutagePolicy {
    /// The policy's name as `SESAME_OUTAGE_POLICY` and `--outage-policy` spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailClosed => "fail-closed",
            Self::FailOpen => "fail-open",
        }
    }
}

impl std::str::FromStr for OutagePolicy {
    type Err = SettingsError;

    /// Parses `fail-closed` or `fail-open` (any case, `_` for `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fail-closed" => Ok(Self::FailClosed),
            "fail-open" => Ok(Self::FailOpen),
            _ => Err(SettingsError::new(
                "SESAME_OUTAGE_POLICY",
                format!("expected fail-closed or fail-open, got {s:?}"),
            )),
        }
    }
}

/// Default of [`Settings::cookie_header_limit`]: 8 KiB, the request-header
/// line limit of nginx (`large_client_header_buffers`) and Apache
/// (`LimitRequestFieldSize`).
pub(crate) const DEFAULT_COOKIE_HEADER_LIMIT: usize = 8 * 1024;

/// Default of [`Settings::max_session_size`]: 1 MiB of JSON, memcached's
/// default item size.
pub(crate) const DEFAULT_MAX_SESSION_SIZE: usize = 1024 * 1024;

/// The largest [`Settings::max_session_size`] accepted: 12 MiB, so that
/// whatever is written, signed and base64-encoded (4/3 of the JSON at
/// worst) stays under the 16 MiB the decoder reads back
/// ([`MAX_SESSION_DATA_LEN`](sesame_codec::MAX_SESSION_DATA_LEN)).
pub(crate) const MAX_SESSION_SIZE_LIMIT: usize = 12 * 1024 * 1024;

/// Session settings, named after Django's `SESSION_*` settings with the
/// prefix dropped, with Django's defaults.
///
/// Build them in code (struct update syntax over [`Settings::default`]) or
/// read them from environment variables named exactly as Django's settings
/// with [`Settings::from_env`]. [`Settings::validate`] rejects inconsistent
/// combinations with a message naming the setting; the layer validates on
/// construction.
///
/// | field | Django setting | default |
/// |---|---|---|
/// | `secret_key` | `SECRET_KEY` | none |
/// | `secret_key_fallbacks` | `SECRET_KEY_FALLBACKS` | `[]` |
/// | `cookie_name` | `SESSION_COOKIE_NAME` | `"sessionid"` |
/// | `cookie_age` | `SESSION_COOKIE_AGE` | `1209600` (two weeks) |
/// | `cookie_domain` | `SESSION_COOKIE_DOMAIN` | none (host-only) |
/// | `cookie_path` | `SESSION_COOKIE_PATH` | `"/"` |
/// | `cookie_secure` | `SESSION_COOKIE_SECURE` | `false` — turn on in production |
/// | `cookie_httponly` | `SESSION_COOKIE_HTTPONLY` | `true` |
/// | `cookie_samesite` | `SESSION_COOKIE_SAMESITE` | `Some(SameSite::Lax)` |
/// | `expire_at_browser_close` | `SESSION_EXPIRE_AT_BROWSER_CLOSE` | `false` |
/// | `save_every_request` | `SESSION_SAVE_EVERY_REQUEST` | `false` |
/// | `store_timeout` | `SESAME_STORE_TIMEOUT` (seconds; Sesame only) | 5 s |
/// | `outage_policy` | `SESAME_OUTAGE_POLICY` (`fail-closed`, `fail-open`; Sesame only) | `FailClosed` |
/// | `cookie_header_limit` | `SESAME_COOKIE_HEADER_LIMIT` (bytes; Sesame only) | 8192 |
/// | `max_session_size` | `SESAME_MAX_SESSION_SIZE` (bytes; Sesame only) | 1048576 |
///
/// # Examples
///
/// ```
/// use sesame::Settings;
///
/// let settings = Settings { cookie_age: 30, ..Settings::default() };
/// assert_eq!(settings.cookie_name, "sessionid");
/// settings.validate().unwrap();
///
/// let env = [("SESSION_COOKIE_SAMESITE", "None")];
/// let err = Settings::from_lookup(|name| {
///     env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
/// })
/// .unwrap_err();
/// assert!(err.to_string().starts_with("SESSION_COOKIE_SAMESITE"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SECRET_KEY`: signs data for the Django-format codecs. Never logged.
    pub secret_key: Option<String>,
    /// `SECRET_KEY_FALLBACKS`: older keys still accepted when verifying.
    pub secret_key_fallbacks: Vec<String>,
    /// `SESSION_COOKIE_NAME`.
    #[doc(alias = "SESSION_COOKIE_NAME")]
    pub cookie_name: String,
    /// `SESSION_COOKIE_AGE`, in seconds.
    #[doc(alias = "SESSION_COOKIE_AGE")]
    pub cookie_age: i64,
    /// `SESSION_COOKIE_DOMAIN`; `None` makes a host-only cookie.
    #[doc(alias = "SESSION_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,
    /// `SESSION_COOKIE_PATH`.
    #[doc(alias = "SESSION_COOKIE_PATH")]
    pub cookie_path: String,
    /// `SESSION_COOKIE_SECURE`. Off by default as in Django; turn it on in production (HTTPS).
    #[doc(alias = "SESSION_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// `SESSION_COOKIE_HTTPONLY`.
    #[doc(alias = "SESSION_COOKIE_HTTPONLY")]
    pub cookie_httponly: bool,
    /// `SESSION_COOKIE_SAMESITE`; `None` omits the attribute (Django's `False`).
    #[doc(alias = "SESSION_COOKIE_SAMESITE")]
    pub cookie_samesite: Option<SameSite>,
    /// `SESSION_EXPIRE_AT_BROWSER_CLOSE`.
    #[doc(alias = "SESSION_EXPIRE_AT_BROWSER_CLOSE")]
    pub expire_at_browser_close: bool,
    /// `SESSION_SAVE_EVERY_REQUEST`.
    #[doc(alias = "SESSION_SAVE_EVERY_REQUEST")]
    pub save_every_request: bool,
    /// How long one store call may take before the request gets the outage
    /// policy (Sesame only; Django has no such limit). A store that bounds
    /// its own calls more tightly ([`SessionStore::call_timeout`](crate::backends::SessionStore::call_timeout):
    /// `RedisStore`, one second by default) is not timed a second time.
    pub store_timeout: Duration,
    /// What a request gets while the store is down or too slow (Sesame
    /// only; Django answers 500).
    pub outage_policy: OutagePolicy,
    /// The most bytes of `Cookie` header (all `Cookie` fields together) the
    /// layer reads; a request with more is answered 431 Request Header
    /// Fields Too Large with an empty body, without a store call (Sesame
    /// only; Django reads whatever the server passes on).
    pub cookie_header_limit: usize,
    /// The most bytes a session's JSON may take when saved; a larger session
    /// is not saved and the save fails with
    /// [`Error::TooLarge`](crate::Error::TooLarge), which the layer answers
    /// 413 (Sesame only; Django saves any size its store takes).
    pub max_session_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            secret_key: None,
            secret_key_fallbacks: Vec::new(),
            cookie_name: sesame_codec::SESSION_COOKIE_NAME.to_owned(),
            cookie_age: sesame_codec::SESSION_COOKIE_AGE,
            cookie_domain: None,
            cookie_path: "/".to_owned(),
            cookie_secure: false,
            cookie_httponly: true,
            cookie_samesite: Some(SameSite::Lax),
            expire_at_browser_close: false,
            save_every_request: false,
            store_timeout: Duration::from_secs(5),
            outage_policy: OutagePolicy::FailClosed,
            cookie_header_limit: DEFAULT_COOKIE_HEADER_LIMIT,
            max_session_size: DEFAULT_MAX_SESSION_SIZE,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_key_fallbacks",
                &format_args!("[<{} redacted>]", self.secret_key_fallbacks.len()),
            )
            .field("cookie_name", &self.cookie_name)
            .field("cookie_age", &self.cookie_age)
            .field("cookie_domain", &self.cookie_domain)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_httponly", &self.cookie_httponly)
            .field("cookie_samesite", &self.cookie_samesite)
            .field("expire_at_browser_close", &self.expire_at_browser_close)
            .field("save_every_request", &self.save_every_request)
            .field("store_timeout", &self.store_timeout)
            .field("outage_policy", &self.outage_policy)
            .field("cookie_header_limit", &self.cookie_header_limit)
            .field("max_session_size", &self.max_session_size)
            .finish()
    }
}

/// A setting with a bad value, or settings that contradict each other.
///
/// Its message starts with the name of the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{setting}: {message}")]
pub struct SettingsError {
    /// The Django name of the setting at fault, e.g. `SESSION_COOKIE_AGE`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SettingsError {
    fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

impl Settings {
    /// Reads settings from environment variables named as Django's settings,
    /// then validates them.
    ///
    /// Unset variables keep their defaults. Booleans accept `true`/`false`,
    /// `1`/`0`, `yes`/`no` (any case); `SESSION_COOKIE_SAMESITE` accepts
    /// `Lax`, `Strict`, `None`, or `False`/empty to omit the attribute;
    /// `SECRET_KEY_FALLBACKS` is a JSON array of strings or, when it does not
    /// start with `[`, a comma-separated list.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming the first setting that cannot be parsed or
    /// that contradicts another.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading each variable through `lookup`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut s = Self::default();
        if let Some(v) = lookup("SECRET_KEY").filter(|v| !v.is_empty()) {
            s.secret_key = Some(v);
        }
        if let Some(v) = lookup("SECRET_KEY_FALLBACKS") {
            s.secret_key_fallbacks = parse_fallbacks(&v)?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_NAME") {
            s.cookie_name = v;
        }
        if let Some(v) = lookup("SESSION_COOKIE_AGE") {
            s.cookie_age = v.trim().parse().map_err(|_| {
                SettingsError::new(
                    "SESSION_COOKIE_AGE",
                    format!("expected a whole number of seconds, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_DOMAIN") {
            s.cookie_domain = (!v.is_empty() && v != "None").then_some(v);
        }
        if let Some(v) = lookup("SESSION_COOKIE_PATH") {
            s.cookie_path = v;
        }
        if let Some(v) = lookup("SESSION_COOKIE_SECURE") {
            s.cookie_secure = parse_bool("SESSION_COOKIE_SECURE", &v)?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_HTTPONLY") {
            s.cookie_httponly = parse_bool("SESSION_COOKIE_HTTPONLY", &v)?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_SAMESITE") {
            s.cookie_samesite = match v.trim().to_ascii_lowercase().as_str() {
                "lax" => Some(SameSite::Lax),
                "strict" => Some(SameSite::Strict),
                "none" => Some(SameSite::None),
                "" | "false" | "off" => None,
                _ => {
                    return Err(SettingsError::new(
                        "SESSION_COOKIE_SAMESITE",
                        format!("expected Lax, Strict, None or False, got {v:?}"),
                    ));
                }
            };
        }
        if let Some(v) = lookup("SESSION_EXPIRE_AT_BROWSER_CLOSE") {
            s.expire_at_browser_close = parse_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", &v)?;
        }
        if let Some(v) = lookup("SESSION_SAVE_EVERY_REQUEST") {
            s.save_every_request = parse_bool("SESSION_SAVE_EVERY_REQUEST", &v)?;
        }
        if let Some(v) = lookup("SESAME_STORE_TIMEOUT") {
            let secs: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                .ok_or_else(|| {
                    SettingsError::new(
                        "SESAME_STORE_TIMEOUT",
                        format!("expected seconds, more than 0 and at most 3600, got {v:?}"),
                    )
                })?;
            s.store_timeout = Duration::from_secs_f64(secs);
        }
        if let Some(v) = lookup("SESAME_OUTAGE_POLICY") {
            s.outage_policy = v.parse()?;
        }
        if let Some(v) = lookup("SESAME_COOKIE_HEADER_LIMIT") {
            s.cookie_header_limit = parse_bytes("SESAME_COOKIE_HEADER_LIMIT", &v)?;
        }
        if let Some(v) = lookup("SESAME_MAX_SESSION_SIZE") {
            s.max_session_size = parse_bytes("SESAME_MAX_SESSION_SIZE", &v)?;
        }
        s.validate()?;
        Ok(s)
    }

    /// The signer made of `SECRET_KEY` and `SECRET_KEY_FALLBACKS`, for the
    /// stores that sign session data as Django does.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] for `SECRET_KEY` when it is unset or empty (Django
    /// refuses to start without one too).
    ///
    /// # Examples
    ///
    /// ```
    /// use sesame::Settings;
    ///
    /// assert!(Settings::default().signer().is_err());
    /// let settings = Settings { secret_key: Some("s3cret".into()), ..Settings::default() };
    /// assert!(settings.signer().is_ok());
    /// ```
    pub fn signer(&self) -> Result<sesame_codec::Signer, SettingsError> {
        match self.secret_key.as_deref() {
            Some(key) if !key.is_empty() => Ok(sesame_codec::Signer::new(key)
                .with_fallbacks(self.secret_key_fallbacks.iter().map(String::as_str))),
            _ => Err(SettingsError::new(
                "SECRET_KEY",
                "must be set to sign session data as Django does",
            )),
        }
    }

    /// Checks that the settings are consistent.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming the setting at fault when the cookie name is
    /// not a valid cookie name or too long for `name=value` to fit in 4096
    /// bytes, the age is negative, the path does not start
    /// with `/`, `SameSite=None` comes without `Secure`, a `__Secure-` name
    /// without `Secure`, or a `__Host-` name with a domain, a path other than
    /// `/`, or without `Secure`.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let name = &self.cookie_name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            return Err(SettingsError::new(
                "SESSION_COOKIE_NAME",
                format!("{name:?} is not a valid cookie name"),
            ));
        }
        // `name=value` must fit the 4096 bytes a browser keeps for one cookie
        // (RFC 6265 §6.1) with the longest key accepted; a longer name would
        // make every `Set-Cookie` one the browser drops without a word.
        if name.len() + 1 + crate::key::MAX_KEY_LENGTH > crate::backends::MAX_COOKIE_BYTES {
            return Err(SettingsError::new(
                "SESSION_COOKIE_NAME",
                format!(
                    "is {} bytes; name=value with a key must fit in {} bytes",
                    name.len(),
                    crate::backends::MAX_COOKIE_BYTES
                ),
            ));
        }
        if self.cookie_age < 0 {
            return Err(SettingsError::new(
                "SESSION_COOKIE_AGE",
                "must not be negative",
            ));
        }
        if !self.cookie_path.starts_with('/') || !is_attr_safe(&self.cookie_path) {
            return Err(SettingsError::new(
                "SESSION_COOKIE_PATH",
                format!(
                    "{:?} must start with / and contain no ; or control characters",
                    self.cookie_path
                ),
            ));
        }
        if let Some(domain) = &self.cookie_domain
            && (domain.is_empty() || !is_attr_safe(domain))
        {
            return Err(SettingsError::new(
                "SESSION_COOKIE_DOMAIN",
                format!("{domain:?} is not a valid cookie domain"),
            ));
        }
        if self.cookie_samesite == Some(SameSite::None) && !self.cookie_secure {
            return Err(SettingsError::new(
                "SESSION_COOKIE_SAMESITE",
                "SameSite=None requires SESSION_COOKIE_SECURE = true (browsers reject it otherwise)",
            ));
        }
        if name.starts_with("__Secure-") && !self.cookie_secure {
            return Err(SettingsError::new(
                "SESSION_COOKIE_NAME",
                "a __Secure- cookie requires SESSION_COOKIE_SECURE = true",
            ));
        }
        if name.starts_with("__Host-") {
            if !self.cookie_secure {
                return Err(SettingsError::new(
                    "SESSION_COOKIE_NAME",
                    "a __Host- cookie requires SESSION_COOKIE_SECURE = true",
                ));
            }
            if self.cookie_domain.is_some() {
                return Err(SettingsError::new(
                    "SESSION_COOKIE_DOMAIN",
                    "a __Host- cookie must not set a domain",
                ));
            }
            if self.cookie_path != "/" {
                return Err(SettingsError::new(
                    "SESSION_COOKIE_PATH",
                    "a __Host- cookie must have path /",
                ));
            }
        }
        if self.store_timeout.is_zero() {
            return Err(SettingsError::new(
                "SESAME_STORE_TIMEOUT",
                "must be greater than zero",
            ));
        }
        if self.cookie_header_limit < 1024 {
            return Err(SettingsError::new(
                "SESAME_COOKIE_HEADER_LIMIT",
                "must be at least 1024 bytes (a signed-cookie session alone may take 4096)",
            ));
        }
        if self.max_session_size == 0 || self.max_session_size > MAX_SESSION_SIZE_LIMIT {
            return Err(SettingsError::new(
                "SESAME_MAX_SESSION_SIZE",
                format!(
                    "must be between 1 and {MAX_SESSION_SIZE_LIMIT} bytes (what the decoder reads back)"
                ),
            ));
        }
        Ok(())
    }
}

fn is_attr_safe(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

fn parse_bool(setting: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(SettingsError::new(
            setting,
            format!("expected true or false, got {value:?}"),
        )),
    }
}

fn parse_bytes(setting: &'static str, value: &str) -> Result<usize, SettingsError> {
    value.trim().parse().map_err(|_| {
        SettingsError::new(
            setting,
            format!("expected a number of bytes, got {value:?}"),
        )
    })
}

fn parse_fallbacks(value: &str) -> Result<Vec<String>, SettingsError> {
    let trimmed = value.trim();
    if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|_| {
            SettingsError::new("SECRET_KEY_FALLBACKS", "expected a JSON array of strings")
        })
    } else {
        Ok(trimmed
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_are_djangos() {
        let s = from(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.cookie_name, "sessionid");
        assert_eq!(s.cookie_age, 1_209_600);
        assert_eq!(s.cookie_path, "/");
        assert!(s.cookie_httponly && !s.cookie_secure);
        assert_eq!(s.cookie_samesite, Some(SameSite::Lax));
        assert!(!s.expire_at_browser_close && !s.save_every_request);
    }

    #[test]
    fn environment_overrides_each_setting() {
        let s = from(&[
            ("SECRET_KEY", "k"),
            ("SECRET_KEY_FALLBACKS", r#"["a,b", "c"]"#),
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_AGE", "30"),
            ("SESSION_COOKIE_DOMAIN", "example.com"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_SECURE", "True"),
            ("SESSION_COOKIE_HTTPONLY", "false"),
            ("SESSION_COOKIE_SAMESITE", "Strict"),
            ("SESSION_EXPIRE_AT_BROWSER_CLOSE", "1"),
            ("SESSION_SAVE_EVERY_REQUEST", "yes"),
            ("SESAME_STORE_TIMEOUT", "0.5"),
            ("SESAME_OUTAGE_POLICY", "fail-open"),
            ("SESAME_COOKIE_HEADER_LIMIT", "16384"),
            ("SESAME_MAX_SESSION_SIZE", "65536"),
        ])
        .unwrap();
        assert_eq!(s.secret_key.as_deref(), Some("k"));
        assert_eq!(s.secret_key_fallbacks, ["a,b", "c"]);
        assert_eq!(s.cookie_name, "sid");
        assert_eq!(s.cookie_age, 30);
        assert_eq!(s.cookie_domain.as_deref(), Some("example.com"));
        assert_eq!(s.cookie_path, "/app");
        assert!(s.cookie_secure && !s.cookie_httponly);
        assert_eq!(s.cookie_samesite, Some(SameSite::Strict));
        assert!(s.expire_at_browser_close && s.save_every_request);
        assert_eq!(s.store_timeout, Duration::from_millis(500));
        assert_eq!(s.outage_policy, OutagePolicy::FailOpen);
        assert_eq!(s.cookie_header_limit, 16_384);
        assert_eq!(s.max_session_size, 65_536);
        assert_eq!(
            from(&[("SECRET_KEY_FALLBACKS", "a, b,,c")])
                .unwrap()
                .secret_key_fallbacks,
            ["a", "b", "c"]
        );
        assert_eq!(
            from(&[("SESSION_COOKIE_SAMESITE", "False")])
                .unwrap()
                .cookie_samesite,
            None
        );
    }

    #[test]
    fn inconsistent_settings_name_the_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SESSION_COOKIE_AGE", "two weeks")], "SESSION_COOKIE_AGE"),
            (&[("SESSION_COOKIE_AGE", "-1")], "SESSION_COOKIE_AGE"),
            (
                &[("SESSION_COOKIE_SAMESITE", "None")],
                "SESSION_COOKIE_SAMESITE",
            ),
            (
                &[("SESSION_COOKIE_SAMESITE", "sideways")],
                "SESSION_COOKIE_SAMESITE",
            ),
            (
                &[("SESSION_COOKIE_SECURE", "maybe")],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-s"),
                    ("SESSION_COOKIE_SECURE", "1"),
                    ("SESSION_COOKIE_DOMAIN", "a.b"),
                ],
                "SESSION_COOKIE_DOMAIN",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-s"),
                    ("SESSION_COOKIE_SECURE", "1"),
                    ("SESSION_COOKIE_PATH", "/x"),
                ],
                "SESSION_COOKIE_PATH",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Host-s")],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Secure-s")],
                "SESSION_COOKIE_NAME",
            ),
            (&[("SESSION_COOKIE_NAME", "a b")], "SESSION_COOKIE_NAME"),
            (&[("SESSION_COOKIE_PATH", "app")], "SESSION_COOKIE_PATH"),
            (&[("SECRET_KEY_FALLBACKS", "[1,")], "SECRET_KEY_FALLBACKS"),
            (&[("SESAME_STORE_TIMEOUT", "0")], "SESAME_STORE_TIMEOUT"),
            (&[("SESAME_OUTAGE_POLICY", "maybe")], "SESAME_OUTAGE_POLICY"),
            (
                &[("SESAME_COOKIE_HEADER_LIMIT", "100")],
                "SESAME_COOKIE_HEADER_LIMIT",
            ),
            (
                &[("SESAME_MAX_SESSION_SIZE", "0")],
                "SESAME_MAX_SESSION_SIZE",
            ),
            (
                &[("SESAME_MAX_SESSION_SIZE", "16777216")],
                "SESAME_MAX_SESSION_SIZE",
            ),
        ];
        for (env, setting) in cases {
            let err = from(env).unwrap_err();
            assert_eq!(err.setting, *setting, "{env:?}");
            assert!(err.to_string().starts_with(setting));
        }
    }

    #[test]
    fn cookie_prefixes_and_name_length_are_checked_at_their_edges() {
        let host = Settings {
            cookie_name: "__Host-sessionid".to_owned(),
            cookie_secure: true,
            ..Settings::default()
        };
        assert_eq!(host.validate(), Ok(()));
        let secure = Settings {
            cookie_name: "__Secure-sessionid".to_owned(),
            cookie_secure: true,
            cookie_path: "/app".to_owned(),
            cookie_domain: Some("example.com".to_owned()),
            ..Settings::default()
        };
        assert_eq!(secure.validate(), Ok(()));
        let named = |len: usize| Settings {
            cookie_name: "s".repeat(len),
            ..Settings::default()
        };
        let longest = crate::backends::MAX_COOKIE_BYTES - 1 - crate::key::MAX_KEY_LENGTH;
        assert_eq!(named(longest).validate(), Ok(()));
        let err = named(longest + 1).validate().unwrap_err();
        assert_eq!(err.setting, "SESSION_COOKIE_NAME");
    }

    #[test]
    fn a_store_timeout_of_zero_is_refused_by_a_rule_that_excludes_zero() {
        let from = |v: &str| {
            Settings::from_lookup(|name| (name == "SESAME_STORE_TIMEOUT").then(|| v.to_owned()))
        };
        for bad in ["0", "-1", "3601", "inf", "soon"] {
            let err = from(bad).unwrap_err().to_string();
            assert!(err.contains("more than 0 and at most 3600"), "{err}");
        }
        assert_eq!(
            from("3600").unwrap().store_timeout,
            Duration::from_secs(3600)
        );
        assert_eq!(
            from("0.5").unwrap().store_timeout,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = Settings {
            secret_key: Some("hunter2".into()),
            secret_key_fallbacks: vec!["old-secret".into()],
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("old-secret"));
    }
}
