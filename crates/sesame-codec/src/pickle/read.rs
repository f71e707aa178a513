//! The restricted unpickler: plain data only, nothing imported or called.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::{MAX_PICKLE_DEPTH, MAX_PICKLE_ITEMS, MAX_PICKLE_STRING_BYTES, bigint};
use crate::Error;
use crate::json::{float_number, write_python_float};

/// Longest `LONG1`/`LONG4` payload read, in bytes: enough for Python's
/// 4300-digit limit on `int` ↔ `str` conversion, which the digit count is
/// then held to (as our JSON reader holds JSON integers to it).
const MAX_LONG_BYTES: usize = 2048;
const MAX_INT_DIGITS: usize = 4300;

/// Most `LONG1`/`LONG4` payload bytes in one pickle. Turning an int into
/// decimal digits costs time quadratic in its length (Python's pickle never
/// does it; we must, for JSON), so many ints just under the digit limit
/// would cost seconds of CPU per load; this keeps it to milliseconds.
/// Thirty-odd 4300-digit ints fit: far more than a session holds.
const MAX_LONG_BYTES_TOTAL: usize = 64 * 1024;

/// A decoded object. Containers hold node ids, so a memo back-reference
/// (`BINGET`) shares the container as Python does: items added after the
/// reference was taken are seen through it.
enum Node<'a> {
    /// `None`, a bool, an int or a float.
    Scalar(Value),
    /// A str, still in the pickle's bytes: copied once, into the result.
    Str(&'a str),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: Memo,
    /// `LONG` payload bytes read so far (see [`MAX_LONG_BYTES_TOTAL`]).
    long_bytes: usize,
}

fn bad(why: &'static str) -> Error {
    Error::Pickle(why)
}

/// The memo: node ids by memo index. Picklers number their entries 0, 1,
/// 2, … (`MEMOIZE` always does), which a list holds; an index out of that
/// order (`BINPUT` may name any) sends it and every later one to a table.
#[derive(Default)]
struct Memo {
    dense: Vec<usize>,
    sparse: HashMap<u32, usize>,
}

impl Memo {
    fn len(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }

    fn get(&self, index: u32) -> Option<usize> {
        let at = usize::try_from(index).ok()?;
        self.dense
            .get(at)
            .copied()
            .or_else(|| self.sparse.get(&index).copied())
    }

    fn contains(&self, index: u32) -> bool {
        self.get(index).is_some()
    }

    fn put(&mut self, index: u32, id: usize) {
        match usize::try_from(index) {
            Ok(at) if at < self.dense.len() => self.dense[at] = id,
            Ok(at) if at == self.dense.len() && self.sparse.is_empty() => self.dense.push(id),
            _ => {
                self.sparse.insert(index, id);
            }
        }
    }
}

/// Room reserved up front in the reader's lists: a small session's worth,
/// as many nodes as fit in 1 KiB. A reservation that small is served from
/// the allocator's per-thread cache (glibc's ends at 1032 bytes); a larger
/// one costs a trip to the shared heap on every load.
const INITIAL_NODES: usize = 1024 / std::mem::size_of::<Node<'static>>();

pub(super) fn loads(data: &[u8]) -> Result<Value, Error> {
    let mut reader = Reader {
        data,
        pos: 0,
        nodes: Vec::with_capacity(INITIAL_NODES),
        stack: Vec::with_capacity(INITIAL_NODES),
        marks: Vec::new(),
        memo: Memo::default(),
        long_bytes: 0,
    };
    let root = reader.run()?;
    let mut budget = Budget::default();
    reader.build(root, 0, &mut budget)
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        // Checked against what is left before anything is allocated, so a
        // huge length field costs nothing.
        if n > self.data.len() - self.pos {
            return Err(bad("truncated"));
        }
        let chunk = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(chunk)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0_u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u32_le(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn length(&mut self, size: usize) -> Result<usize, Error> {
        let n = match size {
            1 => u64::from(self.byte()?),
            4 => u64::from(self.u32_le()?),
            _ => u64::from_le_bytes(self.array()?),
        };
        usize::try_from(n).map_err(|_| bad("truncated"))
    }

    /// Adds a node. Every node of a pickle that reaches `STOP` is part of
    /// the result, so more than [`MAX_PICKLE_ITEMS`] can be refused now,
    /// before a long run of one-byte opcodes has filled memory.
    fn push(&mut self, node: Node<'a>) -> Result<(), Error> {
        if self.nodes.len() >= MAX_PICKLE_ITEMS {
            return Err(bad("too many items"));
        }
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
        Ok(())
    }

    fn scalar(&mut self, value: Value) -> Result<(), Error> {
        self.push(Node::Scalar(value))
    }

    /// The index below which the stack belongs to an enclosing `MARK`.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<usize, Error> {
        if self.stack.len() <= self.fence() {
            return Err(bad("stack underflow"));
        }
        self.stack.pop().ok_or(bad("stack underflow"))
    }

    fn top(&self) -> Result<usize, Error> {
        if self.stack.len() <= self.fence() {
            return Err(bad("stack underflow"));
        }
        self.stack.last().copied().ok_or(bad("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<usize>, Error> {
        let mark = self.marks.pop().ok_or(bad("no MARK on the stack"))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), Error> {
        let top = self.stack.last().copied().ok_or(bad("stack underflow"))?;
        // Python memoizes each object once, so a memo larger than the item
        // limit is not from a pickler; refusing it bounds the table.
        if self.memo.len() >= MAX_PICKLE_ITEMS && !self.memo.contains(index) {
            return Err(bad("too many items"));
        }
        self.memo.put(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), Error> {
        let id = self.memo.get(index).ok_or(bad("memo entry not found"))?;
        // Each reference is at least one more item of the result.
        if self.stack.len() >= MAX_PICKLE_ITEMS {
            return Err(bad("too many items"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn string(&mut self, size: usize) -> Result<(), Error> {
        let n = self.length(size)?;
        let text = std::str::from_utf8(self.take(n)?).map_err(|_| bad("str is not UTF-8"))?;
        self.push(Node::Str(text))
    }

    fn long(&mut self, n: usize) -> Result<(), Error> {
        if n > MAX_LONG_BYTES {
            return Err(bad("int too long"));
        }
        self.long_bytes += n;
        if self.long_bytes > MAX_LONG_BYTES_TOTAL {
            return Err(bad("too many long ints"));
        }
        let text = bigint::from_le_bytes(self.take(n)?);
        if text.trim_start_matches('-').len() > MAX_INT_DIGITS {
            return Err(bad("int too long"));
        }
        let number: Number = text.parse().map_err(|_| bad("int too long"))?;
        self.scalar(Value::Number(number))
    }

    fn int(&mut self, value: i64) -> Result<(), Error> {
        self.scalar(Value::Number(value.into()))
    }

    fn list_target(&mut self) -> Result<&mut Vec<usize>, Error> {
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::List(items) => Ok(items),
            _ => Err(bad("APPEND to something not a list")),
        }
    }

    fn dict_target(&mut self) -> Result<&mut Vec<(usize, usize)>, Error> {
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::Dict(pairs) => Ok(pairs),
            _ => Err(bad("SETITEM on something not a dict")),
        }
    }

    /// Runs the opcodes up to `STOP` and returns the id of the result.
    fn run(&mut self) -> Result<usize, Error> {
        loop {
            let op = self.byte()?;
            match op {
                // PROTO
                0x80 => {
                    if !(2..=5).contains(&self.byte()?) {
                        return Err(bad("unsupported pickle protocol"));
                    }
                }
                // FRAME: transparent, but must fit in what is left.
                0x95 => {
                    let n = self.length(8)?;
                    if n > self.data.len() - self.pos {
                        return Err(bad("truncated"));
                    }
                }
                b'.' => {
                    return match (self.stack.as_slice(), self.marks.is_empty()) {
                        ([root], true) => Ok(*root),
                        _ => Err(bad("STOP with a malformed stack")),
                    };
                }
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.scalar(Value::Null)?,
                0x88 => self.scalar(Value::Bool(true))?,
                0x89 => self.scalar(Value::Bool(false))?,
                b'K' => {
                    let v = self.byte()?;
                    self.int(v.into())?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.int(v.into())?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.int(v.into())?;
                }
                0x8a => {
                    let n = self.length(1)?;
                    self.long(n)?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array()?);
                    let n = usize::try_from(n).map_err(|_| bad("negative LONG4 length"))?;
                    self.long(n)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.scalar(Value::Number(float_number(v)))?;
                }
                0x8c => self.string(1)?,
                b'X' => self.string(4)?,
                0x8d => self.string(8)?,
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b']' => self.push(Node::List(Vec::new()))?,
                b')' => self.push(Node::Tuple(Vec::new()))?,
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.push(Node::Dict(pairs))?;
                }
                b'a' => {
                    let item = self.pop()?;
                    self.list_target()?.push(item);
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.list_target()?.extend(items);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.dict_target()?.push((key, value));
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new = pairs(&items)?;
                    self.dict_target()?.extend(new);
                }
                // MEMOIZE
                0x94 => {
                    let index = u32::try_from(self.memo.len()).map_err(|_| bad("memo full"))?;
                    self.memo_put(index)?;
                }
                b'q' => {
                    let index = self.byte()?;
                    self.memo_put(index.into())?;
                }
                b'r' => {
                    let index = self.u32_le()?;
                    self.memo_put(index)?;
                }
                b'h' => {
                    let index = self.byte()?;
                    self.memo_get(index.into())?;
                }
                b'j' => {
                    let index = self.u32_le()?;
                    self.memo_get(index)?;
                }
                _ => return Err(rejected(op)),
            }
        }
    }

    /// Turns node `id` into a JSON value, copying shared nodes, within the
    /// depth and size budget (which also ends self-referencing containers).
    fn build(&self, id: usize, depth: usize, budget: &mut Budget) -> Result<Value, Error> {
        if depth > MAX_PICKLE_DEPTH {
            return Err(bad("nested too deeply"));
        }
        budget.items += 1;
        if budget.items > MAX_PICKLE_ITEMS {
            return Err(bad("too many items"));
        }
        match &self.nodes[id] {
            Node::Scalar(value) => Ok(value.clone()),
            Node::Str(text) => {
                budget.string_bytes += text.len();
                if budget.string_bytes > MAX_PICKLE_STRING_BYTES {
                    return Err(bad("strings too long in total"));
                }
                Ok(Value::String((*text).to_owned()))
            }
            Node::List(items) | Node::Tuple(items) => items
                .iter()
                .map(|&item| self.build(item, depth + 1, budget))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Node::Dict(pairs) => {
                let mut map = Map::with_capacity(pairs.len());
                for &(key, value) in pairs {
                    budget.items += 1;
                    let key = self.key(key)?;
                    let value = self.build(value, depth + 1, budget)?;
                    map.insert(key, value);
                }
                Ok(Value::Object(map))
            }
        }
    }

    /// A dict key as Python's `json.dumps` writes it: a str as is, an int in
    /// decimal, a float in `repr`, `True`/`False`/`None` as `true`/`false`/`null`.
    fn key(&self, id: usize) -> Result<String, Error> {
        match &self.nodes[id] {
            Node::Str(text) => Ok((*text).to_owned()),
            Node::Scalar(Value::Number(number)) => {
                let text = number.as_str();
                if super::is_float_text(text) {
                    let mut out = String::new();
                    write_python_float(super::float_value(text), &mut out);
                    Ok(out)
                } else {
                    Ok(text.to_owned())
                }
            }
            Node::Scalar(Value::Bool(b)) => Ok(b.to_string()),
            Node::Scalar(Value::Null) => Ok("null".to_owned()),
            _ => Err(bad("dict key is not a str, int, float, bool or None")),
        }
    }
}

#[derive(Default)]
struct Budget {
    items: usize,
    string_bytes: usize,
}

fn pairs(items: &[usize]) -> Result<Vec<(usize, usize)>, Error> {
    if !items.len().is_multiple_of(2) {
        return Err(bad("odd number of items for a dict"));
    }
    Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
}

/// The error for an opcode outside the plain-data subset.
fn rejected(op: u8) -> Error {
    match op {
        b'c' => Error::UnsafePickle("GLOBAL"),
        0x93 => Error::UnsafePickle("STACK_GLOBAL"),
        b'R' => Error::UnsafePickle("REDUCE"),
        b'b' => Error::UnsafePickle("BUILD"),
        b'i' => Error::UnsafePickle("INST"),
        b'o' => Error::UnsafePickle("OBJ"),
        0x81 => Error::UnsafePickle("NEWOBJ"),
        0x92 => Error::UnsafePickle("NEWOBJ_EX"),
        b'P' => Error::UnsafePickle("PERSID"),
        b'Q' => Error::UnsafePickle("BINPERSID"),
        0x82 => Error::UnsafePickle("EXT1"),
        0x83 => Error::UnsafePickle("EXT2"),
        0x84 => Error::UnsafePickle("EXT4"),
        b'B' | b'C' | 0x8e | 0x96 => bad("bytes are not plain data"),
        0x8f..=0x91 => bad("sets are not plain data"),
        0x97 | 0x98 => bad("out-of-band buffers are not plain data"),
        _ => bad("opcode outside the plain-data subset"),
    }
}
