//! Golden tests: every collector over a fixture tree of a whole node, compared with a committed
//! `.prom` file. Fixture trees: `v2-systemd-containerd` and `v1-cgroupfs-docker` are hand-built
//! to the kernel's documented formats (`fixtures/make_fixtures.py`); `hybrid-cgroupfs-containerd`
//! was captured from a real containerd + runc node with hybrid cgroups
//! (`fixtures/capture_hybrid.sh`).
//!
//! To accept a deliberate change of output: `KAHU_BLESS=1 cargo test -p kahu-exporter --test golden`,
//! then review the diff of the `.prom` files like code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kahu_exporter::cgroup::layout::HostPaths;
use kahu_exporter::exposition::{self, Format};
use kahu_exporter::setup::ExporterConfig;
use kahu_exporter::{Batch, kubelet};

/// The pass time the goldens are made at.
const NOW_MS: i64 = 1_795_900_000_000;
/// The mtime given to every cgroup directory (container start time when the runtime is not asked).
const CGROUP_MTIME: u64 = 1_795_890_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a fixture tree (symlinks kept as symlinks) so that mtimes can be set without touching
/// the source tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else if ty.is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn set_dir_mtimes(dir: &Path) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(CGROUP_MTIME);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            set_dir_mtimes(&e.path());
        }
    }
    std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
}

/// Runs every deterministic collector once over the fixture `name`.
fn collect(name: &str) -> Batch {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(name);
    copy_tree(&fixtures().join(name), &root);
    set_dir_mtimes(&root.join("sys/fs/cgroup"));
    let paths = HostPaths { procfs: root.join("proc"), sysfs: root.join("sys"), rootfs: root.join("root") };
    let mut cfg = ExporterConfig::with_paths(paths).unwrap();
    cfg.raw_cgroups =
        Some(regex::Regex::new(r"^/(system\.slice/)?(kubelet|containerd|crio|docker)\.service$").unwrap());
    // The wall clock (time) and statfs of the real disk (filesystem) are not fixture data.
    cfg.disabled = vec!["time".into(), "filesystem".into()];
    let mut batch = Batch::new();
    for mut c in cfg.collectors() {
        let mut b = Batch::new();
        c.collect(&mut b, NOW_MS).unwrap_or_else(|e| panic!("collector {} on {name}: {e}", c.name()));
        batch.merge(b);
    }
    batch
}

fn check_golden(file: &str, text: &str) {
    let path = fixtures().join(file);
    if std::env::var_os("KAHU_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (KAHU_BLESS=1 writes it)", path.display()));
    if want != text {
        let diff: Vec<String> = want
            .lines()
            .zip(text.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  want {a}\n  got  {b}", i + 1))
            .collect();
        panic!(
            "{file} differs ({} vs {} lines):\n{}",
            want.lines().count(),
            text.lines().count(),
            diff.join("\n")
        );
    }
}

fn golden(name: &str) -> Batch {
    let batch = collect(name);
    let text = exposition::encode(Arc::new(batch.clone()), Format::Text).unwrap();
    check_golden(&format!("{name}.prom"), &text);
    let resource = exposition::encode(Arc::new(kubelet::resource_view(&batch)), Format::Text).unwrap();
    check_golden(&format!("{name}.resource.prom"), &resource);
    batch
}

fn value(b: &Batch, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    b.get(family)?
        .samples
        .iter()
        .find(|s| {
            labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk.as_ref() == *k && lv.as_ref() == *v))
        })
        .map(|s| s.value)
}

const POD: &str = "d98c80af-2009-4eef-9311-71beb2a1a577";
const APP: &str = "4bd2f1b0a2a6d9f51c7c2b8e0e2f4d1e5a0c3b9d8e7f6a5b4c3d2e1f0a9b8c7d";
const SANDBOX: &str = "8134e620c37afff34535d04db616284d8b14d659ef5a9fd3f5f6f12988bdfa21";

#[test]
fn v2_systemd_containerd_node() {
    let b = golden("v2-systemd-containerd");
    let pod = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        POD.replace('-', "_")
    );
    let app = format!("{pod}/cri-containerd-{APP}.scope");
    // cpu.stat usage_usec 20000000 → 20 s.
    assert_eq!(value(&b, "container_cpu_usage_seconds_total", &[("id", &app), ("cpu", "total")]), Some(20.0));
    // working set = memory.current − inactive_file = (198+120) MiB + 30 pages − 100 MiB.
    assert_eq!(
        value(&b, "container_memory_working_set_bytes", &[("id", &app)]),
        Some((218 * 1024 * 1024 + 4096 * 30) as f64)
    );
    // memory.peak is the max usage (cAdvisor reports 0 on v2).
    assert!(value(&b, "container_memory_max_usage_bytes", &[("id", &app)]).unwrap() > 0.0);
    // Fail count and OOM kills from memory.events.
    assert_eq!(value(&b, "container_memory_failcnt", &[("id", &app)]), Some(7.0));
    assert_eq!(value(&b, "container_oom_events_total", &[("id", &app)]), Some(2.0));
    // io.stat bytes per device, named through /sys/dev/block.
    assert_eq!(
        value(&b, "container_fs_writes_bytes_total", &[("id", &app), ("device", "/dev/sda")]),
        Some(99_008_000.0)
    );
    // Quota: CFS counters and spec; none for the sandbox, which has no quota.
    assert_eq!(value(&b, "container_spec_cpu_quota", &[("id", &app)]), Some(50000.0));
    assert_eq!(value(&b, "container_cpu_cfs_throttled_periods_total", &[("id", &app)]), Some(310.0));
    let sandbox = format!("{pod}/cri-containerd-{SANDBOX}.scope");
    assert_eq!(value(&b, "container_cpu_cfs_periods_total", &[("id", &sandbox)]), None);
    // Network: once per pod netns — on the sandbox when the runtime names it; here, without a
    // runtime, on the pod's earliest-started container (then first by path) — never for the
    // host-network pod, and the host's interfaces on the root (without lo and veth).
    let net = b.get("container_network_receive_bytes_total").unwrap();
    let ids: Vec<&str> = net
        .samples
        .iter()
        .map(|s| s.labels.iter().find(|(k, _)| k.as_ref() == "id").unwrap().1.as_ref())
        .collect();
    assert_eq!(ids, ["/", &app]);
    // cpu.weight 79 → shares 2+78*262142/9999.
    assert_eq!(
        value(&b, "container_spec_cpu_shares", &[("id", &app)]),
        Some((2 + 78 * 262_142 / 9_999) as f64)
    );
    // Root: usage = anon + file of the root memory.stat.
    assert_eq!(
        value(&b, "container_memory_usage_bytes", &[("id", "/")]),
        Some((1_106_006_016u64 + 4_882_972_672) as f64)
    );
    // Only the listed system services.
    assert!(
        value(&b, "container_cpu_usage_seconds_total", &[("id", "/system.slice/kubelet.service")]).is_some()
    );
    assert!(
        value(&b, "container_cpu_usage_seconds_total", &[("id", "/system.slice/sshd.service")]).is_none()
    );
    assert_eq!(value(&b, "kahu_cgroup_containers", &[]), Some(4.0));
}

#[test]
fn v1_cgroupfs_docker_node() {
    let b = golden("v1-cgroupfs-docker");
    let app = format!("/kubepods/burstable/pod{POD}/{APP}");
    // cpuacct.usage in ns; cpuacct.stat ticks × 10 ms.
    assert_eq!(value(&b, "container_cpu_usage_seconds_total", &[("id", &app)]), Some(20.0));
    assert_eq!(value(&b, "container_cpu_user_seconds_total", &[("id", &app)]), Some(16.0));
    // working set = usage_in_bytes − total_inactive_file.
    assert_eq!(
        value(&b, "container_memory_working_set_bytes", &[("id", &app)]),
        Some((218 * 1024 * 1024 + 4096 * 10) as f64)
    );
    assert_eq!(value(&b, "container_memory_failcnt", &[("id", &app)]), Some(5.0));
    assert_eq!(value(&b, "container_oom_events_total", &[("id", &app)]), Some(1.0));
    // Unlimited (2^63 − 4096) is exported as 0.
    assert_eq!(value(&b, "container_spec_memory_limit_bytes", &[("id", "/docker")]), None);
    assert_eq!(
        value(&b, "container_spec_memory_limit_bytes", &[("id", &format!("/kubepods/burstable/pod{POD}"))]),
        Some(512.0 * 1024.0 * 1024.0)
    );
    assert_eq!(value(&b, "container_fs_reads_total", &[("id", &app), ("device", "/dev/sda")]), Some(4000.0));
    assert_eq!(value(&b, "container_cpu_cfs_throttled_seconds_total", &[("id", &app)]), Some(0.987654321));
    // A standalone Docker container is found under /docker and reports its own netns.
    let docker = "/docker/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        value(
            &b,
            "container_network_transmit_packets_dropped_total",
            &[("id", docker), ("interface", "eth0")]
        ),
        Some(3.0)
    );
    assert!(value(&b, "container_threads", &[("id", docker)]).is_some());
    assert_eq!(value(&b, "kahu_cgroup_mode_info", &[("mode", "v1")]), Some(1.0));
}

#[test]
fn hybrid_node_captured_from_containerd() {
    let b = golden("hybrid-cgroupfs-containerd");
    assert_eq!(value(&b, "kahu_cgroup_mode_info", &[("mode", "hybrid")]), Some(1.0));
    // v1 controllers carry the counters, the unified hierarchy the pressure files.
    let cpu = b.get("container_cpu_usage_seconds_total").unwrap();
    assert!(
        cpu.samples
            .iter()
            .filter(|s| s.labels.iter().any(|(k, v)| k.as_ref() == "id" && v.starts_with("/kubepods/")))
            .count()
            >= 3
    );
    assert!(b.get("container_pressure_cpu_waiting_seconds_total").is_some());
    assert!(b.get("container_memory_working_set_bytes").is_some());
    // The bridge pod reports its eth0 once; the host-network pod (uid 1111…) reports nothing.
    let net = b.get("container_network_receive_bytes_total").unwrap();
    let ids = |uid: &str| {
        net.samples
            .iter()
            .filter(|s| s.labels.iter().any(|(k, v)| k.as_ref() == "id" && v.contains(uid)))
            .count()
    };
    assert_eq!(ids("podaaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), 1);
    assert_eq!(ids("pod11111111-2222-3333-4444-555555555555"), 0);
}
