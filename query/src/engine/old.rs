//! Placeholder evaluator (plain vector selectors), replaced by the full evaluator.

use kahu_tsdb::model::{METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use kahu_tsdb::querier::{Querier, QueryError};
use promql_parser::parser::{self, Expr, VectorSelector};

use super::EvalError;
use crate::value::{InstantSample, Value};

pub(super) fn eval(
    querier: &dyn Querier,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> Result<Value, EvalError> {
    let expr = parser::parse(query).map_err(EvalError::Parse)?;
    if start != end || step != 0 {
        return Err(EvalError::exec("range queries are not implemented yet"));
    }
    match &expr {
        Expr::VectorSelector(vs) => Ok(Value::Vector(eval_vector_selector(querier, vs, start, lookback)?)),
        other => Err(EvalError::exec(format!("unsupported expression: {other}"))),
    }
}

fn eval_vector_selector(
    querier: &dyn Querier,
    vs: &VectorSelector,
    t_ms: i64,
    lookback: i64,
) -> Result<Vec<InstantSample>, EvalError> {
    let matchers = to_matchers(vs)?;
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
    Ok(out)
}
