//! Memory per active series after 120 samples each, measured on the process (RSS from
//! /proc/self/statm before and after), not estimated. Prints one line per load:
//!
//! - `node workload`: the deterministic node workload of `benches/src/workload.rs` (cAdvisor and
//!   node_exporter series with their real value shapes: µs CPU counters, integer byte counters,
//!   page-multiple gauges, constant limits, some full-precision floats), the data the
//!   remote-write and compression benches use. This is the figure to quote.
//! - `synthetic sums`: one label shape and running sums of `k * 0.01` (values full of float
//!   rounding noise that no exporter produces); kept as a worst case for the value codec.
//!
//! - `churn`: generations of the node workload's pods replacing each other, the head truncated
//!   between them (see [`churn`]).
//!
//! `cargo bench -p kahu-benches --bench head_memory` (KAHU_SERIES=100000 by default; KAHU_LOAD=
//! realistic, synthetic or churn runs one load only). Each load runs in its own process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use kahu_tsdb::Appender;
use kahu_tsdb::head::{Head, HeadOptions};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Hands the allocator's free pages back to the kernel, so that memory the load generator freed
/// cannot be reused by the head without showing in the RSS difference.
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[path = "common/head_load.rs"]
mod head_load;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("KAHU_SERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match std::env::var("KAHU_LOAD").as_deref() {
        Ok("churn") => return churn(n),
        Err(_) => {
            // Each load in its own process, churn last.
            let _ = head_load::selected(n);
            let exe = std::env::current_exe().unwrap();
            let st = std::process::Command::new(&exe)
                .args(std::env::args().skip(1))
                .env("KAHU_LOAD", "churn")
                .status()
                .unwrap();
            assert!(st.success(), "churn: {st}");
            return;
        }
        Ok(_) => {}
    }
    let Some(load) = head_load::selected(n) else { return };
    let series = load.labels.len();
    release_free_memory();
    let before = rss_bytes();
    let head = Head::new(HeadOptions::default(), false);
    for round in &load.rounds {
        for part in round.samples.chunks(2000) {
            let mut app = Box::new(head.appender());
            for &(i, t, v) in part {
                app.append(&load.labels[i as usize], t, v).unwrap();
            }
            app.commit().unwrap();
        }
    }
    let after = rss_bytes();
    let st = head.stats();
    println!(
        "head_memory ({}): {series} series x {} samples, {} label bytes/series: RSS +{} bytes = {} bytes/series (head's own estimate {} bytes/series)",
        load.name,
        st.samples_appended / series.max(1) as u64,
        load.label_bytes(),
        after - before,
        (after - before) / series as u64,
        st.bytes_per_series
    );
}

/// Pod churn: `KAHU_GENERATIONS` (6) generations of the node workload, each with new pod names
/// and container ids (`pod`, `id` and `name` values of pod series get a generation suffix; node
/// series keep theirs), 120 scrapes each; after each generation the head is truncated before its
/// first scrape, which removes the previous generation's pods. Prints the series, the symbols
/// and the RSS growth per series in the head after each truncation: with the strings of removed
/// series released, the figures stay flat from one generation to the next.
fn churn(n: usize) {
    let generations: i64 = std::env::var("KAHU_GENERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let base = head_load::realistic(n);
    let span = base.rounds.len() as i64 * 15_000;
    let first_t = base.rounds.first().and_then(|r| r.samples.first()).map_or(0, |s| s.1);
    let renamed = |l: &kahu_tsdb::model::Labels, g: i64| {
        if l.get("pod").is_none() {
            return l.clone();
        }
        kahu_tsdb::model::Labels::from_pairs(l.iter().map(|x| {
            let v = match x.name.as_ref() {
                "pod" | "id" | "name" => format!("{}-g{g}", x.value),
                _ => x.value.to_string(),
            };
            (x.name.to_string(), v)
        }))
    };
    release_free_memory();
    let before = rss_bytes();
    let head = Head::new(HeadOptions::default(), false);
    for g in 0..generations {
        let labels: Vec<_> = base.labels.iter().map(|l| renamed(l, g)).collect();
        for round in &base.rounds {
            for part in round.samples.chunks(2000) {
                let mut app = Box::new(head.appender());
                for &(i, t, v) in part {
                    app.append(&labels[i as usize], t + g * span, v).unwrap();
                }
                app.commit().unwrap();
            }
        }
        drop(labels);
        let removed = head.truncate_before(first_t + g * span).series;
        release_free_memory();
        let rss = rss_bytes().saturating_sub(before);
        let st = head.stats();
        println!(
            "head_memory (churn): generation {g}: {} series in the head ({removed} removed), {} symbols, RSS +{rss} bytes = {} bytes/series (head's own estimate {} bytes/series)",
            st.series,
            st.symbols,
            rss / st.series.max(1),
            st.bytes_per_series
        );
    }
}
