//! Captures the hybrid-cgroup fixture tree (`exporter/tests/fixtures/hybrid-cgroupfs-containerd`)
//! from real containerd pods on this kind of machine. Not a test: run it by hand when the fixture
//! must be re-captured, then re-bless the goldens and review the diff:
//!
//! ```sh
//! cargo test --test integration capture_hybrid_fixture -- --ignored
//! KAHU_BLESS=1 cargo test -p kahu-exporter --test golden
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::containerd::{Containerd, Spec};

/// The cgroup files kahu reads (a whitelist keeps the fixture small and free of write-only files).
const CGROUP_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.controllers",
    "cpuacct.usage",
    "cpuacct.stat",
    "cpuacct.usage_percpu",
    "cpu.stat",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "cpu.pressure",
    "memory.stat",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.failcnt",
    "memory.kmem.usage_in_bytes",
    "memory.oom_control",
    "memory.use_hierarchy",
    "memory.pressure",
    "io.pressure",
    "blkio.bfq.io_service_bytes_recursive",
    "blkio.bfq.io_serviced_recursive",
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
    "pids.current",
    "pids.max",
];

const PROC_FILES: &[&str] = &[
    "stat",
    "meminfo",
    "loadavg",
    "diskstats",
    "vmstat",
    "cpuinfo",
    "net/dev",
    "sys/fs/file-nr",
    "net/netstat",
    "net/snmp",
    "sys/net/netfilter/nf_conntrack_count",
    "sys/net/netfilter/nf_conntrack_max",
    "sys/kernel/ostype",
    "sys/kernel/osrelease",
    "sys/kernel/version",
    "sys/kernel/hostname",
    "sys/kernel/domainname",
    "sys/kernel/random/boot_id",
    "pressure/cpu",
    "pressure/memory",
    "pressure/io",
    "1/mountinfo",
    "1/net/dev",
];

fn copy_file(from: &Path, to: &Path) {
    if let Ok(data) = std::fs::read(from) {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, data).unwrap();
    }
}

fn copy_link(from: &Path, to: &Path) {
    if let Ok(target) = std::fs::read_link(from) {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(target, to).unwrap();
    }
}

fn copy_cgroup_tree(from: &Path, to: &Path, pids: &mut Vec<u32>) {
    for f in CGROUP_FILES {
        copy_file(&from.join(f), &to.join(f));
    }
    if let Ok(procs) = std::fs::read_to_string(from.join("cgroup.procs")) {
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(from) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                copy_cgroup_tree(&e.path(), &to.join(e.file_name()), pids);
            }
        }
    }
}

#[test]
#[ignore = "captures a fixture from real containers; run by hand"]
fn capture_hybrid_fixture() {
    if let Some(reason) = crate::containerd::unsupported() {
        panic!("cannot capture: {reason}");
    }
    let ctr = Containerd::start();
    let bridge = ctr.run_pod(
        "web-7d4b9",
        "default",
        Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
        false,
        &[Spec { name: "nginx", script: "while :; do :; done", cpu_quota: 10_000 }],
    );
    let _host = ctr.run_pod(
        "hostnet-pod",
        "kube-system",
        Some("11111111-2222-3333-4444-555555555555"),
        true,
        &[Spec { name: "agent", script: "while :; do sleep 1; done", cpu_quota: 10_000 }],
    );
    let sandbox_pid =
        ctr.pid_of(&format!("/kubepods/burstable/pod{}/{}", bridge.uid, bridge.sandbox_id)).unwrap();
    if let Some(ip) = ctr.pod_ip(sandbox_pid) {
        Containerd::ping(&ip, 3);
    }
    std::thread::sleep(Duration::from_secs(3));

    let out =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("exporter/tests/fixtures/hybrid-cgroupfs-containerd");
    let _ = std::fs::remove_dir_all(&out);
    let mut pids = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let name = h.file_name();
        let dest = out.join("sys/fs/cgroup").join(&name);
        for f in CGROUP_FILES {
            copy_file(&h.path().join(f), &dest.join(f));
        }
        let kube = h.path().join("kubepods");
        if kube.is_dir() {
            copy_cgroup_tree(&kube, &dest.join("kubepods"), &mut pids);
        }
    }
    for f in PROC_FILES {
        copy_file(&Path::new("/proc").join(f), &out.join("proc").join(f));
    }
    // PID 1 may not be inspectable from here; the test runs in the host's network namespace.
    copy_link(Path::new("/proc/self/ns/net"), &out.join("proc/1/ns/net"));
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let src = PathBuf::from(format!("/proc/{pid}"));
        let dst = out.join(format!("proc/{pid}"));
        copy_link(&src.join("ns/net"), &dst.join("ns/net"));
        copy_file(&src.join("net/dev"), &dst.join("net/dev"));
        if let Ok(fds) = std::fs::read_dir(src.join("fd")) {
            for fd in fds.flatten() {
                copy_link(&fd.path(), &dst.join("fd").join(fd.file_name()));
            }
        }
    }
    for dev in std::fs::read_dir("/sys/dev/block").unwrap().flatten() {
        copy_link(&dev.path(), &out.join("sys/dev/block").join(dev.file_name()));
    }
    copy_file(Path::new("/etc/machine-id"), &out.join("root/etc/machine-id"));
    eprintln!("captured into {}", out.display());
}
