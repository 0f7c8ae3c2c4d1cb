//! Request parameters as Prometheus reads them (`web/api/v1/api.go`): Go's `r.FormValue` and
//! `r.Form`, times as Unix seconds or RFC 3339, durations as float seconds or Prometheus
//! durations, `limit`, and `match[]` series selectors.

use axum::http::{HeaderMap, Method, Uri, header};
use kahu_tsdb::model::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{self, Expr};

use super::response::{ApiError, ErrorType};

/// Default start of optional time ranges: Prometheus' `MinTime`, in milliseconds.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// Default end of optional time ranges: Prometheus' `MaxTime`, in milliseconds.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;
/// `MinTime` as Go's RFC 3339 formatting writes it; clients (client_golang, Grafana) send it.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
/// `MaxTime` as Go's RFC 3339 formatting writes it.
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// All parameters of one request, in the order Go's `r.Form` holds them: the form body of a
/// POST/PUT/PATCH first, then the URL query string.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Collects the parameters of a request.
    pub fn from_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut pairs = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if (method == Method::POST || method == Method::PUT || method == Method::PATCH) && is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = uri.query() {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// Parameters from `name=value` pairs (tests, the command line).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Params {
        Params { pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The first value of `name`, or `None` when it is missing or empty (Go's `FormValue`
    /// returns `""` for both, and Prometheus treats both as "not given").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The first value of `name`, `""` when missing (Go's `FormValue`).
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every value of `name`, empty ones included (Go's `r.Form[name]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// `invalid parameter "<name>": <reason>`, the `bad_data` error of `invalidParamError`.
pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorType::BadData, format!("invalid parameter {}: {reason}", go_quote(name)))
}

/// Parses a time as Prometheus' `parseTime`: a float is Unix seconds with the fraction rounded to
/// milliseconds; otherwise RFC 3339 (with optional fractional seconds); or one of the two
/// sentinel strings for `MinTime`/`MaxTime`. Returns milliseconds.
///
/// Unlike Go, a float that is not finite or does not fit the millisecond range is refused rather
/// than turned into an arbitrary time.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {} to a valid timestamp", go_quote(s));
    if let Some(secs) = parse_go_float(s) {
        if !secs.is_finite() {
            return Err(bad());
        }
        // As Go: split whole and fractional seconds, round the fraction to milliseconds.
        let whole = secs.trunc();
        let frac_ms = ((secs - whole) * 1000.0).round();
        let ms = whole * 1000.0 + frac_ms;
        if !(MIN_TIME_MS as f64..=MAX_TIME_MS as f64).contains(&ms) {
            return Err(bad());
        }
        return Ok(ms as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        MIN_TIME_TEXT => Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => Ok(MAX_TIME_MS),
        _ => Err(bad()),
    }
}

/// An optional time parameter (`parseTimeParam`): `default` when missing or empty.
pub fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => {
            parse_time(v).map_err(|e| invalid_param(name, format!("invalid time value for '{name}': {e}")))
        }
    }
}

/// Nanoseconds in a millisecond.
const NS_PER_MS: i64 = 1_000_000;

/// Parses a duration as Prometheus' `parseDuration`: float seconds (`15`, `0.5`, `1e3`) or a
/// Prometheus duration (`5m`, `1h30m`, `1d`). Returns nanoseconds, as Go's `time.Duration`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(secs) = parse_go_float(s) {
        let ns = secs * 1e9;
        if ns.is_nan() {
            return Err(format!("cannot parse {} to a valid duration", go_quote(s)));
        }
        if ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!("cannot parse {} to a valid duration. It overflows int64", go_quote(s)));
        }
        return Ok(ns as i64);
    }
    prom_duration_ms(s)
        .and_then(|ms| ms.checked_mul(NS_PER_MS))
        .ok_or_else(|| format!("cannot parse {} to a valid duration", go_quote(s)))
}

/// A Prometheus duration (`model.ParseDuration`): `0`, or unit terms from largest to smallest,
/// each unit at most once: `y w d h m s ms`. Returns milliseconds; `None` if invalid or too large.
pub fn prom_duration_ms(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    // Order in which units may appear (ms after s).
    const ORDER: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_allowed = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let (num, tail) = rest.split_at(digits);
        let n: i64 = num.parse().ok()?;
        let &(unit, ms) = UNITS.iter().find(|(u, _)| tail.starts_with(u))?;
        let pos = ORDER.iter().position(|u| *u == unit)?;
        if pos < next_allowed {
            return None;
        }
        next_allowed = pos + 1;
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = tail.get(unit.len()..).unwrap_or("");
    }
    Some(total)
}

/// Parses `limit` as Prometheus' `parseLimitParam`: a non-negative integer; 0 (or missing) means
/// no limit.
pub fn parse_limit(params: &Params) -> Result<usize, ApiError> {
    let Some(s) = params.get("limit") else { return Ok(0) };
    let n = parse_go_int(s).map_err(|e| invalid_param("limit", e))?;
    if n < 0 {
        return Err(invalid_param("limit", "limit must be non-negative"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Go's `strconv.Atoi` on a 64-bit platform, with its error messages.
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s)));
    }
    s.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// A float as Go's `strconv.ParseFloat` reads decimal input (including `Inf`, `NaN`, exponents).
/// Rust's parser accepts the same decimal forms; it does not accept Go's hexadecimal floats or
/// digit separators, which no client sends for times or steps.
fn parse_go_float(s: &str) -> Option<f64> {
    // Rust accepts "infinity"/"inf"/"nan" in any case, as Go does.
    s.parse::<f64>().ok()
}

/// Parses the `match[]` values as Prometheus' `parseMatchersParam`: each must be a series
/// selector, and each must have a matcher that does not match the empty string.
pub fn parse_match_sets(values: &[&str]) -> Result<Vec<Vec<Matcher>>, String> {
    let mut sets = Vec::with_capacity(values.len());
    for v in values {
        let set = parse_selector(v)?;
        if set.iter().all(Matcher::matches_empty) {
            return Err("match[] must contain at least one non-empty matcher".to_string());
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Parses one series selector (`up`, `{job="x"}`, `up{a=~"b.*"}`) into matchers, the metric name
/// first as a `__name__` matcher, as Prometheus' `ParseMetricSelector`.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let expr = match parser::parse(s) {
        Ok(expr) => expr,
        // promql-parser applies the "at least one non-empty matcher" rule while parsing;
        // Prometheus applies it to match[] afterwards, with its own message.
        Err(e) if e.contains("at least one non-empty matcher") => {
            return Err("match[] must contain at least one non-empty matcher".to_string());
        }
        Err(e) => return Err(format!("parse error: {e}")),
    };
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("parse error: expected a series selector, got {}", expr_kind(&expr)));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("parse error: a series selector takes no offset or @ modifier".to_string());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("parse error: a series selector cannot contain `or`".to_string());
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        use promql_parser::label::MatchOp as P;
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::Regex,
            P::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn expr_kind(expr: &Expr) -> &'static str {
    match expr {
        Expr::Aggregate(_) => "an aggregation",
        Expr::Unary(_) => "a unary expression",
        Expr::Binary(_) => "a binary expression",
        Expr::Paren(_) => "a parenthesized expression",
        Expr::Subquery(_) => "a subquery",
        Expr::NumberLiteral(_) => "a number",
        Expr::StringLiteral(_) => "a string",
        Expr::VectorSelector(_) => "a vector selector",
        Expr::MatrixSelector(_) => "a range selector",
        Expr::Call(_) => "a function call",
        Expr::Extension(_) => "an extension",
    }
}

/// Unescapes a label name sent in a URL path as `U__…` (Prometheus' `model.UnescapeName` with
/// value-encoding escaping): `__` is `_`, `_<hex>_` is that code point, anything else is itself.
/// A malformed escape leaves the name as it was, as Go does.
pub fn unescape_label_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else { return name.to_string() };
    let bytes = escaped.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'_' {
            out.push(b);
            i += 1;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            None => return name.to_string(),
            Some(b'_') => {
                out.push(b'_');
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            let Some(&c) = bytes.get(i) else { return name.to_string() };
            if digits >= 6 {
                return name.to_string();
            }
            if c == b'_' {
                let Some(ch) = char::from_u32(code) else { return name.to_string() };
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += 1;
                break;
            }
            let Some(d) = (c as char).to_digit(16) else { return name.to_string() };
            code = code * 16 + d;
            digits += 1;
            i += 1;
        }
    }
    // Bytes copied verbatim came from a &str and escapes are whole code points, so this only
    // fails if an escape split a multi-byte character, which the loop above cannot do.
    String::from_utf8(out).unwrap_or_else(|_| name.to_string())
}

/// Where in `input` a parse error refers to (a byte offset), for pointing at it with a caret.
///
/// promql-parser reports no positions, so this finds the shortest prefix of the input that
/// fails with the same message: the error is at that prefix's last character. Errors about the
/// end of the input point just past it. `None` when no prefix reproduces the message.
pub fn parse_error_offset(input: &str, message: &str) -> Option<usize> {
    if message.contains("end of input") || message.contains("unclosed") {
        return Some(input.trim_end().len());
    }
    if input.len() > 4096 {
        return None;
    }
    let mut ends: Vec<usize> = input.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
    ends.dedup();
    for end in ends {
        let prefix = input.get(..end)?;
        // promql-parser's generic grammar error is also what an incomplete prefix gives (`1 +`);
        // the error is where a prefix stays wrong even when completed with an operand.
        let generic = message == "invalid promql query";
        if parser::parse(prefix).err().as_deref() == Some(message)
            && !(generic && parser::parse(&format!("{prefix} 0")).is_ok())
        {
            let last = prefix.chars().next_back().map(char::len_utf8).unwrap_or(0);
            return Some(end - last);
        }
    }
    None
}

/// Quotes a string as Go's `%q` does: double quotes, backslash escapes for quotes, backslashes
/// and control characters, printable Unicode kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_parse_time() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("4", 4000),
            ("1700000000", 1_700_000_000_000),
            ("1700000000.5", 1_700_000_000_500),
            ("1435781451.781", 1_435_781_451_781),
            ("1.0004", 1000),
            ("1.0006", 1001),
            ("-1.5", -1500),
            ("1e3", 1_000_000),
            ("2015-07-01T20:10:51.781Z", 1_435_781_451_781),
            ("2015-07-01T20:10:51Z", 1_435_781_451_000),
            ("2015-07-01T22:10:51.781+02:00", 1_435_781_451_781),
            ("1970-01-01T00:00:00.000999999Z", 0),
            (MIN_TIME_TEXT, MIN_TIME_MS),
            (MAX_TIME_TEXT, MAX_TIME_MS),
        ];
        for (s, want) in cases {
            assert_eq!(parse_time(s), Ok(*want), "parsing {s:?}");
        }
    }

    #[test]
    fn bad_times_get_prometheus_message() {
        for s in ["", "abc", "NaN", "Inf", "-Inf", "1e300", "2015-07-01", "2015-13-01T00:00:00Z", "12:00"] {
            assert_eq!(
                parse_time(s),
                Err(format!("cannot parse {} to a valid timestamp", go_quote(s))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn time_param_defaults_and_wraps_errors_as_parse_time_param() {
        let p = Params::from_pairs([("start", "x"), ("end", "")]);
        assert_eq!(time_param(&p, "end", MAX_TIME_MS).unwrap(), MAX_TIME_MS);
        assert_eq!(time_param(&p, "time", 7).unwrap(), 7);
        let err = time_param(&p, "start", 0).unwrap_err();
        assert_eq!(err.kind, ErrorType::BadData);
        assert_eq!(
            err.message,
            r#"invalid parameter "start": invalid time value for 'start': cannot parse "x" to a valid timestamp"#
        );
    }

    #[test]
    fn durations_are_float_seconds_or_prometheus_durations() {
        let cases: &[(&str, i64)] = &[
            ("15", 15_000_000_000),
            ("0.5", 500_000_000),
            ("-1", -1_000_000_000),
            ("0", 0),
            ("1m", 60_000_000_000),
            ("1m0s", 60_000_000_000),
            ("1h0m0s", 3_600_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("250ms", 250_000_000),
            ("1s500ms", 1_500_000_000),
            ("1d", 86_400_000_000_000),
            ("1w", 604_800_000_000_000),
            ("1y", 31_536_000_000_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s), Ok(*want), "parsing {s:?}");
        }
        for s in ["", "1x", "m", "1m1h", "1.5m", "-1m", "1s1s", "1ms1s", "abc"] {
            assert_eq!(
                parse_duration(s),
                Err(format!("cannot parse {} to a valid duration", go_quote(s))),
                "{s:?}"
            );
        }
        assert_eq!(
            parse_duration("1e20"),
            Err(r#"cannot parse "1e20" to a valid duration. It overflows int64"#.into())
        );
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn limit_is_a_non_negative_integer() {
        let limit = |v: &str| parse_limit(&Params::from_pairs([("limit", v)]));
        assert_eq!(limit("").unwrap(), 0);
        assert_eq!(limit("0").unwrap(), 0);
        assert_eq!(limit("40000").unwrap(), 40000);
        assert_eq!(
            limit("-1").unwrap_err().message,
            r#"invalid parameter "limit": limit must be non-negative"#
        );
        assert_eq!(
            limit("abc").unwrap_err().message,
            r#"invalid parameter "limit": strconv.Atoi: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            limit("1.5").unwrap_err().message,
            r#"invalid parameter "limit": strconv.Atoi: parsing "1.5": invalid syntax"#
        );
        assert_eq!(
            limit("99999999999999999999").unwrap_err().message,
            r#"invalid parameter "limit": strconv.Atoi: parsing "99999999999999999999": value out of range"#
        );
    }

    #[test]
    fn match_sets_need_a_matcher_that_rejects_the_empty_string() {
        let sets = parse_match_sets(&["up", r#"{job="node",mode=~"idle|user"}"#]).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0], vec![Matcher::equal("__name__", "up")]);
        assert_eq!(sets[1].len(), 2);
        for bad in [r#"{a=~".*"}"#, r#"{a=""}"#, r#"{a!="x"}"#] {
            assert_eq!(
                parse_match_sets(&[bad]),
                Err("match[] must contain at least one non-empty matcher".to_string()),
                "{bad}"
            );
        }
        for bad in ["", "sum(up)", "up[5m]", "up offset 5m", "{", "1"] {
            let err = parse_match_sets(&[bad]).unwrap_err();
            assert!(err.starts_with("parse error: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn u_escaped_label_names_unescape_as_prometheus() {
        let cases = [
            ("job", "job"),
            ("U__job", "job"),
            ("U__my__label", "my_label"),
            ("U__http_2e_method", "http.method"),
            ("U__smile_1f600_", "smile\u{1f600}"),
            ("U___2e_", "."),
            // Malformed escapes leave the name alone.
            ("U__bad_", "U__bad_"),
            ("U__bad_zz_", "U__bad_zz_"),
            ("U__bad_1234567_", "U__bad_1234567_"),
            ("U__surrogate_d800_", "U__surrogate_d800_"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape_label_name(input), want, "{input}");
        }
    }

    #[test]
    fn params_read_the_form_body_before_the_query_string() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8".parse().unwrap(),
        );
        let uri: Uri = "/api/v1/series?match[]=b&limit=5".parse().unwrap();
        let p = Params::from_request(&Method::POST, &uri, &headers, b"match%5B%5D=a&limit=3");
        assert_eq!(p.all("match[]"), ["a", "b"]);
        assert_eq!(p.get("limit"), Some("3"));
        // A GET body is not read, as in Go.
        let p = Params::from_request(&Method::GET, &uri, &headers, b"limit=3");
        assert_eq!(p.get("limit"), Some("5"));
    }

    #[test]
    fn parse_errors_point_at_the_character_they_are_about() {
        for (input, at) in
            [("(1))", 3), ("foo{a*\"b\"}", 5), ("1 !~ 1", 3), ("sum(rate(x[5m])", 15), ("up @", 4)]
        {
            let msg = parser::parse(input).unwrap_err();
            assert_eq!(parse_error_offset(input, &msg), Some(at), "{input:?}: {msg}");
        }
    }

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
    }
}
