//! The evaluator: walks the AST, producing each node's value for every step of a range at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kahu_tsdb::Querier;
use kahu_tsdb::model::{Labels, METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use kahu_tsdb::querier::QueryError;
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use super::annotations::{Annotations, Level};
use super::error::EvalError;
use super::limits::Interrupt;
use super::position::Positions;
use super::types::{Point, Range, Series, Val, drop_marked_names, duplicate_labelset, merge_same_labels};

/// Where evaluation happens, for messages.
pub(crate) const PHASE: &str = "expression evaluation";

/// How often (in series or steps) a long loop checks the deadline and the cancellation token.
const CHECK_EVERY: usize = 256;

/// Settings of one evaluation.
pub(crate) struct EvalSettings<'a> {
    pub querier: &'a dyn Querier,
    pub query: &'a str,
    pub interrupt: &'a Interrupt,
    pub lookback: i64,
    pub query_start: i64,
    pub query_end: i64,
    /// Step of the query in milliseconds, 0 for an instant query.
    pub query_step: i64,
    pub subquery_step: i64,
    pub delayed_name_removal: bool,
    pub max_samples: usize,
}

/// The state of one query's evaluation.
pub(crate) struct Evaluator<'a> {
    pub(crate) s: EvalSettings<'a>,
    positions: Positions,
    pub(crate) annotations: Annotations,
    cur_samples: usize,
    pub(crate) peak_samples: usize,
    pub(crate) total_samples: u64,
}

/// A source of range-vector windows: each series' samples (or subquery points) and where the
/// window ends at each step.
pub(crate) struct Windows {
    /// Window length in milliseconds.
    pub range: i64,
    /// Fixed window end when the selector has `@`.
    pub fixed_end: Option<i64>,
    /// Offset in milliseconds.
    pub offset: i64,
}

impl Windows {
    /// End of the window (inclusive) for the step at `ts`.
    pub(crate) fn end(&self, ts: i64) -> i64 {
        self.fixed_end.unwrap_or(ts - self.offset)
    }
}

/// Called with each series of a range vector: its labels, its samples, its windows.
pub(crate) type SeriesFn<'f, 'q> =
    dyn FnMut(&mut Evaluator<'q>, &Labels, &[Point], &Windows) -> Result<(), EvalError> + 'f;

/// One step's window handed to a range function.
pub(crate) struct Window<'w> {
    /// Samples in `(end - range, end]`, without stale markers.
    pub points: &'w [Point],
    /// The step's timestamp.
    pub ts: i64,
    /// Window bounds in milliseconds (`start` is exclusive).
    pub start: i64,
    pub end: i64,
    /// Index of the step.
    pub step: usize,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(s: EvalSettings<'a>, expr: &Expr) -> Self {
        let positions = Positions::compute(s.query, expr);
        Evaluator {
            s,
            positions,
            annotations: Annotations::default(),
            cur_samples: 0,
            peak_samples: 0,
            total_samples: 0,
        }
    }

    pub(crate) fn delayed(&self) -> bool {
        self.s.delayed_name_removal
    }

    pub(crate) fn annotate(&mut self, level: Level, msg: String, about: &Expr) {
        let pos = self.positions.of(about);
        self.annotations.add(level, msg, pos);
    }

    pub(crate) fn check(&self) -> Result<(), EvalError> {
        self.s.interrupt.check(PHASE)
    }

    /// Accounts for `n` more samples held in memory.
    pub(crate) fn hold(&mut self, n: usize) -> Result<(), EvalError> {
        self.cur_samples = self.cur_samples.saturating_add(n);
        if self.cur_samples > self.s.max_samples {
            return Err(EvalError::TooManySamples("query execution"));
        }
        self.peak_samples = self.peak_samples.max(self.cur_samples);
        Ok(())
    }

    /// Accounts for `n` samples released.
    pub(crate) fn release(&mut self, n: usize) {
        self.cur_samples = self.cur_samples.saturating_sub(n);
    }

    /// Evaluates `e` at every step of `r`.
    pub(crate) fn eval(&mut self, e: &Expr, r: Range) -> Result<Val, EvalError> {
        self.check()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; r.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, r),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr, r)?;
                self.negate(v)
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, r, false)?)),
            Expr::MatrixSelector(ms) => self.matrix_value(ms, r),
            Expr::Subquery(sq) => self.subquery_value(sq, r),
            Expr::Call(c) => self.call(c, r),
            Expr::Aggregate(a) => self.aggregate(a, r),
            Expr::Binary(b) => self.binary(b, r),
            Expr::Extension(_) => Err(EvalError::exec("extension expressions are not supported")),
        }
    }

    /// Evaluates an expression that must be an instant vector.
    pub(crate) fn eval_vector(&mut self, e: &Expr, r: Range) -> Result<Vec<Series>, EvalError> {
        match self.eval(e, r)? {
            Val::Vector(v) => Ok(v),
            other => Err(EvalError::exec(format!("expected instant vector, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must be a scalar: one value per step.
    pub(crate) fn eval_scalar(&mut self, e: &Expr, r: Range) -> Result<Vec<f64>, EvalError> {
        match self.eval(e, r)? {
            Val::Scalar(v) => Ok(v),
            other => Err(EvalError::exec(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must be a string.
    pub(crate) fn eval_string(&mut self, e: &Expr, r: Range) -> Result<String, EvalError> {
        match self.eval(e, r)? {
            Val::String(s) => Ok(s),
            other => Err(EvalError::exec(format!("expected string, got {}", other.type_name()))),
        }
    }

    fn negate(&mut self, v: Val) -> Result<Val, EvalError> {
        match v {
            Val::Scalar(mut s) => {
                s.iter_mut().for_each(|x| *x = -*x);
                Ok(Val::Scalar(s))
            }
            Val::Vector(mut series) => {
                for s in &mut series {
                    s.points.iter_mut().for_each(|p| p.v = -p.v);
                    s.drop_name = true;
                }
                Ok(Val::Vector(self.settle_names(series, false)?))
            }
            other => Err(EvalError::exec(format!(
                "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Applies name dropping to series an operation marked: at once without delayed name
    /// removal (merging series whose labels became equal, or failing when `merge` is false and
    /// any two did), not at all with it (the final result drops them).
    pub(crate) fn settle_names(
        &self,
        mut series: Vec<Series>,
        merge: bool,
    ) -> Result<Vec<Series>, EvalError> {
        if self.delayed() {
            return Ok(series);
        }
        if !drop_marked_names(&mut series) {
            return Ok(series);
        }
        if merge {
            merge_same_labels(series)
        } else {
            check_unique(&series)?;
            Ok(series)
        }
    }

    // ----- time helpers -----

    pub(crate) fn at_time(&self, at: Option<&AtModifier>) -> Option<i64> {
        at.map(|at| match at {
            AtModifier::Start => self.s.query_start,
            AtModifier::End => self.s.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        })
    }

    // ----- selectors -----

    /// The samples of `vs` at each step of `r`: the newest sample in `(ref - lookback, ref]`,
    /// unless it is a stale marker. With `sample_ts` the value is the sample's timestamp in
    /// seconds (for `timestamp()`).
    pub(crate) fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        r: Range,
        sample_ts: bool,
    ) -> Result<Vec<Series>, EvalError> {
        let offset = offset_ms(vs.offset.as_ref());
        let at = self.at_time(vs.at.as_ref());
        let mut out = self.select_instant(&selector_matchers(vs)?, offset, at, r, sample_ts)?;
        if vs.matchers.or_matchers.len() > 1 {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.dedup_by(|a, b| a.labels == b.labels);
        }
        Ok(out)
    }

    /// The instant-vector samples of the series matching any of `sets`, at every step.
    pub(crate) fn select_instant(
        &mut self,
        sets: &[Vec<Matcher>],
        offset: i64,
        at: Option<i64>,
        r: Range,
        sample_ts: bool,
    ) -> Result<Vec<Series>, EvalError> {
        let ref_at = |ts: i64| at.unwrap_or(ts) - offset;
        let (first, last) = (ref_at(r.start), ref_at(r.end));
        let lookback = self.s.lookback;
        let n = r.len();
        let mut out = Vec::new();
        for set in sets {
            let querier = self.s.querier;
            let series_set = querier.select(set, first.saturating_sub(lookback).saturating_add(1), last)?;
            for (i, series) in series_set.enumerate() {
                if i % CHECK_EVERY == 0 {
                    self.check()?;
                }
                let mut it = series.iter();
                let mut points = Vec::new();
                let mut cur: Option<kahu_tsdb::model::Sample> = None;
                let mut pending = it.next();
                for (step, ts) in r.timestamps().enumerate() {
                    let rt = ref_at(ts);
                    while let Some(p) = pending {
                        if p.t > rt {
                            break;
                        }
                        cur = Some(p);
                        pending = it.next();
                    }
                    if let Some(c) = cur
                        && c.t > rt - lookback
                        && !is_stale_nan(c.v)
                    {
                        if points.is_empty() {
                            points.reserve(n - step);
                        }
                        let v = if sample_ts { c.t as f64 / 1000.0 } else { c.v };
                        points.push(Point { t: ts, v });
                    }
                }
                if let Some(err) = it.err() {
                    return Err(storage_error(series.labels(), err));
                }
                if !points.is_empty() {
                    self.total_samples += points.len() as u64;
                    self.hold(points.len())?;
                    out.push(Series::new(series.labels().clone(), points));
                }
            }
        }
        Ok(out)
    }

    /// A range vector as a value: only instant queries have one (`foo[5m]`).
    fn matrix_value(&mut self, ms: &MatrixSelector, r: Range) -> Result<Val, EvalError> {
        let mut out = Vec::new();
        self.range_series(&Expr::MatrixSelector(ms.clone()), r, &mut |ev, labels, points, win| {
            let end = win.end(r.start);
            let start = end - win.range;
            let pts: Vec<Point> = points.iter().filter(|p| p.t > start && p.t <= end).copied().collect();
            if !pts.is_empty() {
                ev.hold(pts.len())?;
                out.push(Series::new(labels.clone(), pts));
            }
            Ok(())
        })?;
        Ok(Val::Matrix(out))
    }

    /// A subquery as a value: the inner expression's points in the window.
    fn subquery_value(&mut self, sq: &SubqueryExpr, r: Range) -> Result<Val, EvalError> {
        let (inner, _) = self.subquery_range(sq, r);
        let series = match self.eval(&sq.expr, inner)? {
            Val::Vector(v) => v,
            Val::Scalar(vals) => vec![Series::new(
                Labels::empty(),
                inner.timestamps().zip(vals).map(|(t, v)| Point { t, v }).collect(),
            )],
            other => return Err(EvalError::exec(format!("subquery of a {}", other.type_name()))),
        };
        Ok(Val::Matrix(series.into_iter().filter(|s| !s.points.is_empty()).collect()))
    }

    /// The range a subquery's inner expression is evaluated over for the outer range `r`, and
    /// the window description for sliding over its result. Inner steps are multiples of the
    /// subquery step, the first one strictly after the earliest window start (Prometheus 3).
    pub(crate) fn subquery_range(&self, sq: &SubqueryExpr, r: Range) -> (Range, Windows) {
        let step = sq.step.map_or(self.s.subquery_step, duration_ms).max(1);
        let offset = offset_ms(sq.offset.as_ref());
        let at = self.at_time(sq.at.as_ref());
        let range = duration_ms(sq.range);
        let first_end = at.unwrap_or(r.start) - offset;
        let last_end = at.unwrap_or(r.end) - offset;
        let start = ((first_end - range).div_euclid(step) + 1) * step;
        let inner = Range { start, end: last_end, step };
        (inner, Windows { range, fixed_end: at.map(|a| a - offset), offset })
    }

    /// Calls `f` with every series of a range-vector expression (a matrix selector or a
    /// subquery, possibly in parentheses): its labels, all its samples (stale markers removed)
    /// for the whole range `r`, and how windows are placed.
    pub(crate) fn range_series(
        &mut self,
        arg: &Expr,
        r: Range,
        f: &mut SeriesFn<'_, 'a>,
    ) -> Result<(), EvalError> {
        match arg {
            Expr::Paren(p) => self.range_series(&p.expr, r, f),
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let offset = offset_ms(vs.offset.as_ref());
                let at = self.at_time(vs.at.as_ref());
                let range = duration_ms(ms.range);
                let win = Windows { range, fixed_end: at.map(|a| a - offset), offset };
                let (first, last) = (win.end(r.start), win.end(r.end));
                let mut buf: Vec<Point> = Vec::new();
                for set in selector_matchers(vs)? {
                    let querier = self.s.querier;
                    let series_set =
                        querier.select(&set, first.saturating_sub(range).saturating_add(1), last)?;
                    for (i, series) in series_set.enumerate() {
                        if i % CHECK_EVERY == 0 {
                            self.check()?;
                        }
                        buf.clear();
                        let mut it = series.iter();
                        while let Some(s) = it.next() {
                            if s.t > last {
                                break;
                            }
                            if !is_stale_nan(s.v) {
                                buf.push(Point { t: s.t, v: s.v });
                            }
                        }
                        if let Some(err) = it.err() {
                            return Err(storage_error(series.labels(), err));
                        }
                        if buf.is_empty() {
                            continue;
                        }
                        self.hold(buf.len())?;
                        let res = f(self, series.labels(), &buf, &win);
                        self.release(buf.len());
                        res?;
                    }
                }
                Ok(())
            }
            Expr::Subquery(sq) => {
                let (inner, win) = self.subquery_range(sq, r);
                let series = match self.eval(&sq.expr, inner)? {
                    Val::Vector(v) => v,
                    Val::Scalar(vals) => vec![Series::new(
                        Labels::empty(),
                        inner.timestamps().zip(vals).map(|(t, v)| Point { t, v }).collect(),
                    )],
                    other => return Err(EvalError::exec(format!("subquery of a {}", other.type_name()))),
                };
                for s in series {
                    if s.points.is_empty() {
                        continue;
                    }
                    let mut labels = s.labels;
                    if s.drop_name && labels.metric_name().is_some() {
                        // The inner expression dropped the name (delayed): it is gone for the
                        // function too.
                        let mut b = labels.builder();
                        b.delete(METRIC_NAME);
                        labels = b.build();
                    }
                    let res = f(self, &labels, &s.points, &win);
                    self.release(s.points.len());
                    res?;
                }
                Ok(())
            }
            other => Err(EvalError::exec(format!("expected a range vector, got {other}"))),
        }
    }

    /// Slides the windows of one series over the steps of `r`, calling `f` for each non-empty
    /// window; `f` returns the step's output value, if any.
    pub(crate) fn slide(
        &mut self,
        points: &[Point],
        win: &Windows,
        r: Range,
        f: &mut dyn FnMut(&Window<'_>) -> Result<Option<f64>, EvalError>,
    ) -> Result<Vec<Point>, EvalError> {
        let mut out = Vec::new();
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut window_total = 0u64;
        for (step, ts) in r.timestamps().enumerate() {
            let end = win.end(ts);
            let start = end - win.range;
            if end < points.first().map_or(i64::MIN, |p| p.t) {
                continue;
            }
            // Windows move forward (or stay, with @); never backwards.
            while points.get(hi).is_some_and(|p| p.t <= end) {
                hi += 1;
            }
            while lo < hi && points.get(lo).is_some_and(|p| p.t <= start) {
                lo += 1;
            }
            let Some(w) = points.get(lo..hi) else { continue };
            if w.is_empty() {
                continue;
            }
            window_total += w.len() as u64;
            if let Some(v) = f(&Window { points: w, ts, start, end, step })? {
                out.push(Point { t: ts, v });
            }
        }
        self.total_samples += window_total;
        self.hold(out.len())?;
        Ok(out)
    }
}

/// The matcher sets of a selector: one, or one per `or` alternative.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, EvalError> {
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(convert_matchers(vs.name.as_deref(), &vs.matchers.matchers)?);
    } else {
        for alt in &vs.matchers.or_matchers {
            let mut all = vs.matchers.matchers.clone();
            all.extend(alt.iter().cloned());
            sets.push(convert_matchers(vs.name.as_deref(), &all)?);
        }
    }
    Ok(sets)
}

fn convert_matchers(
    name: Option<&str>,
    ms: &[promql_parser::label::Matcher],
) -> Result<Vec<Matcher>, EvalError> {
    let mut out = Vec::with_capacity(ms.len() + 1);
    if let Some(name) = name {
        out.push(Matcher::equal(METRIC_NAME, name));
    }
    for m in ms {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone())?);
    }
    Ok(out)
}

/// The plain matchers of a selector expression, as `absent()` reads them for its output labels.
pub(crate) fn absent_labels(arg: &Expr) -> Labels {
    let vs = match arg {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut b = Labels::empty().builder();
    let mut has: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, PMatchOp::Equal) && !has.contains(&m.name.as_str()) {
            b.set(m.name.as_str(), m.value.as_str());
            has.push(&m.name);
        } else {
            b.delete(&m.name);
        }
    }
    b.build()
}

pub(crate) fn check_unique(series: &[Series]) -> Result<(), EvalError> {
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    for s in series {
        if !seen.insert(&s.labels) {
            return Err(duplicate_labelset());
        }
    }
    Ok(())
}

fn storage_error(labels: &Labels, err: &QueryError) -> EvalError {
    EvalError::Storage(QueryError::Corruption { location: labels.to_string(), reason: err.to_string() })
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}
