//! `query`, `query_range`, `query_exemplars`, `format_query` and `parse_query`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use promql_parser::parser::{self, Expr};

use super::params::{self, invalid_param, parse_duration, parse_limit, parse_time, time_param};
use super::response::{self, Annotations, ApiError, JsonSink, json_str};
use super::{ApiRequest, ApiState, MAX_TIME_MS, MIN_TIME_MS, nanos, now_ms};
use crate::engine::{
    CancelToken, Engine, EvalError, QueryOpts, QueryResult, QueryStats, StatsLevel, positioned_parse_error,
};
use crate::value::Value;
use kahu_tsdb::Queryable;

/// Points per series a range query may return (Prometheus' fixed 11,000).
const MAX_POINTS_PER_SERIES: i128 = 11_000;

/// Cancels the query when dropped: the handler future is dropped when the client disconnects,
/// and the evaluation running on a blocking thread sees the token and stops.
struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    /// The query finished: dropping the guard no longer cancels it.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = &self.0 {
            token.cancel();
        }
    }
}

/// What a query evaluation needs besides the expression.
struct QueryJob {
    query: String,
    kind: JobKind,
    opts: QueryOpts,
}

enum JobKind {
    Instant { t: i64 },
    Range { start: i64, end: i64, step_ms: i64 },
}

/// `GET|POST /api/v1/query`.
pub async fn instant(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    match instant_job(&req) {
        Ok(job) => run(state, &req, job).await,
        Err(e) => e.into_response(),
    }
}

fn instant_job(req: &ApiRequest) -> Result<QueryJob, ApiError> {
    let p = &req.params;
    parse_limit(p)?;
    let t = time_param(p, "time", now_ms())?;
    Ok(QueryJob { query: p.value("query").to_string(), kind: JobKind::Instant { t }, opts: query_opts(p)? })
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    match range_job(&req) {
        Ok(job) => run(state, &req, job).await,
        Err(e) => e.into_response(),
    }
}

fn range_job(req: &ApiRequest) -> Result<QueryJob, ApiError> {
    let p = &req.params;
    parse_limit(p)?;
    let start = parse_time(p.value("start")).map_err(|e| invalid_param("start", e))?;
    let end = parse_time(p.value("end")).map_err(|e| invalid_param("end", e))?;
    if end < start {
        return Err(invalid_param("end", "end timestamp must not be before start time"));
    }
    let step_ns = parse_duration(p.value("step")).map_err(|e| invalid_param("step", e))?;
    // Steps below a millisecond cannot be evaluated on millisecond timestamps.
    if step_ns < 1_000_000 {
        return Err(invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // As Go: the range in nanoseconds (saturating like time.Sub) divided by the step.
    let range_ns = (i128::from(end) - i128::from(start)) * 1_000_000;
    if range_ns.min(i128::from(i64::MAX)) / i128::from(step_ns) > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(QueryJob {
        query: p.value("query").to_string(),
        kind: JobKind::Range { start, end, step_ms: step_ns / 1_000_000 },
        opts: query_opts(p)?,
    })
}

/// `timeout` (the engine keeps the smaller of it and `--query.timeout`), `lookback_delta` and
/// `stats`, as Prometheus reads them.
fn query_opts(p: &params::Params) -> Result<QueryOpts, ApiError> {
    let timeout = match p.get("timeout") {
        None => None,
        Some(to) => Some(nanos(parse_duration(to).map_err(|e| invalid_param("timeout", e))?)),
    };
    let lookback_delta = match p.get("lookback_delta") {
        None => None,
        Some(s) => Some(nanos(
            parse_duration(s)
                .map_err(|e| ApiError::bad_data(format!("error parsing lookback delta duration: {e}")))?,
        ))
        // Zero means the engine's default, as in Prometheus.
        .filter(|d| !d.is_zero()),
    };
    let stats = match p.get("stats") {
        None => StatsLevel::None,
        Some("all") => StatsLevel::PerStep,
        Some(_) => StatsLevel::Basic,
    };
    Ok(QueryOpts { lookback_delta, timeout, cancel: CancelToken::new(), stats })
}

async fn run(state: Arc<ApiState>, req: &ApiRequest, job: QueryJob) -> Response {
    let cancel = CancelOnDrop(Some(job.opts.cancel.clone()));
    let eval_state = Arc::clone(&state);
    let task = tokio::task::spawn_blocking(move || evaluate(&eval_state, &job));
    let result = match task.await {
        Ok(r) => r,
        Err(join) => return ApiError::internal(format!("query evaluation failed: {join}")).into_response(),
    };
    cancel.disarm();
    let result = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut annotations = Annotations { warnings: result.warnings, infos: result.infos };
    let limit = parse_limit(&req.params).unwrap_or(0);
    let value = truncate(result.value, limit, &mut annotations);
    let stats = result.stats;
    response::stream_success(annotations, move |w| {
        response::write_value(w, &value)?;
        if let Some(stats) = &stats {
            // Re-open the data object (its closing brace is still in the buffer) to add `stats`.
            let out = w.buf();
            out.pop();
            write_stats(out, stats);
            out.push('}');
        }
        Ok(())
    })
}

/// `,"stats":{…}` as Prometheus' `BuiltinStats`: timings in seconds, then sample counts.
fn write_stats(out: &mut String, s: &QueryStats) {
    let t = &s.timings;
    out.push_str(&format!(
        ",\"stats\":{{\"timings\":{{\"evalTotalTime\":{},\"resultSortTime\":{},\"queryPreparationTime\":{},\
         \"innerEvalTime\":{},\"execQueueTime\":{},\"execTotalTime\":{}}},\"samples\":{{",
        t.eval_total_time.as_secs_f64(),
        t.result_sort_time.as_secs_f64(),
        t.query_preparation_time.as_secs_f64(),
        t.inner_eval_time.as_secs_f64(),
        t.exec_queue_time.as_secs_f64(),
        t.exec_total_time.as_secs_f64(),
    ));
    if let Some(per_step) = &s.samples.total_queryable_samples_per_step {
        out.push_str("\"totalQueryableSamplesPerStep\":[");
        for (i, (t, n)) in per_step.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            crate::format::write_timestamp(out, *t);
            out.push_str(&format!(",{n}]"));
        }
        out.push_str("],");
    }
    out.push_str(&format!(
        "\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        s.samples.total_queryable_samples, s.samples.peak_samples
    ));
}

/// Keeps the first `limit` series of a vector or matrix (0: all), as Prometheus'
/// `truncateResults`, with its warning.
fn truncate(value: Value, limit: usize, annotations: &mut Annotations) -> Value {
    if limit == 0 {
        return value;
    }
    match value {
        Value::Vector(mut v) if v.len() > limit => {
            v.truncate(limit);
            annotations.warn("results truncated due to limit");
            Value::Vector(v)
        }
        Value::Matrix(mut m) if m.len() > limit => {
            m.truncate(limit);
            annotations.warn("results truncated due to limit");
            Value::Matrix(m)
        }
        other => other,
    }
}

fn evaluate(state: &ApiState, job: &QueryJob) -> Result<QueryResult, ApiError> {
    let querier = state.storage.querier().map_err(|e| ApiError::from_eval(EvalError::Storage(e)))?;
    let q = querier.as_ref();
    match job.kind {
        JobKind::Instant { t } => state.engine.instant_query(q, &job.query, t, &job.opts),
        JobKind::Range { start, end, step_ms } => {
            state.engine.range_query(q, &job.query, start, end, step_ms, &job.opts)
        }
    }
    .map_err(ApiError::from_eval)
}

/// Evaluates a range query with default options (for `kahu query --data-dir`).
pub fn range_query(
    engine: &Engine,
    storage: &dyn Queryable,
    query: &str,
    start: i64,
    end: i64,
    step_ms: i64,
) -> Result<Value, ApiError> {
    let querier = storage.querier().map_err(|e| ApiError::from_eval(EvalError::Storage(e)))?;
    engine
        .range_query(querier.as_ref(), query, start, end, step_ms, &QueryOpts::default())
        .map(|r| r.value)
        .map_err(ApiError::from_eval)
}

/// `GET|POST /api/v1/query_exemplars`. kahu stores no exemplars, so a query with selectors finds
/// none; the parameters are checked as Prometheus checks them.
pub async fn exemplars(req: ApiRequest) -> Response {
    let p = &req.params;
    let result = (|| {
        let start = time_param(p, "start", MIN_TIME_MS)?;
        let end = time_param(p, "end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data("end timestamp must not be before start timestamp"));
        }
        let expr = parser::parse(p.value("query")).map_err(ApiError::bad_data)?;
        Ok(has_selector(&expr))
    })();
    match result {
        Ok(true) => response::success("[]"),
        // Prometheus answers a query without selectors with no content.
        Ok(false) => response::no_content(),
        Err(e) => e.into_response(),
    }
}

/// Whether the expression selects any series (Prometheus' `ExtractSelectors` is non-empty).
fn has_selector(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Aggregate(a) => has_selector(&a.expr) || a.param.as_deref().is_some_and(has_selector),
        Expr::Unary(u) => has_selector(&u.expr),
        Expr::Binary(b) => has_selector(&b.lhs) || has_selector(&b.rhs),
        Expr::Paren(p) => has_selector(&p.expr),
        Expr::Subquery(s) => has_selector(&s.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| has_selector(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
    }
}

/// `GET|POST /api/v1/format_query`: the expression pretty-printed.
pub async fn format(req: ApiRequest) -> Response {
    match parser::parse(req.params.value("query")) {
        Ok(expr) => response::success(&json_str(&expr.prettify())),
        Err(e) => {
            invalid_param("query", positioned_parse_error(req.params.value("query"), &e)).into_response()
        }
    }
}

/// `GET|POST /api/v1/parse_query`: the expression's syntax tree as JSON, as Prometheus' UI reads it.
pub async fn parse(req: ApiRequest) -> Response {
    match parser::parse(req.params.value("query")) {
        Ok(expr) => response::success(&super::ast_json::expr_to_json(&expr).to_string()),
        Err(e) => {
            invalid_param("query", positioned_parse_error(req.params.value("query"), &e)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::InstantSample;
    use kahu_tsdb::model::Labels;

    #[test]
    fn truncation_keeps_the_first_series_and_warns() {
        let s = |n: &str| InstantSample { labels: Labels::from_pairs([("a", n)]), t: 0, v: 1.0 };
        let mut a = Annotations::default();
        let v = truncate(Value::Vector(vec![s("1"), s("2"), s("3")]), 2, &mut a);
        assert!(matches!(v, Value::Vector(ref v) if v.len() == 2));
        assert_eq!(a.warnings, ["results truncated due to limit"]);
        let mut a = Annotations::default();
        let v = truncate(Value::Vector(vec![s("1")]), 2, &mut a);
        assert!(matches!(v, Value::Vector(ref v) if v.len() == 1));
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn selectors_are_found_anywhere_in_the_tree() {
        for (q, want) in [
            ("1+1", false),
            ("time()", false),
            ("up", true),
            ("sum(rate(x[5m]))", true),
            ("1 + -(max_over_time(x[5m:1m]))", true),
            ("label_replace(vector(1), \"a\", \"b\", \"c\", \"d\")", false),
        ] {
            assert_eq!(has_selector(&parser::parse(q).unwrap()), want, "{q}");
        }
    }
}
