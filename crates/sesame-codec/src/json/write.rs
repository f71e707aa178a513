//! The writer: Python's `json.dumps(obj, separators=(",", ":"))`.

use std::fmt::Write as _;

use serde_json::{Number, Value};

use super::float::write_python_float;
use crate::SessionMap;

pub(super) fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

pub(super) fn write_object(map: &SessionMap, out: &mut String) {
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_value(item, out);
    }
    out.push('}');
}

/// Writes a number the way Python would write the `int` or `float` it stands for.
///
/// With `serde_json`'s `arbitrary_precision` a number is its text: integers
/// keep every digit (Python's ints are unbounded), floats are re-read and
/// written in Python's `repr` (so `1e16` from Rust becomes `1e+16`).
fn write_number(number: &Number, out: &mut String) {
    let text = number.as_str();
    match text {
        "NaN" | "Infinity" | "-Infinity" => out.push_str(text),
        "-0" => out.push('0'),
        _ if text.contains(['.', 'e', 'E']) => match text.parse::<f64>() {
            Ok(value) => write_python_float(value, out),
            // Unreachable for numbers serde_json accepted; keep the text.
            Err(_) => out.push_str(text),
        },
        _ => out.push_str(text),
    }
}

/// Writes a string with `ensure_ascii=True`: printable ASCII as is, `"` and
/// `\` and the five control characters with short escapes, everything else
/// as `\uXXXX` (lowercase, UTF-16 surrogate pairs above U+FFFF).
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0_u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}
