//! Heap allocations of one container-collector pass over synthetic cgroup v2 nodes with 100 and
//! 1,000 containers, counted by dhat's global allocator (a separate target, so that its overhead
//! stays out of the timing benchmarks). Prints one line per size.
//!
//! `cargo bench -p kahu-benches --bench exporter_allocs`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kahu_exporter::cgroup::layout::HostPaths;
use kahu_exporter::cgroup::{CgroupCollector, CgroupOptions};
use kahu_exporter::runtime::Resolver;
use kahu_exporter::{Batch, Collector};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for (pods, per_pod) in [(50, 1), (500, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let n = kahu_exporter::synth::write_node(dir.path(), pods, per_pod).unwrap();
        let paths = HostPaths {
            procfs: dir.path().join("proc"),
            sysfs: dir.path().join("sys"),
            rootfs: dir.path().join("root"),
        };
        let mut col = CgroupCollector::new(
            CgroupOptions { paths, raw_cgroups: None, process_metrics: true },
            Resolver::new(None, std::time::Duration::from_secs(1), std::time::Duration::from_secs(60)),
        );
        // Warm-up pass: layout discovery and device-name caches.
        col.collect(&mut Batch::new(), 0).unwrap();
        let before = dhat::HeapStats::get();
        let mut batch = Batch::new();
        col.collect(&mut batch, 1_795_900_000_000).unwrap();
        let after = dhat::HeapStats::get();
        let blocks = after.total_blocks - before.total_blocks;
        let bytes = after.total_bytes - before.total_bytes;
        println!(
            "cgroup_pass containers={n} samples={} allocations={blocks} allocated_bytes={bytes} allocations_per_container={:.0} live_bytes_after={}",
            batch.sample_count(),
            blocks as f64 / n as f64,
            after.curr_bytes
        );
    }
}
