//! `kahu-workload`: measure, push and capture the benchmark workloads.
//!
//! ```text
//! kahu-workload stats --series 10000 --duration 24h
//! kahu-workload push --url http://127.0.0.1:9090/api/v1/write --series 10000 --duration 24h
//! kahu-workload push --url … --capture benches/testdata/node-exporter-1h.capture.zst
//! kahu-workload capture --target node=http://127.0.0.1:9100/metrics --count 240 --dir /tmp/cap
//! kahu-workload pack --dir /tmp/cap --out benches/testdata/….capture.zst
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kahu_benches::capture::Capture;
use kahu_benches::remote_write::{PushOptions, push};
use kahu_benches::workload::{Config, Workload, stats};

#[derive(Parser)]
#[command(name = "kahu-workload", about = "kahu's benchmark workloads: generate, push, capture")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct WorkloadArgs {
    /// Active series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Length of the run (e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    duration: Duration,
    /// Start of the run in Unix milliseconds; default: the standard fixed start for `stats`,
    /// and now minus the duration (rounded down to the hour) for `push`, so that receivers with
    /// a retention window accept everything.
    #[arg(long)]
    start_ms: Option<i64>,
    /// Pod churn (new series per day as a fraction of the active ones).
    #[arg(long, default_value_t = 0.5)]
    churn_per_day: f64,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl WorkloadArgs {
    fn config(&self, default_start_now: bool) -> Result<Config> {
        let mut cfg = Config {
            series: self.series,
            duration_ms: i64::try_from(self.duration.as_millis()).context("duration too long")?,
            churn_per_day: self.churn_per_day,
            ..Config::default()
        };
        if let Some(seed) = self.seed {
            cfg.seed = seed;
        }
        match self.start_ms {
            Some(s) => cfg.start_ms = s,
            None if default_start_now => {
                let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
                cfg.start_ms = (now - cfg.duration_ms) / 3_600_000 * 3_600_000;
            }
            None => {}
        }
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the workload once and print its figures.
    Stats(WorkloadArgs),
    /// Push the workload (or a capture) through Prometheus remote write 1.0.
    Push {
        /// Remote-write endpoint.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Push this packed capture instead of the generated workload (its own timestamps).
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Samples per request.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Scrape targets every interval into `DIR/<name>/<unix-ms>.prom`.
    Capture {
        /// `name=url`, repeatable.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// Number of scrapes.
        #[arg(long, default_value_t = 240)]
        count: usize,
        /// Time between scrapes.
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        interval: Duration,
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write the workload (or a capture) as kahu blocks and print bytes per sample.
    Blocks {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Measure this packed capture instead of the generated workload.
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Where to write the blocks (a temporary directory by default).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// zstd level.
        #[arg(long, default_value_t = 9)]
        zstd_level: i32,
        /// Also print pre-zstd bytes by metric name (2 h chunks).
        #[arg(long)]
        breakdown: bool,
        /// Also print chunk bytes by kind and part, before and after zstd, for chunks of this
        /// range (e.g. 2h, 24h).
        #[arg(long, value_parser = parse_duration)]
        breakdown_zstd: Option<Duration>,
    },
    /// The generator's own randomness per model kind against what kahu's codecs pay for the
    /// same values; with `--capture`, per metric name, how values step in the capture and in the
    /// generator (to check the generator's noise against real data).
    Floor {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Compare the generator's metrics with this packed capture's.
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Chunk range the codecs see (24h: a compacted block).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        range: Duration,
    },
    /// Pack a capture directory into one compressed canned dataset.
    Pack {
        /// Directory written by `capture`.
        #[arg(long)]
        dir: PathBuf,
        /// Output file (`*.capture.zst`).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Parses a Prometheus-style duration: `1500ms`, `15s`, `90m`, `24h`, `2d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("invalid duration {s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(n * ms))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kahu-workload: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Stats(args) => {
            let cfg = args.config(false)?;
            let s = stats(&cfg);
            println!("active series at start   {}", s.active_at_start);
            println!("distinct series          {}", s.series_created);
            println!("samples                  {}", s.samples);
            println!("label bytes per series   {:.1}", s.label_bytes_per_series);
        }
        Cmd::Push { url, workload, capture, connections, batch } => {
            let opts = PushOptions { url, samples_per_request: batch, connections, ..PushOptions::default() };
            let report = match capture {
                Some(path) => {
                    let c =
                        Capture::read(&path).with_context(|| format!("read capture {}", path.display()))?;
                    push(&mut c.replay(), &opts)?
                }
                None => push(&mut Workload::new(workload.config(true)?), &opts)?,
            };
            let secs = report.elapsed.as_secs_f64();
            println!(
                "pushed {} samples in {} requests ({} body bytes) in {:.2}s: {:.0} samples/s",
                report.samples,
                report.requests,
                report.body_bytes,
                secs,
                report.samples as f64 / secs.max(1e-9)
            );
        }
        Cmd::Blocks { workload, capture, dir, zstd_level, breakdown, breakdown_zstd } => {
            let data = match capture {
                Some(path) => {
                    let c =
                        Capture::read(&path).with_context(|| format!("read capture {}", path.display()))?;
                    kahu_benches::compress::collect(&mut c.replay())
                }
                None => kahu_benches::compress::collect(&mut Workload::new(workload.config(false)?)),
            };
            if breakdown {
                let rows = kahu_benches::compress::breakdown(&data, 2 * 3_600_000);
                let total: u64 = rows.iter().map(|r| r.1).sum();
                println!("{:<48} {:>10} {:>8} {:>8}", "metric", "samples", "ts B/s", "val B/s");
                for (name, n, ts, v) in rows.iter().take(40) {
                    println!(
                        "{name:<48} {n:>10} {:>8.3} {:>8.3}",
                        *ts as f64 / *n as f64,
                        *v as f64 / *n as f64
                    );
                }
                let (ts, v): (u64, u64) = rows.iter().fold((0, 0), |a, r| (a.0 + r.2, a.1 + r.3));
                println!(
                    "{:<48} {total:>10} {:>8.3} {:>8.3}",
                    "TOTAL (pre-zstd)",
                    ts as f64 / total as f64,
                    v as f64 / total as f64
                );
            }
            if let Some(range) = breakdown_zstd {
                let range_ms = i64::try_from(range.as_millis()).context("range too long")?;
                let rows = kahu_benches::compress::breakdown_zstd(&data, range_ms, zstd_level);
                let total: u64 = rows.iter().map(|r| r.samples).sum();
                println!(
                    "{:<28} {:>7} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    "kind", "chunks", "samples", "share", "ts raw", "val raw", "ts zst", "val zst", "B/s all"
                );
                let per = |b: u64, n: u64| b as f64 / n.max(1) as f64;
                for r in &rows {
                    println!(
                        "{:<28} {:>7} {:>10} {:>6.1}% {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                        r.kind,
                        r.chunks,
                        r.samples,
                        100.0 * r.samples as f64 / total.max(1) as f64,
                        per(r.ts_raw, r.samples),
                        per(r.val_raw, r.samples),
                        per(r.ts_zstd, r.samples),
                        per(r.val_zstd, r.samples),
                        per(r.ts_zstd + r.val_zstd, total),
                    );
                }
                let sum = |f: fn(&kahu_benches::compress::KindBytes) -> u64| rows.iter().map(f).sum::<u64>();
                println!(
                    "{:<28} {:>7} {total:>10} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                    "TOTAL (B/sample)",
                    sum(|r| r.chunks),
                    "",
                    per(sum(|r| r.ts_raw), total),
                    per(sum(|r| r.val_raw), total),
                    per(sum(|r| r.ts_zstd), total),
                    per(sum(|r| r.val_zstd), total),
                    per(sum(|r| r.ts_zstd + r.val_zstd), total),
                );
            }
            let tmp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    tmp = std::env::temp_dir().join(format!("kahu-blocks-{}", std::process::id()));
                    tmp.clone()
                }
            };
            let start = std::time::Instant::now();
            let opts = kahu_tsdb::block::WriteOptions { zstd_level };
            let r = kahu_benches::compress::measure(&data, &dir, &opts)?;
            println!("samples {} series {}", r.samples, r.series);
            println!("2h blocks        {:>12} bytes  {:.3} bytes/sample", r.bytes_2h, r.per_sample_2h());
            println!(
                "compacted block  {:>12} bytes  {:.3} bytes/sample (index {} bytes)",
                r.bytes_all,
                r.per_sample_all(),
                r.index_bytes_all
            );
            println!("written in {:.1}s", start.elapsed().as_secs_f64());
        }
        Cmd::Floor { workload, capture, range } => floor(&workload, capture.as_deref(), range)?,
        Cmd::Capture { targets, count, interval, dir } => capture(&targets, count, interval, &dir)?,
        Cmd::Pack { dir, out } => {
            let c = Capture::from_dir(&dir)?;
            c.write(&out)?;
            let size = std::fs::metadata(&out)?.len();
            println!(
                "{} samples, {} bytes ({:.2} bytes/sample)",
                c.samples(),
                size,
                size as f64 / c.samples().max(1) as f64
            );
        }
    }
    Ok(())
}

fn capture(targets: &[String], count: usize, interval: Duration, dir: &std::path::Path) -> Result<()> {
    let mut parsed = Vec::new();
    for t in targets {
        let Some((name, url)) = t.split_once('=') else { bail!("--target must be name=url, got {t:?}") };
        std::fs::create_dir_all(dir.join(name))?;
        parsed.push((name.to_string(), url.to_string()));
    }
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    for i in 0..count {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        for (name, url) in &parsed {
            let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
            match agent.get(url).header("Accept", "text/plain;version=0.0.4").call() {
                Ok(mut r) => {
                    let body = r.body_mut().read_to_string()?;
                    std::fs::write(dir.join(name).join(format!("{t}.prom")), body)?;
                }
                Err(e) => eprintln!("scrape {name} ({url}): {e}"),
            }
        }
        if i + 1 < count {
            let ival = interval.as_millis().max(1);
            let wait = ival - now.as_millis() % ival;
            std::thread::sleep(Duration::from_millis(u64::try_from(wait)?));
        }
    }
    Ok(())
}

fn floor(workload: &WorkloadArgs, capture: Option<&std::path::Path>, range: Duration) -> Result<()> {
    let range_ms = i64::try_from(range.as_millis()).context("range too long")?;
    let rows = kahu_benches::compress::floor_by_kind(workload.config(false)?, range_ms);
    let total: u64 = rows.iter().map(|r| r.samples).sum();
    println!("generator randomness (floor) against kahu's value bytes, {range_ms} ms chunks, before zstd");
    println!(
        "{:<11} {:>7} {:>10} {:>11} {:>11} {:>10} {:>10}",
        "kind", "series", "samples", "floor b/s", "kahu b/s", "floor B/S", "kahu B/S"
    );
    let per = |x: f64, n: u64| x / n.max(1) as f64;
    for r in &rows {
        println!(
            "{:<11} {:>7} {:>10} {:>11.2} {:>11.2} {:>10.4} {:>10.4}",
            r.kind,
            r.series,
            r.samples,
            per(r.floor_bits, r.samples),
            per(8.0 * r.value_bytes as f64, r.samples),
            per(r.floor_bits / 8.0, total),
            per(r.value_bytes as f64, total),
        );
    }
    let fb: f64 = rows.iter().map(|r| r.floor_bits).sum();
    let vb: u64 = rows.iter().map(|r| r.value_bytes).sum();
    println!(
        "{:<11} {:>7} {total:>10} {:>11} {:>11} {:>10.4} {:>10.4}",
        "TOTAL",
        "",
        "",
        "",
        per(fb / 8.0, total),
        per(vb as f64, total)
    );
    println!("(b/s: bits per sample of that kind; B/S: bytes per sample of the whole workload)");
    if let Some(path) = capture {
        let c = Capture::read(path).with_context(|| format!("read capture {}", path.display()))?;
        let real = kahu_benches::compress::metric_stats(&kahu_benches::compress::collect(&mut c.replay()));
        let cfg = workload.config(false)?;
        let generated =
            kahu_benches::compress::metric_stats(&kahu_benches::compress::collect(&mut Workload::new(cfg)));
        println!();
        println!("metrics in both (capture | generated): unchanged share, median mean |step|, median local");
        println!("noise / mean |step|, median bits of that noise, kahu value bytes/sample (2h chunks)");
        println!(
            "{:<44} {:>6} {:>6} {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5}",
            "metric", "unch", "unch", "step", "step", "cv", "cv", "bits", "bits", "B/s", "B/s"
        );
        for (name, r) in &real {
            let Some(g) = generated.get(name) else { continue };
            println!(
                "{:<44} {:>6.3} {:>6.3} {:>10.4} {:>10.4} {:>5.2} {:>5.2} {:>5.1} {:>5.1} {:>5.2} {:>5.2}",
                name.chars().take(44).collect::<String>(),
                r.unchanged,
                g.unchanged,
                r.mean_step,
                g.mean_step,
                r.step_cv,
                g.step_cv,
                r.step_bits,
                g.step_bits,
                r.value_bytes_per_sample,
                g.value_bytes_per_sample
            );
        }
    }
    Ok(())
}
