//! PromQL engine benchmarks (issue 5), and the kahu side of the comparison with Prometheus
//! (`benches/peers/query_vs_prometheus.sh`).
//!
//! The data (deterministic, 30 s scrapes for 24 h unless noted):
//!
//! - 10,000 cAdvisor CPU counters `container_cpu_usage_seconds_total` (50 namespaces, 2,000 pods,
//!   5 containers each);
//! - 1,000 histogram buckets `http_request_duration_seconds_bucket` (10 jobs × 10 instances × 10
//!   buckets);
//! - 2,000 `kube_pod_info` series (one per pod, with a `node` label), every 2 minutes, for joins;
//! - 100,000 `kube_pod_info_bench` series with samples in the last 10 minutes only.
//!
//! `KAHU_QUERY_BENCH_SCALE=<fraction>` (default 1) scales the counts of the 24 h series (where the
//! samples are), not the 100,000 short info series nor the time span: the bench and the export
//! honour it, so kahu and Prometheus always see identical data.
//!
//! The series are written as persisted blocks aligned on 2 h (the layout `promtool tsdb
//! create-blocks-from openmetrics` gives Prometheus), and each query runs on a read-only `Db`
//! opened on them: engine plus storage time on warm data, the counterpart of Prometheus'
//! `execTotalTime`. The queries cover range and instant evaluation, `rate` + `sum by`, `topk`,
//! `histogram_quantile`, a `group_left` join against info series, regex selectors and a subquery.
//!
//! With `KAHU_QUERY_BENCH_EXPORT=<dir>` the bench writes the same data as OpenMetrics instead of
//! running, one file per 2 h block (`promtool` reads its whole input once per block it creates,
//! so one file per block makes the backfill a single pass), and prints the queries.

#![expect(clippy::expect_used, reason = "a benchmark has nobody to report an error to: it stops")]

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use kahu_query::{Engine, EngineOptions, QueryOpts, Value};
use kahu_tsdb::block::{BlockSpec, WriteOptions, write_block};
use kahu_tsdb::model::{Labels, Sample};
use kahu_tsdb::{Db, Queryable};

/// 2023-11-14T22:13:20Z: a fixed start so that runs are comparable.
const T0: i64 = 1_700_000_000_000;
/// Scrapes happen 7 s after each 30 s mark, so that no sample sits on the edge of a range
/// window (`[5m]` at a 60 s step): Prometheus 2.x includes a sample at exactly `t - 5m`, 3.x
/// (and kahu) does not, and the comparison is meant to compute the same answer on both.
const PHASE: i64 = 7_000;
const SCRAPE: i64 = 30_000;
const DAY: i64 = 86_400_000;
/// Block range, as Prometheus' (and promtool's) default.
const BLOCK: i64 = 2 * 3_600_000;
const RANGE_START: i64 = T0 + 10 * 60_000;
const RANGE_END: i64 = T0 + DAY;
const STEP: i64 = 60_000;

/// The queries, shared with the Prometheus side of the comparison: (id, query, range?).
const QUERIES: &[(&str, &str, bool)] = &[
    ("range_sum_rate", "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m]))", true),
    ("range_topk", "topk(5, rate(container_cpu_usage_seconds_total[5m]))", true),
    (
        "range_histogram_quantile",
        "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
        true,
    ),
    (
        "range_join_info",
        "sum by (node) (rate(container_cpu_usage_seconds_total[5m]) * on (namespace, pod) group_left (node) kube_pod_info)",
        true,
    ),
    (
        "range_regex",
        "sum by (namespace) (rate(container_cpu_usage_seconds_total{namespace=~\"ns-0[0-4]\",container!~\"c-[34]\"}[5m]))",
        true,
    ),
    (
        "instant_subquery",
        "max_over_time(sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))[1h:1m])",
        false,
    ),
    ("instant_rate_1h", "sum by (namespace) (rate(container_cpu_usage_seconds_total[1h]))", false),
    ("instant_100k", "count by (namespace) (kube_pod_info_bench)", false),
    ("instant_regex_100k", "count(kube_pod_info_bench{pod=~\"p-0[0-4].*\"})", false),
];

/// `KAHU_QUERY_BENCH_SCALE`: the fraction of the default series counts.
fn scale() -> f64 {
    std::env::var("KAHU_QUERY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

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
fn dataset(scale: f64, mut f: impl FnMut(&Labels, &[Sample])) {
    let mut rng = Rng(42);
    let points = (DAY / SCRAPE) as usize;
    let pods = scaled(2000, scale);
    let mut samples = Vec::with_capacity(points);
    // cAdvisor CPU counters: 50 namespaces, 5 containers per pod.
    for pod in 0..pods {
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
                samples.push(Sample::new(T0 + PHASE + i as i64 * SCRAPE, (v * 1000.0).round() / 1000.0));
            }
            f(&labels, &samples);
        }
    }
    // One info series per pod, every 2 minutes (within the 5 minute lookback).
    for pod in 0..pods {
        let labels = Labels::from_pairs([
            ("__name__", "kube_pod_info".to_string()),
            ("namespace", format!("ns-{:02}", pod % 50)),
            ("pod", format!("pod-{pod:04}")),
            ("node", format!("node-{:03}", pod % 100)),
        ]);
        samples.clear();
        samples.extend((0..DAY / 120_000).map(|i| Sample::new(T0 + PHASE + i * 120_000, 1.0)));
        f(&labels, &samples);
    }
    // Histograms of 10 buckets: 10 jobs × (10 × scale) instances.
    const LE: [&str; 10] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for job in 0..10 {
        for instance in 0..scaled(10, scale) {
            let mut counts = [0.0f64; 10];
            let mut series: Vec<Vec<Sample>> = (0..10).map(|_| Vec::with_capacity(points)).collect();
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
                    s.push(Sample::new(T0 + PHASE + i as i64 * SCRAPE, count));
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
    // Info-style series with samples in the last 10 minutes.
    for pod in 0..100_000 {
        let labels = Labels::from_pairs([
            ("__name__", "kube_pod_info_bench".to_string()),
            ("namespace", format!("ns-{:03}", pod % 100)),
            ("pod", format!("p-{pod:06}")),
        ]);
        samples.clear();
        samples.extend((0..20).map(|i| Sample::new(RANGE_END - 10 * 60_000 + PHASE + i * SCRAPE, 1.0)));
        f(&labels, &samples);
    }
}

/// The start of the 2 h block holding `t`.
fn block_of(t: i64) -> i64 {
    t.div_euclid(BLOCK) * BLOCK
}

/// Writes the dataset as blocks aligned on 2 h into `dir`.
fn write_blocks(dir: &Path, scale: f64) {
    let mut all: Vec<(Labels, Vec<Sample>)> = Vec::new();
    dataset(scale, |labels, samples| all.push((labels.clone(), samples.to_vec())));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut start = block_of(T0);
    while start <= RANGE_END {
        let end = start + BLOCK;
        let series = all.iter().filter_map(|(l, s)| {
            let from = s.partition_point(|x| x.t < start);
            let to = s.partition_point(|x| x.t < end);
            s.get(from..to).filter(|w| !w.is_empty()).map(|w| (l.clone(), w.to_vec()))
        });
        let spec = BlockSpec { min_time: start, max_time: end, ..Default::default() };
        write_block(dir, series, &spec, &WriteOptions::default()).expect("write block");
        start = end;
    }
}

/// Writes the dataset as OpenMetrics into `dir`, one file per 2 h block.
fn export(dir: &Path, scale: f64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut files: Vec<(i64, std::io::BufWriter<std::fs::File>)> = Vec::new();
    let mut start = block_of(T0);
    while start <= RANGE_END {
        let f = std::fs::File::create(dir.join(format!("{start}.om")))?;
        files.push((start, std::io::BufWriter::with_capacity(1 << 20, f)));
        start += BLOCK;
    }
    let mut last_name = String::new();
    let mut err = Ok(());
    dataset(scale, |labels, samples| {
        let name = labels.metric_name().unwrap_or("");
        let new_family = name != last_name;
        last_name = name.to_string();
        let pairs: Vec<String> = labels
            .iter()
            .filter(|l| &*l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let series = format!("{name}{{{}}}", pairs.join(","));
        for (start, out) in &mut files {
            let (from, to) = (
                samples.partition_point(|x| x.t < *start),
                samples.partition_point(|x| x.t < *start + BLOCK),
            );
            let mut write = || -> std::io::Result<()> {
                if new_family {
                    writeln!(out, "# TYPE {name} unknown")?;
                }
                for s in samples.get(from..to).unwrap_or_default() {
                    writeln!(out, "{series} {} {}.{:03}", s.v, s.t / 1000, s.t % 1000)?;
                }
                Ok(())
            };
            if let Err(e) = write() {
                err = Err(e);
            }
        }
    });
    err?;
    for (_, mut out) in files {
        writeln!(out, "# EOF")?;
        out.flush()?;
    }
    Ok(())
}

fn benches(c: &mut Criterion, db: &Db) {
    let engine = Engine::new(EngineOptions { max_samples: 500_000_000, ..EngineOptions::default() });
    let opts = QueryOpts::default();
    let mut group = c.benchmark_group("query");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    let run = |query: &str, range: bool| {
        let q = db.querier().expect("querier");
        let res = if range {
            engine.range_query(q.as_ref(), query, RANGE_START, RANGE_END, STEP, &opts)
        } else {
            engine.instant_query(q.as_ref(), query, RANGE_END, &opts)
        };
        res.expect("query")
    };
    for &(id, query, range) in QUERIES {
        // The series count goes next to Prometheus' in the comparison: both must answer the same.
        let n = match run(query, range).value {
            Value::Vector(v) => v.len(),
            Value::Matrix(m) => m.len(),
            Value::Scalar { .. } | Value::String { .. } => 1,
        };
        assert!(n > 0, "{id}: no series (is the data there?)");
        eprintln!("kahu_result_series {id} {n}");
        group.bench_function(id, |b| b.iter(|| black_box(run(query, range))));
    }
    group.finish();
}

fn main() {
    let scale = scale();
    if let Ok(dir) = std::env::var("KAHU_QUERY_BENCH_EXPORT") {
        export(Path::new(&dir), scale).expect("write OpenMetrics");
        for (id, q, range) in QUERIES {
            println!("{id}\t{range}\t{q}");
        }
        println!("range: start={RANGE_START} end={RANGE_END} step={STEP} instant_at={RANGE_END}");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    write_blocks(dir.path(), scale);
    let db = Db::open_read_only(dir.path()).expect("open the blocks");
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &db);
    c.final_summary();
}
