//! Parsing of test scripts: commands, series descriptions and expectations.

use kahu_tsdb::model::{Labels, stale_nan};
use regex::Regex;

/// One value of a series description: a sample or a gap.
pub(crate) type SeqValue = Option<f64>;

/// A series description: labels and values.
pub(crate) type SeriesDesc = (Labels, Vec<SeqValue>);

/// How an expected failure, warning or info is matched.
#[derive(Debug, Clone)]
pub(crate) enum MsgMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

impl MsgMatch {
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            MsgMatch::Any => true,
            MsgMatch::Exact(m) => m == s,
            MsgMatch::Regex(re) => re.is_match(s),
        }
    }

    pub(crate) fn is_any(&self) -> bool {
        matches!(self, MsgMatch::Any)
    }
}

impl std::fmt::Display for MsgMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MsgMatch::Any => f.write_str("anything"),
            MsgMatch::Exact(m) => write!(f, "{m:?}"),
            MsgMatch::Regex(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

/// Expectations about one kind of annotation.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnnotationExpect {
    /// `expect warn`/`expect info` lines.
    pub lines: Vec<MsgMatch>,
    /// `expect no_warn`/`expect no_info`.
    pub none: bool,
    /// `eval_warn`/`eval_info` (deprecated): at least one.
    pub some: bool,
}

/// What an evaluation should produce.
#[derive(Debug, Clone)]
pub(crate) enum Expected {
    /// Series and their values (one for instant evals, one per step for range evals).
    Series(Vec<(Labels, Vec<SeqValue>)>),
    Scalar(f64),
    String(String),
    /// `expect range vector from A to B step S`: an instant eval returning a matrix.
    RangeVector {
        start: i64,
        end: i64,
        step: i64,
        series: Vec<(Labels, Vec<SeqValue>)>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum EvalKind {
    Instant { t: i64 },
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub line: usize,
    pub text: String,
    pub expr: String,
    pub kind: EvalKind,
    pub fail: Option<MsgMatch>,
    pub ordered: bool,
    pub warn: AnnotationExpect,
    pub info: AnnotationExpect,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Clear,
    Load {
        line: usize,
        step: i64,
        series: Vec<(Labels, Vec<SeqValue>)>,
    },
    Eval(Box<Eval>),
    /// A command that cannot be run; it counts as a failure.
    Invalid {
        line: usize,
        text: String,
        reason: String,
    },
}

/// Splits a script into commands, as Prometheus' harness does: `clear` is one line; `load` and
/// `eval` take the lines after them up to the first empty one. Comment lines count as empty.
pub(crate) fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') { String::new() } else { t.to_string() }
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(head) = lines.get(i) {
        let line = i + 1;
        i += 1;
        if head.is_empty() {
            continue;
        }
        let word = head.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let invalid = |reason: String| Command::Invalid { line, text: head.clone(), reason };
        if word == "clear" {
            out.push(Command::Clear);
            continue;
        }
        if !word.starts_with("load") && !word.starts_with("eval") {
            out.push(invalid(format!("invalid command {head:?}")));
            continue;
        }
        let mut body = Vec::new();
        while let Some(l) = lines.get(i).filter(|l| !l.is_empty()) {
            body.push(l.clone());
            i += 1;
        }
        out.push(if word.starts_with("load") {
            match parse_load(head, &body) {
                Ok((step, series)) => Command::Load { line, step, series },
                Err(e) => invalid(e),
            }
        } else {
            match parse_eval(line, head, &body) {
                Ok(ev) => Command::Eval(Box::new(ev)),
                Err(e) => invalid(e),
            }
        });
    }
    out
}

fn parse_load(head: &str, body: &[String]) -> Result<(i64, Vec<SeriesDesc>), String> {
    let mut parts = head.split_whitespace();
    let cmd = parts.next().unwrap_or("");
    if cmd == "load_with_nhcb" {
        return Err("load_with_nhcb needs native histograms, which kahu does not support yet".into());
    }
    if cmd != "load" {
        return Err(format!("invalid command {cmd:?}"));
    }
    let step = parse_duration(parts.next().ok_or("load needs a step")?)?;
    if parts.next().is_some() {
        return Err("load takes one argument, the step".into());
    }
    let mut series = Vec::new();
    for l in body {
        if l.contains("@st") {
            return Err("start-timestamp lines (@st) are not supported".into());
        }
        series.push(parse_series_desc(l)?);
    }
    Ok((step, series))
}

fn parse_eval(line: usize, head: &str, body: &[String]) -> Result<Eval, String> {
    let re_instant = Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
        .map_err(|e| e.to_string())?;
    let re_range =
        Regex::new(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
            .map_err(|e| e.to_string())?;
    let (modifier, kind, expr) = if let Some(c) = re_instant.captures(head) {
        let t = c.get(2).map_or(Ok(0), |m| parse_duration(m.as_str()))?;
        (
            c.get(1).map(|m| m.as_str().to_string()),
            EvalKind::Instant { t },
            c.get(3).map_or("", |m| m.as_str()),
        )
    } else if let Some(c) = re_range.captures(head) {
        let get = |i| c.get(i).map_or("", |m: regex::Match<'_>| m.as_str());
        let (start, end, step) = (parse_duration(get(2))?, parse_duration(get(3))?, parse_duration(get(4))?);
        if end < start {
            return Err("invalid test definition, end timestamp is before start timestamp".into());
        }
        if step <= 0 {
            return Err("invalid step".into());
        }
        (c.get(1).map(|m| m.as_str().to_string()), EvalKind::Range { start, end, step }, get(5))
    } else {
        return Err("invalid eval command".into());
    };
    let mut ev = Eval {
        line,
        text: head.to_string(),
        expr: expr.to_string(),
        kind,
        fail: None,
        ordered: false,
        warn: AnnotationExpect::default(),
        info: AnnotationExpect::default(),
        expected: Expected::Series(Vec::new()),
    };
    match modifier.as_deref() {
        Some("fail") => ev.fail = Some(MsgMatch::Any),
        Some("warn") => ev.warn.some = true,
        Some("info") => ev.info.some = true,
        Some("ordered") => ev.ordered = true,
        _ => {}
    }
    let re_expect =
        Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
            .map_err(|e| e.to_string())?;
    let re_range_vec = Regex::new(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
        .map_err(|e| e.to_string())?;
    let mut series = Vec::new();
    let mut range_vector = None;
    for l in body {
        if let Some(msg) = l.strip_prefix("expected_fail_message") {
            ev.fail = Some(MsgMatch::Exact(msg.trim().to_string()));
            continue;
        }
        if let Some(re) = l.strip_prefix("expected_fail_regexp") {
            ev.fail = Some(MsgMatch::Regex(Regex::new(re.trim()).map_err(|e| e.to_string())?));
            continue;
        }
        if let Some(c) = re_range_vec.captures(l) {
            if !matches!(ev.kind, EvalKind::Instant { .. }) {
                return Err("expect range vector can only be used with instant evals".into());
            }
            let get = |i| c.get(i).map_or("", |m: regex::Match<'_>| m.as_str());
            range_vector = Some((parse_duration(get(1))?, parse_duration(get(2))?, parse_duration(get(3))?));
            continue;
        }
        if let Some(rest) = l.strip_prefix("expect string") {
            if !matches!(ev.kind, EvalKind::Instant { .. }) {
                return Err("expect string can only be used with instant evals".into());
            }
            ev.expected = Expected::String(unquote(rest.trim())?);
            continue;
        }
        if l.starts_with("expect") {
            let c = re_expect.captures(l).ok_or_else(|| format!("invalid expect line {l:?}"))?;
            let what = c.get(1).map_or("", |m| m.as_str());
            let m = match (c.get(2).map(|m| m.as_str()), c.get(3).map(|m| m.as_str().trim())) {
                (Some("msg"), Some(msg)) => MsgMatch::Exact(msg.to_string()),
                (Some("regex"), Some(re)) => MsgMatch::Regex(Regex::new(re).map_err(|e| e.to_string())?),
                _ => MsgMatch::Any,
            };
            match what {
                "fail" => {
                    if ev.fail.as_ref().is_some_and(|f| !f.is_any()) {
                        return Err("only one expect fail line is allowed".into());
                    }
                    ev.fail = Some(m);
                }
                "ordered" => {
                    if matches!(ev.kind, EvalKind::Range { .. }) {
                        return Err("expect ordered is not allowed for range evals".into());
                    }
                    ev.ordered = true;
                }
                "warn" => ev.warn.lines.push(m),
                "info" => ev.info.lines.push(m),
                "no_warn" => ev.warn.none = true,
                "no_info" => ev.info.none = true,
                _ => return Err(format!("invalid expect line {l:?}")),
            }
            continue;
        }
        if let Some(v) = parse_bare_number(l) {
            ev.expected = Expected::Scalar(v);
            continue;
        }
        let (labels, values) = parse_series_desc(l)?;
        if series.iter().any(|(l2, _)| *l2 == labels) {
            return Err(format!("duplicate expected series {labels}"));
        }
        series.push((labels, values));
    }
    if (ev.warn.none && !ev.warn.lines.is_empty()) || (ev.info.none && !ev.info.lines.is_empty()) {
        return Err("cannot expect both an annotation and none".into());
    }
    if let Some((start, end, step)) = range_vector {
        ev.expected = Expected::RangeVector { start, end, step, series };
    } else if !series.is_empty() {
        if matches!(ev.expected, Expected::Scalar(_) | Expected::String(_)) {
            return Err("cannot expect both a scalar or string and series".into());
        }
        if matches!(ev.kind, EvalKind::Instant { .. }) && series.iter().any(|(_, v)| v.len() != 1) {
            return Err("expected exactly one value per series for an instant eval".into());
        }
        ev.expected = Expected::Series(series);
    }
    Ok(ev)
}

fn parse_bare_number(l: &str) -> Option<f64> {
    if l.contains(char::is_whitespace) {
        return None;
    }
    parse_number(l)
}

/// Prometheus `model.ParseDuration`: `0` or units y, w, d, h, m, s, ms from largest to smallest.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("ms", 1),
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit = i64::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let n: i64 = num.parse().map_err(|_| bad())?;
        let &(unit, ms) = UNITS.iter().find(|(u, _)| tail.starts_with(u)).ok_or_else(bad)?;
        if ms >= last_unit {
            return Err(bad());
        }
        last_unit = ms;
        total = n.checked_mul(ms).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        rest = tail.get(unit.len()..).unwrap_or("");
    }
    Ok(total)
}

/// A number as the series-description lexer reads it: decimal, hex, `Inf`, `NaN`, with a sign,
/// or a duration (its value in seconds).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        lower => {
            // No hexadecimal: Prometheus' lexer disallows it in series descriptions, where
            // `0x10` means "0 repeated 10 times".
            if body.starts_with(|c: char| c.is_ascii_digit() || c == '.') && !lower.starts_with("0x") {
                match body.parse::<f64>() {
                    Ok(v) if !body.ends_with(['i', 'I', 'n', 'N', 'y', 'Y']) => v,
                    _ => parse_duration(body).ok()? as f64 / 1000.0,
                }
            } else {
                return None;
            }
        }
    };
    Some(if neg { -v } else { v })
}

/// `labels values…`: a series selector without matchers other than `=`, then sample values.
pub(crate) fn parse_series_desc(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (labels, rest) = parse_metric(line)?;
    Ok((labels, parse_values(rest)?))
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses `name{l="v", …}` (either part optional, quoted names allowed) and returns the rest.
pub(crate) fn parse_metric(line: &str) -> Result<(Labels, &str), String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut rest = line.trim_start();
    if rest.starts_with(is_name_start) {
        let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
        pairs.push(("__name__".into(), rest.get(..end).unwrap_or("").into()));
        rest = rest.get(end..).unwrap_or("");
    }
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, quoted, after) = if rest.starts_with(['"', '\'', '`']) {
                let (s, after) = take_quoted(rest)?;
                (s, true, after)
            } else if rest.starts_with(is_name_start) {
                let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
                (rest.get(..end).unwrap_or("").to_string(), false, rest.get(end..).unwrap_or(""))
            } else {
                return Err(format!("unexpected {:?} in series description {line:?}", rest.chars().next()));
            };
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix('=') {
                let (value, after) = take_quoted(after.trim_start())?;
                pairs.push((name, value));
                rest = after.trim_start();
            } else if quoted {
                pairs.push(("__name__".into(), name));
            } else {
                return Err(format!("expected = after label name {name:?} in {line:?}"));
            }
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected , or }} in series description {line:?}"));
            }
        }
    } else if pairs.is_empty() {
        return Err(format!("invalid series description {line:?}"));
    }
    Ok((Labels::from_pairs(pairs), rest))
}

fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    let body = s.get(1..).unwrap_or("");
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q != '`' {
            escaped = true;
        } else if c == q {
            let raw = body.get(..i).unwrap_or("");
            let value = if q == '`' { raw.to_string() } else { unescape(raw)? };
            return Ok((value, body.get(i + 1..).unwrap_or("")));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Unquotes a Go string literal in any of the three quote styles.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let (v, rest) = take_quoted(s)?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected text after string: {rest:?}"));
    }
    Ok(v)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("trailing backslash")?;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' | '"' | '\'' | '`' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\{e}{hex}"))?;
                out.push(char::from_u32(code).ok_or_else(|| format!("bad escape \\{e}{hex}"))?);
            }
            '0'..='7' => {
                let mut oct = String::from(e);
                for _ in 0..2 {
                    if let Some(d) = chars.next() {
                        oct.push(d);
                    }
                }
                let code = u32::from_str_radix(&oct, 8).map_err(|_| format!("bad escape \\{oct}"))?;
                out.push(char::from_u32(code).ok_or_else(|| format!("bad escape \\{oct}"))?);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Ok(out)
}

/// The values part of a series description: `1 2 _ stale 0+10x5 _x3 1x4 -2-1x3`.
fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    if s.contains("{{") {
        return Err("native histogram samples are not supported by kahu yet".into());
    }
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("invalid repetition in {item:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if item == "stale" {
            out.push(Some(stale_nan()));
            continue;
        }
        let (head, times) = split_times(item);
        let Some(times) = times else {
            out.push(Some(parse_number(item).ok_or_else(|| format!("invalid value {item:?}"))?));
            continue;
        };
        let times: usize = times.parse().map_err(|_| format!("invalid repetition in {item:?}"))?;
        let (start, delta) = split_delta(head).ok_or_else(|| format!("invalid value {item:?}"))?;
        let mut v = start;
        for _ in 0..=times {
            out.push(Some(v));
            v += delta;
        }
    }
    Ok(out)
}

/// `value[+-delta]xN` → (`value[+-delta]`, `N`).
fn split_times(item: &str) -> (&str, Option<&str>) {
    if let Some(x) = item.rfind('x') {
        let (head, tail) = (item.get(..x).unwrap_or(""), item.get(x + 1..).unwrap_or(""));
        if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) && !head.is_empty() {
            return (head, Some(tail));
        }
    }
    (item, None)
}

fn split_delta(head: &str) -> Option<(f64, f64)> {
    let bytes = head.as_bytes();
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if (b == b'+' || b == b'-') && !matches!(bytes.get(i - 1), Some(b'e' | b'E')) {
            let start = parse_number(head.get(..i)?)?;
            let delta = parse_number(head.get(i + 1..)?)?;
            return Some((start, if b == b'-' { -delta } else { delta }));
        }
    }
    Some((parse_number(head)?, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_values() {
        let (l, v) =
            parse_series_desc(r#"http_requests{job="api", instance="0"} 0+10x3 _ _x2 stale 5x2 1-1x2"#)
                .unwrap();
        assert_eq!(l, Labels::from_pairs([("__name__", "http_requests"), ("job", "api"), ("instance", "0")]));
        let got: Vec<String> = v.iter().map(|x| x.map_or("_".into(), |v| format!("{v}"))).collect();
        assert_eq!(got, ["0", "10", "20", "30", "_", "_", "_", "NaN", "5", "5", "5", "1", "0", "-1"]);
        assert!(kahu_tsdb::model::is_stale_nan(v[7].unwrap()));
    }

    #[test]
    fn parses_label_only_and_quoted_names() {
        let (l, v) = parse_series_desc(r#"{} 3"#).unwrap();
        assert!(l.is_empty() && v == [Some(3.0)]);
        let (l, _) = parse_series_desc(r#"{"my.metric", "a.b"="c"} 1"#).unwrap();
        assert_eq!(l, Labels::from_pairs([("__name__", "my.metric"), ("a.b", "c")]));
        assert_eq!(
            parse_series_desc("x 1e3 -Inf 1m 0x2").unwrap().1,
            [Some(1e3), Some(f64::NEG_INFINITY), Some(60.0), Some(0.0), Some(0.0), Some(0.0)]
        );
    }

    #[test]
    fn parses_eval_commands() {
        let cmds = parse_script(
            "load 5m\n  a{x=\"1\"} 1 2\n\n# comment\neval instant at 5m a\n  expect warn msg: PromQL warning: x (1:1)\n  a{x=\"1\"} 2\n\neval range from 0 to 10m step 5m a\n  a{x=\"1\"} 1 2 _\n",
        );
        assert_eq!(cmds.len(), 3);
        let Command::Eval(ev) = &cmds[1] else { panic!("{cmds:?}") };
        assert!(matches!(ev.kind, EvalKind::Instant { t: 300_000 }));
        assert_eq!(ev.warn.lines.len(), 1);
        let Command::Eval(ev) = &cmds[2] else { panic!() };
        assert!(matches!(ev.kind, EvalKind::Range { start: 0, end: 600_000, step: 300_000 }));
    }
}
