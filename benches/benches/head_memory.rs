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
//! `cargo bench -p kahu-benches --bench head_memory` (KAHU_SERIES=100000 by default; KAHU_LOAD=
//! realistic or synthetic runs one load only). Each load runs in its own process.

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
