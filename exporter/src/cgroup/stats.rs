//! Reads one cgroup's statistics from v1 or v2 files into [`CgroupStats`], with cAdvisor's
//! derivations (working set, shares from weight, unlimited limits as 0; see `reference/exporter.md`
//! 2.1) and the v2 fixes cAdvisor lacks: `io.stat` block I/O, `memory.peak` as max usage, fail
//! counts and OOM kills from `memory.events`.

use std::path::Path;

use super::layout::{Controller, Layout};
use super::parse::{self, IoDevice, Pressure};

/// Limits above this are "unlimited" (v1 shows 9223372036854771712 on 4 KiB pages); exported as 0.
const UNLIMITED: u64 = 1 << 62;

/// Statistics of one cgroup. `None` means the file or key does not exist on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// Total CPU time, ns.
    pub cpu_usage_ns: Option<u64>,
    /// User CPU time, ns.
    pub cpu_user_ns: Option<u64>,
    /// System CPU time, ns.
    pub cpu_system_ns: Option<u64>,
    /// CFS periods elapsed.
    pub cfs_periods: Option<u64>,
    /// CFS periods throttled.
    pub cfs_throttled_periods: Option<u64>,
    /// Time throttled, ns.
    pub cfs_throttled_ns: Option<u64>,
    /// CFS quota, µs (`None`: no quota).
    pub cpu_quota_us: Option<u64>,
    /// CFS period, µs.
    pub cpu_period_us: Option<u64>,
    /// CPU shares (v2: converted from `cpu.weight`).
    pub cpu_shares: Option<u64>,
    /// Memory usage, bytes.
    pub mem_usage: Option<u64>,
    /// Peak memory usage, bytes (v2 `memory.peak`, v1 `max_usage_in_bytes`).
    pub mem_max_usage: Option<u64>,
    /// Working set: usage − inactive file, floored at 0.
    pub mem_working_set: Option<u64>,
    /// Anonymous memory (v1 `rss`).
    pub mem_rss: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub mem_cache: Option<u64>,
    /// Mapped file.
    pub mem_mapped_file: Option<u64>,
    /// Swap usage.
    pub mem_swap: Option<u64>,
    /// Times the limit was hit (v1 `failcnt`, v2 `memory.events` `max`).
    pub mem_failcnt: Option<u64>,
    /// Kernel memory.
    pub mem_kernel: Option<u64>,
    /// Active file cache.
    pub mem_active_file: Option<u64>,
    /// Inactive file cache.
    pub mem_inactive_file: Option<u64>,
    /// Page faults.
    pub pgfault: Option<u64>,
    /// Major page faults.
    pub pgmajfault: Option<u64>,
    /// OOM kills (v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`).
    pub oom_kills: Option<u64>,
    /// Memory limit (0 = unlimited).
    pub mem_limit: Option<u64>,
    /// Memory reservation (v2 `memory.min`, v1 soft limit; 0 = none).
    pub mem_reservation: Option<u64>,
    /// Swap limit (0 = unlimited).
    pub swap_limit: Option<u64>,
    /// Block I/O per device.
    pub io: Vec<IoDevice>,
    /// Tasks (`pids.current`).
    pub threads: Option<u64>,
    /// Task limit (`pids.max`; 0 = unlimited).
    pub threads_max: Option<u64>,
    /// PSI: cpu, memory, io.
    pub pressure: [Option<Pressure>; 3],
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn limit(v: Option<u64>, file_exists: bool) -> Option<u64> {
    match v {
        Some(v) if v < UNLIMITED => Some(v),
        _ if file_exists => Some(0),
        _ => None,
    }
}

/// Host-wide values the root cgroup needs on v2 (it has no `memory.current` or swap files).
#[derive(Debug, Clone, Copy, Default)]
pub struct RootHints {
    /// `SwapTotal − SwapFree` from `/proc/meminfo`, bytes.
    pub swap_used: Option<u64>,
}

/// Reads cgroup `rel` (`/` for the root).
pub fn read_stats(layout: &Layout, rel: &str, hints: RootHints) -> CgroupStats {
    let mut s = CgroupStats::default();
    let is_root = rel.trim_matches('/').is_empty();
    read_cpu(layout, rel, &mut s);
    read_memory(layout, rel, is_root, hints, &mut s);
    read_io(layout, rel, &mut s);
    if let Some((dir, _)) = layout.dir(Controller::Pids, rel) {
        s.threads = read(&dir, "pids.current").and_then(|t| parse::single(&t));
        s.threads_max = read(&dir, "pids.max").map(|t| parse::single(&t).unwrap_or(0));
    }
    if let Some(dir) = layout.unified_dir(rel) {
        for (slot, file) in s.pressure.iter_mut().zip(["cpu.pressure", "memory.pressure", "io.pressure"]) {
            *slot = read(&dir, file).map(|t| parse::pressure(&t));
        }
    }
    s
}

fn read_cpu(layout: &Layout, rel: &str, s: &mut CgroupStats) {
    if let Some((dir, v2)) = layout.dir(Controller::Cpuacct, rel) {
        if v2 {
            if let Some(t) = read(&dir, "cpu.stat") {
                s.cpu_usage_ns = parse::keyed(&t, "usage_usec").map(|v| v * 1000);
                s.cpu_user_ns = parse::keyed(&t, "user_usec").map(|v| v * 1000);
                s.cpu_system_ns = parse::keyed(&t, "system_usec").map(|v| v * 1000);
            }
        } else {
            s.cpu_usage_ns = read(&dir, "cpuacct.usage").and_then(|t| parse::single(&t));
            if let Some(t) = read(&dir, "cpuacct.stat") {
                // USER_HZ ticks; runc (and so cAdvisor) assume 100 per second.
                s.cpu_user_ns = parse::keyed(&t, "user").map(|v| v * 10_000_000);
                s.cpu_system_ns = parse::keyed(&t, "system").map(|v| v * 10_000_000);
            }
        }
    }
    let Some((dir, v2)) = layout.dir(Controller::Cpu, rel) else { return };
    if let Some(t) = read(&dir, "cpu.stat") {
        s.cfs_periods = parse::keyed(&t, "nr_periods");
        s.cfs_throttled_periods = parse::keyed(&t, "nr_throttled");
        s.cfs_throttled_ns = if v2 {
            parse::keyed(&t, "throttled_usec").map(|v| v * 1000)
        } else {
            parse::keyed(&t, "throttled_time")
        };
    }
    if v2 {
        if let Some(t) = read(&dir, "cpu.max") {
            (s.cpu_quota_us, s.cpu_period_us) = parse::cpu_max(&t);
        }
        s.cpu_shares = read(&dir, "cpu.weight").and_then(|t| parse::single(&t)).map(parse::weight_to_shares);
    } else {
        s.cpu_quota_us = read(&dir, "cpu.cfs_quota_us").and_then(|t| parse::single(&t));
        s.cpu_period_us = read(&dir, "cpu.cfs_period_us").and_then(|t| parse::single(&t));
        s.cpu_shares = read(&dir, "cpu.shares").and_then(|t| parse::single(&t));
    }
}

fn read_memory(layout: &Layout, rel: &str, is_root: bool, hints: RootHints, s: &mut CgroupStats) {
    let Some((dir, v2)) = layout.dir(Controller::Memory, rel) else { return };
    let stat = read(&dir, "memory.stat").unwrap_or_default();
    let key = |k: &str| parse::keyed(&stat, k);
    if v2 {
        s.mem_rss = key("anon");
        s.mem_cache = key("file");
        s.mem_mapped_file = key("file_mapped");
        s.mem_active_file = key("active_file");
        s.mem_inactive_file = key("inactive_file");
        s.pgfault = key("pgfault");
        s.pgmajfault = key("pgmajfault");
        s.mem_kernel = key("kernel").or_else(|| Some(key("kernel_stack")? + key("slab")?));
        s.mem_usage = read(&dir, "memory.current").and_then(|t| parse::single(&t));
        if s.mem_usage.is_none() && is_root {
            // The root has no memory.current; runc uses anon + file from its memory.stat.
            s.mem_usage =
                Some(s.mem_rss.unwrap_or(0) + s.mem_cache.unwrap_or(0)).filter(|_| !stat.is_empty());
        }
        s.mem_max_usage = read(&dir, "memory.peak").and_then(|t| parse::single(&t));
        s.mem_swap = read(&dir, "memory.swap.current").and_then(|t| parse::single(&t));
        if is_root && s.mem_swap.is_none() {
            s.mem_swap = hints.swap_used;
        }
        if let Some(ev) = read(&dir, "memory.events") {
            s.mem_failcnt = parse::keyed(&ev, "max");
            s.oom_kills = parse::keyed(&ev, "oom_kill");
        }
        if !is_root {
            let max = read(&dir, "memory.max");
            s.mem_limit = limit(max.as_deref().and_then(parse::single), max.is_some());
            let min = read(&dir, "memory.min");
            s.mem_reservation = limit(min.as_deref().and_then(parse::single), min.is_some());
            let swap = read(&dir, "memory.swap.max");
            s.swap_limit = limit(swap.as_deref().and_then(parse::single), swap.is_some());
        }
    } else {
        // With use_hierarchy=1 the total_* keys include descendants, as cAdvisor reads them.
        let hier = |k: &str| key(&format!("total_{k}")).or_else(|| key(k));
        s.mem_rss = hier("rss");
        s.mem_cache = hier("cache");
        s.mem_mapped_file = hier("mapped_file");
        s.mem_swap = hier("swap");
        s.mem_active_file = hier("active_file");
        s.mem_inactive_file = hier("inactive_file");
        s.pgfault = hier("pgfault");
        s.pgmajfault = hier("pgmajfault");
        s.mem_usage = read(&dir, "memory.usage_in_bytes").and_then(|t| parse::single(&t));
        s.mem_max_usage = read(&dir, "memory.max_usage_in_bytes").and_then(|t| parse::single(&t));
        s.mem_failcnt = read(&dir, "memory.failcnt").and_then(|t| parse::single(&t));
        s.mem_kernel = read(&dir, "memory.kmem.usage_in_bytes").and_then(|t| parse::single(&t));
        s.oom_kills = read(&dir, "memory.oom_control").and_then(|t| parse::keyed(&t, "oom_kill"));
        let lim = read(&dir, "memory.limit_in_bytes");
        s.mem_limit = limit(lim.as_deref().and_then(parse::single), lim.is_some());
        let soft = read(&dir, "memory.soft_limit_in_bytes");
        s.mem_reservation = limit(soft.as_deref().and_then(parse::single), soft.is_some());
        let memsw = read(&dir, "memory.memsw.limit_in_bytes");
        s.swap_limit = limit(memsw.as_deref().and_then(parse::single), memsw.is_some());
    }
    s.mem_working_set = s.mem_usage.map(|u| u.saturating_sub(s.mem_inactive_file.unwrap_or(0)));
}

fn read_io(layout: &Layout, rel: &str, s: &mut CgroupStats) {
    let Some((dir, v2)) = layout.dir(Controller::Io, rel) else { return };
    if v2 {
        s.io = read(&dir, "io.stat").map(|t| parse::io_stat(&t)).unwrap_or_default();
        return;
    }
    // runc's order: bfq, then cfq, then the throttle files (which count every I/O).
    for (bytes, ops) in [
        ("blkio.bfq.io_service_bytes_recursive", "blkio.bfq.io_serviced_recursive"),
        ("blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive"),
        ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"),
        ("blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced"),
    ] {
        if let Some(b) = read(&dir, bytes) {
            let io = parse::blkio(&b, &read(&dir, ops).unwrap_or_default());
            if !io.is_empty() {
                s.io = io;
                return;
            }
        }
    }
}
