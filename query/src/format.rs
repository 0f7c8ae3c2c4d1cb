//! Number formatting exactly as Prometheus' JSON API writes it (`util/jsonutil/marshal.go`).

use std::fmt::Write;

/// Appends `v` as Prometheus writes sample values: Go's shortest representation, `'f'` format
/// unless `|v| < 1e-6` or `|v| >= 1e21`, then `'e'` with a signed, at least two-digit exponent;
/// `NaN`, `+Inf`, `-Inf` for the special values.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is shortest round-trip too, but writes `1e-7` where Go writes `1e-07`.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        // `{}` on f64 is the shortest representation that round-trips, never in exponent form.
        let _ = write!(out, "{v}");
    }
}

/// `v` formatted by [`write_float`].
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, v);
    s
}

/// Appends a millisecond timestamp as Prometheus writes it: whole seconds, then `.` and exactly
/// three digits when the millisecond part is not zero.
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    let secs = t_ms.div_euclid(1000);
    let ms = t_ms.rem_euclid(1000);
    if ms == 0 {
        let _ = write!(out, "{secs}");
    } else if secs < 0 {
        // Go writes the integer part of the float seconds, truncated toward zero, with the sign.
        let total = -t_ms;
        let _ = write!(out, "-{}.{:03}", total / 1000, total % 1000);
    } else {
        let _ = write!(out, "{secs}.{ms:03}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_go() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (1234567.8, "1234567.8"),
            (0.0000012345678, "0.0000012345678"),
            (1.2345678e-67, "1.2345678e-67"),
            (1e21, "1e+21"),
            (1e-7, "1e-07"),
            (123456789012345680000.0, "123456789012345680000"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.1, "0.1"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v), want, "formatting {v:?}");
        }
    }

    #[test]
    fn timestamps_have_zero_or_three_decimals() {
        let cases =
            [(0, "0"), (10, "0.010"), (1100, "1.100"), (1435781451781, "1435781451.781"), (-1500, "-1.500")];
        for (t, want) in cases {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            assert_eq!(s, want);
        }
    }
}
