//! Go's formatting of floats and strings, for messages that must read exactly as Prometheus'.

/// `strconv.FormatFloat(v, 'g', -1, 64)`, which is also what `%g` and `%v` print: shortest
/// digits, exponent form when the exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`).
pub(crate) fn go_float_g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{v}")
    }
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
pub(crate) fn go_float_f(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    format!("{v}")
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// `strconv.Quote` / `%q`: a double-quoted string with Go escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prometheus' `labels.Labels.String()`: `{__name__="up", job="node"}`, every label inside the
/// braces, names quoted only when they are not legacy identifiers.
pub(crate) fn go_labels(labels: &kahu_tsdb::model::Labels) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_name(&l.name) {
            out.push_str(&l.name);
        } else {
            out.push_str(&go_quote(&l.name));
        }
        out.push('=');
        out.push_str(&go_quote(&l.value));
    }
    out.push('}');
    out
}

fn is_legacy_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_as_go_does() {
        for (v, g) in [
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.0, "-2"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(go_float_g(v), g, "{v}");
        }
        assert_eq!(go_float_f(1e21), "1000000000000000000000");
        assert_eq!(go_float_f(0.1), "0.1");
        assert_eq!(go_float_f(f64::INFINITY), "+Inf");
    }

    #[test]
    fn strings_quote_as_go_does() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote(""), r#""""#);
    }
}
