//! Where the head's memory per series goes: the `head_memory` workload (k8s labels, 120
//! samples per series) under dhat's counting allocator, which prints the live heap bytes and
//! blocks per series and writes every allocation site's live bytes to a dhat profile
//! (`$TMPDIR/kahu-head-memory-dhat.json`; `benches/dhat-top.py <file> <series>` sums it by
//! site). Heap bytes as requested, so less than the process RSS that `head_memory` measures
//! (allocator headers, rounding and fragmentation come on top).
//!
//! `KAHU_SERIES=20000 cargo bench -p kahu-benches --bench head_memory_dhat` (20,000 by default)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use kahu_tsdb::Appender;
use kahu_tsdb::head::{Head, HeadOptions};
use kahu_tsdb::model::Labels;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[path = "common/labels.rs"]
mod labels;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("KAHU_SERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let labels: Vec<Labels> = (0..n).map(labels::k8s_labels).collect();
    let profile = std::env::temp_dir().join("kahu-head-memory-dhat.json");
    let _profiler = dhat::Profiler::builder().file_name(&profile).build();
    let before = dhat::HeapStats::get();
    let head = Head::new(HeadOptions::default(), false);
    let mut t = 1_700_000_000_000i64;
    let mut x = 88172645463325252u64;
    let mut values = vec![0f64; n];
    let idx: Vec<usize> = (0..n).collect();
    for round in 0..120 {
        for part in idx.chunks(2000) {
            let mut app = Box::new(head.appender());
            for &i in part {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                values[i] += (x % 1000) as f64 * 0.01;
                app.append(&labels[i], t + (x % 5) as i64, values[i]).unwrap();
            }
            app.commit().unwrap();
        }
        if round == 0 {
            let s = dhat::HeapStats::get();
            println!(
                "head_memory_dhat: after 1 sample: {} live heap bytes/series",
                (s.curr_bytes - before.curr_bytes) / n
            );
        }
        t += 15_000;
    }
    let s = dhat::HeapStats::get();
    println!(
        "after 120 samples: {} bytes/series live, {} blocks/series",
        (s.curr_bytes - before.curr_bytes) / n,
        (s.curr_blocks - before.curr_blocks) as f64 / n as f64
    );
    std::mem::forget(head);
}
