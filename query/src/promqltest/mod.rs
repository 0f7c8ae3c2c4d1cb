//! A runner for test scripts in the format of Prometheus' own PromQL tests
//! (`promql/promqltest/testdata/*.test`): `load`, `clear`, `eval instant at`, `eval range from …
//! to … step …`, expected failures, ordered results, expected warnings and infos.
//!
//! Data is loaded through the [`Appender`](kahu_tsdb::Appender) of an in-memory
//! [`MemHead`] and queried through its [`Querier`](kahu_tsdb::Querier), the
//! same boundaries the server uses. The engine runs with the settings of Prometheus' test suite:
//! 5m lookback and delayed `__name__` removal.
//!
//! Every `eval` is one case. A command the runner cannot run (a native-histogram load, an unknown
//! command) is a failure, never a pass. Like Prometheus' harness, an instant eval that succeeds is
//! run again as a range query from `T-1m` to `T+1m` and its middle step must agree.
//!
//! ```
//! let report = kahu_query::promqltest::run_script(
//!     "example",
//!     "load 1m\n  up{job=\"a\"} 0 1 2\n\neval instant at 2m up * 2\n  {job=\"a\"} 4\n",
//! );
//! assert_eq!((report.passed, report.failed), (1, 0), "{report}");
//! ```

mod parse;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use kahu_tsdb::model::{Labels, is_stale_nan};
use kahu_tsdb::{Appendable, MemHead, Queryable};

use crate::engine::math::almost_equal;
use crate::engine::{Engine, EngineOptions, QueryOpts, QueryResult};
use crate::value::Value;
use parse::{AnnotationExpect, Command, Eval, EvalKind, Expected, MsgMatch, SeqValue};

/// Relative tolerance of float comparisons (Prometheus `defaultEpsilon`).
const EPSILON: f64 = 1e-6;

/// One failed case.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The script's name (its path).
    pub file: String,
    /// Line of the command.
    pub line: usize,
    /// The command line.
    pub command: String,
    /// What went wrong, with expected and actual values.
    pub message: String,
}

/// The outcome of running scripts.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed, including commands that could not run.
    pub failed: usize,
    /// Each failure.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Adds another report's counts and failures.
    pub fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.failures.extend(other.failures);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fl in &self.failures {
            writeln!(f, "FAIL {}:{}: {}", fl.file, fl.line, fl.command)?;
            for l in fl.message.lines() {
                writeln!(f, "    {l}")?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// The engine settings of Prometheus' PromQL test suite.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        timeout: Duration::from_secs(100),
        delayed_name_removal: true,
        default_subquery_step: Duration::from_secs(60),
        ..EngineOptions::default()
    }
}

/// Runs the script in file `path`.
pub fn run_file(path: &Path) -> std::io::Result<Report> {
    let text = std::fs::read_to_string(path)?;
    Ok(run_script(&path.display().to_string(), &text))
}

/// Runs a script; `name` appears in failure messages.
pub fn run_script(name: &str, text: &str) -> Report {
    let engine = Engine::new(engine_options());
    let mut head = MemHead::new();
    let mut report = Report::default();
    for cmd in parse::parse_script(text) {
        let outcome = match &cmd {
            Command::Clear => {
                head = MemHead::new();
                continue;
            }
            Command::Load { line, step, series } => match load(&head, *step, series) {
                Ok(()) => continue,
                Err(e) => (*line, format!("load (step {step}ms)"), Err(e)),
            },
            Command::Invalid { line, text, reason } => (*line, text.clone(), Err(reason.clone())),
            Command::Eval(ev) => (ev.line, ev.text.clone(), run_eval(&engine, &head, ev)),
        };
        match outcome {
            (_, _, Ok(())) => report.passed += 1,
            (line, command, Err(message)) => {
                report.failed += 1;
                report.failures.push(Failure { file: name.to_string(), line, command, message });
            }
        }
    }
    report
}

fn load(head: &MemHead, step: i64, series: &[(Labels, Vec<SeqValue>)]) -> Result<(), String> {
    let mut app = head.appender();
    for (labels, values) in series {
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            let t = i64::try_from(i).unwrap_or(i64::MAX).saturating_mul(step);
            app.append(labels, t, *v).map_err(|e| format!("append {labels} at {t}: {e}"))?;
        }
    }
    app.commit().map_err(|e| format!("commit: {e}"))?;
    Ok(())
}

fn run_eval(engine: &Engine, head: &MemHead, ev: &Eval) -> Result<(), String> {
    let querier = head.querier().map_err(|e| e.to_string())?;
    let opts = QueryOpts::default();
    let res = match ev.kind {
        EvalKind::Instant { t } => engine.instant_query(querier.as_ref(), &ev.expr, t, &opts),
        EvalKind::Range { start, end, step } => {
            engine.range_query(querier.as_ref(), &ev.expr, start, end, step, &opts)
        }
    };
    let res = match (res, &ev.fail) {
        (Err(e), Some(m)) => {
            let msg = e.to_string();
            return if m.matches(&msg) {
                Ok(())
            } else {
                Err(format!("expected error matching {m}\n  got error: {msg}"))
            };
        }
        (Err(e), None) => return Err(format!("error evaluating query {:?}: {e}", ev.expr)),
        (Ok(_), Some(_)) => {
            return Err(format!("expected error evaluating query {:?} but got none", ev.expr));
        }
        (Ok(r), None) => r,
    };
    check_annotations("warning", &ev.warn, &res.warnings)?;
    check_annotations("info", &ev.info, &res.infos)?;
    compare(ev, &res.value)?;
    if let EvalKind::Instant { t } = ev.kind
        && !ev.ordered
        && matches!(ev.expected, Expected::Series(_) | Expected::Scalar(_))
        && !["start()", "end()", "range()", "step()"].iter().any(|f| ev.expr.contains(f))
    {
        check_range_mode(engine, querier.as_ref(), ev, t, &res)?;
    }
    Ok(())
}

/// Prometheus' harness runs each instant query again as a range query around it: the middle step
/// must give the same answer.
fn check_range_mode(
    engine: &Engine,
    querier: &dyn kahu_tsdb::Querier,
    ev: &Eval,
    t: i64,
    instant: &QueryResult,
) -> Result<(), String> {
    if matches!(instant.value, Value::Matrix(_) | Value::String { .. }) {
        return Ok(());
    }
    let res = engine
        .range_query(querier, &ev.expr, t - 60_000, t + 60_000, 60_000, &QueryOpts::default())
        .map_err(|e| format!("error evaluating query {:?} in range mode: {e}", ev.expr))?;
    let Value::Matrix(series) = res.value else { return Err("range query did not return a matrix".into()) };
    let mid: Vec<crate::value::InstantSample> = series
        .into_iter()
        .filter_map(|s| {
            let (_, v) = s.samples.into_iter().find(|(pt, _)| *pt == t)?;
            Some(crate::value::InstantSample { labels: s.labels, t, v })
        })
        .collect();
    let value = match instant.value {
        Value::Scalar { .. } => Value::Scalar { t, v: mid.first().map_or(f64::NAN, |s| s.v) },
        _ => Value::Vector(mid),
    };
    compare(ev, &value).map_err(|e| {
        format!("in range mode (middle step of {}m..{}m): {e}", (t - 60_000) / 60_000, (t + 60_000) / 60_000)
    })
}

fn check_annotations(kind: &str, exp: &AnnotationExpect, got: &[String]) -> Result<(), String> {
    if exp.none && !got.is_empty() {
        return Err(format!("expected no {kind}s but got: {got:?}"));
    }
    if (exp.some || !exp.lines.is_empty()) && got.is_empty() {
        return Err(format!("expected {kind}s but got none"));
    }
    if exp.lines.is_empty() {
        return Ok(());
    }
    for g in got {
        if !exp.lines.iter().any(|m| m.matches(g)) {
            return Err(format!("unexpected {kind}: {g}\n  expected: {}", list(&exp.lines)));
        }
    }
    for m in exp.lines.iter().filter(|m| !m.is_any()) {
        if !got.iter().any(|g| m.matches(g)) {
            return Err(format!("expected {kind} matching {m}\n  got: {got:?}"));
        }
    }
    Ok(())
}

fn list(ms: &[MsgMatch]) -> String {
    ms.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
}

fn floats_equal(expected: f64, got: f64) -> bool {
    if is_stale_nan(expected) || is_stale_nan(got) {
        return is_stale_nan(expected) == is_stale_nan(got);
    }
    almost_equal(expected, got, EPSILON)
}

fn fmt_value(v: SeqValue) -> String {
    v.map_or_else(|| "_".to_string(), crate::format::format_float)
}

fn fmt_result(value: &Value) -> String {
    match value {
        Value::Scalar { v, .. } => format!("scalar {}", crate::format::format_float(*v)),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(samples) => {
            let mut s = String::from("vector:");
            for x in samples {
                s.push_str(&format!("\n    {} {}", x.labels, crate::format::format_float(x.v)));
            }
            if samples.is_empty() {
                s.push_str(" (empty)");
            }
            s
        }
        Value::Matrix(series) => {
            let mut s = String::from("matrix:");
            for x in series {
                let pts: Vec<String> = x
                    .samples
                    .iter()
                    .map(|(t, v)| format!("{}@{}", crate::format::format_float(*v), t))
                    .collect();
                s.push_str(&format!("\n    {} {}", x.labels, pts.join(" ")));
            }
            if series.is_empty() {
                s.push_str(" (empty)");
            }
            s
        }
    }
}

fn fmt_expected(series: &[(Labels, Vec<SeqValue>)]) -> String {
    let mut s = String::new();
    for (l, vals) in series {
        let vs: Vec<String> = vals.iter().map(|v| fmt_value(*v)).collect();
        s.push_str(&format!("\n    {l} {}", vs.join(" ")));
    }
    if series.is_empty() {
        s.push_str(" (empty)");
    }
    s
}

fn compare(ev: &Eval, value: &Value) -> Result<(), String> {
    let mismatch = |why: String, expected: String| {
        Err(format!("{why}\n  expected:{expected}\n  got: {}", fmt_result(value)))
    };
    match (&ev.expected, value) {
        (Expected::Scalar(e), Value::Scalar { v, .. }) => {
            if floats_equal(*e, *v) {
                Ok(())
            } else {
                mismatch(
                    format!("expected scalar {} but got {}", fmt_value(Some(*e)), fmt_value(Some(*v))),
                    String::new(),
                )
            }
        }
        (Expected::Scalar(e), _) => {
            mismatch("expected a scalar result".into(), format!(" scalar {}", fmt_value(Some(*e))))
        }
        (Expected::String(e), Value::String { v, .. }) => {
            if e == v {
                Ok(())
            } else {
                mismatch(format!("expected string {e:?} but got {v:?}"), String::new())
            }
        }
        (Expected::String(e), _) => mismatch("expected a string result".into(), format!(" {e:?}")),
        (Expected::Series(_), Value::Scalar { .. }) => {
            mismatch("expected vector or matrix result, but got a scalar".into(), String::new())
        }
        (Expected::Series(_), Value::String { .. }) => {
            mismatch("expected vector or matrix result, but got a string".into(), String::new())
        }
        (Expected::Series(exp), Value::Vector(samples)) => {
            if matches!(ev.kind, EvalKind::Range { .. }) {
                return mismatch("range query returned a vector".into(), fmt_expected(exp));
            }
            for (pos, s) in samples.iter().enumerate() {
                let Some(ei) = exp.iter().position(|(l, _)| *l == s.labels) else {
                    return mismatch(
                        format!(
                            "unexpected metric {} in result, has value {}",
                            s.labels,
                            fmt_value(Some(s.v))
                        ),
                        fmt_expected(exp),
                    );
                };
                if ev.ordered && ei != pos {
                    return mismatch(
                        format!("expected metric {} at position {} but was at {}", s.labels, ei + 1, pos + 1),
                        fmt_expected(exp),
                    );
                }
                let want = exp.get(ei).and_then(|(_, v)| v.first().copied().flatten());
                if !want.is_some_and(|w| floats_equal(w, s.v)) {
                    return mismatch(
                        format!(
                            "expected {} for {} but got {}",
                            fmt_value(want),
                            s.labels,
                            fmt_value(Some(s.v))
                        ),
                        fmt_expected(exp),
                    );
                }
            }
            if let Some((l, v)) = exp.iter().find(|(l, _)| !samples.iter().any(|s| s.labels == *l)) {
                let vs: Vec<String> = v.iter().map(|x| fmt_value(*x)).collect();
                return mismatch(
                    format!("expected metric {l} with [{}] not found", vs.join(" ")),
                    fmt_expected(exp),
                );
            }
            Ok(())
        }
        (Expected::Series(exp), Value::Matrix(series)) => match ev.kind {
            EvalKind::Instant { .. } => {
                mismatch("received range result on instant evaluation".into(), fmt_expected(exp))
            }
            EvalKind::Range { start, end, step } => compare_matrix(exp, series, start, end, step, value),
        },
        (Expected::RangeVector { start, end, step, series: exp }, Value::Matrix(series)) => {
            compare_matrix(exp, series, *start, *end, *step, value)
        }
        (Expected::RangeVector { series: exp, .. }, _) => {
            mismatch("expected a range vector".into(), fmt_expected(exp))
        }
    }
}

fn compare_matrix(
    exp: &[(Labels, Vec<SeqValue>)],
    series: &[crate::value::RangeSeries],
    start: i64,
    end: i64,
    step: i64,
    value: &Value,
) -> Result<(), String> {
    let mismatch =
        |why: String| Err(format!("{why}\n  expected:{}\n  got: {}", fmt_expected(exp), fmt_result(value)));
    if series.windows(2).any(|w| matches!(w, [a, b] if a.labels > b.labels)) {
        return mismatch("matrix is not sorted by labels".into());
    }
    for s in series {
        let Some((_, vals)) = exp.iter().find(|(l, _)| *l == s.labels) else {
            return mismatch(format!("unexpected metric {} in result", s.labels));
        };
        let mut want = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let t = start + i64::try_from(i).unwrap_or(0) * step;
            if t > end {
                return mismatch(format!(
                    "expected {} points for {}, but query time range cannot return this many points",
                    vals.len(),
                    s.labels
                ));
            }
            if let Some(v) = v {
                want.push((t, *v));
            }
        }
        if want.len() != s.samples.len() {
            return mismatch(format!(
                "expected {} points for {}, but got {}",
                want.len(),
                s.labels,
                s.samples.len()
            ));
        }
        for (i, ((wt, wv), (gt, gv))) in want.iter().zip(&s.samples).enumerate() {
            if wt != gt {
                return mismatch(format!(
                    "expected point {i} of {} to have timestamp {wt}, but it had timestamp {gt}",
                    s.labels
                ));
            }
            if !floats_equal(*wv, *gv) {
                return mismatch(format!(
                    "expected point {i} (t={wt}) of {} to be {}, but got {}",
                    s.labels,
                    fmt_value(Some(*wv)),
                    fmt_value(Some(*gv))
                ));
            }
        }
    }
    if let Some((l, _)) = exp.iter().find(|(l, _)| !series.iter().any(|s| s.labels == *l)) {
        return mismatch(format!("expected metric {l} not found"));
    }
    Ok(())
}
