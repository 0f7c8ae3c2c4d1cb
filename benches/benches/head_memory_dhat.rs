//! Where the head's memory per series goes: the `head_memory` loads (the node workload, then the
//! synthetic sums; 120 samples per series) under dhat's counting allocator, which prints the live
//! heap bytes and blocks per series and writes every allocation site's live bytes to a dhat
//! profile (`$TMPDIR/kahu-head-memory-dhat-<load>.json`; `benches/dhat-top.py <file> <series>`
//! sums it by site). Heap bytes as requested, so less than the process RSS that `head_memory`
//! measures (allocator headers, rounding and fragmentation come on top).
//!
//! `KAHU_SERIES=20000 cargo bench -p kahu-benches --bench head_memory_dhat` (20,000 by default;
//! KAHU_LOAD=realistic or synthetic runs one load only)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use kahu_tsdb::Appender;
use kahu_tsdb::head::{Head, HeadOptions};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[path = "common/head_load.rs"]
mod head_load;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("KAHU_SERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let Some(load) = head_load::selected(n) else { return };
    let series = load.labels.len();
    let tag = if load.name.starts_with("node") { "realistic" } else { "synthetic" };
    let profile = std::env::temp_dir().join(format!("kahu-head-memory-dhat-{tag}.json"));
    let _profiler = dhat::Profiler::builder().file_name(&profile).build();
    let before = dhat::HeapStats::get();
    let head = Head::new(HeadOptions::default(), false);
    let mut first = true;
    for round in &load.rounds {
        for part in round.samples.chunks(2000) {
            let mut app = Box::new(head.appender());
            for &(i, t, v) in part {
                app.append(&load.labels[i as usize], t, v).unwrap();
            }
            app.commit().unwrap();
        }
        if first && head.stats().samples_appended >= series as u64 {
            first = false;
            let s = dhat::HeapStats::get();
            println!(
                "head_memory_dhat ({}): {series} series, {} label bytes/series; after one sample each: {} live heap bytes/series",
                load.name,
                load.label_bytes(),
                (s.curr_bytes - before.curr_bytes) / series
            );
        }
    }
    let s = dhat::HeapStats::get();
    println!(
        "head_memory_dhat ({}): after {} samples/series: {} bytes/series live, {} blocks/series (profile {})",
        load.name,
        head.stats().samples_appended / series.max(1) as u64,
        (s.curr_bytes - before.curr_bytes) / series,
        (s.curr_blocks - before.curr_blocks) as f64 / series as f64,
        profile.display()
    );
    std::mem::forget(head);
}
