//! The PromQL engine: evaluates the `promql-parser` AST against a [`Querier`].

use std::time::Duration;

use kahu_tsdb::model::{METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use kahu_tsdb::querier::{Querier, QueryError};
use promql_parser::parser::{self, Expr, VectorSelector};

use crate::value::{InstantSample, Value};

/// Why a query failed. Each variant maps to one Prometheus API `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The expression does not parse (`bad_data`).
    #[error("{0}")]
    Parse(String),
    /// The expression is valid PromQL that this engine cannot evaluate yet (`execution`).
    #[error("unsupported expression: {0}")]
    Unsupported(String),
    /// A label matcher in the expression is invalid (`bad_data`).
    #[error("{0}")]
    BadMatcher(#[from] kahu_tsdb::model::MatcherError),
    /// Reading from storage failed (`internal`).
    #[error("{0}")]
    Storage(#[from] QueryError),
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { lookback_delta: Duration::from_secs(300) }
    }
}

/// Evaluates PromQL. Cheap to share: it holds only settings.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given settings.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// Evaluates `query` at `t_ms` (milliseconds).
    pub fn instant_query(&self, querier: &dyn Querier, query: &str, t_ms: i64) -> Result<Value, EvalError> {
        let expr = parser::parse(query).map_err(EvalError::Parse)?;
        match &expr {
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.eval_vector_selector(querier, vs, t_ms)?)),
            other => Err(EvalError::Unsupported(other.to_string())),
        }
    }

    fn eval_vector_selector(
        &self,
        querier: &dyn Querier,
        vs: &VectorSelector,
        t_ms: i64,
    ) -> Result<Vec<InstantSample>, EvalError> {
        let matchers = to_matchers(vs)?;
        let lookback = i64::try_from(self.opts.lookback_delta.as_millis()).unwrap_or(i64::MAX);
        // Prometheus 3: the lookback window is left-open, (t - lookback, t].
        let mint = t_ms.saturating_sub(lookback).saturating_add(1);
        let mut out = Vec::new();
        for series in querier.select(&matchers, mint, t_ms)? {
            let mut it = series.iter();
            let mut last = None;
            while let Some(s) = it.next() {
                if s.t > t_ms {
                    break;
                }
                last = Some(s);
            }
            if let Some(err) = it.err() {
                return Err(EvalError::Storage(QueryError::Corruption {
                    location: series.labels().to_string(),
                    reason: err.to_string(),
                }));
            }
            if let Some(s) = last.filter(|s| s.t >= mint && !is_stale_nan(s.v)) {
                out.push(InstantSample { labels: series.labels().clone(), t: t_ms, v: s.v });
            }
        }
        Ok(out)
    }
}

/// The selector's matchers in tsdb form, with the metric name as a `__name__` matcher.
fn to_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
    use promql_parser::label::MatchOp as P;
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::Regex,
            P::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone())?);
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Unsupported(format!("`or` inside a selector: {vs}")));
    }
    Ok(out)
}
