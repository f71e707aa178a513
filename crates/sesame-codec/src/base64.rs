//! URL-safe base64 without padding, and Django's lenient reader for it.
//!
//! Hand-written rather than taken from a crate: the reader must reproduce
//! Python's `binascii.a2b_base64` in its non-strict mode (skip foreign
//! characters, stop at a completing `=`), which no base64 crate does.

use crate::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Writes bytes as URL-safe base64 (`-` and `_`) with the `=` padding removed.
///
/// # Examples
///
/// ```
/// assert_eq!(sesame_codec::b64_encode(br#"{"counter":1}"#), "eyJjb3VudGVyIjoxfQ");
/// assert_eq!(sesame_codec::b64_encode(&[0xfb, 0xff]), "-_8");
/// ```
///
/// # Django
///
/// `b64_encode` in `django/core/signing.py`
/// (`base64.urlsafe_b64encode(s).strip(b"=")`).
#[must_use]
pub fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let sextets = [
            b0 >> 2,
            (b0 & 0x03) << 4 | b1 >> 4,
            (b1 & 0x0f) << 2 | b2 >> 6,
            b2 & 0x3f,
        ];
        // One input byte gives two characters, two give three, three give four.
        for &sextet in &sextets[..=chunk.len()] {
            out.push(char::from(ALPHABET[usize::from(sextet)]));
        }
    }
    out
}

/// Reads base64 as Django does: URL-safe or standard alphabet, padded or not.
///
/// Like Python's non-strict decoder, characters outside both alphabets are
/// skipped, a `=` that completes a group ends the data, and stray bits at
/// the end are ignored.
///
/// # Errors
///
/// [`Error::Malformed`] when the characters that remain cannot be base64:
/// one character more than a multiple of four, or a group that is neither
/// complete nor padded.
///
/// # Examples
///
/// ```
/// assert_eq!(sesame_codec::b64_decode("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
/// assert_eq!(sesame_codec::b64_decode("eyJhIjoxfQ==").unwrap(), br#"{"a":1}"#);
/// assert_eq!(sesame_codec::b64_decode("-_8").unwrap(), sesame_codec::b64_decode("+/8").unwrap());
/// assert!(sesame_codec::b64_decode("eyJhI").is_err());
/// ```
///
/// # Django
///
/// `b64_decode` in `django/core/signing.py`: it appends `=` up to a multiple
/// of four, then calls `base64.urlsafe_b64decode`, which ends in
/// `binascii.a2b_base64(strict_mode=False)`. This follows CPython 3.11 and
/// 3.12 (3.13 changed how a `=` in the middle is treated; Django never
/// writes one).
pub fn b64_decode(text: &str) -> Result<Vec<u8>, Error> {
    let input = text.as_bytes();
    // Django pads the whole text, foreign characters included, to a multiple of four.
    let padding = (4 - input.len() % 4) % 4;
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut quad_pos = 0_u8;
    let mut left = 0_u8;
    let mut pads = 0_u8;
    for &byte in input.iter().chain(std::iter::repeat_n(&b'=', padding)) {
        if byte == b'=' {
            // Python: `quad_pos >= 2 && quad_pos + ++pads >= 4` ends the data.
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(value) = sextet(byte) else {
            continue;
        };
        pads = 0;
        match quad_pos {
            0 => {
                left = value;
                quad_pos = 1;
            }
            1 => {
                out.push(left << 2 | value >> 4);
                left = value & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push(left << 4 | value >> 2);
                left = value & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push(left << 6 | value);
                left = 0;
                quad_pos = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(Error::Malformed(
            "base64 length is one more than a multiple of four",
        )),
        _ => Err(Error::Malformed("base64 has incorrect padding")),
    }
}

/// The value of a character in either alphabet (`-`/`+` = 62, `_`/`/` = 63).
fn sextet(byte: u8) -> Option<u8> {
    Some(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'-' | b'+' => 62,
        b'_' | b'/' => 63,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_byte() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..data.len() {
            let encoded = b64_encode(&data[..len]);
            assert!(!encoded.contains('='));
            assert_eq!(b64_decode(&encoded).unwrap(), &data[..len], "{len}");
        }
    }

    #[test]
    fn matches_python_on_lenient_inputs() {
        // Each expectation was checked against CPython 3.11's
        // base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4)).
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("", Some(b"")),
            ("aGk", Some(b"hi")),
            ("aGk=", Some(b"hi")),
            ("aGk==", Some(b"hi")),
            ("aGk=aGk=", Some(b"hi")),
            ("a!G!k", Some(b"hi")),
            ("====", Some(b"")),
            ("aGlq", Some(b"hij")),
            ("a", None),
            ("aGlqa", None),
            ("aGl", Some(b"hi")),
            ("aGlq!", Some(b"hij")),
            ("aGk!", None),
            ("!!!*", Some(b"")),
            ("aé", None),
            ("aGk=x", Some(b"hi")),
            ("aG=k", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(b64_decode(input).ok().as_deref(), expected, "{input:?}");
        }
    }
}
