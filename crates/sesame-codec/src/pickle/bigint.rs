//! Integers of any size: decimal text ↔ two's-complement little-endian bytes,
//! the form of pickle's `LONG1`/`LONG4` payloads.

use std::fmt::Write as _;

/// The two's-complement little-endian bytes of the integer `text`
/// (`-?[0-9]+`), as few as hold it with its sign: Python's `encode_long`
/// for every value it is used on (those outside the 32-bit range).
///
/// `None` if `text` is not a decimal integer.
pub(super) fn to_le_bytes(text: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The magnitude in base 2^32, least significant limb first.
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.as_bytes().chunks(9) {
        let mut scale = 1_u64;
        let mut carry = 0_u64;
        for &b in chunk {
            scale *= 10;
            carry = carry * 10 + u64::from(b - b'0');
        }
        for limb in &mut limbs {
            let x = u64::from(*limb) * scale + carry;
            *limb = low_u32(x);
            carry = x >> 32;
        }
        if carry > 0 {
            limbs.push(low_u32(carry));
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    // One byte of room for the sign, then two's complement, then trim.
    bytes.push(0);
    if negative {
        negate(&mut bytes);
    }
    while let [.., next, top] = bytes[..] {
        let redundant = (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        bytes.pop();
    }
    Some(bytes)
}

/// The decimal text of a two's-complement little-endian integer (empty = 0).
pub(super) fn from_le_bytes(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        negate(&mut magnitude);
    }
    let mut limbs: Vec<u32> = magnitude
        .chunks(4)
        .map(|c| {
            let mut word = [0_u8; 4];
            word[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(word)
        })
        .collect();
    // Base 10^9 digits, least significant first.
    let mut parts: Vec<u32> = Vec::new();
    loop {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        if limbs.is_empty() {
            break;
        }
        let mut rem = 0_u64;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = low_u32(cur / 1_000_000_000);
            rem = cur % 1_000_000_000;
        }
        parts.push(low_u32(rem));
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    match parts.split_last() {
        None => out.push('0'),
        Some((top, rest)) => {
            let _ = write!(out, "{top}");
            for part in rest.iter().rev() {
                let _ = write!(out, "{part:09}");
            }
        }
    }
    out
}

/// Two's-complement negation in place (invert, add one).
fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes {
        *b = !*b;
        if carry {
            let (sum, overflow) = b.overflowing_add(1);
            *b = sum;
            carry = overflow;
        }
    }
}

/// The low 32 bits of `x`.
#[allow(clippy::cast_possible_truncation)] // truncation is the point
fn low_u32(x: u64) -> u32 {
    x as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_encode_long() {
        // (value, Python's pickle.encode_long(value).hex())
        let cases = [
            ("2147483648", "0000008000"),
            ("-2147483649", "ffffff7fff"),
            ("12345678901", "351cdcdf02"),
            ("9223372036854775808", "000000000000008000"),
            ("-9223372036854775808", "0000000000000080"),
            ("255", "ff00"),
            ("-128", "80"),
            ("-129", "7fff"),
            ("-256", "00ff"),
            ("1", "01"),
            ("-1", "ff"),
        ];
        for (text, hex) in cases {
            let bytes = to_le_bytes(text).unwrap();
            let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text}");
            assert_eq!(from_le_bytes(&bytes), text);
        }
        assert_eq!(from_le_bytes(&[]), "0");
        assert_eq!(to_le_bytes("x"), None);
        assert_eq!(to_le_bytes("-"), None);
    }

    #[test]
    fn round_trips_big_values() {
        let big = format!("-{}", "9876543210".repeat(40));
        assert_eq!(from_le_bytes(&to_le_bytes(&big).unwrap()), big);
        let big = format!("1{}", "0".repeat(300));
        assert_eq!(from_le_bytes(&to_le_bytes(&big).unwrap()), big);
    }
}
