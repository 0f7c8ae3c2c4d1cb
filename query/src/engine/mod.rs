//! The PromQL engine: parses with `promql-parser` and evaluates the AST against a [`Querier`].
//!
//! # How a query runs
//!
//! 1. The query waits for one of `max_concurrency` slots (the `limits` module); its timeout already runs.
//! 2. The expression is parsed and type-checked.
//! 3. The evaluator works on whole ranges: every node produces its result for all steps of the
//!    query at once. A selector loads each series once for the whole range and slides its windows
//!    over it; aggregations and vector matching compute grouping keys once per series.
//!    An instant query is a range query with one step.
//! 4. Annotations (warnings and infos) collected on the way are rendered as Prometheus renders
//!    them, with the position of the expression they are about.

mod aggregate;
mod annotations;
mod binary;
mod duration_expr;
mod error;
mod eval;
mod functions;
mod go_strings;
mod gofmt;
mod histogram;
mod info;
mod limits;
pub(crate) mod math;
mod position;
mod range_fns;
mod types;

use std::time::{Duration, Instant};

use kahu_tsdb::Querier;
use promql_parser::parser::{self, Expr, value::ValueType};

use crate::value::{InstantSample, RangeSeries, Value};
pub use error::{ErrorKind, EvalError};
use eval::{EvalSettings, Evaluator, check_unique};
pub use limits::CancelToken;
use limits::{Gate, Interrupt};
use types::{Range, Series, Val, drop_marked_names, merge_same_labels};

/// Engine settings, the `--query.*` flags of `kahu serve`. Defaults are Prometheus' defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta: Duration,
    /// Longest a query may run, queue time included (`--query.timeout`, 2m).
    pub timeout: Duration,
    /// Most samples a query may hold in memory at once (`--query.max-samples`, 50,000,000).
    pub max_samples: usize,
    /// Most queries evaluated at the same time; the others wait (`--query.max-concurrency`, 20).
    pub max_concurrency: usize,
    /// Step of a subquery written without one (`x[1h:]`): Prometheus uses the global evaluation
    /// interval, 1m by default.
    pub default_subquery_step: Duration,
    /// Keep `__name__` until the end of evaluation, dropping it only from the final result
    /// (Prometheus' `promql-delayed-name-removal` feature flag; off by default, on in promqltest).
    pub delayed_name_removal: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_concurrency: 20,
            default_subquery_step: Duration::from_secs(60),
            delayed_name_removal: false,
        }
    }
}

/// How much of [`QueryStats`] to compute (the API's `stats` parameter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatsLevel {
    /// No statistics.
    #[default]
    None,
    /// Timings and sample counts (`stats=true`).
    Basic,
    /// Also sample counts per step (`stats=all`).
    PerStep,
}

/// Per-query settings.
#[derive(Debug, Clone, Default)]
pub struct QueryOpts {
    /// Overrides the engine's lookback delta (the API's `lookback_delta` parameter).
    pub lookback_delta: Option<Duration>,
    /// A timeout for this query; the engine's timeout still applies, so the smaller one wins.
    pub timeout: Option<Duration>,
    /// Trip it to stop the query (client went away).
    pub cancel: CancelToken,
    /// Which statistics to return.
    pub stats: StatsLevel,
}

/// Where a query spent its time, as in the `stats.timings` object of the Prometheus API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryTimings {
    /// Evaluation, sorting and preparation together.
    pub eval_total_time: Duration,
    /// Sorting the result.
    pub result_sort_time: Duration,
    /// Parsing and checking the expression.
    pub query_preparation_time: Duration,
    /// Evaluating the expression.
    pub inner_eval_time: Duration,
    /// Waiting for a concurrency slot.
    pub exec_queue_time: Duration,
    /// Everything, queue included.
    pub exec_total_time: Duration,
}

/// How many samples a query touched, as in the `stats.samples` object of the Prometheus API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleStats {
    /// Samples read from storage (a sample read for several steps counts for each).
    pub total_queryable_samples: u64,
    /// Most samples held in memory at once.
    pub peak_samples: u64,
    /// `total_queryable_samples` per step as `(t_ms, n)`, for [`StatsLevel::PerStep`].
    pub total_queryable_samples_per_step: Option<Vec<(i64, u64)>>,
}

/// Statistics of one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    /// Timings.
    pub timings: QueryTimings,
    /// Sample counts.
    pub samples: SampleStats,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value: a vector, scalar or string for instant queries (a matrix for a range-vector
    /// expression), a matrix sorted by labels for range queries.
    pub value: Value,
    /// Warnings, rendered as Prometheus renders them: `PromQL warning: <msg> (<line>:<col>)`.
    /// All of them; the API caps the list it sends.
    pub warnings: Vec<String>,
    /// Infos, rendered as `PromQL info: <msg> (<line>:<col>)`.
    pub infos: Vec<String>,
    /// Statistics when [`QueryOpts::stats`] asked for them.
    pub stats: Option<QueryStats>,
}

/// Evaluates PromQL. Cheap to clone; clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: EngineOptions,
    gate: std::sync::Arc<Gate>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineOptions::default())
    }
}

impl Engine {
    /// An engine with the given settings.
    pub fn new(opts: EngineOptions) -> Self {
        let gate = std::sync::Arc::new(Gate::new(opts.max_concurrency));
        Engine { opts, gate }
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Queries being evaluated now (not counting those waiting for a slot).
    pub fn running_queries(&self) -> usize {
        self.gate.running()
    }

    /// Evaluates `query` at `t_ms` (milliseconds since the epoch).
    pub fn instant_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        t_ms: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        self.run(querier, query, t_ms, t_ms, 0, opts)
    }

    /// Evaluates `query` at `start_ms`, `start_ms + step_ms`, … up to `end_ms`.
    pub fn range_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        if step_ms <= 0 {
            return Err(EvalError::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end_ms < start_ms {
            return Err(EvalError::Parse("end timestamp must not be before start time".into()));
        }
        self.run(querier, query, start_ms, end_ms, step_ms, opts)
    }

    fn run(
        &self,
        querier: &dyn Querier,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        let begin = Instant::now();
        let timeout = opts.timeout.map_or(self.opts.timeout, |t| t.min(self.opts.timeout));
        let interrupt = Interrupt::new(Some(timeout), opts.cancel.clone());
        let _slot = self.gate.acquire(&interrupt)?;
        let queued = begin.elapsed();

        let prep_start = Instant::now();
        let query = go_strings::normalize(query);
        let query = duration_expr::rewrite(&query, duration_expr::QueryParams { start, end, step })
            .map_err(EvalError::Parse)?;
        let query: &str = &query;
        let expr = parser::parse(query).map_err(|e| EvalError::Parse(positioned_parse_error(query, &e)))?;
        check_type(&expr, step > 0)?;
        let prepared = prep_start.elapsed();

        let lookback = opts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        let settings = EvalSettings {
            querier,
            query,
            interrupt: &interrupt,
            lookback: eval::duration_ms(lookback),
            query_start: start,
            query_end: end,
            query_step: step,
            subquery_step: eval::duration_ms(self.opts.default_subquery_step),
            delayed_name_removal: self.opts.delayed_name_removal,
            max_samples: self.opts.max_samples,
        };
        let range = if step > 0 { Range { start, end, step } } else { Range::instant(start) };
        let eval_start = Instant::now();
        let mut ev = Evaluator::new(settings, &expr);
        let val = ev.eval(&expr, range)?;
        let inner = eval_start.elapsed();
        let sort_start = Instant::now();
        let value = finish(val, range, step > 0)?;
        let sorted = sort_start.elapsed();
        let (warnings, infos) = ev.annotations.render(query);

        let stats = (opts.stats != StatsLevel::None).then(|| {
            let total = begin.elapsed();
            QueryStats {
                timings: QueryTimings {
                    eval_total_time: prepared + inner + sorted,
                    result_sort_time: sorted,
                    query_preparation_time: prepared,
                    inner_eval_time: inner,
                    exec_queue_time: queued,
                    exec_total_time: total,
                },
                samples: SampleStats {
                    total_queryable_samples: ev.total_samples,
                    peak_samples: ev.peak_samples as u64,
                    total_queryable_samples_per_step: None,
                },
            }
        });
        Ok(QueryResult { value, warnings, infos, stats })
    }
}

/// Parses `query` as the engine does: string literals decoded as Go decodes them and duration
/// expressions (`x[5m+1m]`, `offset (2 * 1m)`) evaluated, `step()` being `step_ms` and `range()`
/// being `end_ms - start_ms`. The error is promql-parser's message, without a position.
pub fn parse_query(query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Expr, String> {
    let query = go_strings::normalize(query);
    let query = duration_expr::rewrite(
        &query,
        duration_expr::QueryParams { start: start_ms, end: end_ms, step: step_ms },
    )?;
    parser::parse(&query)
}

/// A parse error as Prometheus words it: `LINE:COL: parse error: MESSAGE`, the column 1-based in
/// bytes of its line. promql-parser gives no position, so it is found with
/// [`parse_error_offset`](crate::api::parse_error_offset); without one, the message has no prefix
/// but `parse error: `.
pub fn positioned_parse_error(query: &str, message: &str) -> String {
    let offset = crate::api::parse_error_offset(query, message).or_else(|| {
        // A grammar error no prefix reproduces is an incomplete expression: at the end of input.
        (message == "invalid promql query" && query.len() <= 4096).then(|| query.trim_end().len())
    });
    match offset {
        Some(mut offset) => {
            // Prometheus' lexer reports a stray `)` just past it.
            if message.starts_with("unexpected right parenthesis") {
                offset += 1;
            }
            let before = query.get(..offset).unwrap_or(query);
            let line = before.matches('\n').count() + 1;
            let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{line}:{col}: parse error: {message}")
        }
        None => format!("parse error: {message}"),
    }
}

/// Prometheus' checks before evaluation: a range query needs a scalar or instant-vector
/// expression.
fn check_type(expr: &Expr, range_query: bool) -> Result<(), EvalError> {
    let ty = expr.value_type();
    if range_query && !matches!(ty, ValueType::Scalar | ValueType::Vector) {
        let name = match ty {
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
        };
        return Err(EvalError::Parse(format!(
            "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
        )));
    }
    Ok(())
}

/// The final value: names marked for removal dropped, series sorted by labels for range queries.
fn finish(val: Val, r: Range, range_query: bool) -> Result<Value, EvalError> {
    let series_out = |mut series: Vec<Series>, merge: bool| -> Result<Vec<Series>, EvalError> {
        if drop_marked_names(&mut series) {
            if merge {
                series = merge_same_labels(series)?;
            } else {
                check_unique(&series)?;
            }
        }
        series.retain(|s| !s.points.is_empty());
        Ok(series)
    };
    Ok(match val {
        Val::Scalar(v) if range_query => Value::Matrix(vec![RangeSeries {
            labels: kahu_tsdb::model::Labels::empty(),
            samples: r.timestamps().zip(v).collect(),
        }]),
        Val::Scalar(v) => Value::Scalar { t: r.start, v: v.first().copied().unwrap_or(f64::NAN) },
        Val::String(s) => Value::String { t: r.start, v: s },
        Val::Vector(series) if range_query => {
            let mut series = series_out(series, true)?;
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(
                series
                    .into_iter()
                    .map(|s| RangeSeries {
                        labels: s.labels,
                        samples: s.points.into_iter().map(|p| (p.t, p.v)).collect(),
                    })
                    .collect(),
            )
        }
        Val::Vector(series) => Value::Vector(
            series_out(series, false)?
                .into_iter()
                .filter_map(|s| {
                    let p = s.points.first()?;
                    Some(InstantSample { labels: s.labels, t: r.start, v: p.v })
                })
                .collect(),
        ),
        Val::Matrix(series) => Value::Matrix(
            series_out(series, false)?
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    samples: s.points.into_iter().map(|p| (p.t, p.v)).collect(),
                })
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use kahu_tsdb::model::Labels;
    use kahu_tsdb::{Appendable, MemHead, Queryable};

    use super::*;

    fn head(series: usize, points: i64) -> MemHead {
        let head = MemHead::new();
        for s in 0..series {
            let mut app = head.appender();
            let labels = Labels::from_pairs([("__name__", "m".to_string()), ("i", s.to_string())]);
            for p in 0..points {
                app.append(&labels, p * 10_000, p as f64).unwrap();
            }
            app.commit().unwrap();
        }
        head
    }

    #[test]
    fn parse_errors_carry_line_and_column_as_prometheus() {
        assert_eq!(
            positioned_parse_error("sum(", "unclosed left parenthesis"),
            "1:5: parse error: unclosed left parenthesis"
        );
        // The positions the real Prometheus (2.42) gives for these inputs.
        for (q, pos) in [
            ("(1))", "1:5"),
            ("sum(x)\n)", "2:2"),
            ("foo +", "1:6"),
            ("foo bar", "1:5"),
            ("1 +* 2", "1:4"),
            ("x{a=\"b\"", "1:8"),
            ("x[5m] offset", "1:13"),
            ("x @ foo()", "1:5"),
        ] {
            let msg = parser::parse(q).unwrap_err();
            assert_eq!(positioned_parse_error(q, &msg), format!("{pos}: parse error: {msg}"), "{q:?}");
        }
    }

    #[test]
    fn too_many_samples_is_an_execution_error_with_prometheus_message() {
        let h = head(10, 100);
        let q = h.querier().unwrap();
        let engine = Engine::new(EngineOptions { max_samples: 50, ..EngineOptions::default() });
        let err = engine.range_query(q.as_ref(), "m", 0, 990_000, 10_000, &QueryOpts::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query processing would load too many samples into memory in query execution"
        );
        assert_eq!(err.kind(), ErrorKind::Execution);
        // The engine stays usable, and a query within the limit works.
        let ok = engine.instant_query(q.as_ref(), "m", 990_000, &QueryOpts::default()).unwrap();
        assert!(matches!(ok.value, Value::Vector(ref v) if v.len() == 10));
        assert_eq!(engine.running_queries(), 0);
    }

    #[test]
    fn timeout_and_cancellation_stop_a_query() {
        let h = head(3, 10);
        let q = h.querier().unwrap();
        let engine = Engine::default();
        let opts = QueryOpts { timeout: Some(Duration::ZERO), ..QueryOpts::default() };
        let err = engine.instant_query(q.as_ref(), "sum(m)", 50_000, &opts).unwrap_err();
        assert_eq!(err.to_string(), "query timed out in expression evaluation");
        assert_eq!(err.kind(), ErrorKind::Timeout);

        let cancel = CancelToken::new();
        cancel.cancel();
        let opts = QueryOpts { cancel, ..QueryOpts::default() };
        let err = engine.instant_query(q.as_ref(), "m", 50_000, &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Canceled);
        assert_eq!(engine.running_queries(), 0);
    }

    #[test]
    fn parse_errors_and_wrong_types_are_bad_data() {
        let h = head(1, 1);
        let q = h.querier().unwrap();
        let engine = Engine::default();
        let err = engine.instant_query(q.as_ref(), "sum(", 0, &QueryOpts::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        let err = engine.range_query(q.as_ref(), "m[5m]", 0, 10, 1, &QueryOpts::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        let err = engine.instant_query(q.as_ref(), "m{a=~\"(\"}", 0, &QueryOpts::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData, "{err}");
    }

    #[test]
    fn stats_count_samples_and_warnings_render_positions() {
        let h = head(2, 10);
        let q = h.querier().unwrap();
        let engine = Engine::default();
        let opts = QueryOpts { stats: StatsLevel::Basic, ..QueryOpts::default() };
        let res = engine.instant_query(q.as_ref(), "rate(m[1m])", 90_000, &opts).unwrap();
        let stats = res.stats.unwrap();
        assert_eq!(stats.samples.total_queryable_samples, 12);
        assert!(stats.samples.peak_samples > 0);
        assert_eq!(
            res.infos,
            [
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"m\" (1:6)"
            ]
        );
    }
}
