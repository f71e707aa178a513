//! Django's JSON: what `json.dumps` writes and `json.loads` reads, byte for byte.
//!
//! `serde_json` cannot do it alone: it writes raw UTF-8 (Django would read it
//! as Latin-1 mojibake), formats floats its own way (`1e16`, not `1e+16`),
//! and rejects `NaN` and `Infinity`, which Python writes and reads.
//!
//! Values are `serde_json::Value`s, built with the `arbitrary_precision`
//! feature so that integers of any size (Python's are unbounded) survive a
//! round trip digit for digit.

mod float;
mod read;
mod write;

use serde_json::Value;

pub(crate) use float::write_python_float;
pub(crate) use read::float_number;

use crate::{Error, SessionMap};

/// Serialises a value exactly as Django's `JSONSerializer` does.
///
/// Compact (`,` and `:` without spaces), ASCII only (`\uXXXX` escapes,
/// surrogate pairs above U+FFFF), object keys in insertion order, integers
/// with all their digits, floats in Python's `repr` (`1.0`, `1e+16`,
/// `1.5e-07`), and `NaN`/`Infinity`/`-Infinity` as bare tokens.
///
/// # Examples
///
/// ```
/// use serde_json::json;
///
/// let value = json!({"b": "é😀", "a": [1.0, 1e16, 0.5], "n": null});
/// assert_eq!(
///     sesame_codec::json_dumps(&value),
///     r#"{"b":"\u00e9\ud83d\ude00","a":[1.0,1e+16,0.5],"n":null}"#
/// );
/// ```
///
/// # Django
///
/// `JSONSerializer.dumps` in `django/core/signing.py`:
/// `json.dumps(obj, separators=(",", ":")).encode("latin-1")`.
#[doc(alias = "dumps")]
#[must_use]
pub fn json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write::write_value(value, &mut out);
    out
}

/// Serialises a session's contents; the same bytes as [`json_dumps`] of the object.
pub(crate) fn dumps_object(map: &SessionMap) -> String {
    let mut out = String::new();
    write::write_object(map, &mut out);
    out
}

/// Parses JSON bytes exactly as Django's `JSONSerializer` does.
///
/// The bytes are read as Latin-1, so raw UTF-8 in a string comes back as
/// mojibake (`é` as `Ã©`), as in Django; `\uXXXX` escapes, surrogate pairs
/// included, give the intended characters. `NaN`, `Infinity` and `-Infinity`
/// are accepted. Whitespace between tokens is allowed; anything after the
/// value is not. A repeated key keeps its first position and its last value.
///
/// # Errors
///
/// [`Error::Json`] for anything Python's `json.loads` rejects (including
/// raw control characters in strings and integers longer than 4300 digits),
/// and for nesting deeper than 512 arrays or objects.
///
/// # Examples
///
/// ```
/// use serde_json::json;
///
/// let value = sesame_codec::json_loads(br#"{"a": [1, 2.5], "b": "\u00e9"}"#).unwrap();
/// assert_eq!(value, json!({"a": [1, 2.5], "b": "é"}));
/// assert_eq!(sesame_codec::json_dumps(&sesame_codec::json_loads(b"[NaN]").unwrap()), "[NaN]");
/// assert!(sesame_codec::json_loads(b"{} x").is_err());
/// ```
///
/// # Django
///
/// `JSONSerializer.loads` in `django/core/signing.py`:
/// `json.loads(data.decode("latin-1"))`. Two differences: a lone UTF-16
/// surrogate escape (`"\ud800"`, which Python keeps in its `str`) becomes
/// U+FFFD, since a Rust string cannot hold it; and nesting is limited to 512
/// levels where Python's limit is its recursion limit (about 1000).
#[doc(alias = "loads")]
pub fn json_loads(bytes: &[u8]) -> Result<Value, Error> {
    read::parse(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(text: &str) -> String {
        json_dumps(&json_loads(text.as_bytes()).unwrap())
    }

    #[test]
    fn writes_python_escapes() {
        let value = json!({"s": "\u{0}\u{1f}\u{7f}\t\n\r\u{8}\u{c}\"\\/<>&'\u{2028}é😀"});
        assert_eq!(
            json_dumps(&value),
            r#"{"s":"\u0000\u001f\u007f\t\n\r\b\f\"\\/<>&'\u2028\u00e9\ud83d\ude00"}"#
        );
    }

    #[test]
    fn keeps_integers_of_any_size() {
        for text in [
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1267650600228229401496703205376",
            "-1208925819614629174706176",
        ] {
            assert_eq!(round_trip(text), text);
        }
        assert_eq!(round_trip("-0"), "0");
    }

    #[test]
    fn floats_are_read_as_python_reads_them() {
        assert_eq!(round_trip("1.50"), "1.5");
        assert_eq!(round_trip("1E16"), "1e+16");
        assert_eq!(round_trip("-0.0"), "-0.0");
        assert_eq!(round_trip("1e400"), "Infinity");
        assert_eq!(round_trip("-1e400"), "-Infinity");
        assert_eq!(round_trip("1e-400"), "0.0");
        assert_eq!(
            round_trip("[NaN,Infinity,-Infinity]"),
            "[NaN,Infinity,-Infinity]"
        );
        assert_eq!(json_loads(b"9.99").unwrap(), json!(9.99));
    }

    #[test]
    fn rust_floats_are_written_as_python_floats() {
        assert_eq!(
            json_dumps(&json!([1e16, 1.5e-7, 100.0, -0.0])),
            "[1e+16,1.5e-07,100.0,-0.0]"
        );
    }

    #[test]
    fn reads_bytes_as_latin1() {
        let value = json_loads("{\"name\":\"é\"}".as_bytes()).unwrap();
        assert_eq!(value, json!({"name": "Ã©"}));
        assert_eq!(json_loads(b"\"\xff\x7f\"").unwrap(), json!("\u{ff}\u{7f}"));
    }

    #[test]
    fn reads_surrogate_pairs_and_replaces_lone_surrogates() {
        assert_eq!(json_loads(br#""\ud83d\ude00""#).unwrap(), json!("😀"));
        assert_eq!(json_loads(br#""\uD83D\uDE00""#).unwrap(), json!("😀"));
        assert_eq!(json_loads(br#""\ud800x""#).unwrap(), json!("\u{fffd}x"));
        assert_eq!(
            json_loads(br#""\udc00\ud800""#).unwrap(),
            json!("\u{fffd}\u{fffd}")
        );
        assert_eq!(
            json_loads(br#""\ud800\u0041""#).unwrap(),
            json!("\u{fffd}A")
        );
        assert!(json_loads(br#""\ud800\u00zz""#).is_err());
    }

    #[test]
    fn repeated_keys_keep_the_first_position_and_the_last_value() {
        let value = json_loads(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(json_dumps(&value), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn accepts_python_whitespace_only() {
        assert_eq!(round_trip(" {\t\"a\" :\r\n[ 1 , 2 ] } "), r#"{"a":[1,2]}"#);
        assert!(json_loads(b"{}\x0c").is_err());
        assert!(json_loads("\u{a0}{}".as_bytes()).is_err());
    }

    #[test]
    fn rejects_what_python_rejects() {
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"{",
            b"}",
            b"[1,]",
            b"{\"a\":1,}",
            b"{'a':1}",
            b"{a:1}",
            b"01",
            b"1.",
            b"1e",
            b".5",
            b"+1",
            b"- 1",
            b"nan",
            b"-NaN",
            b"inf",
            b"tru",
            b"\"a\tb\"",
            b"\"\x00\"",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"abc",
            b"[1 2]",
            b"{\"a\" 1}",
            b"\xef\xbb\xbf{}",
        ];
        for input in bad {
            assert!(
                json_loads(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn integers_longer_than_python_allows_are_rejected() {
        let ok = "7".repeat(4300);
        assert_eq!(round_trip(&ok), ok);
        assert_eq!(round_trip(&format!("-{ok}")), format!("-{ok}"));
        assert!(json_loads(format!("{ok}7").as_bytes()).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{}{}",
            "[".repeat(read::MAX_DEPTH),
            "]".repeat(read::MAX_DEPTH)
        );
        assert!(json_loads(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(read::MAX_DEPTH + 1),
            "]".repeat(read::MAX_DEPTH + 1)
        );
        assert!(json_loads(deep.as_bytes()).is_err());
        let bomb = "[{\"a\":".repeat(100_000);
        assert!(json_loads(bomb.as_bytes()).is_err());
    }

    #[test]
    fn non_finite_numbers_compare_by_their_spelling() {
        let nan = json_loads(b"NaN").unwrap();
        assert_eq!(nan, json_loads(b"NaN").unwrap());
        assert_eq!(nan.as_f64(), None);
        assert_ne!(nan, json_loads(b"Infinity").unwrap());
    }
}
