//! Session expiry: the values `set_expiry` accepts and Django's age and date math.
//!
//! All functions here are pure: the current time is an argument.

use serde_json::Value;
use sesame_codec::ExpiryValue;
use time::{Duration, OffsetDateTime};

/// A per-session expiry, the argument of [`Session::set_expiry`](crate::Session::set_expiry).
///
/// # Examples
///
/// ```
/// use sesame::Expiry;
/// use time::Duration;
///
/// assert_eq!(Expiry::from(0), Expiry::BrowserClose);
/// assert_eq!(Expiry::from(300), Expiry::IdleSeconds(300));
/// assert_eq!(Expiry::from(None::<i64>), Expiry::Default);
/// assert!(matches!(Expiry::from(Duration::hours(1)), Expiry::In(_)));
/// ```
///
/// # Django
///
/// `set_expiry(value)`: an `int` is idle seconds (`0` = browser close), a
/// `timedelta` or `datetime` an absolute time, `None` the global policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Back to the global policy (`SESSION_COOKIE_AGE`, `SESSION_EXPIRE_AT_BROWSER_CLOSE`).
    Default,
    /// The cookie lasts until the browser closes (stored as `0`); the record
    /// still expires after `SESSION_COOKIE_AGE` of inactivity.
    BrowserClose,
    /// Expire after this many seconds of inactivity (stored as the integer).
    IdleSeconds(i64),
    /// Expire at now + this duration, fixed when `set_expiry` is called
    /// (stored as an absolute datetime, as Django does with a `timedelta`).
    In(Duration),
    /// Expire at this time (stored as its ISO 8601 form).
    At(OffsetDateTime),
}

impl From<i64> for Expiry {
    fn from(seconds: i64) -> Self {
        if seconds == 0 {
            Self::BrowserClose
        } else {
            Self::IdleSeconds(seconds)
        }
    }
}

impl From<Duration> for Expiry {
    fn from(d: Duration) -> Self {
        Self::In(d)
    }
}

impl From<std::time::Duration> for Expiry {
    fn from(d: std::time::Duration) -> Self {
        Self::In(Duration::try_from(d).unwrap_or(Duration::MAX))
    }
}

impl From<OffsetDateTime> for Expiry {
    fn from(at: OffsetDateTime) -> Self {
        Self::At(at)
    }
}

impl<T: Into<Self>> From<Option<T>> for Expiry {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Default, Into::into)
    }
}

impl Expiry {
    /// The value to store under `_session_expiry`, or `None` to remove it.
    #[must_use]
    pub fn to_stored(self, now: OffsetDateTime) -> Option<Value> {
        match self {
            Self::Default => None,
            Self::BrowserClose => Some(ExpiryValue::Seconds(0).to_json()),
            Self::IdleSeconds(s) => Some(ExpiryValue::Seconds(s).to_json()),
            Self::In(d) => Some(ExpiryValue::At(to_python_range(now.saturating_add(d))).to_json()),
            Self::At(at) => Some(ExpiryValue::At(to_python_range(at)).to_json()),
        }
    }
}

/// `at` clamped to what Python's `datetime` holds (years 1 to 9999), so
/// that Django, and our own reader, can parse the stored date: a time
/// before year 1 (`Expiry::In(Duration::MIN)`) is simply long past.
fn to_python_range(at: OffsetDateTime) -> OffsetDateTime {
    const MIN: OffsetDateTime = time::macros::datetime!(0001-01-01 00:00:00 UTC);
    const MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC);
    at.clamp(MIN, MAX)
}

/// Seconds until the session expires: Django's `get_expiry_age()`.
///
/// `stored` is the session's `_session_expiry` value (if any). No or zero
/// expiry gives `cookie_age`; idle seconds are returned as they are; an
/// absolute time gives the whole seconds left, which may be negative.
///
/// ```
/// use serde_json::json;
/// use time::macros::datetime;
///
/// let now = datetime!(2026-01-01 00:00:00 UTC);
/// assert_eq!(sesame::expiry_age(None, now, 1209600), 1209600);
/// assert_eq!(sesame::expiry_age(Some(&json!(0)), now, 1209600), 1209600);
/// assert_eq!(sesame::expiry_age(Some(&json!(30)), now, 1209600), 30);
/// assert_eq!(sesame::expiry_age(Some(&json!("2026-01-01T00:01:00+00:00")), now, 1209600), 60);
/// ```
#[must_use]
pub fn expiry_age(stored: Option<&Value>, now: OffsetDateTime, cookie_age: i64) -> i64 {
    match stored.and_then(ExpiryValue::from_json) {
        None | Some(ExpiryValue::Seconds(0)) => cookie_age,
        Some(ExpiryValue::Seconds(s)) => s,
        // Python's `delta.days * 86400 + delta.seconds` floors toward -inf.
        Some(ExpiryValue::At(at)) => floor_seconds(at - now),
    }
}

/// When the session expires: Django's `get_expiry_date()`.
///
/// ```
/// use serde_json::json;
/// use time::macros::datetime;
///
/// let now = datetime!(2026-01-01 00:00:00 UTC);
/// assert_eq!(sesame::expiry_date(Some(&json!(30)), now, 1209600), datetime!(2026-01-01 00:00:30 UTC));
/// assert_eq!(sesame::expiry_date(None, now, 60), datetime!(2026-01-01 00:01:00 UTC));
/// ```
#[must_use]
pub fn expiry_date(stored: Option<&Value>, now: OffsetDateTime, cookie_age: i64) -> OffsetDateTime {
    match stored.and_then(ExpiryValue::from_json) {
        Some(ExpiryValue::At(at)) => at,
        None | Some(ExpiryValue::Seconds(0)) => now.saturating_add(Duration::seconds(cookie_age)),
        Some(ExpiryValue::Seconds(s)) => now.saturating_add(Duration::seconds(s)),
    }
}

/// Whether the cookie should last only until the browser closes: Django's
/// `get_expire_at_browser_close()`.
///
/// ```
/// use serde_json::json;
///
/// assert!(sesame::expire_at_browser_close(Some(&json!(0)), false));
/// assert!(!sesame::expire_at_browser_close(Some(&json!(30)), true));
/// assert!(sesame::expire_at_browser_close(None, true));
/// ```
#[must_use]
pub fn expire_at_browser_close(stored: Option<&Value>, default: bool) -> bool {
    match stored {
        None | Some(Value::Null) => default,
        Some(v) => ExpiryValue::from_json(v) == Some(ExpiryValue::Seconds(0)),
    }
}

fn floor_seconds(d: Duration) -> i64 {
    let whole = d.whole_seconds();
    if d.subsec_nanoseconds() < 0 {
        whole - 1
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

    #[test]
    fn absolute_expiry_age_floors_like_python() {
        let stored = json!("2026-06-01T11:59:59.500000+00:00");
        assert_eq!(expiry_age(Some(&stored), NOW, 10), -1);
        let stored = json!("2026-06-01T12:00:10.900000+00:00");
        assert_eq!(expiry_age(Some(&stored), NOW, 10), 10);
    }

    #[test]
    fn set_expiry_forms_are_stored_as_django_stores_them() {
        assert_eq!(Expiry::Default.to_stored(NOW), None);
        assert_eq!(Expiry::from(0).to_stored(NOW), Some(json!(0)));
        assert_eq!(Expiry::from(42).to_stored(NOW), Some(json!(42)));
        assert_eq!(
            Expiry::from(Duration::seconds(90)).to_stored(NOW),
            Some(json!("2026-06-01T12:01:30+00:00"))
        );
        assert_eq!(
            Expiry::from(datetime!(2027-01-01 00:00 UTC)).to_stored(NOW),
            Some(json!("2027-01-01T00:00:00+00:00"))
        );
    }

    /// A date before year 1 would be stored as `-9999-…`, which no reader
    /// parses (the session would fall back to the default age): it is
    /// clamped to year 1, so the session is simply expired.
    #[test]
    fn an_expiry_before_year_one_is_stored_as_year_one_and_has_expired() {
        for expiry in [
            Expiry::In(Duration::MIN),
            Expiry::At(OffsetDateTime::new_utc(
                time::Date::MIN,
                time::Time::MIDNIGHT,
            )),
        ] {
            let stored = expiry.to_stored(NOW).unwrap();
            assert_eq!(stored, json!("0001-01-01T00:00:00+00:00"));
            assert!(expiry_age(Some(&stored), NOW, 100) < 0);
            assert!(expiry_date(Some(&stored), NOW, 100) < NOW);
        }
    }

    #[test]
    fn browser_close_sessions_keep_the_cookie_age_server_side() {
        let zero = json!(0);
        assert_eq!(expiry_age(Some(&zero), NOW, 100), 100);
        assert_eq!(
            expiry_date(Some(&zero), NOW, 100),
            NOW + Duration::seconds(100)
        );
    }

    #[test]
    fn junk_expiry_falls_back_to_the_default() {
        let junk = json!("tomorrow");
        assert_eq!(expiry_age(Some(&junk), NOW, 100), 100);
        assert!(!expire_at_browser_close(Some(&junk), false));
    }
}
