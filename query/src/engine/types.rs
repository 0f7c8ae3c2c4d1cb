//! The evaluator's internal values: every node produces its result for all steps of a range.

use std::collections::HashMap;

use kahu_tsdb::model::{Labels, METRIC_NAME};

use super::error::EvalError;

/// One value of a series at one timestamp (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub t: i64,
    pub v: f64,
}

/// A series with its points, in time order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub labels: Labels,
    /// The metric name is to be dropped at the end of evaluation (delayed name removal); without
    /// delayed name removal it is dropped at once and this stays false.
    pub drop_name: bool,
    pub points: Vec<Point>,
}

impl Series {
    pub(crate) fn new(labels: Labels, points: Vec<Point>) -> Self {
        Series { labels, drop_name: false, points }
    }
}

/// The steps a node is evaluated at: `start, start + step, …, end` (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub start: i64,
    pub end: i64,
    /// Always at least 1 (an instant evaluation has one step).
    pub step: i64,
}

impl Range {
    pub(crate) fn instant(t: i64) -> Self {
        Range { start: t, end: t, step: 1 }
    }

    /// Number of steps.
    pub(crate) fn len(&self) -> usize {
        usize::try_from((self.end - self.start) / self.step + 1).unwrap_or(0)
    }

    /// Timestamp of step `i`.
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i64::try_from(i).unwrap_or(i64::MAX) * self.step
    }

    /// Step index of timestamp `t`, which must lie on the grid.
    pub(crate) fn index(&self, t: i64) -> usize {
        usize::try_from((t - self.start) / self.step).unwrap_or(0)
    }

    pub(crate) fn timestamps(&self) -> impl Iterator<Item = i64> + use<> {
        let (start, step) = (self.start, self.step);
        (0..self.len()).map(move |i| start + i64::try_from(i).unwrap_or(0) * step)
    }
}

/// What a node evaluates to, over all steps of its range.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// A string (the same at every step).
    String(String),
    /// An instant vector at every step: each series has at most one point per step.
    Vector(Vec<Series>),
    /// A range vector: raw samples per series (only as the result of an instant evaluation).
    Matrix(Vec<Series>),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::String(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }

    pub(crate) fn num_points(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::String(_) => 0,
            Val::Vector(s) | Val::Matrix(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// Drops `__name__` from series marked with `drop_name`.
pub(crate) fn drop_marked_names(series: &mut [Series]) -> bool {
    let mut any = false;
    for s in series.iter_mut().filter(|s| s.drop_name) {
        s.drop_name = false;
        if s.labels.metric_name().is_some() {
            let mut b = s.labels.builder();
            b.delete(METRIC_NAME);
            s.labels = b.build();
            any = true;
        }
    }
    any
}

/// Merges series whose labels became equal (after a name was dropped or a label rewritten).
/// Two of them having a point at the same step is the error Prometheus raises.
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut merged = false;
    for s in series {
        match index.get(&s.labels).copied() {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(i) => {
                let Some(into) = out.get_mut(i) else { continue };
                into.points = merge_points(std::mem::take(&mut into.points), s.points)?;
                into.drop_name |= s.drop_name;
                merged = true;
            }
        }
    }
    let _ = merged;
    Ok(out)
}

fn merge_points(a: Vec<Point>, b: Vec<Point>) -> Result<Vec<Point>, EvalError> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut ia, mut ib) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        match (ia.peek(), ib.peek()) {
            (Some(x), Some(y)) if x.t == y.t => return Err(duplicate_labelset()),
            (Some(x), Some(y)) => {
                let next = if x.t < y.t { ia.next() } else { ib.next() };
                out.extend(next);
            }
            (Some(_), None) => out.extend(ia.by_ref()),
            (None, Some(_)) => out.extend(ib.by_ref()),
            (None, None) => break,
        }
    }
    Ok(out)
}

pub(crate) fn duplicate_labelset() -> EvalError {
    EvalError::exec("vector cannot contain metrics with the same labelset")
}
