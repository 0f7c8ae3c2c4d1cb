//! Block benchmarks (storage engine part 2):
//!
//! - `compaction`: a `Db` compacting three 2 h blocks of the standard workload (2,000 series)
//!   into one 6 h block, in samples per second (read, merge, re-encode, zstd, fsync, rename,
//!   delete the sources).
//! - `select_100k`: `select` plus reading every matched sample, for common matchers over
//!   100,000 series (10 metric names × 10,000 containers, ~440-byte label sets, 60 samples each),
//!   from a block and from the head.
//!
//! `cargo bench -p kahu-benches --bench tsdb_blocks`
//!
//! With `KAHU_SELECT_BENCH_PUSH=<remote-write URL>[,<URL>...]` the bench measures nothing: it
//! pushes the `select_100k` series (ending now) to each URL through remote write and prints the
//! cases as PromQL selectors, tab-separated, for `benches/peers/select-vs-prometheus.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kahu_benches::remote_write::{PushOptions, push};
use kahu_benches::workload::{Config, Scrape, SeriesId, Source, Target, Workload};
use kahu_tsdb::block::{BlockSpec, WriteOptions, write_block};
use kahu_tsdb::compact::Retention;
use kahu_tsdb::model::{Labels, MatchOp, Matcher, Sample};
use kahu_tsdb::{Appendable, Db, FsyncPolicy, Options, Querier, Queryable};

#[path = "common/labels.rs"]
mod labels;
use labels::k8s_labels;

const HOUR: i64 = 3_600_000;

fn opts() -> Options {
    Options { wal_fsync: FsyncPolicy::Never, retention: Retention::default(), ..Options::default() }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn compaction(c: &mut Criterion) {
    if std::env::var_os(PUSH_ENV).is_some() {
        return;
    }
    let cfg = Config { series: 2_000, duration_ms: 8 * HOUR, ..Config::default() };
    let start = cfg.start_ms;
    let data = kahu_benches::compress::collect(&mut Workload::new(cfg));
    let src = tempfile::tempdir().unwrap();
    let mut compacted_samples = 0u64;
    for k in 0..4 {
        let (lo, hi) = (start + k * 2 * HOUR, start + (k + 1) * 2 * HOUR);
        let part = data.iter().map(|(l, s)| {
            (l.clone(), s.iter().filter(|x| x.t >= lo && x.t < hi).copied().collect::<Vec<Sample>>())
        });
        let spec = BlockSpec { min_time: lo, max_time: hi, ..Default::default() };
        let meta = write_block(src.path(), part, &spec, &WriteOptions::default()).unwrap().unwrap();
        if k < 3 {
            compacted_samples += meta.stats.num_samples;
        }
    }
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    g.throughput(Throughput::Elements(compacted_samples));
    g.bench_function("three_2h_blocks_2000_series", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                copy_dir(src.path(), dir.path());
                let db = Db::open(dir.path(), opts()).unwrap();
                (dir, db)
            },
            |(dir, db)| {
                let s = db.maintain().unwrap();
                assert_eq!(s.compactions, 1);
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

const NAMES: [&str; 10] = [
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_spec_memory_limit_bytes",
    "container_last_seen",
];

fn series_labels(i: usize) -> Labels {
    let base = k8s_labels(i / NAMES.len());
    let name = NAMES[i % NAMES.len()];
    Labels::from_pairs(base.iter().map(|l| {
        let v = if l.name.as_ref() == "__name__" { name.to_string() } else { l.value.to_string() };
        (l.name.to_string(), v)
    }))
}

fn value(i: usize, k: usize) -> f64 {
    (i * 7 + k) as f64
}

fn samples(i: usize, start: i64) -> Vec<Sample> {
    (0..60).map(|k| Sample::new(start + k as i64 * 15_000, value(i, k))).collect()
}

fn read_all(q: &dyn Querier, m: &[Matcher], mint: i64, maxt: i64) -> usize {
    let mut n = 0;
    for s in q.select(m, mint, maxt).unwrap() {
        let mut it = s.iter();
        while it.next().is_some() {
            n += 1;
        }
    }
    n
}

const PUSH_ENV: &str = "KAHU_SELECT_BENCH_PUSH";
const N: usize = 100_000;

/// The `select_100k` series as remote-write scrapes: one scrape per timestamp, every series.
struct SelectSource {
    labels: Vec<Labels>,
    start: i64,
    next: usize,
}

impl Source for SelectSource {
    fn next_scrape(&mut self) -> Option<Scrape> {
        let k = self.next;
        if k >= 60 {
            return None;
        }
        self.next += 1;
        let t = self.start + k as i64 * 15_000;
        let samples = (0..self.labels.len()).map(|i| (i as SeriesId, value(i, k))).collect();
        Some(Scrape { target: Target::Other, t, samples })
    }
    fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.labels.get(id as usize)
    }
    fn series_created(&self) -> usize {
        self.labels.len()
    }
}

/// `KAHU_SELECT_BENCH_PUSH` mode: pushes the series, 60 samples each ending a minute ago, and
/// prints `start=<ms> end=<ms>` and the cases.
fn push_select_series(urls: &str, cases: &[(&str, Vec<Matcher>, usize)]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = (now - 60_000 - 59 * 15_000) / 1000 * 1000;
    for url in urls.split(',') {
        let mut src = SelectSource { labels: (0..N).map(series_labels).collect(), start, next: 0 };
        let opts = PushOptions { url: url.to_string(), ..PushOptions::default() };
        let r = push(&mut src, &opts).unwrap();
        eprintln!("pushed {} samples to {url} in {:.1?}", r.samples, r.elapsed);
    }
    println!("range: start={start} end={}", start + 59 * 15_000);
    for (name, m, series) in cases {
        let sel = m.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",");
        println!("{name}\t{series}\t{{{sel}}}");
    }
}

fn select_cases() -> Vec<(&'static str, Vec<Matcher>, usize)> {
    let eq = |n: &str, v: &str| Matcher::equal(n, v);
    let re = |n: &str, v: &str| Matcher::new(MatchOp::Regex, n, v).unwrap();
    let ne = |n: &str, v: &str| Matcher::new(MatchOp::NotEqual, n, v).unwrap();
    vec![
        ("one_series_by_pod", vec![eq("__name__", NAMES[0]), eq("pod", "app-3-7d9f8b6c5d-00100")], 1),
        ("name_and_namespace", vec![eq("__name__", NAMES[1]), eq("namespace", "ns-3")], 909),
        (
            "name_namespace_container_not_empty",
            vec![eq("__name__", NAMES[1]), eq("namespace", "ns-3"), ne("container", "")],
            909,
        ),
        ("name_and_pod_regex_prefix", vec![eq("__name__", NAMES[2]), re("pod", "app-1-.*")], 104),
        ("name_only", vec![eq("__name__", NAMES[0])], 10_000),
    ]
}

fn select_100k(c: &mut Criterion) {
    let cases = select_cases();
    if let Some(urls) = std::env::var_os(PUSH_ENV) {
        push_select_series(&urls.to_string_lossy(), &cases);
        return;
    }
    let start = 1_795_737_600_000i64;
    let mut all: Vec<(Labels, Vec<Sample>)> = (0..N).map(|i| (series_labels(i), samples(i, start))).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    // A block [start, start+2h) in one Db; the same series in the head of another.
    let block_dir = tempfile::tempdir().unwrap();
    let spec = BlockSpec { min_time: start, max_time: start + 2 * HOUR, ..Default::default() };
    write_block(block_dir.path(), all.iter().cloned(), &spec, &WriteOptions::default()).unwrap().unwrap();
    let block_db = Db::open(block_dir.path(), opts()).unwrap();
    let head_dir = tempfile::tempdir().unwrap();
    let head_db = Db::open(head_dir.path(), opts()).unwrap();
    for k in 0..60 {
        let mut app = head_db.appender();
        for (l, s) in &all {
            app.append(l, s[k].t, s[k].v).unwrap();
        }
        app.commit().unwrap();
    }
    let (mint, maxt) = (start, start + HOUR);
    let mut g = c.benchmark_group("select_100k");
    for (which, db) in [("block", &block_db), ("head", &head_db)] {
        for (name, m, series) in &cases {
            let q = db.querier().unwrap();
            assert_eq!(read_all(q.as_ref(), m, mint, maxt), series * 60, "{which} {name}");
            g.bench_function(format!("{which}/{name}"), |b| {
                b.iter(|| {
                    let q = db.querier().unwrap();
                    black_box(read_all(q.as_ref(), m, mint, maxt))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, compaction, select_100k);
criterion_main!(benches);
