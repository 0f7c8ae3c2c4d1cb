//! The range-query fast path (series loaded once, windows slid over them, grouping keys computed
//! once) checked on random data against
//! 1. the same engine evaluating an instant query at every step, for many expression shapes, and
//! 2. a naive evaluator written here from the definitions, which steps one timestamp at a time
//!    over the raw samples.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers; a failure is the test's answer"
)]

use std::collections::BTreeMap;

use kahu_query::{Engine, EngineOptions, QueryOpts, Value};
use kahu_tsdb::model::{Labels, is_stale_nan, stale_nan};
use kahu_tsdb::{Appendable, MemHead, Queryable};
use proptest::prelude::*;

type Data = Vec<(Labels, Vec<(i64, f64)>)>;

/// A few series of gauges and counters with irregular intervals, gaps and stale markers.
fn data() -> impl Strategy<Value = Data> {
    let series =
        (0usize..2, 0usize..2, 0usize..3, prop::collection::vec((1i64..60, -50i32..50, 0u8..20), 1..40));
    prop::collection::vec(series, 1..7).prop_map(|specs| {
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        for (name, job, inst, steps) in specs {
            let name = ["g", "c_total"][name];
            let labels = Labels::from_pairs([
                ("__name__", name),
                ("job", ["a", "b"][job]),
                ("inst", ["0", "1", "2"][inst]),
            ]);
            let mut t = 0i64;
            let mut counter = 0.0;
            let mut samples = Vec::new();
            for (dt, v, kind) in steps {
                t += dt * 1000;
                let value = match kind {
                    0 => stale_nan(),
                    1 if name == "c_total" => {
                        counter = f64::from(v.abs());
                        counter
                    }
                    _ if name == "c_total" => {
                        counter += f64::from(v.abs());
                        counter
                    }
                    _ => f64::from(v) / 4.0,
                };
                samples.push((t, value));
            }
            out.entry(labels).or_insert(samples);
        }
        out.into_iter().collect()
    })
}

fn load(data: &Data) -> MemHead {
    let head = MemHead::new();
    let mut app = head.appender();
    for (labels, samples) in data {
        for &(t, v) in samples {
            app.append(labels, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    head
}

/// `labels → value` of a result at one step.
type Step = BTreeMap<Labels, f64>;

fn same(a: &Step, b: &Step) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((la, va), (lb, vb))| {
            la == lb
                && (va == vb
                    || (va.is_nan() && vb.is_nan())
                    || ((va - vb).abs() <= 1e-9 * va.abs().max(vb.abs())))
        })
}

fn range_steps(v: &Value, start: i64, end: i64, step: i64) -> Vec<Step> {
    let Value::Matrix(series) = v else { panic!("range query returned {v:?}") };
    let n = ((end - start) / step + 1) as usize;
    let mut out = vec![Step::new(); n];
    for s in series {
        for &(t, x) in &s.samples {
            out[((t - start) / step) as usize].insert(s.labels.clone(), x);
        }
    }
    out
}

fn instant_step(v: &Value) -> Step {
    match v {
        Value::Vector(samples) => samples.iter().map(|s| (s.labels.clone(), s.v)).collect(),
        Value::Scalar { v, .. } => [(Labels::empty(), *v)].into_iter().collect(),
        other => panic!("instant query returned {other:?}"),
    }
}

const EXPRS: &[&str] = &[
    "g",
    "c_total offset 20s",
    "g offset -30s",
    "rate(c_total[R])",
    "increase(c_total[R] offset 10s)",
    "delta(g[R])",
    "irate(c_total[R])",
    "idelta(g[R])",
    "deriv(g[R])",
    "predict_linear(g[R], 60)",
    "changes(g[R])",
    "resets(c_total[R])",
    "sum_over_time(g[R])",
    "avg_over_time(g[R])",
    "count_over_time(g[R])",
    "max_over_time(g[R])",
    "min_over_time(g[R])",
    "stddev_over_time(g[R])",
    "quantile_over_time(0.3, g[R])",
    "last_over_time(g[R])",
    "first_over_time(g[R])",
    "present_over_time(g[R])",
    "absent_over_time(g{job=\"a\"}[R])",
    "absent(g{inst=\"1\"})",
    "sum by (job) (rate(c_total[R]))",
    "avg without (inst) (g)",
    "count by (inst) (g)",
    "max by (job) (g) - min by (job) (g)",
    "stddev(g)",
    "quantile by (job) (0.7, g)",
    "topk(2, g)",
    "bottomk by (job) (1, g)",
    "count_values(\"v\", g)",
    "group by (job) (g)",
    "g > 2",
    "g < bool 0",
    "g * on(job, inst) group_left c_total",
    "g + ignoring(inst) group_left sum by (job) (g)",
    "g and on(job) c_total",
    "g or c_total",
    "g unless on(inst) c_total",
    "sum_over_time(g[R:7s])",
    "max_over_time(rate(c_total[R])[2m:15s])",
    "rate(c_total[R] @ 100)",
    "g @ 50",
    "timestamp(g)",
    "scalar(sum(g)) * 2",
    "clamp(g, -3, 3)",
    "abs(g) ^ 0.5",
    "-g",
    "vector(time()) - 100",
    "label_replace(g, \"x\", \"$1\", \"job\", \"(.)\")",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A range query gives at every step exactly what an instant query at that step gives.
    #[test]
    fn range_query_equals_instant_queries(
        data in data(),
        expr in prop::sample::select(EXPRS),
        range_s in prop::sample::select(&[15i64, 30, 61, 120][..]),
        start in 0i64..200,
        steps in 1i64..40,
        step in prop::sample::select(&[1i64, 7, 10, 30][..]),
    ) {
        let head = load(&data);
        let q = head.querier().unwrap();
        let engine = Engine::new(EngineOptions::default());
        let expr = expr.replace("[R", &format!("[{range_s}s"));
        let (start, step) = (start * 1000, step * 1000);
        let end = start + (steps - 1) * step;
        let opts = QueryOpts::default();
        let range = engine.range_query(q.as_ref(), &expr, start, end, step, &opts);
        let mut t = start;
        let mut i = 0;
        let range_steps = range.as_ref().ok().map(|r| range_steps(&r.value, start, end, step));
        while t <= end {
            let inst = engine.instant_query(q.as_ref(), &expr, t, &opts);
            match (&range_steps, inst) {
                (Some(rs), Ok(inst)) => {
                    let want = instant_step(&inst.value);
                    prop_assert!(same(&rs[i], &want), "{expr} at {t}: range {:?} instant {:?}", rs[i], want);
                }
                (None, Err(_)) => {}
                (Some(_), Err(e)) => {
                    // An error at one step that the range query did not see is only possible
                    // for errors raised per step (duplicates that the range query merges).
                    prop_assert!(e.to_string().contains("same labelset"), "{expr} at {t}: instant failed: {e}");
                }
                (None, Ok(_)) => {
                    let e = range.as_ref().err().unwrap();
                    prop_assert!(
                        e.to_string().contains("same labelset") || e.to_string().contains("matching"),
                        "{expr}: range failed ({e}) but instant at {t} did not"
                    );
                }
            }
            t += step;
            i += 1;
        }
    }

    /// The engine's windows agree with a naive evaluator over the raw samples.
    #[test]
    fn windows_match_a_naive_evaluator(
        data in data(),
        range_s in 1i64..200,
        offset_s in -30i64..30,
        start in 0i64..300,
        steps in 1i64..30,
        step in 1i64..40,
    ) {
        let head = load(&data);
        let q = head.querier().unwrap();
        let engine = Engine::new(EngineOptions::default());
        let (start, step, range, offset) = (start * 1000, step * 1000, range_s * 1000, offset_s * 1000);
        let end = start + (steps - 1) * step;
        let opts = QueryOpts::default();
        type Naive = fn(&[(i64, f64)]) -> Option<f64>;
        let cases: [(&str, Naive); 5] = [
            ("sum_over_time", |w| Some(w.iter().map(|s| s.1).sum())),
            ("count_over_time", |w| Some(w.len() as f64)),
            ("max_over_time", |w| w.iter().map(|s| s.1).reduce(f64::max)),
            ("last_over_time", |w| w.last().map(|s| s.1)),
            ("present_over_time", |_| Some(1.0)),
        ];
        // promql-parser rejects `offset 0s`.
        let off = if offset_s == 0 { String::new() } else { format!(" offset {offset_s}s") };
        for (func, naive) in cases {
            let expr = format!("{func}(g[{range_s}s]{off})");
            let got = engine.range_query(q.as_ref(), &expr, start, end, step, &opts).unwrap();
            let got = range_steps(&got.value, start, end, step);
            for (i, got_step) in got.iter().enumerate() {
                let t = start + i as i64 * step;
                let mut want = Step::new();
                for (labels, samples) in data.iter().filter(|(l, _)| l.metric_name() == Some("g")) {
                    let window: Vec<(i64, f64)> = samples
                        .iter()
                        .copied()
                        .filter(|&(st, v)| st > t - offset - range && st <= t - offset && !is_stale_nan(v))
                        .collect();
                    if window.is_empty() {
                        continue;
                    }
                    let mut b = labels.builder();
                    if func != "last_over_time" {
                        b.delete("__name__");
                    }
                    if let Some(v) = naive(&window) {
                        want.insert(b.build(), v);
                    }
                }
                prop_assert!(same(got_step, &want), "{expr} at {t}: engine {got_step:?} naive {want:?}");
            }
        }
        // Instant selectors: the newest sample in (t - offset - 5m, t - offset], unless stale.
        let expr = format!("g{off}");
        let got = engine.range_query(q.as_ref(), &expr, start, end, step, &opts).unwrap();
        let got = range_steps(&got.value, start, end, step);
        for (i, got_step) in got.iter().enumerate() {
            let t = start + i as i64 * step - offset;
            let mut want = Step::new();
            for (labels, samples) in data.iter().filter(|(l, _)| l.metric_name() == Some("g")) {
                if let Some(&(_, v)) = samples.iter().rev().find(|&&(st, _)| st <= t && st > t - 300_000)
                    && !is_stale_nan(v)
                {
                    want.insert(labels.clone(), v);
                }
            }
            prop_assert!(same(got_step, &want), "{expr} at {}: engine {got_step:?} naive {want:?}", t + offset);
        }
    }
}
