//! Binary operators: arithmetic, comparisons and set operators between scalars and vectors, with
//! Prometheus' vector matching (`on`, `ignoring`, `group_left`, `group_right`).

use std::collections::HashMap;

use kahu_tsdb::model::{Labels, METRIC_NAME};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::error::EvalError;
use super::eval::Evaluator;
use super::gofmt::go_labels;
use super::types::{Point, Range, Series, Val, merge_same_labels};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub(crate) fn from_token(t: &str) -> Option<Self> {
        Some(match t {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" => BinOp::Gt,
            "<" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    pub(crate) fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Arithmetic drops the metric name; comparisons without `bool` and set operators keep it.
    fn drops_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow | BinOp::Atan2
        )
    }

    /// The result of `l op r` and whether a comparison holds (always true for arithmetic).
    /// A comparison's value is its left operand.
    pub(crate) fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            BinOp::Add => (l + r, true),
            BinOp::Sub => (l - r, true),
            BinOp::Mul => (l * r, true),
            BinOp::Div => (l / r, true),
            BinOp::Mod => (l % r, true),
            BinOp::Pow => (l.powf(r), true),
            BinOp::Atan2 => (l.atan2(r), true),
            BinOp::Eq => (l, l == r),
            BinOp::Ne => (l, l != r),
            BinOp::Gt => (l, l > r),
            BinOp::Lt => (l, l < r),
            BinOp::Ge => (l, l >= r),
            BinOp::Le => (l, l <= r),
            BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
        }
    }
}

/// How the two sides are matched.
struct Matching<'m> {
    /// `on(...)` when true, `ignoring(...)` (or nothing) when false.
    on: bool,
    labels: &'m [String],
    card: Card<'m>,
}

#[derive(Clone, Copy)]
enum Card<'m> {
    OneToOne,
    /// `group_left(include…)`: the right side is the "one" side.
    ManyToOne(&'m [String]),
    /// `group_right(include…)`: the left side is the "one" side.
    OneToMany(&'m [String]),
    ManyToMany,
}

impl<'m> Matching<'m> {
    fn new(m: Option<&'m BinModifier>, op: BinOp) -> Self {
        let (on, labels): (bool, &[String]) = match m.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, &l.labels),
            Some(LabelModifier::Exclude(l)) => (false, &l.labels),
            None => (false, &[]),
        };
        let card = match m.map(|m| &m.card) {
            _ if op.is_set() => Card::ManyToMany,
            Some(VectorMatchCardinality::ManyToOne(l)) => Card::ManyToOne(&l.labels),
            Some(VectorMatchCardinality::OneToMany(l)) => Card::OneToMany(&l.labels),
            Some(VectorMatchCardinality::ManyToMany) => Card::ManyToMany,
            Some(VectorMatchCardinality::OneToOne) | None => Card::OneToOne,
        };
        Matching { on, labels, card }
    }

    /// The labels a series is matched on.
    fn signature(&self, s: &Series) -> Labels {
        let name_gone = s.drop_name;
        let kept = s.labels.iter().filter(|l| {
            let name = l.name.as_ref();
            if name == METRIC_NAME && (name_gone || !self.on) {
                return false;
            }
            self.labels.iter().any(|n| n == name) == self.on
        });
        Labels::from_vec(kept.cloned().collect())
    }
}

/// Interns signatures as small integers.
#[derive(Default)]
struct Signatures {
    ids: HashMap<Labels, u32>,
    labels: Vec<Labels>,
}

impl Signatures {
    fn id(&mut self, sig: Labels) -> u32 {
        if let Some(&id) = self.ids.get(&sig) {
            return id;
        }
        let id = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        self.labels.push(sig.clone());
        self.ids.insert(sig, id);
        id
    }
}

/// Walks series step by step: `at(k, t)` is series `k`'s value at step `t`, if it has one.
struct Cursors<'s> {
    series: &'s [Series],
    pos: Vec<usize>,
}

impl<'s> Cursors<'s> {
    fn new(series: &'s [Series]) -> Self {
        Cursors { series, pos: vec![0; series.len()] }
    }

    fn at(&mut self, k: usize, t: i64) -> Option<f64> {
        let pts = &self.series.get(k)?.points;
        let pos = self.pos.get_mut(k)?;
        let p = pts.get(*pos)?;
        if p.t == t {
            *pos += 1;
            Some(p.v)
        } else {
            None
        }
    }
}

/// Collects output points into series keyed by labels; reports a second point at the same step.
#[derive(Default)]
struct Assembler {
    index: HashMap<Labels, usize>,
    out: Vec<Series>,
    last_step: Vec<usize>,
}

impl Assembler {
    fn slot(&mut self, labels: Labels, drop_name: bool) -> usize {
        if let Some(&i) = self.index.get(&labels) {
            return i;
        }
        let i = self.out.len();
        self.index.insert(labels.clone(), i);
        self.out.push(Series { labels, drop_name, points: Vec::new() });
        self.last_step.push(usize::MAX);
        i
    }

    /// Adds a point; false when the series already has one at this step.
    fn push(&mut self, slot: usize, step: usize, p: Point) -> bool {
        let (Some(last), Some(s)) = (self.last_step.get_mut(slot), self.out.get_mut(slot)) else {
            return false;
        };
        if *last == step {
            return false;
        }
        *last = step;
        s.points.push(p);
        true
    }
}

impl Evaluator<'_> {
    pub(crate) fn binary(&mut self, b: &BinaryExpr, r: Range) -> Result<Val, EvalError> {
        let tok = b.op.to_string();
        let op = BinOp::from_token(&tok)
            .ok_or_else(|| EvalError::exec(format!("unknown binary operator {tok:?}")))?;
        if b.modifier.as_ref().is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()) {
            return Err(EvalError::exec("fill modifiers (fill, fill_left, fill_right) are not supported"));
        }
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, r)?;
        let rhs = self.eval(&b.rhs, r)?;
        let held = lhs.num_points() + rhs.num_points();
        let out = match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(rv)) => Val::Scalar(
                l.into_iter()
                    .zip(rv)
                    .map(|(a, c)| {
                        let (v, keep) = op.apply(a, c);
                        if op.is_comparison() { f64::from(u8::from(keep)) } else { v }
                    })
                    .collect(),
            ),
            (Val::Vector(v), Val::Scalar(s)) => {
                Val::Vector(self.vector_scalar(op, v, &s, false, return_bool, r)?)
            }
            (Val::Scalar(s), Val::Vector(v)) => {
                Val::Vector(self.vector_scalar(op, v, &s, true, return_bool, r)?)
            }
            (Val::Vector(l), Val::Vector(rv)) => {
                let m = Matching::new(b.modifier.as_ref(), op);
                Val::Vector(match op {
                    BinOp::And | BinOp::Unless => self.and_unless(op, l, &rv, &m, r),
                    BinOp::Or => self.or(l, rv, &m, r)?,
                    _ => self.vector_vector(op, &l, &rv, &m, return_bool, r)?,
                })
            }
            (l, rv) => {
                return Err(EvalError::exec(format!(
                    "binary operator {tok} between {} and {} is not allowed",
                    l.type_name(),
                    rv.type_name()
                )));
            }
        };
        self.release(held);
        self.hold(out.num_points())?;
        Ok(out)
    }

    fn vector_scalar(
        &mut self,
        op: BinOp,
        series: Vec<Series>,
        scalar: &[f64],
        scalar_left: bool,
        return_bool: bool,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        let mut out = Vec::with_capacity(series.len());
        for mut s in series {
            s.points.retain_mut(|p| {
                let sv = scalar.get(r.index(p.t)).copied().unwrap_or(f64::NAN);
                let (l, rv) = if scalar_left { (sv, p.v) } else { (p.v, sv) };
                let (mut v, mut keep) = op.apply(l, rv);
                if op.is_comparison() && scalar_left {
                    v = rv;
                }
                if return_bool {
                    v = f64::from(u8::from(keep));
                    keep = true;
                }
                p.v = v;
                keep
            });
            if s.points.is_empty() {
                continue;
            }
            if op.drops_name() || return_bool {
                s.drop_name = true;
            }
            out.push(s);
        }
        self.settle_names(out, true)
    }

    fn signatures(&self, m: &Matching<'_>, sides: [&[Series]; 2]) -> (Signatures, [Vec<u32>; 2]) {
        let mut sigs = Signatures::default();
        let ids = sides.map(|side| side.iter().map(|s| sigs.id(m.signature(s))).collect::<Vec<u32>>());
        (sigs, ids)
    }

    fn and_unless(
        &mut self,
        op: BinOp,
        mut lhs: Vec<Series>,
        rhs: &[Series],
        m: &Matching<'_>,
        r: Range,
    ) -> Vec<Series> {
        let (sigs, [lsig, rsig]) = self.signatures(m, [&lhs, rhs]);
        let mut present = vec![usize::MAX; sigs.labels.len()];
        let mut rc = Cursors::new(rhs);
        let mut pos = vec![0usize; lhs.len()];
        let mut kept: Vec<Vec<Point>> = lhs.iter().map(|s| Vec::with_capacity(s.points.len())).collect();
        for (step, t) in r.timestamps().enumerate() {
            for (j, sig) in rsig.iter().enumerate() {
                if rc.at(j, t).is_some()
                    && let Some(p) = present.get_mut(*sig as usize)
                {
                    *p = step;
                }
            }
            for (k, s) in lhs.iter().enumerate() {
                let (Some(i), Some(sig)) = (pos.get_mut(k), lsig.get(k)) else { continue };
                let Some(p) = s.points.get(*i).filter(|p| p.t == t) else { continue };
                *i += 1;
                let matched = present.get(*sig as usize) == Some(&step);
                if matched == (op == BinOp::And)
                    && let Some(kept) = kept.get_mut(k)
                {
                    kept.push(*p);
                }
            }
        }
        for (s, k) in lhs.iter_mut().zip(kept) {
            s.points = k;
        }
        lhs.retain(|s| !s.points.is_empty());
        lhs
    }

    fn or(
        &mut self,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
        m: &Matching<'_>,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        let (sigs, [lsig, rsig]) = self.signatures(m, [&lhs, &rhs]);
        let mut present = vec![usize::MAX; sigs.labels.len()];
        let mut lc = Cursors::new(&lhs);
        let mut rpos = vec![0usize; rhs.len()];
        let mut kept: Vec<Vec<Point>> = rhs.iter().map(|_| Vec::new()).collect();
        for (step, t) in r.timestamps().enumerate() {
            for (k, sig) in lsig.iter().enumerate() {
                if lc.at(k, t).is_some()
                    && let Some(p) = present.get_mut(*sig as usize)
                {
                    *p = step;
                }
            }
            for (j, s) in rhs.iter().enumerate() {
                let (Some(i), Some(sig)) = (rpos.get_mut(j), rsig.get(j)) else { continue };
                let Some(p) = s.points.get(*i).filter(|p| p.t == t) else { continue };
                *i += 1;
                if present.get(*sig as usize) != Some(&step)
                    && let Some(kept) = kept.get_mut(j)
                {
                    kept.push(*p);
                }
            }
        }
        let mut out = lhs;
        for (mut s, k) in rhs.into_iter().zip(kept) {
            if !k.is_empty() {
                s.points = k;
                out.push(s);
            }
        }
        merge_same_labels(out)
    }

    fn vector_vector(
        &mut self,
        op: BinOp,
        lhs: &[Series],
        rhs: &[Series],
        m: &Matching<'_>,
        return_bool: bool,
        r: Range,
    ) -> Result<Vec<Series>, EvalError> {
        if lhs.is_empty() || rhs.is_empty() {
            return Ok(Vec::new());
        }
        let (swapped, include): (bool, &[String]) = match m.card {
            Card::OneToMany(inc) => (true, inc),
            Card::ManyToOne(inc) => (false, inc),
            Card::OneToOne | Card::ManyToMany => (false, &[]),
        };
        // `many` is the side whose every series may produce a result; `one` must be unique.
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let (sigs, [msig, osig]) = self.signatures(m, [many, one]);
        let n_sigs = sigs.labels.len();
        let mut table_step = vec![usize::MAX; n_sigs];
        let mut table: Vec<(usize, f64)> = vec![(0, 0.0); n_sigs];
        let mut matched_step = vec![usize::MAX; n_sigs];
        let mut mc = Cursors::new(many);
        let mut oc = Cursors::new(one);
        let mut asm = Assembler::default();
        let mut pair_slot: HashMap<(usize, usize), usize> = HashMap::new();
        let one_to_one = matches!(m.card, Card::OneToOne);
        let drop_by_op = op.drops_name() || return_bool;

        for (step, t) in r.timestamps().enumerate() {
            if step % 1024 == 0 {
                self.check()?;
            }
            for (j, &sig) in osig.iter().enumerate() {
                let Some(v) = oc.at(j, t) else { continue };
                let s = sig as usize;
                if table_step.get(s) == Some(&step) {
                    let prev = table.get(s).map_or(0, |e| e.0);
                    return Err(duplicate_one_side(m, one, j, prev, swapped));
                }
                if let (Some(ts), Some(e)) = (table_step.get_mut(s), table.get_mut(s)) {
                    *ts = step;
                    *e = (j, v);
                }
            }
            for (k, &sig) in msig.iter().enumerate() {
                let Some(mv) = mc.at(k, t) else { continue };
                let s = sig as usize;
                if table_step.get(s) != Some(&step) {
                    continue;
                }
                let Some(&(j, ov)) = table.get(s) else { continue };
                let (l, rv) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut v, keep) = op.apply(l, rv);
                if return_bool {
                    v = f64::from(u8::from(keep));
                } else if !keep {
                    continue;
                }
                if one_to_one {
                    if matched_step.get(s) == Some(&step) {
                        return Err(EvalError::exec(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                    if let Some(ms) = matched_step.get_mut(s) {
                        *ms = step;
                    }
                }
                let slot = match pair_slot.get(&(k, j)) {
                    Some(&slot) => slot,
                    None => {
                        let (Some(ms), Some(os)) = (many.get(k), one.get(j)) else { continue };
                        let labels = self.result_labels(ms, os, op, m, include, return_bool);
                        let drop = self.delayed() && (drop_by_op || ms.drop_name);
                        let slot = asm.slot(labels, drop);
                        pair_slot.insert((k, j), slot);
                        slot
                    }
                };
                if !asm.push(slot, step, Point { t, v }) {
                    return Err(EvalError::exec(if one_to_one {
                        "vector cannot contain metrics with the same labelset"
                    } else {
                        "multiple matches for labels: grouping labels must ensure unique results"
                    }));
                }
            }
        }
        let mut out = asm.out;
        out.retain(|s| !s.points.is_empty());
        Ok(out)
    }

    /// The labels of a result series (Prometheus `resultMetric`).
    fn result_labels(
        &self,
        many: &Series,
        one: &Series,
        op: BinOp,
        m: &Matching<'_>,
        include: &[String],
        return_bool: bool,
    ) -> Labels {
        let mut b = many.labels.builder();
        // With delayed name removal the name stays, marked for dropping, until the end.
        if !self.delayed() && (op.drops_name() || return_bool) {
            b.delete(METRIC_NAME);
        }
        if matches!(m.card, Card::OneToOne) {
            if m.on {
                b.retain(|n| m.labels.iter().any(|l| l == n));
            } else {
                for l in m.labels {
                    b.delete(l);
                }
            }
        }
        for name in include {
            match one.labels.get(name) {
                Some(v) if !(name == METRIC_NAME && one.drop_name) => {
                    b.set(name.as_str(), v);
                }
                _ => {
                    b.delete(name);
                }
            }
        }
        b.build()
    }
}

fn duplicate_one_side(m: &Matching<'_>, one: &[Series], cur: usize, prev: usize, swapped: bool) -> EvalError {
    let side = if swapped { "left" } else { "right" };
    let (Some(cur), Some(prev)) = (one.get(cur), one.get(prev)) else {
        return EvalError::exec(
            "many-to-many matching not allowed: matching labels must be unique on one side",
        );
    };
    let mut b = cur.labels.builder();
    if m.on {
        b.retain(|n| m.labels.iter().any(|l| l == n));
    } else {
        b.delete(METRIC_NAME);
        for l in m.labels {
            b.delete(l);
        }
    }
    EvalError::exec(format!(
        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
        go_labels(&b.build()),
        go_labels(&cur.labels),
        go_labels(&prev.labels)
    ))
}
