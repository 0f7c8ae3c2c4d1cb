use std::path::PathBuf;

use procfs::{FromReadSI, KernelStats};

use crate::collector::{Batch, CollectError, Collector, MetricType};

/// `node_cpu_seconds_total{cpu, mode}` from `<procfs>/stat`, as node_exporter's cpu collector.
#[derive(Debug)]
pub struct CpuCollector {
    stat_path: PathBuf,
}

impl CpuCollector {
    /// Reads `<procfs>/stat`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        CpuCollector { stat_path: procfs.into().join("stat") }
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, batch: &mut Batch) -> Result<(), CollectError> {
        let stats = KernelStats::from_file(&self.stat_path, procfs::current_system_info()).map_err(|e| {
            CollectError::Read { path: self.stat_path.display().to_string(), reason: e.to_string() }
        })?;
        let tps = procfs::ticks_per_second() as f64;
        let fam = batch.family(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        for (i, t) in stats.cpu_time.iter().enumerate() {
            let cpu = i.to_string();
            // node_exporter subtracts guest time from user and nice, since the kernel counts it in both.
            let guest = t.guest.unwrap_or(0);
            let guest_nice = t.guest_nice.unwrap_or(0);
            let modes = [
                ("idle", t.idle),
                ("iowait", t.iowait.unwrap_or(0)),
                ("irq", t.irq.unwrap_or(0)),
                ("nice", t.nice.saturating_sub(guest_nice)),
                ("softirq", t.softirq.unwrap_or(0)),
                ("steal", t.steal.unwrap_or(0)),
                ("system", t.system),
                ("user", t.user.saturating_sub(guest)),
            ];
            for (mode, ticks) in modes {
                fam.sample([("cpu", cpu.as_str()), ("mode", mode)], ticks as f64 / tps);
            }
        }
        Ok(())
    }
}
