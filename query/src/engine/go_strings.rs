//! String literals as Go decodes them. Go's `"\xc3\xa9"` is the two bytes of `é`, and `"\xff"` a
//! byte that is not UTF-8; promql-parser decodes each `\x`/octal escape to the character of that
//! code point instead (`Ã©`, `ÿ`). Before parsing, literals with such escapes are rewritten to
//! what Go would decode: the UTF-8 text itself, or U+FFFD for bytes that are not UTF-8 (which no
//! stored label contains, and which label-name checks refuse, as Prometheus refuses invalid UTF-8).

use std::borrow::Cow;

/// The query with string literals that hold byte escapes above 0x7f rewritten; unchanged otherwise.
pub(crate) fn normalize(query: &str) -> Cow<'_, str> {
    let bytes = query.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' | b'\'' => {
                let end = literal_end(bytes, i);
                let body = query.get(i + 1..end.saturating_sub(1).max(i + 1)).unwrap_or("");
                if has_high_byte_escape(body)
                    && let Some(decoded) = go_unescape(body, c)
                {
                    out.push_str(query.get(copied..i).unwrap_or(""));
                    out.push_str(&requote(&String::from_utf8_lossy(&decoded)));
                    copied = end;
                }
                i = end;
            }
            b'`' => i = literal_end(bytes, i),
            b'#' => i = bytes.iter().skip(i).position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p),
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(query);
    }
    out.push_str(query.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

/// Index just past the closing quote of the literal starting at `start` (or the end of input).
fn literal_end(bytes: &[u8], start: usize) -> usize {
    let q = bytes.get(start).copied().unwrap_or(b'"');
    let mut i = start + 1;
    while let Some(&c) = bytes.get(i) {
        if c == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        i += 1;
        if c == q {
            return i;
        }
    }
    bytes.len()
}

fn has_high_byte_escape(body: &str) -> bool {
    let b = body.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            match b.get(i + 1) {
                Some(b'x')
                    if b.get(i + 2).is_some_and(|d| matches!(d, b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')) =>
                {
                    return true;
                }
                Some(b'2'..=b'3') => return true,
                _ => {}
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    false
}

/// Go's `strconv.Unquote` of a literal body to bytes; `None` on a malformed escape (left for
/// the parser to report).
fn go_unescape(body: &str, quote: u8) -> Option<Vec<u8>> {
    let b = body.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |s: &[u8]| -> Option<u32> { u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok() };
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1)?;
        i += 2;
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'\'' | b'"' if e == quote => out.push(e),
            b'x' => {
                out.push(u8::try_from(hex(b.get(i..i + 2)?)?).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let s = std::str::from_utf8(b.get(i - 1..i + 2)?).ok()?;
                out.push(u8::try_from(u32::from_str_radix(s, 8).ok()?).ok()?);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let ch = char::from_u32(hex(b.get(i..i + n)?)?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A double-quoted literal promql-parser decodes to `s`.
fn requote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a label name is refused: empty, or holding text that was not UTF-8 in the query.
pub(crate) fn invalid_label_name(name: &str) -> bool {
    name.is_empty() || name.contains('\u{FFFD}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_escapes_decode_as_in_go() {
        assert_eq!(normalize(r#"x{a="\xc3\xa9"}"#), "x{a=\"é\"}");
        assert_eq!(
            normalize(r#"label_replace(x, "\xff", "", "", "")"#),
            "label_replace(x, \"\u{FFFD}\", \"\", \"\", \"\")"
        );
        assert_eq!(normalize(r#"x{a='\303\251\n"'}"#), "x{a=\"é\\u000a\\\"\"}");
        assert_eq!(
            promql_parser::parser::parse(&normalize(r#"x{a='\303\251\n"'}"#)).unwrap().to_string(),
            promql_parser::parser::parse("x{a=\"é\\n\\\"\"}").unwrap().to_string()
        );
    }

    #[test]
    fn other_literals_are_untouched() {
        for q in [r#"x{a="\x41\n"}"#, r#"x{a=`\xff`}"#, "x{a=\"é\"} # \"\\xff\""] {
            assert_eq!(normalize(q), q);
        }
        assert_eq!(normalize(r#"x{a="b\"\xff"}"#), "x{a=\"b\\\"\u{FFFD}\"}");
    }
}
