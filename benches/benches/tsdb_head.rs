//! Head benchmarks (storage engine part 1): Gorilla chunk encode/decode in samples/s, and head
//! append in samples/s on one core for 10,000 and 1,000,000 series (no WAL, so that the figure
//! is the head's own cost; the WAL's is in the remote-write side-by-side run).
//!
//! The `chunk_codecs` group encodes and decodes the same 120-sample series with the XOR chunk
//! and with the head's adaptive chunk (decimal while the values allow it, else XOR): the node
//! workload's series (`benches/src/workload.rs`) and the running-sum counter above, printing the
//! bytes per sample of each.
//!
//! `cargo bench -p kahu-benches --bench tsdb_head`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kahu_tsdb::Appender;
use kahu_tsdb::chunk::adaptive::{HeadChunk, HeadChunkIter};
use kahu_tsdb::chunk::xor::{XorChunk, XorIter};
use kahu_tsdb::head::{Head, HeadOptions};
use kahu_tsdb::model::Labels;

#[path = "common/labels.rs"]
mod labels;
use labels::k8s_labels;

/// A cAdvisor-like counter: 15s scrapes with a little jitter, values growing by irregular steps.
fn counter_samples(n: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut x = seed | 1;
    let mut t = 1_700_000_000_000i64;
    let mut v = 1000.0f64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 15_000 + (x % 7) as i64 - 3;
            v += (x % 1000) as f64 * 0.001;
            (t, v)
        })
        .collect()
}

fn chunks(c: &mut Criterion) {
    let samples = counter_samples(120 * 1000, 7);
    let mut g = c.benchmark_group("chunk_xor");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("encode_120_sample_chunks", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for part in samples.chunks(120) {
                let mut ch = XorChunk::new();
                for &(t, v) in part {
                    ch.append(t, v);
                }
                bytes += ch.bytes().len();
            }
            black_box(bytes)
        })
    });
    let encoded: Vec<Vec<u8>> = samples
        .chunks(120)
        .map(|part| {
            let mut ch = XorChunk::new();
            for &(t, v) in part {
                ch.append(t, v);
            }
            ch.bytes().to_vec()
        })
        .collect();
    g.bench_function("decode_120_sample_chunks", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for e in &encoded {
                for s in XorIter::new(e) {
                    sum += s.v;
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// Every series of a small node workload, 120 scrapes each.
fn node_series() -> Vec<Vec<(i64, f64)>> {
    use kahu_benches::workload::{Config, Workload};
    let cfg = Config { series: 3000, duration_ms: 120 * 15_000, churn_per_day: 0.0, ..Config::default() };
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    for scrape in Workload::new(cfg) {
        for (id, v) in scrape.samples {
            let id = id as usize;
            if out.len() <= id {
                out.resize_with(id + 1, Vec::new);
            }
            out[id].push((scrape.t, v));
        }
    }
    out
}

fn chunk_codecs(c: &mut Criterion) {
    let node = node_series();
    let sums: Vec<Vec<(i64, f64)>> = counter_samples(120 * 1000, 7).chunks(120).map(<[_]>::to_vec).collect();
    for (name, series) in [("node_workload", &node), ("running_sums", &sums)] {
        let n: usize = series.iter().map(Vec::len).sum();
        let xor: Vec<Vec<u8>> = series
            .iter()
            .map(|s| {
                let mut ch = XorChunk::new();
                for &(t, v) in s {
                    ch.append(t, v);
                }
                ch.bytes().to_vec()
            })
            .collect();
        let head: Vec<HeadChunk> = series
            .iter()
            .map(|s| {
                let mut ch = HeadChunk::new();
                for &(t, v) in s {
                    ch.append(t, v);
                }
                ch
            })
            .collect();
        let xor_bytes: usize = xor.iter().map(Vec::len).sum();
        let head_bytes: usize = head.iter().map(|h| h.bytes().len()).sum();
        let dec = head.iter().filter(|h| h.kind() == kahu_tsdb::chunk::adaptive::ChunkKind::Dec).count();
        println!(
            "chunk_codecs/{name}: {} series, {n} samples: xor {:.2} bytes/sample, head {:.2} bytes/sample ({dec} decimal chunks)",
            series.len(),
            xor_bytes as f64 / n as f64,
            head_bytes as f64 / n as f64
        );
        let mut g = c.benchmark_group(format!("chunk_codecs/{name}"));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("encode_xor", |b| {
            b.iter(|| {
                let mut bytes = 0usize;
                for s in series {
                    let mut ch = XorChunk::new();
                    for &(t, v) in s {
                        ch.append(t, v);
                    }
                    bytes += ch.bytes().len();
                }
                black_box(bytes)
            })
        });
        g.bench_function("encode_head", |b| {
            b.iter(|| {
                let mut bytes = 0usize;
                for s in series {
                    let mut ch = HeadChunk::new();
                    for &(t, v) in s {
                        ch.append(t, v);
                    }
                    bytes += ch.bytes().len();
                }
                black_box(bytes)
            })
        });
        g.bench_function("decode_xor", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for e in &xor {
                    for s in XorIter::new(e) {
                        sum += s.v;
                    }
                }
                black_box(sum)
            })
        });
        g.bench_function("decode_head", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for h in &head {
                    for s in HeadChunkIter::with_limit(h.kind(), h.bytes(), usize::MAX) {
                        sum += s.v;
                    }
                }
                black_box(sum)
            })
        });
        g.finish();
    }
}

fn head_append(c: &mut Criterion) {
    for &n in &[10_000usize, 1_000_000] {
        let labels: Vec<Labels> = (0..n).map(k8s_labels).collect();
        let head = Head::new(HeadOptions::default(), false);
        // Create every series first: the benchmark measures appends to existing series, the
        // steady state of a scrape or remote-write stream.
        let mut t = 1_700_000_000_000i64;
        {
            let mut app = Box::new(head.appender());
            for l in &labels {
                app.append(l, t, 1.0).unwrap();
            }
            app.commit().unwrap();
        }
        let mut g = c.benchmark_group("head_append");
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        g.bench_function(format!("{n}_series_one_sample_each"), |b| {
            b.iter_batched(
                || {
                    t += 15_000;
                    t
                },
                |t| {
                    // Commits of 2,000 samples, as remote write sends them.
                    for part in labels.chunks(2000) {
                        let mut app = Box::new(head.appender());
                        for l in part {
                            app.append(l, t, t as f64).unwrap();
                        }
                        app.commit().unwrap();
                    }
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, chunks, chunk_codecs, head_append);
criterion_main!(benches);
