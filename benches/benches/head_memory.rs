//! Memory per active series after 120 samples each, measured on the process (RSS from
//! /proc/self/statm before and after), not estimated. Prints one line per run.
//!
//! `cargo bench -p kahu-benches --bench head_memory` (KAHU_SERIES=100000 by default)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use kahu_tsdb::Appender;
use kahu_tsdb::head::{Head, HeadOptions};
use kahu_tsdb::model::Labels;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[path = "common/labels.rs"]
mod labels;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("KAHU_SERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    // Labels are built outside the measured window in an arena that stays alive, as a sender's
    // request buffers would; the head copies what it keeps.
    let labels: Vec<Labels> = (0..n).map(labels::k8s_labels).collect();
    let label_bytes: usize =
        labels.iter().map(|l| l.iter().map(|x| x.name.len() + x.value.len()).sum::<usize>()).sum::<usize>()
            / n;
    let before = rss_bytes();
    let head = Head::new(HeadOptions::default(), false);
    let mut t = 1_700_000_000_000i64;
    let mut x = 88172645463325252u64;
    let mut values = vec![0f64; n];
    for _round in 0..120 {
        for part in (0..n).collect::<Vec<_>>().chunks(2000) {
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
        t += 15_000;
    }
    let after = rss_bytes();
    let st = head.stats();
    println!(
        "head_memory: {n} series x 120 samples, {label_bytes} label bytes/series: RSS +{} bytes = {} bytes/series (head's own estimate {} bytes/series)",
        after - before,
        (after - before) / n as u64,
        st.bytes_per_series
    );
}
