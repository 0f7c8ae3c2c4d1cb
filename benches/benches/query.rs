//! PromQL engine benchmarks (issue 5):
//!
//! - `range_sum_rate`: 24 h range query at 60 s of
//!   `sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m]))` over 10,000 series;
//! - `range_topk`: `topk(5, rate(container_cpu_usage_seconds_total[5m]))`, same range;
//! - `range_histogram_quantile`: `histogram_quantile(0.99, sum by (job, le) (rate(…_bucket[5m])))`
//!   over 1,000 bucket series, same range;
//! - `instant_100k`: an instant query touching 100,000 series.
//!
//! The data is generated here (30 s scrapes for 24 h, deterministic) and loaded through the
//! `Appender` into the store the server uses. With `KAHU_QUERY_BENCH_EXPORT=<file>` the bench
//! writes the same data as OpenMetrics instead of running, for `promtool tsdb
//! create-blocks-from openmetrics` (see `benches/peer/query_vs_prometheus.sh`).

#![expect(clippy::expect_used, reason = "a benchmark has nobody to report an error to: it stops")]

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::Criterion;
use kahu_query::{Engine, EngineOptions, QueryOpts};
use kahu_tsdb::model::Labels;
use kahu_tsdb::{Appendable, MemHead, Queryable};

/// 2023-11-14T22:13:20Z: a fixed start so that runs are comparable.
const T0: i64 = 1_700_000_000_000;
const SCRAPE: i64 = 30_000;
const DAY: i64 = 86_400_000;
const RANGE_START: i64 = T0 + 10 * 60_000;
const RANGE_END: i64 = T0 + DAY;
const STEP: i64 = 60_000;

/// The queries, shared with the Prometheus side of the comparison.
const QUERIES: &[(&str, &str, bool)] = &[
    ("range_sum_rate", "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m]))", true),
    ("range_topk", "topk(5, rate(container_cpu_usage_seconds_total[5m]))", true),
    (
        "range_histogram_quantile",
        "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
        true,
    ),
    ("instant_100k", "count by (namespace) (kube_pod_info_bench)", false),
];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Calls `f(labels, samples)` for every series of the dataset.
fn dataset(mut f: impl FnMut(&Labels, &[(i64, f64)])) {
    let mut rng = Rng(42);
    let points = (DAY / SCRAPE) as usize;
    let mut samples = Vec::with_capacity(points);
    // 10,000 cAdvisor CPU counters: 50 namespaces, 2,000 pods, 5 containers each.
    for pod in 0..2000 {
        for container in 0..5 {
            let labels = Labels::from_pairs([
                ("__name__", "container_cpu_usage_seconds_total".to_string()),
                ("namespace", format!("ns-{:02}", pod % 50)),
                ("pod", format!("pod-{pod:04}")),
                ("container", format!("c-{container}")),
                ("cpu", "total".to_string()),
            ]);
            let cores = 0.01 + 2.0 * rng.unit();
            let mut v = 1000.0 * rng.unit();
            samples.clear();
            for i in 0..points {
                v += cores * 30.0 * (0.8 + 0.4 * rng.unit());
                samples.push((T0 + i as i64 * SCRAPE, (v * 1000.0).round() / 1000.0));
            }
            f(&labels, &samples);
        }
    }
    // 1,000 bucket series: 100 histograms (10 jobs × 10 instances) of 10 buckets.
    const LE: [&str; 10] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for job in 0..10 {
        for instance in 0..10 {
            let mut counts = [0.0f64; 10];
            let mut series: Vec<Vec<(i64, f64)>> = (0..10).map(|_| Vec::with_capacity(points)).collect();
            let rps = 1.0 + 50.0 * rng.unit();
            for i in 0..points {
                let n = (rps * 30.0 * (0.5 + rng.unit())).round();
                let mut cum = 0.0;
                // Observations spread over the buckets, most of them fast.
                for (count, share) in
                    counts.iter_mut().zip([0.2, 0.2, 0.2, 0.15, 0.1, 0.07, 0.04, 0.02, 0.01, 0.01])
                {
                    cum += n * share;
                    *count += cum.round();
                }
                for (s, count) in series.iter_mut().zip(counts) {
                    s.push((T0 + i as i64 * SCRAPE, count));
                }
            }
            for (s, le) in series.iter().zip(LE) {
                let labels = Labels::from_pairs([
                    ("__name__", "http_request_duration_seconds_bucket".to_string()),
                    ("job", format!("api-{job}")),
                    ("instance", format!("i-{instance}")),
                    ("le", le.to_string()),
                ]);
                f(&labels, s);
            }
        }
    }
    // 100,000 info-style series with samples in the last 10 minutes.
    for pod in 0..100_000 {
        let labels = Labels::from_pairs([
            ("__name__", "kube_pod_info_bench".to_string()),
            ("namespace", format!("ns-{:03}", pod % 100)),
            ("pod", format!("p-{pod:06}")),
        ]);
        samples.clear();
        for i in 0..20 {
            samples.push((RANGE_END - 10 * 60_000 + i * SCRAPE, 1.0));
        }
        f(&labels, &samples);
    }
}

fn load() -> MemHead {
    let head = MemHead::new();
    dataset(|labels, samples| {
        // One batch per series keeps the in-memory store's appender cheap.
        let mut app = head.appender();
        for &(t, v) in samples {
            app.append(labels, t, v).expect("append");
        }
        app.commit().expect("commit");
    });
    head
}

fn export(path: &str) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut last_name = String::new();
    let mut err = Ok(());
    dataset(|labels, samples| {
        let name = labels.metric_name().unwrap_or("");
        if name != last_name {
            if let Err(e) = writeln!(out, "# TYPE {name} unknown") {
                err = Err(e);
            }
            last_name = name.to_string();
        }
        let pairs: Vec<String> = labels
            .iter()
            .filter(|l| &*l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let series = format!("{name}{{{}}}", pairs.join(","));
        for &(t, v) in samples {
            if let Err(e) = writeln!(out, "{series} {v} {}.{:03}", t / 1000, t % 1000) {
                err = Err(e);
            }
        }
    });
    err?;
    writeln!(out, "# EOF")?;
    out.flush()
}

fn benches(c: &mut Criterion) {
    let head = load();
    let engine = Engine::new(EngineOptions { max_samples: 500_000_000, ..EngineOptions::default() });
    let opts = QueryOpts::default();
    let mut group = c.benchmark_group("query");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    for &(id, query, range) in QUERIES {
        group.bench_function(id, |b| {
            b.iter(|| {
                let q = head.querier().expect("querier");
                let res = if range {
                    engine.range_query(q.as_ref(), query, RANGE_START, RANGE_END, STEP, &opts)
                } else {
                    engine.instant_query(q.as_ref(), query, RANGE_END, &opts)
                };
                black_box(res.expect("query"))
            })
        });
    }
    group.finish();
}

fn main() {
    if let Ok(path) = std::env::var("KAHU_QUERY_BENCH_EXPORT") {
        export(&path).expect("write OpenMetrics");
        for (id, q, range) in QUERIES {
            println!("{id}\t{range}\t{q}");
        }
        println!("range: start={RANGE_START} end={RANGE_END} step={STEP} instant_at={RANGE_END}");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
