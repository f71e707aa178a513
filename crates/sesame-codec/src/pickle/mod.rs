//! Django's cache engines: the session dict as a pickle.
//!
//! Django's `RedisCache` stores a session as `pickle.dumps(session,
//! pickle.HIGHEST_PROTOCOL)`: protocol 5 on Python 3.8–3.13. A pickle is a
//! program for Python's unpickler, and a general one imports and calls
//! whatever it names; anyone who can write to the cache could run code.
//! [`pickle_loads`] therefore reads only the opcodes that build plain data
//! and never emulates object construction.
//!
//! Decisions, for the values Django's cache engine may hold that JSON cannot
//! (the `cache_only_pickles` vectors):
//!
//! - a tuple becomes a JSON array (as `json.dumps` writes it);
//! - a dict key that is an int, a float, a bool or `None` becomes the string
//!   `json.dumps` writes for it (`7` → `"7"`, `True` → `"true"`); other keys
//!   (tuples) are rejected;
//! - bytes, sets and frozensets are rejected with [`Error::Pickle`];
//! - `datetime`, `date`, `Decimal` and every other class instance are built
//!   by `GLOBAL`/`STACK_GLOBAL` + `REDUCE` and friends: rejected with
//!   [`Error::UnsafePickle`] as soon as the opcode is met.
//!
//! So a session Django's `db` engine could have stored decodes, and one only
//! its cache engine could hold is refused (Django's own reader would then
//! fall back to an empty session).

mod bigint;
mod read;
mod write;

use serde_json::Value;

use crate::{Error, SessionMap};

/// The longest pickle [`pickle_loads`] reads, in bytes (the same limit as
/// [`MAX_SESSION_DATA_LEN`](crate::MAX_SESSION_DATA_LEN)).
pub const MAX_PICKLE_LEN: usize = 16 * 1024 * 1024;

/// How deeply [`pickle_loads`] lets lists, tuples and dicts nest (as
/// [`json_loads`](crate::json_loads)).
pub const MAX_PICKLE_DEPTH: usize = 512;

/// How many values (and dict keys) the decoded result may hold, each copy of
/// a shared (memoized) value counted again, so a pickle that references one
/// list from many places cannot expand to an unbounded result.
///
/// Also checked while reading: objects created, memo entries and stack
/// entries are each held to it, so memory stays bounded before `STOP`.
pub const MAX_PICKLE_ITEMS: usize = 1_000_000;

/// How many bytes of strings the decoded result may hold in total, copies of
/// shared strings counted again.
pub const MAX_PICKLE_STRING_BYTES: usize = 4 * MAX_PICKLE_LEN;

/// Reads a pickle made only of plain data into a JSON value.
///
/// Accepts protocols 2 to 5 with these opcodes: `PROTO`, `FRAME`, `STOP`,
/// `MARK`, `NONE`, `NEWTRUE`, `NEWFALSE`, `BININT1`, `BININT2`, `BININT`,
/// `LONG1`, `LONG4`, `BINFLOAT`, `SHORT_BINUNICODE`, `BINUNICODE`,
/// `BINUNICODE8`, `EMPTY_DICT`, `EMPTY_LIST`, `EMPTY_TUPLE`, `TUPLE1`–`3`,
/// `TUPLE`, `LIST`, `DICT`, `APPEND`, `APPENDS`, `SETITEM`, `SETITEMS`,
/// `MEMOIZE`, `BINPUT`, `LONG_BINPUT`, `BINGET`, `LONG_BINGET`. Tuples become
/// arrays; dict keys become strings as `json.dumps` writes them (see the
/// module docs). Integers keep every digit; floats keep their exact value,
/// `NaN` and `±Infinity` included (as [`json_loads`](crate::json_loads) keeps them).
///
/// # Errors
///
/// - [`Error::UnsafePickle`] for any opcode that imports or calls
///   (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`,
///   `NEWOBJ_EX`, `PERSID`, `BINPERSID`, `EXT1`/`2`/`4`): nothing is run;
/// - [`Error::TooLarge`] for input longer than [`MAX_PICKLE_LEN`];
/// - [`Error::Pickle`] for anything else: truncated or malformed input, bytes,
///   sets, protocol-0/1 text opcodes, a str that is not UTF-8 (Python's
///   `surrogatepass` strs), ints over 4300 digits (or over 64 KiB of int
///   bytes in all: their decimal digits cost quadratic time), or a result deeper than
///   [`MAX_PICKLE_DEPTH`] or bigger than [`MAX_PICKLE_ITEMS`] /
///   [`MAX_PICKLE_STRING_BYTES`].
///
/// # Examples
///
/// ```
/// use serde_json::json;
///
/// // Django's RedisCache value for {"counter": 1}.
/// let stored = b"\x80\x05\x95\x10\0\0\0\0\0\0\0}\x94\x8c\x07counter\x94K\x01s.";
/// assert_eq!(sesame_codec::pickle_loads(stored).unwrap(), json!({"counter": 1}));
///
/// // pickle.dumps(os.system) is refused, not run.
/// let evil = b"\x80\x05\x8c\x05posix\x8c\x06system\x93.";
/// assert!(matches!(
///     sesame_codec::pickle_loads(evil),
///     Err(sesame_codec::Error::UnsafePickle("STACK_GLOBAL"))
/// ));
/// ```
///
/// # Django
///
/// `pickle.loads` in `RedisSerializer.loads` (`django/core/cache/backends/redis.py`),
/// restricted to plain data.
pub fn pickle_loads(bytes: &[u8]) -> Result<Value, Error> {
    if bytes.len() > MAX_PICKLE_LEN {
        return Err(Error::TooLarge {
            len: bytes.len(),
            limit: MAX_PICKLE_LEN,
        });
    }
    read::loads(bytes)
}

/// Reads a session as Django's `RedisCache` stores it.
///
/// # Errors
///
/// [`Error::NotAnObject`] if the value is a bare integer (`RedisSerializer`
/// stores ints as decimal text, never pickled) or a pickle of anything but a
/// dict; otherwise as [`pickle_loads`].
///
/// # Examples
///
/// ```
/// use sesame_codec::{Error, SessionMap, pickle_dumps, pickle_loads_session};
///
/// let mut session = SessionMap::new();
/// session.insert("counter".into(), 1.into());
/// assert_eq!(pickle_loads_session(&pickle_dumps(&session)).unwrap(), session);
/// assert_eq!(pickle_loads_session(b"5"), Err(Error::NotAnObject));
/// ```
///
/// # Django
///
/// `RedisSerializer.loads`: `int(data)`, and if that fails `pickle.loads(data)`.
/// Django hands a non-dict on as the session; Sesame treats it as no session.
pub fn pickle_loads_session(bytes: &[u8]) -> Result<SessionMap, Error> {
    if is_python_int(bytes) {
        return Err(Error::NotAnObject);
    }
    match pickle_loads(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(Error::NotAnObject),
    }
}

/// Writes a session exactly as Django's `RedisCache` does.
///
/// The bytes are CPython 3.11's `pickle.dumps(session, 5)`: `PROTO 5`,
/// 64 KiB frames, a `MEMOIZE` after each dict, list and new str,
/// `SETITEMS`/`APPENDS` in batches of 1000 (one item: `SETITEM`/`APPEND`),
/// the shortest int opcode, floats as `BINFLOAT`. Python memoizes by object
/// identity; here equal strings count as one object, so a str seen twice is
/// written once and then referenced (`BINGET`), as Python does for dict keys
/// it interns and for one str stored twice. Where a Python session held equal
/// but distinct str objects the bytes differ, and both read the same.
///
/// # Examples
///
/// ```
/// use sesame_codec::{SessionMap, pickle_dumps};
///
/// let mut session = SessionMap::new();
/// session.insert("counter".into(), 1.into());
/// assert_eq!(pickle_dumps(&session), b"\x80\x05\x95\x10\0\0\0\0\0\0\0}\x94\x8c\x07counter\x94K\x01s.");
/// ```
///
/// # Django
///
/// `RedisSerializer.dumps` (`django/core/cache/backends/redis.py`):
/// `pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)`; a session is a dict, so it
/// is always pickled, never stored as a bare int.
#[must_use]
pub fn pickle_dumps(session: &SessionMap) -> Vec<u8> {
    write::dumps(session)
}

/// Whether Python's `int(bytes)` would succeed: optional whitespace, a sign,
/// digits with single `_` between them.
fn is_python_int(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    !digits.is_empty()
        && digits
            .split(|&b| b == b'_')
            .all(|group| !group.is_empty() && group.iter().all(u8::is_ascii_digit))
}

/// Whether a `serde_json` number's text stands for a Python float.
fn is_float_text(text: &str) -> bool {
    matches!(text, "NaN" | "Infinity" | "-Infinity") || text.contains(['.', 'e', 'E'])
}

/// The value of a float number's text (`NaN` and `±Infinity` included).
fn float_value(text: &str) -> f64 {
    match text {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => text.parse().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> SessionMap {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn pickle(ops: &[&[u8]]) -> Vec<u8> {
        ops.concat()
    }

    /// The sizes of the `FRAME`s in one of our pickles.
    fn frames(bytes: &[u8]) -> Vec<u64> {
        // Walks only what `pickle_dumps` writes for the test data below.
        let mut sizes = Vec::new();
        let mut pos = 2;
        while pos < bytes.len() {
            if bytes[pos] == 0x95 {
                let len = u64::from_le_bytes(bytes[pos + 1..pos + 9].try_into().unwrap());
                sizes.push(len);
                pos += 9 + usize::try_from(len).unwrap();
            } else {
                return sizes;
            }
        }
        sizes
    }

    #[test]
    fn os_system_via_global_and_reduce_is_refused_not_run() {
        // pickle.dumps of a class whose __reduce__ returns (os.system, ("id",)), protocol 0 and 2.
        let protocol0 = b"cposix\nsystem\np0\n(Vid\np1\ntp2\nRp3\n.";
        assert_eq!(pickle_loads(protocol0), Err(Error::UnsafePickle("GLOBAL")));
        let protocol2 = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        assert_eq!(pickle_loads(protocol2), Err(Error::UnsafePickle("GLOBAL")));
        let protocol5 = b"\x80\x05\x95\x1d\0\0\0\0\0\0\0\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
        assert_eq!(
            pickle_loads(protocol5),
            Err(Error::UnsafePickle("STACK_GLOBAL"))
        );
        // Inside a session dict too.
        let nested = b"\x80\x05}\x94\x8c\x01x\x94\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85Rs.";
        assert_eq!(
            pickle_loads_session(nested),
            Err(Error::UnsafePickle("STACK_GLOBAL"))
        );
    }

    #[test]
    fn every_opcode_that_could_run_code_is_a_typed_error() {
        let unsafe_ops: [(u8, &str); 13] = [
            (b'c', "GLOBAL"),
            (0x93, "STACK_GLOBAL"),
            (b'R', "REDUCE"),
            (b'b', "BUILD"),
            (b'i', "INST"),
            (b'o', "OBJ"),
            (0x81, "NEWOBJ"),
            (0x92, "NEWOBJ_EX"),
            (b'P', "PERSID"),
            (b'Q', "BINPERSID"),
            (0x82, "EXT1"),
            (0x83, "EXT2"),
            (0x84, "EXT4"),
        ];
        for (op, name) in unsafe_ops {
            let alone = pickle(&[b"\x80\x05", &[op], b"."]);
            assert_eq!(
                pickle_loads(&alone),
                Err(Error::UnsafePickle(name)),
                "{name}"
            );
            let in_dict = pickle(&[b"\x80\x05}\x94(\x8c\x01k\x94N", &[op], b"u."]);
            assert_eq!(
                pickle_loads(&in_dict),
                Err(Error::UnsafePickle(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn bytes_sets_and_text_opcodes_are_not_plain_data() {
        for input in [
            &b"\x80\x05C\x02\x00\x01."[..],
            b"\x80\x05B\x01\x00\x00\x00x.",
            b"\x80\x05\x8e\x01\0\0\0\0\0\0\0x.",
            b"\x80\x05\x96\x01\0\0\0\0\0\0\0x.",
            b"\x80\x05\x8f\x94(K\x01\x90.",
            b"\x80\x05(K\x01\x91.",
            b"\x80\x05\x97.",
            b"I1\n.",
            b"S'x'\n.",
            b"\x80\x05\xff.",
        ] {
            assert!(
                matches!(pickle_loads(input), Err(Error::Pickle(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn reads_protocol_2_and_the_long_memo_forms() {
        // pickle.dumps({"a": [1, "a"], "t": (1, 2, 3, 4)}, 2) by CPython 3.11.
        let input = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01h\x01eX\x01\x00\x00\x00tq\x03(K\x01K\x02K\x03K\x04tq\x04u.";
        assert_eq!(
            pickle_loads(input),
            Ok(json!({"a": [1, "a"], "t": [1, 2, 3, 4]}))
        );
        let long_memo =
            b"\x80\x05}r\x05\x00\x00\x00\x8c\x01k]r\x06\x00\x00\x00s\x8c\x01mj\x06\x00\x00\x00s.";
        assert_eq!(pickle_loads(long_memo), Ok(json!({"k": [], "m": []})));
        // Memo indexes out of order (BINPUT may name any): first, and after
        // a run in order, with MEMOIZE numbering on from the count. Checked
        // against CPython's pickle.loads.
        let sparse_first = b"\x80\x02}q\x05(X\x01\x00\x00\x00aq\x00]q\x07X\x01\x00\x00\x00bh\x07X\x01\x00\x00\x00ch\x00u.";
        assert_eq!(
            pickle_loads(sparse_first),
            Ok(json!({"a": [], "b": [], "c": "a"}))
        );
        let gap_after_run = b"\x80\x04}q\x00(X\x01\x00\x00\x00aq\x01X\x01\x00\x00\x00xq\x09X\x01\x00\x00\x00b\x94h\x09X\x01\x00\x00\x00ch\x03u.";
        assert_eq!(
            pickle_loads(gap_after_run),
            Ok(json!({"a": "x", "b": "x", "c": "b"}))
        );
        // LIST and DICT from a mark, EMPTY_TUPLE.
        assert_eq!(
            pickle_loads(b"\x80\x02(\x8c\x01a(K\x01)ld."),
            Ok(json!({"a": [1, []]}))
        );
    }

    #[test]
    fn a_memoized_container_is_shared_as_python_shares_it() {
        // d = {}; x = []; d["a"] = x; d["b"] = x; x.append(1) — the list is
        // filled after the back-reference is taken.
        let input = b"\x80\x05}\x94(\x8c\x01a]\x94\x8c\x01bh\x01uh\x01K\x01a0.";
        // `0` (POP) is outside the subset; without it the stack has two items.
        assert!(pickle_loads(input).is_err());
        let input = b"\x80\x05}\x94(\x8c\x01a]\x94\x8c\x01bh\x01u\x8c\x01ch\x01K\x01as.";
        assert_eq!(
            pickle_loads(input),
            Ok(json!({"a": [1], "b": [1], "c": [1]}))
        );
    }

    #[test]
    fn non_string_keys_become_what_json_dumps_writes() {
        let input = b"\x80\x05}\x94(K\x07\x8c\x01a\x88\x8c\x01bN\x8c\x01cG?\xf8\x00\x00\x00\x00\x00\x00\x8c\x01dJ\xff\xff\xff\xff\x8c\x01eu.";
        assert_eq!(
            pickle_loads(input),
            Ok(json!({"7": "a", "true": "b", "null": "c", "1.5": "d", "-1": "e"}))
        );
        let tuple_key = b"\x80\x05}\x94K\x01K\x02\x86\x8c\x01as.";
        assert!(matches!(pickle_loads(tuple_key), Err(Error::Pickle(_))));
    }

    #[test]
    fn a_session_is_a_dict() {
        assert_eq!(
            pickle_loads_session(b"\x80\x05]\x94."),
            Err(Error::NotAnObject)
        );
        assert_eq!(pickle_loads_session(b"\x80\x05N."), Err(Error::NotAnObject));
        for int in [&b"5"[..], b"-12", b" 1_000 ", b"+0"] {
            assert_eq!(pickle_loads_session(int), Err(Error::NotAnObject));
        }
        assert!(matches!(
            pickle_loads_session(b"1__0"),
            Err(Error::Pickle(_))
        ));
        assert!(matches!(pickle_loads_session(b""), Err(Error::Pickle(_))));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let session = map(
            json!({"a": [1, 2.5, "x", {"b": null}], "big": 12_345_678_901_u64, "s": "é".repeat(300)}),
        );
        let bytes = pickle_dumps(&session);
        assert_eq!(pickle_loads_session(&bytes), Ok(session));
        for end in 0..bytes.len() {
            assert!(pickle_loads(&bytes[..end]).is_err(), "{end}");
        }
    }

    #[test]
    fn huge_length_fields_are_checked_before_allocating() {
        for input in [
            &b"\x80\x05\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc."[..],
            b"\x80\x05X\xff\xff\xff\xffabc.",
            b"\x80\x05\x8c\xffabc.",
            b"\x80\x05\x95\xff\xff\xff\xff\xff\xff\xff\x7f}.",
            b"\x80\x05\x8b\xff\xff\xff\x7fabc.",
            b"\x80\x05\x8b\xff\xff\xff\xffabc.",
        ] {
            assert!(
                matches!(pickle_loads(input), Err(Error::Pickle(_))),
                "{input:?}"
            );
        }
        let too_long = vec![b'N'; MAX_PICKLE_LEN + 1];
        assert_eq!(
            pickle_loads(&too_long),
            Err(Error::TooLarge {
                len: MAX_PICKLE_LEN + 1,
                limit: MAX_PICKLE_LEN
            })
        );
    }

    #[test]
    fn ints_of_any_size_keep_every_digit_up_to_pythons_limit() {
        let digits = "9".repeat(4300);
        let session = map(
            json!({"n": Value::Number(digits.parse().unwrap()), "m": Value::Number(format!("-{digits}").parse().unwrap())}),
        );
        assert_eq!(pickle_loads_session(&pickle_dumps(&session)), Ok(session));
        let session = map(json!({"n": Value::Number(format!("{digits}9").parse().unwrap())}));
        assert!(matches!(
            pickle_loads(&pickle_dumps(&session)),
            Err(Error::Pickle("int too long"))
        ));
    }

    /// Many ints just under the digit limit: each costs quadratic time to
    /// turn into digits, so their total size is bounded (seconds of CPU
    /// per load without it).
    #[test]
    fn long_ints_are_bounded_in_total() {
        let digits = "9".repeat(4299);
        let session = |count: usize| -> SessionMap {
            (0..count)
                .map(|i| (format!("n{i}"), Value::Number(digits.parse().unwrap())))
                .collect()
        };
        let fits = session(30);
        assert_eq!(pickle_loads_session(&pickle_dumps(&fits)), Ok(fits));
        assert!(matches!(
            pickle_loads(&pickle_dumps(&session(40))),
            Err(Error::Pickle("too many long ints"))
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |levels: usize| {
            pickle(&[
                b"\x80\x05",
                &b"]".repeat(levels),
                &b"a".repeat(levels - 1),
                b".",
            ])
        };
        assert!(pickle_loads(&nested(MAX_PICKLE_DEPTH + 1)).is_ok());
        assert_eq!(
            pickle_loads(&nested(MAX_PICKLE_DEPTH + 2)),
            Err(Error::Pickle("nested too deeply"))
        );
        assert!(pickle_loads(&nested(1_000_000)).is_err());
        // A list that contains itself.
        assert_eq!(
            pickle_loads(b"\x80\x05]\x94h\x00a."),
            Err(Error::Pickle("nested too deeply"))
        );
    }

    #[test]
    fn shared_references_cannot_expand_without_bound() {
        // R = []; L0 = []; R.append(L0); L(k) = [L(k-1), L(k-1)]; R.append(L(k)):
        // 2^40 values once every reference is copied.
        let mut input = b"\x80\x05]]r\x00\x00\x00\x00a".to_vec();
        for k in 1_u32..=40 {
            input.extend(b"](j");
            input.extend((k - 1).to_le_bytes());
            input.push(b'j');
            input.extend((k - 1).to_le_bytes());
            input.extend(b"er");
            input.extend(k.to_le_bytes());
            input.push(b'a');
        }
        input.push(b'.');
        assert_eq!(pickle_loads(&input), Err(Error::Pickle("too many items")));
    }

    #[test]
    fn item_limits_apply_while_reading() {
        // A mark, then more `None`s than the result may hold.
        let mut input = b"\x80\x05(".to_vec();
        input.extend(std::iter::repeat_n(b'N', MAX_PICKLE_ITEMS + 1));
        assert_eq!(pickle_loads(&input), Err(Error::Pickle("too many items")));
        // One item memoized more often than a pickler would.
        let mut input = b"\x80\x05N".to_vec();
        input.extend(std::iter::repeat_n(0x94, MAX_PICKLE_ITEMS + 1));
        assert_eq!(pickle_loads(&input), Err(Error::Pickle("too many items")));
        // Reread: one list referenced more times than the result may hold.
        let mut input = b"\x80\x05]\x94(".to_vec();
        for _ in 0..=MAX_PICKLE_ITEMS {
            input.extend(b"h\x00");
        }
        assert_eq!(pickle_loads(&input), Err(Error::Pickle("too many items")));
    }

    #[test]
    fn malformed_stacks_are_errors() {
        for input in [
            &b"\x80\x05a."[..],
            b"\x80\x05s.",
            b"\x80\x05}u.",
            b"\x80\x05}(K\x01u.",
            b"\x80\x05K\x01(K\x02a.",
            b"\x80\x05](K\x01u.",
            b"\x80\x05}K\x01K\x02a.",
            b"\x80\x05K\x01K\x02.",
            b"\x80\x05(.",
            b"\x80\x05.",
            b"\x80\x05\x94.",
            b"\x80\x05h\x00.",
            b"\x80\x05\x85.",
            b"\x80\x05t.",
            b"\x80\x06}.",
            b"\x80\x05\x8c\x01\xff.",
        ] {
            assert!(
                matches!(pickle_loads(input), Err(Error::Pickle(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_repeated_str_is_written_once_however_many_came_before() {
        // Twenty keys, each also its own value: the first eight strs are
        // remembered in a list, the rest in a table; each text is written
        // once and referred to (`BINGET`) the second time.
        let session: SessionMap = (0..20)
            .map(|i| (format!("key-{i:02}"), Value::from(format!("key-{i:02}"))))
            .collect();
        let bytes = pickle_dumps(&session);
        for i in 0..20 {
            let text = format!("key-{i:02}");
            let written = bytes
                .windows(text.len())
                .filter(|w| *w == text.as_bytes())
                .count();
            assert_eq!(written, 1, "{text}");
        }
        assert_eq!(pickle_loads_session(&bytes), Ok(session));
    }

    #[test]
    fn writes_cpython_batches_and_frames() {
        // Facts about CPython 3.11's pickle.dumps(..., 5) on these dicts.
        let thousand: SessionMap = (0..1000)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect();
        let bytes = pickle_dumps(&thousand);
        // A full last batch is followed by an empty `MARK SETITEMS`.
        assert!(bytes.ends_with(b"M\xe7\x03u(u."));

        let items: Vec<Value> = (0..10_000)
            .map(|i| Value::from(format!("xxxxxxxxxx{i}")))
            .collect();
        let bytes = pickle_dumps(&map(json!({"a": items})));
        assert_eq!(frames(&bytes), [65545, 65543, 37832]);

        let big = "x".repeat(70_000);
        let bytes = pickle_dumps(&map(json!({"a": big, "b": "y"})));
        let head = b"\x80\x05\x95\x07\0\0\0\0\0\0\0}\x94(\x8c\x01a\x94X\x70\x11\x01\x00";
        assert!(bytes.starts_with(head));
        let tail = b"\x95\x0b\0\0\0\0\0\0\0\x94\x8c\x01b\x94\x8c\x01y\x94u.";
        assert!(bytes.ends_with(tail));
        assert_eq!(bytes.len(), head.len() + 70_000 + tail.len());

        // Ints: the shortest opcode; floats as BINFLOAT; an empty dict unframed.
        let bytes = pickle_dumps(&map(
            json!({"i": [255, 256, 65536, -1, 2_147_483_648_u64, 0.5]}),
        ));
        assert!(bytes.windows(3).any(|w| w == b"K\xffM"));
        assert!(bytes.windows(3).any(|w| w == b"\x00\x01J"));
        assert!(
            bytes
                .windows(7)
                .any(|w| w == b"\x8a\x05\x00\x00\x00\x80\x00")
        );
        assert_eq!(pickle_dumps(&SessionMap::new()), b"\x80\x05}\x94.");
    }
}
