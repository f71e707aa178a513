//! The forms of `_session_expiry`, Django's per-session expiry value.

use serde_json::Value;
use time::format_description::well_known::Iso8601;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::Error;

/// A per-session expiry as stored under `_session_expiry`.
///
/// Django's `set_expiry` stores an integer number of idle seconds (`0` means
/// "until the browser closes") or, for an absolute time, the datetime's
/// `isoformat()` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryValue {
    /// Idle seconds; `0` means the cookie lasts until the browser closes.
    Seconds(i64),
    /// An absolute expiry time.
    At(OffsetDateTime),
}

impl ExpiryValue {
    /// Reads a stored `_session_expiry` value.
    ///
    /// Returns `None` for `null` and for anything Django would not have
    /// written (booleans, arrays, unparsable strings), which then counts as
    /// "no per-session expiry".
    ///
    /// # Examples
    ///
    /// ```
    /// use sesame_codec::ExpiryValue;
    /// use serde_json::json;
    ///
    /// assert_eq!(ExpiryValue::from_json(&json!(30)), Some(ExpiryValue::Seconds(30)));
    /// assert!(matches!(
    ///     ExpiryValue::from_json(&json!("2030-01-01T00:00:00+00:00")),
    ///     Some(ExpiryValue::At(_))
    /// ));
    /// assert_eq!(ExpiryValue::from_json(&json!(true)), None);
    /// ```
    #[must_use]
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(saturating_f64))
                .map(Self::Seconds),
            Value::String(s) => parse_isoformat(s).ok().map(Self::At),
            _ => None,
        }
    }

    /// The JSON value Django stores for this expiry.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::Seconds(s) => Value::from(*s),
            Self::At(at) => Value::from(format_isoformat(*at)),
        }
    }
}

#[allow(clippy::cast_possible_truncation)] // saturating by design: `as` clamps floats
fn saturating_f64(f: f64) -> i64 {
    f.trunc() as i64
}

/// Formats a time as Python's `datetime.isoformat()` does for an aware UTC datetime.
///
/// Microseconds appear only when non-zero, the offset is always `+00:00`.
///
/// # Examples
///
/// ```
/// use time::macros::datetime;
///
/// assert_eq!(
///     sesame_codec::format_isoformat(datetime!(2026-11-25 17:19:12 UTC)),
///     "2026-11-25T17:19:12+00:00"
/// );
/// assert_eq!(
///     sesame_codec::format_isoformat(datetime!(2026-11-25 17:19:12.5 UTC)),
///     "2026-11-25T17:19:12.500000+00:00"
/// );
/// ```
#[must_use]
pub fn format_isoformat(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let micros = at.microsecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

/// Parses a datetime as Python's `datetime.fromisoformat()` reads what Django writes.
///
/// Accepts `YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM|Z]` (a space may replace the
/// `T`); a value without an offset is taken as UTC, as Django does with
/// `USE_TZ = True`.
///
/// # Errors
///
/// [`Error::Datetime`] when the text is not such a datetime.
///
/// # Examples
///
/// ```
/// let at = sesame_codec::parse_isoformat("2026-11-25T17:19:12.500000+01:00").unwrap();
/// assert_eq!(sesame_codec::format_isoformat(at), "2026-11-25T16:19:12.500000+00:00");
/// ```
pub fn parse_isoformat(text: &str) -> Result<OffsetDateTime, Error> {
    if text.len() > 64 {
        return Err(Error::Datetime);
    }
    let normalized = text.replacen(' ', "T", 1);
    if let Ok(at) = OffsetDateTime::parse(&normalized, &Iso8601::DEFAULT) {
        return Ok(at);
    }
    PrimitiveDateTime::parse(&normalized, &Iso8601::DEFAULT)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| Error::Datetime)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn isoformat_round_trips() {
        for at in [
            datetime!(2026-01-02 03:04:05 UTC),
            datetime!(2026-01-02 03:04:05.000001 UTC),
            datetime!(1999-12-31 23:59:59.999999 UTC),
        ] {
            assert_eq!(parse_isoformat(&format_isoformat(at)).unwrap(), at);
        }
    }

    #[test]
    fn naive_datetimes_are_utc() {
        assert_eq!(
            parse_isoformat("2026-01-02T03:04:05").unwrap(),
            datetime!(2026-01-02 03:04:05 UTC)
        );
        assert_eq!(
            parse_isoformat("2026-01-02 03:04:05Z").unwrap(),
            datetime!(2026-01-02 03:04:05 UTC)
        );
    }

    #[test]
    fn junk_is_not_an_expiry() {
        for v in [
            json!(null),
            json!(false),
            json!("soon"),
            json!([1]),
            json!({}),
        ] {
            assert_eq!(ExpiryValue::from_json(&v), None, "{v}");
        }
        assert_eq!(
            ExpiryValue::from_json(&json!(1.9)),
            Some(ExpiryValue::Seconds(1))
        );
        assert_eq!(
            ExpiryValue::from_json(&json!(1e300)),
            Some(ExpiryValue::Seconds(i64::MAX))
        );
    }

    #[test]
    fn expiry_value_json_round_trips() {
        let at = ExpiryValue::At(datetime!(2030-05-06 07:08:09 UTC));
        assert_eq!(at.to_json(), json!("2030-05-06T07:08:09+00:00"));
        assert_eq!(ExpiryValue::from_json(&at.to_json()), Some(at));
        assert_eq!(ExpiryValue::Seconds(0).to_json(), json!(0));
    }
}
