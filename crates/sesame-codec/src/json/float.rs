//! Python's `repr(float)`, which `json.dumps` writes for every float.

use std::fmt::Write as _;

/// Appends `value` as Python's `repr` writes it, with `json.dumps`'s
/// spellings `NaN`, `Infinity` and `-Infinity` for the non-finite values.
///
/// Python prints the shortest digits that read back to the same double
/// (David Gay's algorithm, mode 0), in positional form when the decimal
/// exponent is in `-4..16` and as `d.ddde±XX` otherwise; positional output
/// always has a `.` (`1.0`). Rust's `{:e}` gives the same shortest digits,
/// so only the layout is done here.
pub(crate) fn write_python_float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let sci = shortest_digits(value.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Python's `decpt`: the value is 0.<digits> × 10^decpt.
    let decpt = exponent + 1;
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        push_zeros(out, -decpt);
        out.push_str(&digits);
    } else if decpt >= len {
        out.push_str(&digits);
        push_zeros(out, decpt - len);
        out.push_str(".0");
    } else {
        // 0 < decpt < len, so decpt is a valid index into the ASCII digits.
        let (int, frac) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// The shortest round-tripping digits of a finite non-negative double, as
/// `<d>[.<ddd>]e<exp>` (e.g. `1.5e-7`, `0e0`), chosen as Python chooses them.
///
/// Rust's `{:e}` finds the shortest length, but when the double lies exactly
/// halfway between the two nearest decimals of that length it rounds up,
/// where Python rounds half to even (`111275153569243.125` is
/// `111275153569243.12` in Python). Formatting with that many digits rounds
/// half to even; it is taken when it still reads back as the same double
/// (near a power of two the nearest decimal may fall outside the rounding
/// interval, and then the `{:e}` digits are Python's too).
fn shortest_digits(value: f64) -> String {
    let shortest = format!("{value:e}");
    let digits = shortest.split_once('e').map_or(0, |(mantissa, _)| {
        mantissa.bytes().filter(u8::is_ascii_digit).count()
    });
    let nearest = format!("{value:.prec$e}", prec = digits.saturating_sub(1));
    if nearest != shortest && nearest.parse::<f64>() == Ok(value) {
        nearest
    } else {
        shortest
    }
}

fn push_zeros(out: &mut String, count: i32) {
    for _ in 0..count {
        out.push('0');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(value: f64) -> String {
        let mut out = String::new();
        write_python_float(value, &mut out);
        out
    }

    #[test]
    #[allow(clippy::excessive_precision)] // exact binary values, written out in full on purpose
    fn matches_python_repr() {
        // Each right-hand side is CPython 3.11's repr() of the left-hand side.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (9.99, "9.99"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (123_456.789, "123456.789"),
            (std::f64::consts::PI, "3.141592653589793"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (0.0001, "0.0001"),
            (0.000_123, "0.000123"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (5e-324, "5e-324"),
            (2.225_073_858_507_201_4e-308, "2.2250738585072014e-308"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e100, "1e+100"),
            // Exactly halfway between two 17-digit decimals: Python rounds half to even.
            (-111_275_153_569_243.125, "-111275153569243.12"),
            (147_117_772_004_750.625, "147117772004750.62"),
            (1_997_107_851_181_081.25, "1997107851181081.2"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, expected) in cases {
            assert_eq!(repr(value), expected, "{value:e}");
        }
    }
}
