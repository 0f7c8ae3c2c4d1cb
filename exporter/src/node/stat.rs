//! `/proc/stat`: node_exporter's `cpu` collector (`node_cpu_seconds_total`) and `stat` collector
//! (boot time, context switches, forks, interrupts, processes).

use std::path::PathBuf;

use crate::collector::{Batch, CollectError, Collector, MetricType};

/// USER_HZ: the kernel reports `/proc/stat` CPU times in 1/100 s on every Linux architecture.
const USER_HZ: f64 = 100.0;

/// One `cpuN` line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// CPU index.
    pub cpu: u32,
    /// user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice.
    pub ticks: [u64; 10],
}

/// What `/proc/stat` holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcStat {
    /// Per-CPU times.
    pub cpus: Vec<CpuTimes>,
    /// `btime`.
    pub boot_time: Option<u64>,
    /// `ctxt`.
    pub context_switches: Option<u64>,
    /// `processes` (forks since boot).
    pub forks: Option<u64>,
    /// First field of `intr`.
    pub interrupts: Option<u64>,
    /// `procs_running`.
    pub procs_running: Option<u64>,
    /// `procs_blocked`.
    pub procs_blocked: Option<u64>,
}

/// Parses `/proc/stat`.
pub fn parse_stat(text: &str) -> ProcStat {
    let mut s = ProcStat::default();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(key) = it.next() else { continue };
        if let Some(idx) = key.strip_prefix("cpu").filter(|i| !i.is_empty()).and_then(|i| i.parse().ok()) {
            let mut t = CpuTimes { cpu: idx, ticks: [0; 10] };
            for (slot, v) in t.ticks.iter_mut().zip(it) {
                *slot = v.parse().unwrap_or(0);
            }
            s.cpus.push(t);
            continue;
        }
        let first = it.next().and_then(|v| v.parse().ok());
        match key {
            "btime" => s.boot_time = first,
            "ctxt" => s.context_switches = first,
            "processes" => s.forks = first,
            "intr" => s.interrupts = first,
            "procs_running" => s.procs_running = first,
            "procs_blocked" => s.procs_blocked = first,
            _ => {}
        }
    }
    s
}

/// `node_cpu_seconds_total{cpu, mode}` and the `stat` collector's families from `<procfs>/stat`.
#[derive(Debug)]
pub struct StatCollector {
    path: PathBuf,
}

impl StatCollector {
    /// Reads `<procfs>/stat`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        StatCollector { path: procfs.into().join("stat") }
    }
}

impl Collector for StatCollector {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| CollectError::read(&self.path, e))?;
        let s = parse_stat(&text);
        let fam = batch.family(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        for c in &s.cpus {
            let cpu = c.cpu.to_string();
            let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = c.ticks;
            // node_exporter subtracts guest time from user and nice: the kernel counts it in both.
            let modes = [
                ("idle", idle),
                ("iowait", iowait),
                ("irq", irq),
                ("nice", nice.saturating_sub(guest_nice)),
                ("softirq", softirq),
                ("steal", steal),
                ("system", system),
                ("user", user.saturating_sub(guest)),
            ];
            for (mode, ticks) in modes {
                fam.sample([("cpu", cpu.as_str()), ("mode", mode)], ticks as f64 / USER_HZ);
            }
        }
        let none: [(&str, &str); 0] = [];
        let scalar = [
            ("node_boot_time_seconds", "Node boot time, in unixtime.", MetricType::Gauge, s.boot_time),
            (
                "node_context_switches_total",
                "Total number of context switches.",
                MetricType::Counter,
                s.context_switches,
            ),
            ("node_forks_total", "Total number of forks.", MetricType::Counter, s.forks),
            ("node_intr_total", "Total number of interrupts serviced.", MetricType::Counter, s.interrupts),
            (
                "node_procs_running",
                "Number of processes in runnable state.",
                MetricType::Gauge,
                s.procs_running,
            ),
            (
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                MetricType::Gauge,
                s.procs_blocked,
            ),
        ];
        for (name, help, kind, v) in scalar {
            if let Some(v) = v {
                batch.family(name, help, kind).sample(none, v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_per_cpu_and_scalars() {
        let t = "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 6 1 3 50 1 0 2 3 4 1\ncpu1 4 0 2 50 0 0 0 0 0 0\n\
                 intr 1343937 0 9 0\nctxt 1004008\nbtime 1795818150\nprocesses 37900\nprocs_running 3\nprocs_blocked 0\n";
        let s = parse_stat(t);
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(s.cpus[0].ticks, [6, 1, 3, 50, 1, 0, 2, 3, 4, 1]);
        assert_eq!(
            (s.boot_time, s.context_switches, s.forks, s.interrupts),
            (Some(1_795_818_150), Some(1_004_008), Some(37_900), Some(1_343_937))
        );
        assert_eq!((s.procs_running, s.procs_blocked), (Some(3), Some(0)));
    }
}
