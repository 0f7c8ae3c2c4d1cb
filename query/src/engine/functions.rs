//! The function table and the functions over instant vectors and scalars. Range-vector functions
//! compute their windows in [`range_fns`](super::range_fns).

use std::cmp::Ordering;

use kahu_tsdb::model::{Labels, METRIC_NAME};
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::annotations::{self, Level};
use super::error::EvalError;
use super::eval::{Evaluator, absent_labels, check_unique};
use super::gofmt::go_float_f;
use super::histogram::{Bucket, bucket_fraction, bucket_quantile};
use super::math::{go_max, go_min};
use super::range_fns::kernel;
use super::types::{Point, Range, Series, Val};

macro_rules! functions {
    ($($variant:ident = $name:literal,)*) => {
        /// Every PromQL function the engine evaluates.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($variant,)* }

        impl Func {
            /// The whole table, in alphabetical order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Func] = &[$(Func::$variant,)*];

            pub(crate) fn name(self) -> &'static str {
                match self { $(Func::$variant => $name,)* }
            }

            pub(crate) fn from_name(name: &str) -> Option<Func> {
                match name { $($name => Some(Func::$variant),)* _ => None }
            }
        }
    };
}

functions! {
    Abs = "abs",
    Absent = "absent",
    AbsentOverTime = "absent_over_time",
    Acos = "acos",
    Acosh = "acosh",
    Asin = "asin",
    Asinh = "asinh",
    Atan = "atan",
    Atanh = "atanh",
    AvgOverTime = "avg_over_time",
    Ceil = "ceil",
    Changes = "changes",
    Clamp = "clamp",
    ClampMax = "clamp_max",
    ClampMin = "clamp_min",
    Cos = "cos",
    Cosh = "cosh",
    CountOverTime = "count_over_time",
    DayOfMonth = "day_of_month",
    DayOfWeek = "day_of_week",
    DayOfYear = "day_of_year",
    DaysInMonth = "days_in_month",
    Deg = "deg",
    Delta = "delta",
    Deriv = "deriv",
    DoubleExponentialSmoothing = "double_exponential_smoothing",
    End = "end",
    Exp = "exp",
    FirstOverTime = "first_over_time",
    Floor = "floor",
    HistogramAvg = "histogram_avg",
    HistogramCount = "histogram_count",
    HistogramFraction = "histogram_fraction",
    HistogramQuantile = "histogram_quantile",
    HistogramQuantiles = "histogram_quantiles",
    HistogramStddev = "histogram_stddev",
    HistogramStdvar = "histogram_stdvar",
    HistogramSum = "histogram_sum",
    Hour = "hour",
    Idelta = "idelta",
    Increase = "increase",
    Info = "info",
    Integral = "integral",
    Irate = "irate",
    LabelJoin = "label_join",
    LabelReplace = "label_replace",
    LastOverTime = "last_over_time",
    Ln = "ln",
    Log10 = "log10",
    Log2 = "log2",
    MadOverTime = "mad_over_time",
    MaxOf = "max_of",
    MaxOverTime = "max_over_time",
    MinOf = "min_of",
    MinOverTime = "min_over_time",
    Minute = "minute",
    Month = "month",
    Pi = "pi",
    PredictLinear = "predict_linear",
    PresentOverTime = "present_over_time",
    QuantileOverTime = "quantile_over_time",
    Rad = "rad",
    Range = "range",
    Rate = "rate",
    Resets = "resets",
    Round = "round",
    Scalar = "scalar",
    Sgn = "sgn",
    Sin = "sin",
    Sinh = "sinh",
    Sort = "sort",
    SortByLabel = "sort_by_label",
    SortByLabelDesc = "sort_by_label_desc",
    SortDesc = "sort_desc",
    Sqrt = "sqrt",
    Start = "start",
    StartTimestamp = "start_timestamp",
    StddevOverTime = "stddev_over_time",
    StdvarOverTime = "stdvar_over_time",
    Step = "step",
    SumOverTime = "sum_over_time",
    Tan = "tan",
    Tanh = "tanh",
    Time = "time",
    Timestamp = "timestamp",
    TsOfFirstOverTime = "ts_of_first_over_time",
    TsOfLastOverTime = "ts_of_last_over_time",
    TsOfMaxOverTime = "ts_of_max_over_time",
    TsOfMinOverTime = "ts_of_min_over_time",
    Vector = "vector",
    Year = "year",
}

impl Func {
    /// Functions of a range vector, and the index of that argument.
    fn range_arg(self) -> Option<usize> {
        use Func::*;
        match self {
            QuantileOverTime => Some(1),
            AbsentOverTime
            | AvgOverTime
            | Changes
            | CountOverTime
            | Delta
            | Deriv
            | DoubleExponentialSmoothing
            | FirstOverTime
            | Idelta
            | Increase
            | Integral
            | Irate
            | LastOverTime
            | MadOverTime
            | MaxOverTime
            | MinOverTime
            | PredictLinear
            | PresentOverTime
            | Rate
            | Resets
            | StddevOverTime
            | StdvarOverTime
            | SumOverTime
            | TsOfFirstOverTime
            | TsOfLastOverTime
            | TsOfMaxOverTime
            | TsOfMinOverTime => Some(0),
            _ => None,
        }
    }

    /// Functions applied value by value.
    fn math(self) -> Option<fn(f64) -> f64> {
        use Func::*;
        Some(match self {
            Abs => f64::abs,
            Ceil => f64::ceil,
            Floor => f64::floor,
            Exp => f64::exp,
            Sqrt => f64::sqrt,
            Ln => f64::ln,
            Log2 => f64::log2,
            Log10 => f64::log10,
            Sgn => |v| {
                if v < 0.0 {
                    -1.0
                } else if v > 0.0 {
                    1.0
                } else {
                    v
                }
            },
            Deg => |v| v * 180.0 / std::f64::consts::PI,
            Rad => |v| v * std::f64::consts::PI / 180.0,
            Acos => f64::acos,
            Acosh => f64::acosh,
            Asin => f64::asin,
            Asinh => f64::asinh,
            Atan => f64::atan,
            Atanh => f64::atanh,
            Cos => f64::cos,
            Cosh => f64::cosh,
            Sin => f64::sin,
            Sinh => f64::sinh,
            Tan => f64::tan,
            Tanh => f64::tanh,
            _ => return None,
        })
    }

    /// Date functions: the component of a UTC time they return.
    fn date_part(self) -> Option<fn(&Civil) -> f64> {
        use Func::*;
        Some(match self {
            DayOfMonth => |c| f64::from(c.day),
            DayOfWeek => |c| f64::from(c.weekday),
            DayOfYear => |c| f64::from(c.yday),
            DaysInMonth => |c| f64::from(days_in_month(c.year, c.month)),
            Hour => |c| f64::from(c.hour),
            Minute => |c| f64::from(c.minute),
            Month => |c| f64::from(c.month),
            Year => |c| c.year as f64,
            _ => return None,
        })
    }
}

fn arg(args: &[Box<Expr>], i: usize, f: Func) -> Result<&Expr, EvalError> {
    args.get(i)
        .map(AsRef::as_ref)
        .ok_or_else(|| EvalError::exec(format!("missing argument {} of {}", i + 1, f.name())))
}

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn at(v: &[f64], step: usize) -> f64 {
    v.get(step).copied().unwrap_or(f64::NAN)
}

impl Evaluator<'_> {
    pub(crate) fn call(&mut self, c: &Call, r: Range) -> Result<Val, EvalError> {
        let name = c.func.name;
        let f = Func::from_name(name)
            .ok_or_else(|| EvalError::exec(format!("unknown function with name {name:?}")))?;
        let args = &c.args.args;
        if let Some(m) = f.range_arg() {
            return self.range_function(f, args, m, r);
        }
        if let Some(op) = f.math() {
            let v = self.eval_vector(arg(args, 0, f)?, r)?;
            return self.map_values(v, r, |_, x| Some(op(x)));
        }
        if let Some(part) = f.date_part() {
            return self.date_function(args, r, part);
        }
        use Func::*;
        match f {
            Round => {
                let v = self.eval_vector(arg(args, 0, f)?, r)?;
                let to = match args.get(1) {
                    Some(a) => self.eval_scalar(a, r)?,
                    None => vec![1.0; r.len()],
                };
                self.map_values(v, r, |step, x| {
                    let inv = 1.0 / at(&to, step);
                    Some((x * inv + 0.5).floor() / inv)
                })
            }
            Clamp | ClampMin | ClampMax => {
                let v = self.eval_vector(arg(args, 0, f)?, r)?;
                let a = self.eval_scalar(arg(args, 1, f)?, r)?;
                let b = if f == Clamp { self.eval_scalar(arg(args, 2, f)?, r)? } else { Vec::new() };
                self.map_values(v, r, |step, x| match f {
                    ClampMin => Some(go_max(at(&a, step), x)),
                    ClampMax => Some(go_min(at(&a, step), x)),
                    _ => {
                        let (lo, hi) = (at(&a, step), at(&b, step));
                        if hi < lo { None } else { Some(go_max(lo, go_min(hi, x))) }
                    }
                })
            }
            Timestamp => {
                let a = arg(args, 0, f)?;
                let v = match unparen(a) {
                    Expr::VectorSelector(vs) => self.vector_selector(vs, r, true)?,
                    _ => {
                        let mut v = self.eval_vector(a, r)?;
                        v.iter_mut()
                            .flat_map(|s| s.points.iter_mut())
                            .for_each(|p| p.v = p.t as f64 / 1000.0);
                        v
                    }
                };
                self.map_values(v, r, |_, x| Some(x))
            }
            Absent => {
                let a = arg(args, 0, f)?;
                let v = self.eval_vector(a, r)?;
                let mut present = vec![false; r.len()];
                for p in v.iter().flat_map(|s| &s.points) {
                    if let Some(x) = present.get_mut(r.index(p.t)) {
                        *x = true;
                    }
                }
                let points: Vec<Point> = r
                    .timestamps()
                    .zip(present)
                    .filter(|(_, p)| !p)
                    .map(|(t, _)| Point { t, v: 1.0 })
                    .collect();
                Ok(Val::Vector(if points.is_empty() {
                    Vec::new()
                } else {
                    vec![Series::new(absent_labels(a), points)]
                }))
            }
            Scalar => {
                let v = self.eval_vector(arg(args, 0, f)?, r)?;
                let mut out = vec![f64::NAN; r.len()];
                let mut count = vec![0u32; r.len()];
                for p in v.iter().flat_map(|s| &s.points) {
                    let i = r.index(p.t);
                    if let (Some(o), Some(c)) = (out.get_mut(i), count.get_mut(i)) {
                        *c += 1;
                        *o = if *c == 1 { p.v } else { f64::NAN };
                    }
                }
                Ok(Val::Scalar(out))
            }
            Vector => {
                let s = self.eval_scalar(arg(args, 0, f)?, r)?;
                let points = r.timestamps().zip(s).map(|(t, v)| Point { t, v }).collect();
                Ok(Val::Vector(vec![Series::new(Labels::empty(), points)]))
            }
            Time => Ok(Val::Scalar(r.timestamps().map(|t| t as f64 / 1000.0).collect())),
            Pi => Ok(Val::Scalar(vec![std::f64::consts::PI; r.len()])),
            Start => Ok(Val::Scalar(vec![self.s.query_start as f64 / 1000.0; r.len()])),
            End => Ok(Val::Scalar(vec![self.s.query_end as f64 / 1000.0; r.len()])),
            Range => Ok(Val::Scalar(vec![(self.s.query_end - self.s.query_start) as f64 / 1000.0; r.len()])),
            Step => Ok(Val::Scalar(vec![self.s.query_step as f64 / 1000.0; r.len()])),
            MinOf | MaxOf => {
                let a = self.eval_scalar(arg(args, 0, f)?, r)?;
                let b = self.eval_scalar(arg(args, 1, f)?, r)?;
                let pick = if f == MinOf { go_min } else { go_max };
                Ok(Val::Scalar(a.into_iter().zip(b).map(|(x, y)| pick(x, y)).collect()))
            }
            Sort | SortDesc => {
                let mut v = self.eval_vector(arg(args, 0, f)?, r)?;
                if r.len() == 1 {
                    let desc = f == SortDesc;
                    v.sort_by(|a, b| {
                        let (x, y) = (
                            a.points.first().map_or(f64::NAN, |p| p.v),
                            b.points.first().map_or(f64::NAN, |p| p.v),
                        );
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => Ordering::Equal,
                            (true, false) => Ordering::Greater,
                            (false, true) => Ordering::Less,
                            _ if desc => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                            _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                        }
                    });
                }
                Ok(Val::Vector(v))
            }
            SortByLabel | SortByLabelDesc => {
                let mut v = self.eval_vector(arg(args, 0, f)?, r)?;
                let mut names = Vec::new();
                for a in args.iter().skip(1) {
                    names.push(self.eval_string(a, r)?);
                }
                if r.len() == 1 {
                    let desc = f == SortByLabelDesc;
                    v.sort_by(|a, b| {
                        for n in &names {
                            let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                            if x == y {
                                continue;
                            }
                            let less = natural_less(x, y);
                            return if less != desc { Ordering::Less } else { Ordering::Greater };
                        }
                        let o = a.labels.cmp(&b.labels);
                        if desc { o.reverse() } else { o }
                    });
                }
                Ok(Val::Vector(v))
            }
            LabelReplace => self.label_replace(args, r),
            LabelJoin => self.label_join(args, r),
            HistogramQuantile => self.histogram_quantile(args, r),
            HistogramQuantiles => self.histogram_quantiles(args, r),
            HistogramFraction => self.histogram_fraction(args, r),
            HistogramAvg | HistogramCount | HistogramSum | HistogramStddev | HistogramStdvar => {
                Err(EvalError::NativeHistogram(format!("{}()", f.name())))
            }
            StartTimestamp => Err(EvalError::exec(
                "start_timestamp(): kahu does not store start timestamps (created timestamps) of samples",
            )),
            Info => self.info(args, r),
            _ => Err(EvalError::exec(format!("function {} is not implemented", f.name()))),
        }
    }

    /// Applies `f(step, value)` to every point; `None` drops the point. The metric name goes.
    fn map_values(
        &mut self,
        mut v: Vec<Series>,
        r: Range,
        f: impl Fn(usize, f64) -> Option<f64>,
    ) -> Result<Val, EvalError> {
        for s in &mut v {
            s.points.retain_mut(|p| match f(r.index(p.t), p.v) {
                Some(x) => {
                    p.v = x;
                    true
                }
                None => false,
            });
            s.drop_name = true;
        }
        v.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(self.settle_names(v, true)?))
    }

    fn date_function(
        &mut self,
        args: &[Box<Expr>],
        r: Range,
        part: fn(&Civil) -> f64,
    ) -> Result<Val, EvalError> {
        let v = match args.first() {
            Some(a) => self.eval_vector(a, r)?,
            None => {
                let points = r.timestamps().map(|t| Point { t, v: (t / 1000) as f64 }).collect();
                vec![Series::new(Labels::empty(), points)]
            }
        };
        self.map_values(v, r, |_, x| Some(part(&Civil::from_unix(go_int64(x)))))
    }

    fn range_function(&mut self, f: Func, args: &[Box<Expr>], m: usize, r: Range) -> Result<Val, EvalError> {
        let marg = arg(args, m, f)?;
        let mut params = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != m {
                params.push(self.eval_scalar(a, r)?);
            }
        }
        if f == Func::AbsentOverTime {
            let mut present = vec![false; r.len()];
            self.range_series(marg, r, &mut |ev, _, points, win| {
                let pts = ev.slide(points, win, r, &mut |_| Ok(Some(1.0)))?;
                for p in &pts {
                    if let Some(x) = present.get_mut(r.index(p.t)) {
                        *x = true;
                    }
                }
                ev.release(pts.len());
                Ok(())
            })?;
            let points: Vec<Point> =
                r.timestamps().zip(present).filter(|(_, p)| !p).map(|(t, _)| Point { t, v: 1.0 }).collect();
            let labels = absent_labels(unparen(marg));
            return Ok(Val::Vector(if points.is_empty() {
                Vec::new()
            } else {
                vec![Series::new(labels, points)]
            }));
        }
        let keep_name = matches!(f, Func::LastOverTime | Func::FirstOverTime);
        let counter_check = matches!(f, Func::Rate | Func::Increase);
        let mut out = Vec::new();
        let mut non_counters: Vec<String> = Vec::new();
        self.range_series(marg, r, &mut |ev, labels, points, win| {
            let range = win.range;
            let mut saw_samples = false;
            let pts = ev.slide(points, win, r, &mut |w| {
                saw_samples = true;
                kernel(f, w, &params, range)
            })?;
            if counter_check
                && saw_samples
                && let Some(name) = labels.metric_name()
                && !["_total", "_sum", "_count", "_bucket"].iter().any(|s| name.ends_with(s))
                && !non_counters.iter().any(|n| n == name)
            {
                non_counters.push(name.to_string());
            }
            if !pts.is_empty() {
                let mut s = Series::new(labels.clone(), pts);
                s.drop_name = !keep_name;
                out.push(s);
            }
            Ok(())
        })?;
        for name in non_counters {
            self.annotate(Level::Info, annotations::possible_non_counter(&name), marg);
        }
        if f == Func::QuantileOverTime
            && !out.is_empty()
            && let (Some(qs), Some(qarg)) = (params.first(), args.first())
        {
            for &q in qs {
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    self.annotate(Level::Warning, annotations::invalid_quantile(q), qarg);
                }
            }
        }
        Ok(Val::Vector(self.settle_names(out, false)?))
    }

    fn label_replace(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let f = Func::LabelReplace;
        let mut v = self.eval_vector(arg(args, 0, f)?, r)?;
        let dst = self.eval_string(arg(args, 1, f)?, r)?;
        let repl = self.eval_string(arg(args, 2, f)?, r)?;
        let src = self.eval_string(arg(args, 3, f)?, r)?;
        let pattern = self.eval_string(arg(args, 4, f)?, r)?;
        let re = Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
            EvalError::exec(format!("invalid regular expression in label_replace(): {pattern}"))
        })?;
        if super::go_strings::invalid_label_name(&dst) {
            return Err(EvalError::exec(format!("invalid destination label name in label_replace(): {dst}")));
        }
        for s in &mut v {
            let value = s.labels.get(&src).unwrap_or("");
            if let Some(caps) = re.captures(value) {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                let mut b = s.labels.builder();
                b.set(dst.as_str(), res);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
        }
        self.finish_relabel(v)
    }

    fn label_join(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let f = Func::LabelJoin;
        let mut v = self.eval_vector(arg(args, 0, f)?, r)?;
        let dst = self.eval_string(arg(args, 1, f)?, r)?;
        let sep = self.eval_string(arg(args, 2, f)?, r)?;
        let mut srcs = Vec::new();
        for a in args.iter().skip(3) {
            srcs.push(self.eval_string(a, r)?);
        }
        if super::go_strings::invalid_label_name(&dst) {
            return Err(EvalError::exec(format!("invalid destination label name in label_join(): {dst}")));
        }
        if let Some(bad) = srcs.iter().find(|s| s.is_empty()) {
            return Err(EvalError::exec(format!("invalid source label name in label_join(): {bad}")));
        }
        for s in &mut v {
            let joined = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect::<Vec<_>>().join(&sep);
            let mut b = s.labels.builder();
            b.set(dst.as_str(), joined);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        self.finish_relabel(v)
    }

    /// After relabelling, equal label sets are an error (names included while delayed).
    fn finish_relabel(&mut self, v: Vec<Series>) -> Result<Val, EvalError> {
        check_unique(&v)?;
        Ok(Val::Vector(v))
    }

    /// Classic buckets grouped per histogram: each series' group and upper bound.
    fn bucket_groups(&mut self, v: &[Series], about: &Expr) -> (Vec<Labels>, Vec<Option<(usize, f64)>>) {
        let mut index = std::collections::HashMap::new();
        let mut groups = Vec::new();
        let mut of_series = Vec::with_capacity(v.len());
        for s in v {
            let le = s.labels.get("le").unwrap_or("");
            let Some(upper) = parse_go_float(le) else {
                let name =
                    if s.drop_name && self.delayed() { "" } else { s.labels.metric_name().unwrap_or("") };
                self.annotate(Level::Warning, annotations::bad_bucket_label(name, le), about);
                of_series.push(None);
                continue;
            };
            let mut b = s.labels.builder();
            b.delete("le");
            let key = b.build();
            let g = *index.entry(key).or_insert_with_key(|k: &Labels| {
                groups.push(k.clone());
                groups.len() - 1
            });
            of_series.push(Some((g, upper)));
        }
        (groups, of_series)
    }

    /// Runs `f(step, group, buckets)` for every histogram present at every step.
    fn per_histogram_step(
        &mut self,
        v: &[Series],
        of_series: &[Option<(usize, f64)>],
        n_groups: usize,
        r: Range,
        f: &mut dyn FnMut(usize, usize, &mut Vec<Bucket>),
    ) -> Result<(), EvalError> {
        let mut pos = vec![0usize; v.len()];
        let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); n_groups];
        for (step, t) in r.timestamps().enumerate() {
            if step % 256 == 0 {
                self.check()?;
            }
            buckets.iter_mut().for_each(Vec::clear);
            for (si, s) in v.iter().enumerate() {
                let Some(i) = pos.get_mut(si) else { continue };
                let Some(p) = s.points.get(*i).filter(|p| p.t == t) else { continue };
                *i += 1;
                if let Some(Some((g, upper))) = of_series.get(si)
                    && let Some(b) = buckets.get_mut(*g)
                {
                    b.push(Bucket { upper: *upper, count: p.v });
                }
            }
            for (g, b) in buckets.iter_mut().enumerate() {
                if !b.is_empty() {
                    f(step, g, b);
                }
            }
        }
        Ok(())
    }

    fn histogram_output(&self, groups: Vec<Labels>, points: Vec<Vec<Point>>) -> Result<Val, EvalError> {
        let delayed = self.delayed();
        let out: Vec<Series> = groups
            .into_iter()
            .zip(points)
            .filter(|(_, p)| !p.is_empty())
            .map(|(labels, points)| Series { labels, drop_name: true, points })
            .collect();
        if delayed { Ok(Val::Vector(out)) } else { Ok(Val::Vector(self.settle_names(out, true)?)) }
    }

    fn histogram_quantile(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let f = Func::HistogramQuantile;
        let (qarg, varg) = (arg(args, 0, f)?, arg(args, 1, f)?);
        let q = self.eval_scalar(qarg, r)?;
        let v = self.eval_vector(varg, r)?;
        for &qv in &q {
            if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                self.annotate(Level::Warning, annotations::invalid_quantile(qv), qarg);
            }
        }
        let (groups, of_series) = self.bucket_groups(&v, varg);
        let mut points: Vec<Vec<Point>> = vec![Vec::new(); groups.len()];
        let mut forced: Vec<usize> = Vec::new();
        self.per_histogram_step(&v, &of_series, groups.len(), r, &mut |step, g, b| {
            let (val, was_forced) = bucket_quantile(at(&q, step), b);
            if was_forced {
                forced.push(g);
            }
            if let Some(p) = points.get_mut(g) {
                p.push(Point { t: r.ts(step), v: val });
            }
        })?;
        for g in forced {
            let name = groups.get(g).and_then(|l| l.metric_name()).unwrap_or("").to_string();
            self.annotate(Level::Info, annotations::forced_monotonicity(&name), varg);
        }
        self.histogram_output(groups, points)
    }

    fn histogram_quantiles(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let f = Func::HistogramQuantiles;
        let varg = arg(args, 0, f)?;
        let v = self.eval_vector(varg, r)?;
        let label = self.eval_string(arg(args, 1, f)?, r)?;
        let mut qs = Vec::new();
        for a in args.iter().skip(2) {
            let q = self.eval_scalar(a, r)?;
            for &qv in &q {
                if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                    self.annotate(Level::Warning, annotations::invalid_quantile(qv), a);
                }
            }
            qs.push(q);
        }
        let (groups, of_series) = self.bucket_groups(&v, varg);
        // One output series per (histogram, quantile argument), labelled with the quantile.
        let mut out: std::collections::HashMap<(usize, String), usize> = std::collections::HashMap::new();
        let mut series: Vec<Series> = Vec::new();
        self.per_histogram_step(&v, &of_series, groups.len(), r, &mut |step, g, b| {
            for q in &qs {
                let qv = at(q, step);
                let (val, _) = bucket_quantile(qv, &mut b.clone());
                let qlabel = go_float_f(qv);
                let slot = *out.entry((g, qlabel.clone())).or_insert_with(|| {
                    let mut lb = groups.get(g).cloned().unwrap_or_default().builder();
                    lb.set(label.as_str(), qlabel);
                    series.push(Series { labels: lb.build(), drop_name: true, points: Vec::new() });
                    series.len() - 1
                });
                if let Some(s) = series.get_mut(slot) {
                    s.points.push(Point { t: r.ts(step), v: val });
                }
            }
        })?;
        Ok(Val::Vector(self.settle_names(series, true)?))
    }

    fn histogram_fraction(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let f = Func::HistogramFraction;
        let lower = self.eval_scalar(arg(args, 0, f)?, r)?;
        let upper = self.eval_scalar(arg(args, 1, f)?, r)?;
        let varg = arg(args, 2, f)?;
        let v = self.eval_vector(varg, r)?;
        let (groups, of_series) = self.bucket_groups(&v, varg);
        let mut points: Vec<Vec<Point>> = vec![Vec::new(); groups.len()];
        self.per_histogram_step(&v, &of_series, groups.len(), r, &mut |step, g, b| {
            let val = bucket_fraction(at(&lower, step), at(&upper, step), b);
            if let Some(p) = points.get_mut(g) {
                p.push(Point { t: r.ts(step), v: val });
            }
        })?;
        self.histogram_output(groups, points)
    }
}

/// Go's `int64(f)` on amd64: truncation, with NaN and out-of-range values becoming the minimum.
fn go_int64(v: f64) -> i64 {
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
        i64::MIN
    } else {
        v.trunc() as i64
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for bucket bounds: decimal, `Inf`/`+Inf`/`-Inf`, `NaN`.
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let t = s.strip_prefix('+').unwrap_or(s);
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY });
        }
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// facette/natsort `Compare(a, b)`: numbers inside strings compare by value.
fn natural_less(a: &str, b: &str) -> bool {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut digit = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if digit.is_some_and(|x| x != d) {
                out.push(s.get(start..i).unwrap_or(""));
                start = i;
            }
            digit = Some(d);
        }
        if start < s.len() {
            out.push(s.get(start..).unwrap_or(""));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (i, x) in ca.iter().enumerate() {
        let Some(y) = cb.get(i) else { return false };
        let last_a = i + 1 == ca.len();
        let last_b = i + 1 == cb.len();
        match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(xi), Ok(yi)) => {
                if xi == yi {
                    if last_a {
                        return true;
                    } else if last_b {
                        return false;
                    }
                    continue;
                }
                return xi < yi;
            }
            _ => {
                if x == y {
                    if last_a {
                        return true;
                    } else if last_b {
                        return false;
                    }
                    continue;
                }
                return x < y;
            }
        }
    }
    false
}

/// A UTC calendar time.
pub(crate) struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
    yday: u32,
}

impl Civil {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let month = u32::try_from(month).unwrap_or(1);
        let day = u32::try_from(day).unwrap_or(1);
        let cumulative: u32 = (1..month).map(|m| days_in_month(year, m)).sum();
        Civil {
            year,
            month,
            day,
            hour: u32::try_from(sod / 3600).unwrap_or(0),
            minute: u32::try_from(sod % 3600 / 60).unwrap_or(0),
            weekday: u32::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
            yday: cumulative + day,
        }
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = Civil::from_unix(0);
        assert_eq!((c.year, c.month, c.day, c.weekday, c.yday), (1970, 1, 1, 4, 1));
        // 2024-02-29T13:45:00Z, a Thursday, day 60.
        let c = Civil::from_unix(1_709_214_300);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.weekday, c.yday),
            (2024, 2, 29, 13, 45, 4, 60)
        );
        let c = Civil::from_unix(-1);
        assert_eq!((c.year, c.month, c.day, c.hour), (1969, 12, 31, 23));
    }

    #[test]
    fn natural_order() {
        assert!(natural_less("a2", "a10"));
        assert!(!natural_less("a10", "a2"));
        assert!(natural_less("abc", "abd"));
    }

    /// Whether `promql-parser` knows a function (its table is private; an unknown name is the one
    /// parse error that says so).
    fn parser_knows(name: &str) -> bool {
        match promql_parser::parser::parse(&format!("{name}()")) {
            Ok(_) => true,
            Err(e) => !e.contains("unknown function with name"),
        }
    }

    /// Prometheus' function list (`promql/parser/functions.go`, 3.x, experimental ones included),
    /// plus names it dropped, so that a parser upgrade that adds or removes one fails here.
    const PROMETHEUS_FUNCTIONS: &[&str] = &[
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "double_exponential_smoothing",
        "end",
        "exp",
        "first_over_time",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_quantiles",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "info",
        "integral",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_of",
        "max_over_time",
        "min_of",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "range",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "start",
        "start_timestamp",
        "stddev_over_time",
        "stdvar_over_time",
        "step",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "ts_of_first_over_time",
        "ts_of_last_over_time",
        "ts_of_max_over_time",
        "ts_of_min_over_time",
        "vector",
        "year",
    ];

    #[test]
    fn function_table_matches_the_parser() {
        let mut names: Vec<&str> = PROMETHEUS_FUNCTIONS.to_vec();
        names.extend(Func::ALL.iter().map(|f| f.name()));
        for name in names {
            assert_eq!(
                parser_knows(name),
                Func::from_name(name).is_some(),
                "function {name}: the parser and the engine's table disagree"
            );
        }
    }

    #[test]
    fn every_function_has_a_unique_name() {
        for f in Func::ALL {
            assert_eq!(Func::from_name(f.name()), Some(*f));
        }
    }
}
