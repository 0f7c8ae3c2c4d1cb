//! One collection pass of the container collector over synthetic cgroup v2 nodes with 100 and
//! 1,000 containers, and the `/metrics` encoding of that pass.
//!
//! `cargo bench -p kahu-benches --bench exporter`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kahu_exporter::cgroup::layout::HostPaths;
use kahu_exporter::cgroup::{CgroupCollector, CgroupOptions};
use kahu_exporter::exposition::{self, Format};
use kahu_exporter::runtime::Resolver;
use kahu_exporter::{Batch, Collector};

fn collector(root: &std::path::Path) -> CgroupCollector {
    let paths = HostPaths { procfs: root.join("proc"), sysfs: root.join("sys"), rootfs: root.join("root") };
    CgroupCollector::new(
        CgroupOptions { paths, raw_cgroups: None, process_metrics: true },
        Resolver::new(None, std::time::Duration::from_secs(1), std::time::Duration::from_secs(60)),
    )
}

fn bench(c: &mut Criterion) {
    for (pods, per_pod) in [(50, 1), (500, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let n = kahu_exporter::synth::write_node(dir.path(), pods, per_pod).unwrap();
        let mut col = collector(dir.path());
        let mut group = c.benchmark_group(format!("cgroup_pass/{n}_containers"));
        group.sample_size(20);
        group.bench_function("collect", |b| {
            b.iter(|| {
                let mut batch = Batch::new();
                col.collect(&mut batch, 1_795_900_000_000).unwrap();
                batch
            })
        });
        let mut batch = Batch::new();
        col.collect(&mut batch, 1_795_900_000_000).unwrap();
        let batch = Arc::new(batch);
        group.bench_function("encode_text", |b| {
            b.iter(|| exposition::encode(Arc::clone(&batch), Format::Text).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
