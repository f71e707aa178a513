//! The writer: the bytes of CPython's C pickler (`_pickle`) at protocol 5.

use std::collections::HashMap;

use serde_json::{Number, Value};

use super::bigint;
use crate::SessionMap;

/// `_pickle.c`'s `FRAME_SIZE_TARGET`: a frame is closed at the first save
/// boundary past this size, and a str at least this long is written outside
/// any frame.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// `FRAME_SIZE_MIN`: a shorter frame is written without its header.
const FRAME_SIZE_MIN: usize = 4;
const FRAME_HEADER_SIZE: usize = 9;
/// Items per `MARK … SETITEMS` / `MARK … APPENDS` batch.
const BATCH_SIZE: usize = 1000;

/// Strs remembered in a plain list before a hash table is built: a
/// session's few keys are found faster, and without an allocation, by a
/// scan.
const FEW_STRINGS: usize = 8;

#[derive(Default)]
struct Writer<'a> {
    out: Vec<u8>,
    framing: bool,
    frame_start: Option<usize>,
    memo_len: usize,
    /// Memo index of each str written so far. Python's memo is keyed by
    /// object identity; equal strs are taken to be one object (see the module docs).
    strings: Strings<'a>,
}

/// The memo indexes of the strs written so far: the first
/// [`FEW_STRINGS`] in an array, the rest in a hash table.
#[derive(Default)]
struct Strings<'a> {
    few: [(&'a str, u32); FEW_STRINGS],
    few_len: usize,
    more: HashMap<&'a str, u32>,
}

impl<'a> Strings<'a> {
    fn get(&self, text: &str) -> Option<u32> {
        self.few[..self.few_len]
            .iter()
            .find(|(seen, _)| *seen == text)
            .map(|&(_, index)| index)
            .or_else(|| self.more.get(text).copied())
    }

    fn insert(&mut self, text: &'a str, index: u32) {
        if self.few_len < FEW_STRINGS {
            self.few[self.few_len] = (text, index);
            self.few_len += 1;
        } else {
            self.more.insert(text, index);
        }
    }
}

/// Bytes reserved for a pickle up front: room for a small session's.
const INITIAL_CAPACITY: usize = 128;

pub(super) fn dumps(map: &SessionMap) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(INITIAL_CAPACITY),
        ..Writer::default()
    };
    w.out.extend([0x80, 5]);
    w.framing = true;
    w.boundary();
    w.save_dict(map);
    w.write(b".");
    w.commit_frame();
    w.out
}

impl<'a> Writer<'a> {
    /// `_Pickler_Write`: opens a frame if none is open.
    fn write(&mut self, bytes: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend([0; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(bytes);
    }

    /// `_Pickler_CommitFrame`: fills in the open frame's header, or drops
    /// the header if the frame is shorter than `FRAME_SIZE_MIN`.
    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER_SIZE;
        if len >= FRAME_SIZE_MIN {
            self.out[start] = 0x95;
            self.out[start + 1..start + FRAME_HEADER_SIZE]
                .copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER_SIZE);
        }
    }

    /// `_Pickler_OpcodeBoundary`, called as `save()` starts.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start
            && self.out.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET
        {
            self.commit_frame();
        }
    }

    /// `_Pickler_write_bytes`: large payloads bypass framing.
    fn write_bytes(&mut self, header: &[u8], data: &[u8]) {
        let bypass = data.len() >= FRAME_SIZE_TARGET;
        if bypass {
            self.commit_frame();
            self.framing = false;
        }
        self.write(header);
        self.write(data);
        self.framing = true;
    }

    fn memoize(&mut self) -> usize {
        self.write(&[0x94]);
        self.memo_len += 1;
        self.memo_len - 1
    }

    fn save(&mut self, value: &'a Value) {
        self.boundary();
        match value {
            Value::Null => self.write(b"N"),
            Value::Bool(true) => self.write(&[0x88]),
            Value::Bool(false) => self.write(&[0x89]),
            Value::Number(number) => self.save_number(number),
            Value::String(text) => self.save_str(text),
            Value::Array(items) => self.save_list(items),
            Value::Object(map) => self.save_dict(map),
        }
    }

    fn save_number(&mut self, number: &Number) {
        let text = number.as_str();
        if super::is_float_text(text) {
            let mut op = [b'G'; 9];
            op[1..].copy_from_slice(&super::float_value(text).to_be_bytes());
            self.write(&op);
        } else if let Some(v) = number.as_i64().and_then(|v| i32::try_from(v).ok()) {
            match (u8::try_from(v), u16::try_from(v)) {
                (Ok(v), _) => self.write(&[b'K', v]),
                (_, Ok(v)) => {
                    let [a, b] = v.to_le_bytes();
                    self.write(&[b'M', a, b]);
                }
                _ => {
                    let mut op = [b'J'; 5];
                    op[1..].copy_from_slice(&v.to_le_bytes());
                    self.write(&op);
                }
            }
        } else {
            // serde_json only holds decimal integer text here; anything
            // else would be a bug upstream, written as 0 rather than panicking.
            let bytes = bigint::to_le_bytes(text).unwrap_or_default();
            match u8::try_from(bytes.len()) {
                Ok(n) => self.write(&[0x8a, n]),
                Err(_) => {
                    // Over 2^31 bytes of integer cannot be held in memory first.
                    let n = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
                    let mut op = [0x8b; 5];
                    op[1..].copy_from_slice(&n.to_le_bytes());
                    self.write(&op);
                }
            }
            self.write(&bytes);
        }
    }

    fn save_str(&mut self, text: &'a str) {
        if let Some(index) = self.strings.get(text) {
            match u8::try_from(index) {
                Ok(i) => self.write(&[b'h', i]),
                Err(_) => {
                    let mut op = [b'j'; 5];
                    op[1..].copy_from_slice(&index.to_le_bytes());
                    self.write(&op);
                }
            }
            return;
        }
        let len = text.len();
        let mut header = [0_u8; 9];
        let header = if let Ok(n) = u8::try_from(len) {
            header[..2].copy_from_slice(&[0x8c, n]);
            &header[..2]
        } else if let Ok(n) = u32::try_from(len) {
            header[0] = b'X';
            header[1..5].copy_from_slice(&n.to_le_bytes());
            &header[..5]
        } else {
            header[0] = 0x8d;
            header[1..].copy_from_slice(&(len as u64).to_le_bytes());
            &header[..]
        };
        self.write_bytes(header, text.as_bytes());
        let index = self.memoize();
        if let Ok(index) = u32::try_from(index) {
            self.strings.insert(text, index);
        }
    }

    fn save_list(&mut self, items: &'a [Value]) {
        self.write(b"]");
        self.memoize();
        if let [item] = items {
            self.save(item);
            self.write(b"a");
            return;
        }
        for batch in items.chunks(BATCH_SIZE) {
            self.write(b"(");
            for item in batch {
                self.save(item);
            }
            self.write(b"e");
        }
    }

    /// `save_dict` + `batch_dict_exact`. The C loop closes a batch after
    /// 1000 pairs and starts another while the last one was full, so a dict
    /// of exactly 1000·k pairs ends with an empty `MARK SETITEMS`.
    fn save_dict(&mut self, map: &'a SessionMap) {
        self.write(b"}");
        self.memoize();
        if map.len() == 1 {
            for (key, value) in map {
                self.boundary();
                self.save_str(key);
                self.save(value);
            }
            self.write(b"s");
            return;
        }
        if map.is_empty() {
            return;
        }
        let mut pairs = map.iter();
        loop {
            self.write(b"(");
            let mut count = 0;
            for (key, value) in pairs.by_ref() {
                self.boundary();
                self.save_str(key);
                self.save(value);
                count += 1;
                if count == BATCH_SIZE {
                    break;
                }
            }
            self.write(b"u");
            if count < BATCH_SIZE {
                break;
            }
        }
    }
}
