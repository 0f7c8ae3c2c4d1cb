//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, `limitk`, …).
//!
//! Grouping keys are computed once per input series. The operators that fold values (sum, avg,
//! count, min, max, group, stddev, stdvar) then run series by series, each series adding its
//! points to its group's per-step accumulators; the selecting ones (topk, bottomk, limitk,
//! limit_ratio, quantile, count_values) run step by step, as their output at a step depends on
//! all inputs at that step.

use std::collections::HashMap;

use kahu_tsdb::model::{Labels, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::annotations::{self, Level};
use super::error::EvalError;
use super::eval::Evaluator;
use super::gofmt::{go_float_f, go_float_g, go_quote};
use super::math::{kahan_inc, labels_hash, quantile};
use super::types::{Point, Range, Series, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Limitk,
    LimitRatio,
}

impl AggOp {
    fn from_token(t: &str) -> Option<Self> {
        Some(match t {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "count" => AggOp::Count,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            "limitk" => AggOp::Limitk,
            "limit_ratio" => AggOp::LimitRatio,
            _ => return None,
        })
    }
}

/// The per-step state of one group for the folding operators (Prometheus `groupedAggregation`).
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    seen: bool,
    incremental: bool,
    value: f64,
    kahan_c: f64,
    mean: f64,
    count: f64,
}

impl Acc {
    fn add(&mut self, op: AggOp, f: f64) {
        if !self.seen {
            *self = Acc { seen: true, incremental: false, value: f, kahan_c: 0.0, mean: f, count: 1.0 };
            match op {
                AggOp::Stddev | AggOp::Stdvar => self.value = 0.0,
                AggOp::Group => self.value = 1.0,
                _ => {}
            }
            return;
        }
        match op {
            AggOp::Sum => (self.value, self.kahan_c) = kahan_inc(f, self.value, self.kahan_c),
            AggOp::Avg => {
                self.count += 1.0;
                if !self.incremental {
                    let (v, c) = kahan_inc(f, self.value, self.kahan_c);
                    if !v.is_infinite() {
                        (self.value, self.kahan_c) = (v, c);
                        return;
                    }
                    // The sum would overflow: continue with the incremental mean.
                    self.incremental = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.kahan_c /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.kahan_c) = kahan_inc(f / self.count, q * self.mean, q * self.kahan_c);
            }
            AggOp::Max if self.value < f || self.value.is_nan() => self.value = f,
            AggOp::Min if self.value > f || self.value.is_nan() => self.value = f,
            AggOp::Count => self.count += 1.0,
            AggOp::Stddev | AggOp::Stdvar => {
                self.count += 1.0;
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            _ => {}
        }
    }

    fn result(&self, op: AggOp) -> f64 {
        match op {
            AggOp::Avg if self.incremental => self.mean + self.kahan_c,
            AggOp::Avg => self.value / self.count + self.kahan_c / self.count,
            AggOp::Count => self.count,
            AggOp::Stdvar => self.value / self.count,
            AggOp::Stddev => (self.value / self.count).sqrt(),
            AggOp::Sum => self.value + self.kahan_c,
            _ => self.value,
        }
    }
}

/// Called for each step with the `(series, value)` members of each group.
type StepFn<'e, 'q> =
    dyn FnMut(&mut Evaluator<'q>, usize, i64, &[Vec<(usize, f64)>]) -> Result<(), EvalError> + 'e;

/// `by` or `without`, with sorted label names.
struct Grouping {
    without: bool,
    names: Vec<String>,
}

impl Grouping {
    fn new(m: Option<&LabelModifier>) -> Self {
        let (without, mut names) = match m {
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
            None => (false, Vec::new()),
        };
        names.sort();
        names.dedup();
        Grouping { without, names }
    }

    /// The group's labels, which are also its key.
    fn key(&self, labels: &Labels, name_gone: bool) -> Labels {
        let kept = labels.iter().filter(|l| {
            let n = l.name.as_ref();
            if n == METRIC_NAME && (name_gone || self.without) {
                return false;
            }
            self.names.iter().any(|g| g == n) != self.without
        });
        Labels::from_vec(kept.cloned().collect())
    }
}

/// Groups of the input series, in order of first appearance.
struct Groups {
    labels: Vec<Labels>,
    of_series: Vec<usize>,
}

fn group_series(input: &[Series], g: &Grouping) -> Groups {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut labels = Vec::new();
    let of_series = input
        .iter()
        .map(|s| {
            let key = g.key(&s.labels, s.drop_name);
            *index.entry(key).or_insert_with_key(|k| {
                labels.push(k.clone());
                labels.len() - 1
            })
        })
        .collect();
    Groups { labels, of_series }
}

impl<'q> Evaluator<'q> {
    pub(crate) fn aggregate(&mut self, a: &AggregateExpr, r: Range) -> Result<Val, EvalError> {
        let tok = a.op.to_string();
        let op =
            AggOp::from_token(&tok).ok_or_else(|| EvalError::exec(format!("unknown aggregation {tok:?}")))?;
        let grouping = Grouping::new(a.modifier.as_ref());
        if op == AggOp::CountValues {
            let param =
                a.param.as_deref().ok_or_else(|| EvalError::exec("count_values needs a label name"))?;
            let label = self.eval_string(param, r)?;
            if super::go_strings::invalid_label_name(&label) {
                return Err(EvalError::exec(format!("invalid label name {}", go_quote(&label))));
            }
            let input = self.eval_vector(&a.expr, r)?;
            return self.count_values(&label, input, &grouping, r);
        }
        let param = match (&a.param, op) {
            (Some(p), AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::Limitk | AggOp::LimitRatio) => {
                Some(self.eval_scalar(p, r)?)
            }
            _ => None,
        };
        let input = self.eval_vector(&a.expr, r)?;
        let held: usize = input.iter().map(|s| s.points.len()).sum();
        let out = match (op, param) {
            (AggOp::Topk | AggOp::Bottomk | AggOp::Limitk, Some(k)) => {
                self.select_k(op, input, &k, &grouping, r)?
            }
            (AggOp::LimitRatio, Some(ratio)) => self.limit_ratio(a, input, &ratio, &grouping, r)?,
            (AggOp::Quantile, Some(q)) => self.quantile(a, input, &q, &grouping, r)?,
            _ => self.fold(op, &input, &grouping, r),
        };
        self.release(held);
        self.hold(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Val::Vector(out))
    }

    fn fold(&mut self, op: AggOp, input: &[Series], grouping: &Grouping, r: Range) -> Vec<Series> {
        let groups = group_series(input, grouping);
        let n = r.len();
        let mut acc: Vec<Vec<Acc>> = vec![Vec::new(); groups.labels.len()];
        for (s, &g) in input.iter().zip(&groups.of_series) {
            let Some(row) = acc.get_mut(g) else { continue };
            if row.is_empty() {
                *row = vec![Acc::default(); n];
            }
            for p in &s.points {
                if let Some(a) = row.get_mut(r.index(p.t)) {
                    a.add(op, p.v);
                }
            }
        }
        groups
            .labels
            .into_iter()
            .zip(acc)
            .map(|(labels, row)| {
                let points = row
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.seen)
                    .map(|(i, a)| Point { t: r.ts(i), v: a.result(op) })
                    .collect();
                Series::new(labels, points)
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }

    /// Calls `f(step, t, members)` for every step, with the `(series index, value)` pairs of
    /// each group present at that step (groups in order of first appearance).
    fn by_step(
        &mut self,
        input: &[Series],
        groups: &Groups,
        r: Range,
        f: &mut StepFn<'_, 'q>,
    ) -> Result<(), EvalError> {
        let mut pos = vec![0usize; input.len()];
        let mut members: Vec<Vec<(usize, f64)>> = vec![Vec::new(); groups.labels.len()];
        for (step, t) in r.timestamps().enumerate() {
            if step % 256 == 0 {
                self.check()?;
            }
            members.iter_mut().for_each(Vec::clear);
            for (si, s) in input.iter().enumerate() {
                let Some(i) = pos.get_mut(si) else { continue };
                let Some(p) = s.points.get(*i).filter(|p| p.t == t) else { continue };
                *i += 1;
                if let Some(m) = groups.of_series.get(si).and_then(|&g| members.get_mut(g)) {
                    m.push((si, p.v));
                }
            }
            f(self, step, t, &members)?;
        }
        Ok(())
    }

    fn select_k(
        &mut self,
        op: AggOp,
        input: Vec<Series>,
        k: &[f64],
        grouping: &Grouping,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        let groups = group_series(&input, grouping);
        let mut out: Vec<Vec<Point>> = vec![Vec::new(); input.len()];
        let mut order: Vec<usize> = Vec::new();
        let total = input.len();
        self.by_step(&input, &groups, r, &mut |_, step, t, members| {
            let kf = k.get(step).copied().unwrap_or(f64::NAN);
            if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&kf) {
                return Err(EvalError::exec(format!("Scalar value {} overflows int64", go_float_g(kf))));
            }
            let kk = (kf.trunc() as i64).min(i64::try_from(total).unwrap_or(i64::MAX));
            if kk < 1 {
                return Ok(());
            }
            let kk = usize::try_from(kk).unwrap_or(usize::MAX);
            for m in members {
                let chosen = match op {
                    AggOp::Limitk => m.iter().take(kk).copied().collect(),
                    AggOp::Topk => top_k(m, kk, false),
                    _ => top_k(m, kk, true),
                };
                for (si, v) in chosen {
                    if let Some(o) = out.get_mut(si) {
                        if o.is_empty() {
                            order.push(si);
                        }
                        o.push(Point { t, v });
                    }
                }
            }
            Ok(())
        })?;
        Ok(take_in_order(input, out, &order))
    }

    fn limit_ratio(
        &mut self,
        a: &AggregateExpr,
        input: Vec<Series>,
        ratios: &[f64],
        grouping: &Grouping,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        let groups = group_series(&input, grouping);
        let offsets: Vec<f64> =
            input.iter().map(|s| labels_hash(&s.labels) as f64 / u64::MAX as f64).collect();
        let mut out: Vec<Vec<Point>> = vec![Vec::new(); input.len()];
        let mut order = Vec::new();
        self.by_step(&input, &groups, r, &mut |_, step, t, members| {
            let ratio = ratios.get(step).copied().unwrap_or(f64::NAN);
            if ratio.is_nan() {
                return Err(EvalError::exec(format!("Ratio value {} is NaN", go_float_g(ratio))));
            }
            let ratio = ratio.clamp(-1.0, 1.0);
            if ratio == 0.0 {
                return Ok(());
            }
            for m in members {
                for &(si, v) in m {
                    let off = offsets.get(si).copied().unwrap_or(0.0);
                    let keep = (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio);
                    if keep && let Some(o) = out.get_mut(si) {
                        if o.is_empty() {
                            order.push(si);
                        }
                        o.push(Point { t, v });
                    }
                }
            }
            Ok(())
        })?;
        if let Some(p) = a.param.as_deref()
            && !ratios.iter().any(|r| r.is_nan())
        {
            let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            if max > 1.0 {
                self.annotate(Level::Warning, annotations::invalid_ratio(max, 1.0), p);
            }
            if min < -1.0 {
                self.annotate(Level::Warning, annotations::invalid_ratio(min, -1.0), p);
            }
        }
        Ok(take_in_order(input, out, &order))
    }

    fn quantile(
        &mut self,
        a: &AggregateExpr,
        input: Vec<Series>,
        qs: &[f64],
        grouping: &Grouping,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        let groups = group_series(&input, grouping);
        let mut out: Vec<Vec<Point>> = vec![Vec::new(); groups.labels.len()];
        let mut values = Vec::new();
        self.by_step(&input, &groups, r, &mut |_, step, t, members| {
            let q = qs.get(step).copied().unwrap_or(f64::NAN);
            for (g, m) in members.iter().enumerate() {
                if m.is_empty() {
                    continue;
                }
                values.clear();
                values.extend(m.iter().map(|&(_, v)| v));
                if let Some(o) = out.get_mut(g) {
                    o.push(Point { t, v: quantile(q, &mut values) });
                }
            }
            Ok(())
        })?;
        // Like Prometheus, one warning for NaN, or one each for the largest and smallest
        // out-of-range value over all steps.
        if let Some(p) = a.param.as_deref() {
            if qs.iter().any(|q| q.is_nan()) {
                self.annotate(Level::Warning, annotations::invalid_quantile(f64::NAN), p);
            } else {
                let max = qs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = qs.iter().copied().fold(f64::INFINITY, f64::min);
                if max > 1.0 {
                    self.annotate(Level::Warning, annotations::invalid_quantile(max), p);
                }
                if min < 0.0 {
                    self.annotate(Level::Warning, annotations::invalid_quantile(min), p);
                }
            }
        }
        Ok(groups
            .labels
            .into_iter()
            .zip(out)
            .filter(|(_, p)| !p.is_empty())
            .map(|(l, p)| Series::new(l, p))
            .collect())
    }

    fn count_values(
        &mut self,
        label: &str,
        input: Vec<Series>,
        grouping: &Grouping,
        r: Range,
    ) -> Result<Val, EvalError> {
        let mut grouping_names = grouping.names.clone();
        if !grouping.without {
            grouping_names.push(label.to_string());
            grouping_names.sort();
        }
        let g = Grouping { without: grouping.without, names: grouping_names };
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut pos = vec![0usize; input.len()];
        let mut counts: Vec<(usize, f64)> = Vec::new();
        for (step, t) in r.timestamps().enumerate() {
            if step % 256 == 0 {
                self.check()?;
            }
            counts.clear();
            for (si, s) in input.iter().enumerate() {
                let Some(i) = pos.get_mut(si) else { continue };
                let Some(p) = s.points.get(*i).filter(|p| p.t == t) else { continue };
                *i += 1;
                let mut b = s.labels.builder();
                if s.drop_name {
                    b.delete(METRIC_NAME);
                }
                b.set(label, go_float_f(p.v));
                let key = g.key(&b.build(), false);
                let slot = *index.entry(key).or_insert_with_key(|k| {
                    out.push(Series::new(k.clone(), Vec::new()));
                    out.len() - 1
                });
                match counts.iter_mut().find(|(s, _)| *s == slot) {
                    Some((_, c)) => *c += 1.0,
                    None => counts.push((slot, 1.0)),
                }
            }
            for &(slot, c) in &counts {
                if let Some(s) = out.get_mut(slot) {
                    s.points.push(Point { t, v: c });
                }
            }
        }
        self.hold(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Val::Vector(out))
    }
}

/// The series of `input` that got points, in the order they first did, with those points.
fn take_in_order(input: Vec<Series>, mut points: Vec<Vec<Point>>, order: &[usize]) -> Vec<Series> {
    let mut input: Vec<Option<Series>> = input.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|&si| {
            let mut s = input.get_mut(si)?.take()?;
            s.points = std::mem::take(points.get_mut(si)?);
            Some(s)
        })
        .collect()
}

/// `topk`/`bottomk` of one group at one step, as Prometheus computes it: a binary heap of at most
/// `k` elements (Go's `container/heap`, so that ties resolve the same way), then sorted best first.
fn top_k(members: &[(usize, f64)], k: usize, bottom: bool) -> Vec<(usize, f64)> {
    // `less(a, b)`: a is "smaller" in heap order, i.e. the first to be evicted.
    let less = |a: f64, b: f64| {
        if bottom {
            // vectorByReverseValueHeap
            a.is_nan() || a > b
        } else {
            // vectorByValueHeap
            a.is_nan() || a < b
        }
    };
    let mut heap: Vec<(usize, f64)> = Vec::with_capacity(k.min(members.len()));
    for &m in members {
        if heap.len() < k {
            heap.push(m);
            let last = heap.len() - 1;
            heap_up(&mut heap, last, &less);
            continue;
        }
        let Some(top) = heap.first().map(|e| e.1) else { continue };
        let replace = if bottom { top > m.1 } else { top < m.1 } || (top.is_nan() && !m.1.is_nan());
        if replace {
            if let Some(first) = heap.first_mut() {
                *first = m;
            }
            if k > 1 {
                heap_fix_root(&mut heap, &less);
            }
        }
    }
    // sort.Sort(sort.Reverse(heap)): largest first for topk (NaN last), smallest first for bottomk.
    // Go's sort is an insertion sort at these sizes for small k; a stable sort matches it there.
    heap.sort_by(|a, b| {
        if less(b.1, a.1) {
            std::cmp::Ordering::Less
        } else if less(a.1, b.1) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    heap
}

fn heap_up(h: &mut [(usize, f64)], mut j: usize, less: &dyn Fn(f64, f64) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        let (Some(a), Some(b)) = (h.get(j), h.get(i)) else { return };
        if !less(a.1, b.1) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_fix_root(h: &mut [(usize, f64)], less: &dyn Fn(f64, f64) -> bool) {
    let n = h.len();
    let mut i = 0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n
            && let (Some(a), Some(b)) = (h.get(j2), h.get(j1))
            && less(a.1, b.1)
        {
            j = j2;
        }
        let (Some(a), Some(b)) = (h.get(j), h.get(i)) else { break };
        if !less(a.1, b.1) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_picks_largest_first_and_nan_last() {
        let m = [(0, 1.0), (1, f64::NAN), (2, 5.0), (3, 3.0)];
        let got: Vec<usize> = top_k(&m, 3, false).into_iter().map(|e| e.0).collect();
        assert_eq!(got, [2, 3, 0]);
        let got: Vec<usize> = top_k(&m, 3, true).into_iter().map(|e| e.0).collect();
        assert_eq!(got, [0, 3, 2]);
        let got: Vec<usize> = top_k(&m, 4, false).into_iter().map(|e| e.0).collect();
        assert_eq!(got, [2, 3, 0, 1]);
    }
}
