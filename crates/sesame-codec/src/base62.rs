//! Django's base62 integers, used for the timestamp inside signed values.

use crate::Error;

/// Django's alphabet: digits, then upper case, then lower case.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Writes an integer in Django's base62, most significant digit first.
///
/// Zero is `"0"`; a negative number gets a leading `-`.
///
/// # Examples
///
/// ```
/// assert_eq!(sesame_codec::b62_encode(1_700_000_000), "1r31eq");
/// assert_eq!(sesame_codec::b62_encode(0), "0");
/// assert_eq!(sesame_codec::b62_encode(-62), "-10");
/// ```
///
/// # Django
///
/// `b62_encode` in `django/core/signing.py`.
#[must_use]
pub fn b62_encode(n: i64) -> String {
    if n == 0 {
        return String::from("0");
    }
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let mut rest = n.unsigned_abs();
    let mut digits = Vec::with_capacity(12);
    while rest > 0 {
        // rest % 62 < 62, so the index is always in bounds.
        digits.push(ALPHABET[usize::try_from(rest % 62).unwrap_or(0)]);
        rest /= 62;
    }
    if n < 0 {
        digits.push(b'-');
    }
    digits.iter().rev().map(|&b| char::from(b)).collect()
}

/// Reads an integer written by [`b62_encode`].
///
/// # Errors
///
/// [`Error::Malformed`] for an empty string, a character outside the
/// alphabet, or a value that does not fit in an `i64`.
///
/// # Examples
///
/// ```
/// assert_eq!(sesame_codec::b62_decode("1r31eq"), Ok(1_700_000_000));
/// assert_eq!(sesame_codec::b62_decode("-10"), Ok(-62));
/// assert!(sesame_codec::b62_decode("!!").is_err());
/// ```
///
/// # Django
///
/// `b62_decode` in `django/core/signing.py`. Python's integers are unbounded,
/// so Django accepts any number of digits; Sesame rejects values outside
/// `i64` (a timestamp near 292 billion years). Like Django, it reads a lone
/// `-` as zero.
pub fn b62_decode(s: &str) -> Result<i64, Error> {
    const BAD: Error = Error::Malformed("timestamp is not base62");
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None if s.is_empty() => return Err(BAD),
        None => (false, s),
    };
    // Accumulate as a negative number so i64::MIN itself is representable.
    let mut value: i64 = 0;
    for byte in digits.bytes() {
        let digit = digit_value(byte).ok_or(BAD)?;
        value = value
            .checked_mul(62)
            .and_then(|v| v.checked_sub(digit))
            .ok_or(BAD)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or(BAD)
    }
}

fn digit_value(byte: u8) -> Option<i64> {
    let value = match byte {
        b'0'..=b'9' => byte - b'0',
        b'A'..=b'Z' => byte - b'A' + 10,
        b'a'..=b'z' => byte - b'a' + 36,
        _ => return None,
    };
    Some(i64::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_edges_of_i64() {
        for n in [i64::MIN, i64::MIN + 1, -1, 0, 1, 61, 62, i64::MAX] {
            assert_eq!(b62_decode(&b62_encode(n)), Ok(n), "{n}");
        }
    }

    #[test]
    fn reads_what_django_reads() {
        assert_eq!(b62_decode("0"), Ok(0));
        assert_eq!(b62_decode("-"), Ok(0));
        assert_eq!(b62_decode("-0"), Ok(0));
        assert_eq!(b62_decode("007"), Ok(7));
        assert_eq!(b62_decode("zz"), Ok(3843));
    }

    #[test]
    fn rejects_what_django_rejects() {
        for bad in ["", "--1", "1 ", "+1", "é", "1r31eq!"] {
            assert!(b62_decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_values_beyond_i64() {
        let max = b62_encode(i64::MAX);
        assert!(b62_decode(&format!("{max}0")).is_err());
        assert!(b62_decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_err());
    }
}
