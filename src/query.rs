//! `kahu query EXPR`: ad-hoc PromQL from the shell, against a running server or a data directory.
//!
//! Exit codes: 0 success, 1 execution error (or the server cannot be reached), 2 parse error
//! or bad arguments.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::ValueEnum;
use kahu_query::api;
use kahu_query::format::format_float;

mod chart;

/// Flags of `kahu query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The PromQL expression.
    #[arg(value_name = "EXPR")]
    pub expr: String,

    /// The kahu (or Prometheus) server to ask.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9470", conflicts_with = "data_dir")]
    pub server: String,

    /// Evaluate straight from this data directory instead of asking a server; works while a
    /// server runs on it.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Evaluation time of an instant query: Unix seconds, RFC 3339, or `now` (default).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["start", "end", "step", "since"])]
    pub time: Option<String>,

    /// Start of a range query (Unix seconds, RFC 3339, `now`).
    #[arg(long, value_name = "TIME", conflicts_with = "since")]
    pub start: Option<String>,

    /// End of a range query (default `now`).
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,

    /// Step of a range query: a duration (`15s`, `1m`) or float seconds. Default: the range / 250.
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,

    /// A range query over the last DURATION (`10m`, `1h`, `2d`) up to `--end`.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Output format: `table` (default on a terminal), `json` (the API's answer; default
    /// otherwise) or `csv`.
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned labels and values; a chart per series for ranges.
    Table,
    /// The Prometheus API's JSON.
    Json,
    /// Comma-separated values, one row per sample.
    Csv,
}

/// A series' labels as name/value pairs.
pub type LabelPairs = Vec<(String, String)>;
/// One series of a range result.
pub type RangeRow = (LabelPairs, Vec<(i64, f64)>);
/// One sample of an instant vector.
pub type VectorRow = (LabelPairs, i64, f64);

/// The member `key` of a JSON object, `null` when absent.
fn field<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    v.get(key).unwrap_or(&serde_json::Value::Null)
}

/// A query result, from the server's JSON or from local evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A scalar at a time (ms).
    Scalar(i64, f64),
    /// A string at a time (ms).
    Str(i64, String),
    /// An instant vector: labels, time (ms), value.
    Vector(Vec<VectorRow>),
    /// A range result: labels and samples.
    Matrix(Vec<RangeRow>),
}

enum Failure {
    /// Bad arguments or an expression that does not parse: exit 2.
    Usage(String),
    /// The query failed or the server could not be asked: exit 1.
    Execution(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Execution(format!("{e:#}"))
    }
}

/// What to evaluate: one instant or a range.
pub enum Range {
    /// An instant query at this time (ms).
    Instant(i64),
    /// A range query (ms).
    Range {
        /// Start.
        start: i64,
        /// End.
        end: i64,
        /// Step.
        step_ms: i64,
    },
}

/// Runs `kahu query`.
pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    match query(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Usage(msg)) => {
            eprintln!("{msg}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Execution(msg)) => {
            eprintln!("kahu: error: {msg}");
            Ok(ExitCode::from(1))
        }
    }
}

fn query(args: &QueryArgs) -> Result<(), Failure> {
    // Checked as the engine parses it (Go string escapes, duration expressions); the step is
    // not known yet, so `step()` is taken as one second here.
    if let Err(msg) = kahu_query::engine::parse_query(&args.expr, 0, 0, 1000) {
        return Err(Failure::Usage(parse_error_report(&args.expr, &msg)));
    }
    let range = resolve_range(args).map_err(|e| Failure::Usage(format!("kahu: error: {e}")))?;
    let output =
        args.output.unwrap_or(if std::io::stdout().is_terminal() { Output::Table } else { Output::Json });
    let (answer, json) = match &args.data_dir {
        Some(dir) => local(dir, &args.expr, &range)?,
        None => remote(&args.server, &args.expr, &range)?,
    };
    let mut out = std::io::stdout().lock();
    let text = match output {
        Output::Json => json + "\n",
        Output::Csv => csv(&answer),
        Output::Table => table(&answer, &range, terminal_width()),
    };
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// The parse error with the expression and a caret under the position it refers to.
pub fn parse_error_report(expr: &str, msg: &str) -> String {
    let mut out = format!("kahu: parse error: {msg}\n");
    if expr.contains('\n') {
        return out;
    }
    out.push_str("  ");
    out.push_str(expr);
    out.push('\n');
    if let Some(offset) = api::parse_error_offset(expr, msg) {
        let col = expr.get(..offset).map(|s| s.chars().count()).unwrap_or(0);
        out.push_str(&" ".repeat(col + 2));
        out.push_str("^\n");
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn parse_time_arg(flag: &str, s: &str, now: i64) -> Result<i64, String> {
    if s == "now" {
        return Ok(now);
    }
    api::parse_time(s).map_err(|e| format!("--{flag}: {e} (use Unix seconds, RFC 3339 or `now`)"))
}

fn parse_duration_arg(flag: &str, s: &str) -> Result<i64, String> {
    let ns = api::parse_duration(s).map_err(|e| format!("--{flag}: {e}"))?;
    if ns < 1_000_000 {
        return Err(format!("--{flag} must be at least 1ms"));
    }
    Ok(ns / 1_000_000)
}

fn resolve_range(args: &QueryArgs) -> Result<Range, String> {
    let now = now_ms();
    let is_range = args.start.is_some() || args.since.is_some() || args.step.is_some() || args.end.is_some();
    if !is_range {
        let t = args.time.as_deref().map(|t| parse_time_arg("time", t, now)).transpose()?.unwrap_or(now);
        return Ok(Range::Instant(t));
    }
    let end = args.end.as_deref().map(|t| parse_time_arg("end", t, now)).transpose()?.unwrap_or(now);
    let start = match (&args.start, &args.since) {
        (Some(s), _) => parse_time_arg("start", s, now)?,
        (None, Some(since)) => end - parse_duration_arg("since", since)?,
        (None, None) => return Err("a range query needs --start or --since".into()),
    };
    if end < start {
        return Err("--end must not be before --start".into());
    }
    // As Prometheus' UI: about 250 points, at least one second.
    let step_ms = match &args.step {
        Some(s) => parse_duration_arg("step", s)?,
        None => ((end - start) / 250 / 1000).max(1) * 1000,
    };
    if (end - start) / step_ms > 11_000 {
        return Err("more than 11,000 points per series: use a larger --step".into());
    }
    Ok(Range::Range { start, end, step_ms })
}

fn seconds(ms: i64) -> String {
    let mut s = String::new();
    kahu_query::format::write_timestamp(&mut s, ms);
    s
}

/// Asks a server by form-encoded POST, as Grafana does.
fn remote(server: &str, expr: &str, range: &Range) -> Result<(Answer, String), Failure> {
    let base = server.trim_end_matches('/');
    let (path, mut form) = match range {
        Range::Instant(t) => ("/api/v1/query", vec![("time", seconds(*t))]),
        Range::Range { start, end, step_ms } => (
            "/api/v1/query_range",
            vec![("start", seconds(*start)), ("end", seconds(*end)), ("step", seconds(*step_ms))],
        ),
    };
    form.push(("query", expr.to_string()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(150)))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{path}");
    let mut resp = agent
        .post(&url)
        .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| Failure::Execution(format!("ask {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| Failure::Execution(format!("read the answer of {url}: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
        Failure::Execution(format!(
            "{url} answered {status} with a body that is not the Prometheus API's JSON: {}",
            body.chars().take(200).collect::<String>()
        ))
    })?;
    if field(&json, "status") != "success" {
        return Err(Failure::Execution(format!(
            "{}: {}",
            field(&json, "errorType").as_str().unwrap_or("error"),
            field(&json, "error").as_str().unwrap_or("unknown error")
        )));
    }
    for w in field(&json, "warnings")
        .as_array()
        .into_iter()
        .flatten()
        .chain(field(&json, "infos").as_array().into_iter().flatten())
    {
        if let Some(w) = w.as_str() {
            eprintln!("kahu: {w}");
        }
    }
    let answer = answer_from_json(field(&json, "data")).map_err(Failure::Execution)?;
    Ok((answer, body.trim_end().to_string()))
}

/// Reads the `data` object of a query answer.
pub fn answer_from_json(data: &serde_json::Value) -> Result<Answer, String> {
    fn point(p: &serde_json::Value) -> Option<(i64, f64)> {
        let t = p.get(0)?.as_f64()?;
        let v = p.get(1)?.as_str()?;
        let v = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some(((t * 1000.0).round() as i64, v))
    }
    fn labels(m: &serde_json::Value) -> Vec<(String, String)> {
        m.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    }
    let bad = || "the server's answer has an unexpected shape".to_string();
    let result = &field(data, "result");
    match field(data, "resultType").as_str() {
        Some("scalar") => point(result).map(|(t, v)| Answer::Scalar(t, v)).ok_or_else(bad),
        Some("string") => {
            let t = result.get(0).and_then(|t| t.as_f64()).ok_or_else(bad)?;
            let s = result.get(1).and_then(|s| s.as_str()).ok_or_else(bad)?;
            Ok(Answer::Str((t * 1000.0).round() as i64, s.to_string()))
        }
        Some("vector") => result
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| {
                let (t, v) = point(field(s, "value")).ok_or_else(bad)?;
                Ok((labels(field(s, "metric")), t, v))
            })
            .collect::<Result<_, String>>()
            .map(Answer::Vector),
        Some("matrix") => result
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| {
                let values = field(s, "values")
                    .as_array()
                    .map(|v| v.iter().filter_map(point).collect())
                    .unwrap_or_default();
                Ok((labels(field(s, "metric")), values))
            })
            .collect::<Result<_, String>>()
            .map(Answer::Matrix),
        _ => Err(bad()),
    }
}

/// Evaluates in this process from a data directory, opened read-only so that a server running
/// on it is not disturbed.
fn local(dir: &std::path::Path, expr: &str, range: &Range) -> Result<(Answer, String), Failure> {
    let db = kahu_tsdb::Db::open_read_only(dir)
        .with_context(|| format!("open data directory {} read-only", dir.display()))?;
    let engine = kahu_query::Engine::default();
    let value = match range {
        Range::Instant(t) => {
            let q = kahu_tsdb::Queryable::querier(&db).context("read data directory")?;
            engine
                .instant_query(q.as_ref(), expr, *t, &kahu_query::engine::QueryOpts::default())
                .map_err(|e| Failure::Execution(e.to_string()))?
                .value
        }
        Range::Range { start, end, step_ms } => api::range_query(&engine, &db, expr, *start, *end, *step_ms)
            .map_err(|e| Failure::Execution(e.message))?,
    };
    let json = format!("{{\"status\":\"success\",\"data\":{}}}", api::value_json(&value));
    Ok((answer_from_value(value), json))
}

fn answer_from_value(value: kahu_query::Value) -> Answer {
    let labels =
        |l: &kahu_tsdb::model::Labels| l.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect();
    match value {
        kahu_query::Value::Scalar { t, v } => Answer::Scalar(t, v),
        kahu_query::Value::String { t, v } => Answer::Str(t, v),
        kahu_query::Value::Vector(s) => {
            Answer::Vector(s.iter().map(|s| (labels(&s.labels), s.t, s.v)).collect())
        }
        kahu_query::Value::Matrix(m) => {
            Answer::Matrix(m.iter().map(|s| (labels(&s.labels), s.samples.clone())).collect())
        }
    }
}

fn terminal_width() -> usize {
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)).unwrap_or(100).clamp(40, 400)
}

/// `name{a="b", c="d"}` as Prometheus prints a series.
pub fn series_name(labels: &[(String, String)]) -> String {
    let ls = kahu_tsdb::model::Labels::from_pairs(labels.iter().cloned());
    match ls.metric_name() {
        Some(name) if ls.len() == 1 => name.to_string(),
        _ => ls.to_string(),
    }
}

/// The aligned table (instant results) or charts (range results).
pub fn table(answer: &Answer, range: &Range, width: usize) -> String {
    match answer {
        Answer::Scalar(_, v) => format!("{}\n", format_float(*v)),
        Answer::Str(_, s) => format!("{s}\n"),
        Answer::Vector(samples) if samples.is_empty() => "(empty result)\n".into(),
        Answer::Vector(samples) => {
            let rows: Vec<(String, String)> =
                samples.iter().map(|(l, _, v)| (series_name(l), format_float(*v))).collect();
            let vw = rows.iter().map(|(_, v)| v.chars().count()).max().unwrap_or(0);
            let lw = rows
                .iter()
                .map(|(l, _)| l.chars().count())
                .max()
                .unwrap_or(0)
                .min(width.saturating_sub(vw + 2));
            let mut out = String::new();
            for (l, v) in rows {
                out.push_str(&format!("{l:<lw$}  {v:>vw$}\n"));
            }
            out
        }
        Answer::Matrix(series) if series.is_empty() => "(empty result)\n".into(),
        Answer::Matrix(series) => {
            let (start, end) = match range {
                Range::Range { start, end, .. } => (*start, *end),
                Range::Instant(_) => {
                    let ts = series.iter().flat_map(|(_, s)| s.iter().map(|(t, _)| *t));
                    let (lo, hi) = ts.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
                    (lo, hi)
                }
            };
            let step = match range {
                Range::Range { step_ms, .. } => *step_ms,
                Range::Instant(_) => 0,
            };
            chart::render(series, start, end, step, width)
        }
    }
}

/// One CSV row per sample: `timestamp,value,<label>…` with every label name as a column.
pub fn csv(answer: &Answer) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::new();
    type Row<'a> = (&'a [(String, String)], i64, f64);
    let rows: Vec<Row<'_>> = match answer {
        Answer::Scalar(t, v) => vec![(&[][..], *t, *v)],
        Answer::Str(t, s) => return format!("timestamp,value\n{},{}\n", seconds(*t), field(s)),
        Answer::Vector(v) => v.iter().map(|(l, t, v)| (l.as_slice(), *t, *v)).collect(),
        Answer::Matrix(m) => {
            m.iter().flat_map(|(l, s)| s.iter().map(move |(t, v)| (l.as_slice(), *t, *v))).collect()
        }
    };
    let names: std::collections::BTreeSet<&str> =
        rows.iter().flat_map(|(l, _, _)| l.iter().map(|(k, _)| k.as_str())).collect();
    out.push_str("timestamp,value");
    for n in &names {
        out.push(',');
        out.push_str(&field(n));
    }
    out.push('\n');
    for (labels, t, v) in rows {
        out.push_str(&seconds(t));
        out.push(',');
        out.push_str(&format_float(v));
        for n in &names {
            out.push(',');
            if let Some((_, value)) = labels.iter().find(|(k, _)| k == n) {
                out.push_str(&field(value));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_points_at_the_offending_character() {
        let report = parse_error_report("(1))", "unexpected right parenthesis ')'");
        assert_eq!(report, "kahu: parse error: unexpected right parenthesis ')'\n  (1))\n     ^\n");
    }

    #[test]
    fn csv_has_one_column_per_label_name() {
        let a = Answer::Vector(vec![
            (vec![("__name__".into(), "up".into()), ("job".into(), "a,b".into())], 1500, 1.0),
            (vec![("__name__".into(), "up".into())], 1500, f64::NAN),
        ]);
        assert_eq!(csv(&a), "timestamp,value,__name__,job\n1.500,1,up,\"a,b\"\n1.500,NaN,up,\n");
    }

    #[test]
    fn instant_tables_align_labels_and_values() {
        let a = Answer::Vector(vec![
            (vec![("__name__".into(), "up".into()), ("job".into(), "node".into())], 0, 1.0),
            (vec![("__name__".into(), "up".into())], 0, 12.5),
        ]);
        assert_eq!(table(&a, &Range::Instant(0), 100), "up{job=\"node\"}     1\nup              12.5\n");
    }

    #[test]
    fn json_answers_parse_into_results() {
        let data: serde_json::Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1.5,"1"],[3,"+Inf"]]}]}"#,
        )
        .unwrap();
        assert_eq!(
            answer_from_json(&data).unwrap(),
            Answer::Matrix(vec![(vec![("a".into(), "b".into())], vec![(1500, 1.0), (3000, f64::INFINITY)])])
        );
    }
}
