//! The reader: Python's `json.loads(data.decode("latin-1"))`.

use serde_json::{Map, Number, Value};

use crate::Error;

/// Deepest nesting of arrays and objects the reader accepts.
///
/// Python stops at its recursion limit (about 1000 levels, less the caller's
/// own stack); a fixed, lower bound keeps our recursive reader well inside
/// the 2 MiB stack of a Tokio worker.
pub(super) const MAX_DEPTH: usize = 512;

/// Most digits Python 3.11+ converts to an `int` (`sys.get_int_max_str_digits()`);
/// `json.loads` fails on a longer integer.
const MAX_INT_DIGITS: usize = 4300;

pub(super) fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let mut reader = Reader { bytes, pos: 0 };
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.pos != bytes.len() {
        return Err(reader.error("extra data"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> Error {
        Error::Json(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        // Python's WHITESPACE is exactly these four characters.
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat_literal(&mut self, literal: &[u8]) -> bool {
        let end = self.pos + literal.len();
        if self.bytes.get(self.pos..end) == Some(literal) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// Reads one value; `self.pos` is at its first byte (no whitespace).
    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        match self.peek() {
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'n') if self.eat_literal(b"null") => Ok(Value::Null),
            Some(b't') if self.eat_literal(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat_literal(b"false") => Ok(Value::Bool(false)),
            Some(b'N') if self.eat_literal(b"NaN") => Ok(Value::Number(float_number(f64::NAN))),
            Some(b'I') if self.eat_literal(b"Infinity") => {
                Ok(Value::Number(float_number(f64::INFINITY)))
            }
            Some(b'-') if self.eat_literal(b"-Infinity") => {
                Ok(Value::Number(float_number(f64::NEG_INFINITY)))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.pos += 1; // '{'
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a property name in double quotes"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            // A repeated key keeps its first position and takes the last
            // value, as a Python dict does.
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// Reads a string; `self.pos` is at the opening quote.
    fn string(&mut self) -> Result<String, Error> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => self.escape(&mut out)?,
                // Python's strict mode refuses raw control characters.
                0x00..=0x1f => {
                    self.pos -= 1;
                    return Err(self.error("invalid control character"));
                }
                // Latin-1: every byte is the code point of the same value.
                _ => out.push(char::from(byte)),
            }
        }
    }

    /// Reads the escape after a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), Error> {
        let Some(byte) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        let ch = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => {
                self.pos -= 1;
                return Err(self.error("invalid \\escape"));
            }
        };
        out.push(ch);
        Ok(())
    }

    /// Reads the four hex digits after `\u`, and a following `\uXXXX` low
    /// surrogate when the first is a high surrogate.
    ///
    /// Python keeps a lone surrogate in its `str`; a Rust `String` cannot
    /// hold one, so it becomes U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        if (0xd800..0xdc00).contains(&first)
            && self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u")
        {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xdc00..0xe000).contains(&second) {
                let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // Not a low surrogate: it is read again as an escape of its own.
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("invalid \\uXXXX escape"))?;
        let mut code = 0;
        for &digit in digits {
            let value = char::from(digit)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\uXXXX escape"))?;
            code = code * 16 + value;
        }
        self.pos += 4;
        Ok(code)
    }

    /// Reads a number as Python's `NUMBER_RE` does:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`.
    fn number(&mut self) -> Result<Value, Error> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error("expected a value")),
        }
        let int_end = self.pos;
        // A '.' or 'e' not followed by digits is not part of the number
        // (Python then fails on that character, as we do).
        if self.peek() == Some(b'.') && self.digit_at(self.pos + 1) {
            self.pos += 1;
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.bytes.get(self.pos + 1), Some(b'+' | b'-')));
            if self.digit_at(self.pos + 1 + sign) {
                self.pos += 1 + sign;
                self.skip_digits();
            }
        }
        // The number is ASCII by construction.
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("");
        if self.pos == int_end {
            let digits = text.trim_start_matches('-');
            if digits.len() > MAX_INT_DIGITS {
                return Err(Error::Json(format!(
                    "integer at byte {start} has more than {MAX_INT_DIGITS} digits"
                )));
            }
            let canonical = if digits == "0" { "0" } else { text };
            return canonical
                .parse::<Number>()
                .map(Value::Number)
                .map_err(|_| Error::Json(format!("bad integer at byte {start}")));
        }
        // Rust's parse rounds correctly, like Python's float(); an exponent
        // out of range gives ±inf or ±0.0, as in Python.
        let value: f64 = text
            .parse()
            .map_err(|_| Error::Json(format!("bad number at byte {start}")))?;
        Ok(Value::Number(float_number(value)))
    }

    fn skip_digits(&mut self) {
        while self.digit_at(self.pos) {
            self.pos += 1;
        }
    }

    fn digit_at(&self, pos: usize) -> bool {
        matches!(self.bytes.get(pos), Some(b'0'..=b'9'))
    }
}

/// A JSON number holding a Python float, `NaN` and `±Infinity` included.
///
/// Finite values get `serde_json`'s own text for them, so a decoded `9.99`
/// equals `json!(9.99)`. `serde_json` has no public constructor for the
/// non-finite ones; with `arbitrary_precision` a number is only its text,
/// and `from_string_unchecked` (hidden, but public) stores that text as is.
/// The writer turns it back into Python's `NaN`/`Infinity`; `serde_json`'s own
/// `as_f64` returns `None` for it.
pub(crate) fn float_number(value: f64) -> Number {
    Number::from_f64(value).unwrap_or_else(|| {
        let text = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        Number::from_string_unchecked(text.to_owned())
    })
}
