//! Duration expressions (Prometheus 3.4+, on in its PromQL test engine): arithmetic where a
//! duration is expected — ranges and subquery steps (`x[5m+1m]`, `x[1h/2:step()]`) and offsets
//! (`offset (2 * 1m)`, `offset -(1m + 30s)`).
//!
//! promql-parser reads only duration literals there, so the query text is rewritten before
//! parsing: each such expression is evaluated to milliseconds and replaced by a literal
//! (`[360000ms]`). Numbers are seconds; `+ - * / % ^`, parentheses, unary signs, `step()` (the
//! query step; 0 for instant queries), `range()` (end minus start) and `min(a, b)`/`max(a, b)` are
//! understood. Text that already parses (plain literals) is left untouched, as is everything
//! inside strings and comments.

use std::borrow::Cow;

/// The query parameters duration expressions can refer to, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryParams {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

/// Rewrites the duration expressions of `query` to literals; the query unchanged when it has none.
pub(crate) fn rewrite(query: &str, params: QueryParams) -> Result<Cow<'_, str>, String> {
    let mut out = String::new();
    let mut copied = 0; // bytes of `query` already accounted for in `out`
    let bytes = query.as_bytes();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(bytes, i),
            b'#' => i = bytes.iter().skip(i).position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p),
            b'[' => {
                let Some(len) = bytes.iter().skip(i + 1).position(|&b| b == b']') else { break };
                let (inner_start, inner_end) = (i + 1, i + 1 + len);
                let inner = query.get(inner_start..inner_end).unwrap_or("");
                if let Some(new) = rewrite_brackets(inner, params)? {
                    out.push_str(query.get(copied..inner_start).unwrap_or(""));
                    out.push_str(&new);
                    copied = inner_end;
                }
                i = inner_end + 1;
            }
            _ if is_offset_keyword(query, i) => {
                let after = i + "offset".len();
                match rewrite_offset(query, after, params)? {
                    Some((end, new)) => {
                        out.push_str(query.get(copied..after).unwrap_or(""));
                        out.push(' ');
                        out.push_str(&new);
                        copied = end;
                        i = end;
                    }
                    None => i = after,
                }
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(query));
    }
    out.push_str(query.get(copied..).unwrap_or(""));
    Ok(Cow::Owned(out))
}

fn skip_string(bytes: &[u8], start: usize) -> usize {
    let q = bytes.get(start).copied().unwrap_or(b'"');
    let mut i = start + 1;
    while let Some(&c) = bytes.get(i) {
        if c == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        i += 1;
        if c == q {
            break;
        }
    }
    i
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// `offset` as the modifier keyword: a whole word that follows a selector, range or subquery
/// (so a label or metric named `offset` is left alone).
fn is_offset_keyword(query: &str, i: usize) -> bool {
    let bytes = query.as_bytes();
    let word = query.get(i..i + 6).is_some_and(|w| w.eq_ignore_ascii_case("offset"));
    if !word || bytes.get(i + 6).is_some_and(|&c| is_ident(c)) {
        return false;
    }
    if i > 0 && bytes.get(i - 1).is_some_and(|&c| is_ident(c)) {
        return false;
    }
    let prev = query.get(..i).unwrap_or("").trim_end().bytes().next_back();
    prev.is_some_and(|c| c == b'}' || c == b']' || c == b')' || is_ident(c))
}

/// The contents of `[...]`: a range, or `range:step` of a subquery.
fn rewrite_brackets(inner: &str, params: QueryParams) -> Result<Option<String>, String> {
    let parts = split_top_level_colon(inner);
    let mut changed = false;
    let mut new_parts = Vec::with_capacity(parts.len());
    for part in &parts {
        let t = part.trim();
        if t.is_empty() || is_duration_literal(t) {
            new_parts.push(part.to_string());
            continue;
        }
        let ms = eval_duration(t, params)?;
        // A range must be positive; so must an explicit subquery step.
        if ms <= 0 {
            return Err(format!("duration must be greater than 0: {t}"));
        }
        new_parts.push(format!("{ms}ms"));
        changed = true;
    }
    Ok(changed.then(|| new_parts.join(":")))
}

fn split_top_level_colon(s: &str) -> Vec<&str> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => return vec![s.get(..i).unwrap_or(""), s.get(i + 1..).unwrap_or("")],
            _ => {}
        }
    }
    vec![s]
}

/// After the `offset` keyword at byte `at`: a signed duration literal stays; a number, a
/// parenthesized expression or a call is evaluated. Returns where the rewritten text ends and its
/// replacement.
fn rewrite_offset(query: &str, at: usize, params: QueryParams) -> Result<Option<(usize, String)>, String> {
    let rest = query.get(at..).unwrap_or("");
    let trimmed = rest.trim_start();
    let mut pos = at + (rest.len() - trimmed.len());
    let mut sign = 1.0;
    let mut body = trimmed;
    if let Some(r) = body.strip_prefix('-') {
        sign = -1.0;
        let r2 = r.trim_start();
        pos += 1 + (r.len() - r2.len());
        body = r2;
    }
    let operand_len = if body.starts_with('(') {
        matching_paren(body).map(|e| e + 1)
    } else {
        let word = body.bytes().take_while(|&c| is_ident(c) || c == b'.').count();
        match body.get(word..).unwrap_or("").trim_start().strip_prefix('(') {
            Some(_) if word > 0 => {
                let open = body.find('(').unwrap_or(word);
                body.get(open..).and_then(matching_paren).map(|e| open + e + 1)
            }
            _ => Some(word),
        }
    };
    let Some(len) = operand_len.filter(|&l| l > 0) else { return Ok(None) };
    let operand = body.get(..len).unwrap_or("");
    if is_duration_literal(operand) {
        return Ok(None);
    }
    let secs_ms = eval_duration(operand, params)?;
    let ms = if sign < 0.0 { -secs_ms } else { secs_ms };
    Ok(Some((pos + len, format!("{ms}ms"))))
}

fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `5m`, `1h30m`, `100ms`: what promql-parser reads itself.
fn is_duration_literal(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = rest.get(digits..).unwrap_or("");
        let unit = ["ms", "s", "m", "h", "d", "w", "y"].iter().find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = rest.get(u.len()..).unwrap_or(""),
            None => return false,
        }
    }
    true
}

/// Evaluates a duration expression to milliseconds (truncated, as Prometheus converts seconds).
fn eval_duration(s: &str, params: QueryParams) -> Result<i64, String> {
    let mut p = Parser { s: s.as_bytes(), i: 0, params };
    let v = p.expr()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected {:?} in duration expression {s:?}", char::from(p.peek())));
    }
    if !v.is_finite() || v * 1000.0 >= i64::MAX as f64 || v * 1000.0 <= i64::MIN as f64 {
        return Err(format!("duration is out of range: {s}"));
    }
    Ok((v * 1000.0) as i64)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    params: QueryParams,
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == c {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err("division by zero in duration expression".into());
                }
                v /= d;
            } else if self.eat(b'%') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err("modulo by zero in duration expression".into());
                }
                v %= d;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.eat(b'-') {
            return Ok(-self.unary()?);
        }
        if self.eat(b'+') {
            return self.unary();
        }
        let base = self.primary()?;
        if self.eat(b'^') {
            return Ok(base.powf(self.unary()?));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        self.skip_ws();
        if self.eat(b'(') {
            let v = self.expr()?;
            if !self.eat(b')') {
                return Err("unclosed parenthesis in duration expression".into());
            }
            return Ok(v);
        }
        let start = self.i;
        if self.peek().is_ascii_alphabetic() {
            while self.peek().is_ascii_alphanumeric() || self.peek() == b'_' {
                self.i += 1;
            }
            let name = std::str::from_utf8(self.s.get(start..self.i).unwrap_or(b"")).unwrap_or("");
            if !self.eat(b'(') {
                return Err(format!("unexpected {name:?} in duration expression"));
            }
            let v = match name {
                "step" => self.params.step as f64 / 1000.0,
                "range" => (self.params.end - self.params.start) as f64 / 1000.0,
                "min" | "max" => {
                    let a = self.expr()?;
                    if !self.eat(b',') {
                        return Err(format!("{name}() takes two durations"));
                    }
                    let b = self.expr()?;
                    if name == "min" { a.min(b) } else { a.max(b) }
                }
                _ => return Err(format!("unknown function {name}() in duration expression")),
            };
            if !self.eat(b')') {
                return Err(format!("unclosed {name}( in duration expression"));
            }
            return Ok(v);
        }
        while self.peek().is_ascii_alphanumeric() || self.peek() == b'.' {
            self.i += 1;
        }
        let tok = std::str::from_utf8(self.s.get(start..self.i).unwrap_or(b"")).unwrap_or("");
        if tok.is_empty() {
            return Err("expected a number or duration in duration expression".into());
        }
        if let Ok(v) = tok.parse::<f64>() {
            return Ok(v);
        }
        literal_seconds(tok).ok_or_else(|| format!("bad number or duration syntax: {tok:?}"))
    }
}

fn literal_seconds(tok: &str) -> Option<f64> {
    if !is_duration_literal(tok) {
        return None;
    }
    const UNITS: [(&str, f64); 7] = [
        ("ms", 0.001),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86400.0),
        ("w", 604800.0),
        ("y", 31536000.0),
    ];
    let mut rest = tok;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (u, mult) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        total += n * mult;
        rest = rest.get(u.len()..)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: QueryParams = QueryParams { start: 0, end: 600_000, step: 10_000 };

    fn rw(q: &str) -> String {
        rewrite(q, P).unwrap().into_owned()
    }

    #[test]
    fn plain_literals_are_left_alone() {
        for q in [
            "rate(x[5m])",
            "x[1h30m:1m] offset -5m",
            "x{a=\"[1+1]\"} offset 1m",
            "sum by (offset) (x)",
            "x{offset=\"1\"}",
            "max_over_time(x[5m:])",
        ] {
            assert_eq!(rw(q), q);
        }
    }

    #[test]
    fn arithmetic_in_ranges_steps_and_offsets() {
        assert_eq!(rw("changes(x[26m+4m])"), "changes(x[1800000ms])");
        assert_eq!(rw("x[1800]"), "x[1800000ms]");
        assert_eq!(rw("x[2m*(10+5)]"), "x[1800000ms]");
        assert_eq!(rw("x[30m1s-30m1s % 1m]"), "x[1800000ms]");
        assert_eq!(rw("x[-5m+35m]"), "x[1800000ms]");
        assert_eq!(rw("s(x[29s+1s:((((8 - 2) / 3) * 7s) % 4) + 8000ms])"), "s(x[30000ms:10000ms])");
        assert_eq!(rw("x offset (100 + 2)"), "x offset 102000ms");
        assert_eq!(rw("x offset 100 + 2"), "x offset 100000ms + 2");
        assert_eq!(rw("x[1m] offset -(1m * 2)"), "x[1m] offset -120000ms");
        assert_eq!(rw("x[step()]"), "x[10000ms]");
        assert_eq!(rw("x[min(step(), 7s)] offset max(1s, 2s)"), "x[7000ms] offset 2000ms");
        assert_eq!(rw("x[range()]"), "x[600000ms]");
    }

    #[test]
    fn non_positive_ranges_and_bad_expressions_are_errors() {
        assert!(rewrite("x[1m-1m]", P).is_err());
        assert!(rewrite("x[step()]", QueryParams { start: 0, end: 0, step: 0 }).is_err());
        assert!(rewrite("x[1m/0]", P).is_err());
        assert!(rewrite("x[foo]", P).is_err());
    }
}
