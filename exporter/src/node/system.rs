//! Small node_exporter collectors: `loadavg`, `uname`, `time`, `vmstat`, `filefd`, `pressure`.

use std::path::PathBuf;

use crate::cgroup::parse;
use crate::collector::{Batch, CollectError, Collector, MetricType};

const NO_LABELS: [(&str, &str); 0] = [];

fn read(path: &std::path::Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::read(path, e))
}

/// `node_load1`, `node_load5`, `node_load15` from `<procfs>/loadavg`.
#[derive(Debug)]
pub struct LoadavgCollector {
    path: PathBuf,
}

impl LoadavgCollector {
    /// Reads `<procfs>/loadavg`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        LoadavgCollector { path: procfs.into().join("loadavg") }
    }
}

impl Collector for LoadavgCollector {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        let loads: Vec<f64> = text.split_ascii_whitespace().take(3).filter_map(|v| v.parse().ok()).collect();
        let [l1, l5, l15] = loads.as_slice() else {
            return Err(CollectError::Parse {
                path: self.path.display().to_string(),
                reason: format!("unexpected content {text:?}"),
            });
        };
        batch.family("node_load1", "1m load average.", MetricType::Gauge).sample(NO_LABELS, *l1);
        batch.family("node_load5", "5m load average.", MetricType::Gauge).sample(NO_LABELS, *l5);
        batch.family("node_load15", "15m load average.", MetricType::Gauge).sample(NO_LABELS, *l15);
        Ok(())
    }
}

/// `node_uname_info{sysname, release, version, machine, nodename, domainname}` from
/// `<procfs>/sys/kernel/{ostype,osrelease,version,hostname,domainname}` (the same strings
/// uname(2) returns, readable under a host procfs mount).
#[derive(Debug)]
pub struct UnameCollector {
    kernel: PathBuf,
}

impl UnameCollector {
    /// Reads `<procfs>/sys/kernel/*`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        UnameCollector { kernel: procfs.into().join("sys/kernel") }
    }
}

impl Collector for UnameCollector {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let field = |f: &str| read(&self.kernel.join(f)).map(|s| s.trim_end_matches('\n').to_string());
        let labels = [
            ("domainname", field("domainname")?),
            ("machine", std::env::consts::ARCH.to_string()),
            ("nodename", field("hostname")?),
            ("release", field("osrelease")?),
            ("sysname", field("ostype")?),
            ("version", field("version")?),
        ];
        batch
            .family(
                "node_uname_info",
                "Labeled system information as provided by the uname system call.",
                MetricType::Gauge,
            )
            .sample(labels, 1.0);
        Ok(())
    }
}

/// `node_time_seconds`: the pass's wall-clock time.
#[derive(Debug, Default)]
pub struct TimeCollector;

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, batch: &mut Batch, now_ms: i64) -> Result<(), CollectError> {
        batch
            .family("node_time_seconds", "System time in seconds since epoch (1970).", MetricType::Gauge)
            .sample(NO_LABELS, now_ms as f64 / 1000.0);
        Ok(())
    }
}

/// `node_vmstat_<field>` (untyped) for node_exporter's default fields
/// `^(oom_kill|pgpg|pswp|pg.*fault).*` of `<procfs>/vmstat`.
#[derive(Debug)]
pub struct VmstatCollector {
    path: PathBuf,
}

impl VmstatCollector {
    /// Reads `<procfs>/vmstat`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        VmstatCollector { path: procfs.into().join("vmstat") }
    }
}

fn vmstat_default_field(k: &str) -> bool {
    k.starts_with("oom_kill")
        || k.starts_with("pgpg")
        || k.starts_with("pswp")
        || (k.starts_with("pg") && k.get(2..).is_some_and(|rest| rest.contains("fault")))
}

impl Collector for VmstatCollector {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        for (k, v) in parse::flat_keyed(&text).filter(|(k, _)| vmstat_default_field(k)) {
            batch
                .family(
                    &format!("node_vmstat_{k}"),
                    format!("/proc/vmstat information field {k}."),
                    MetricType::Untyped,
                )
                .sample(NO_LABELS, v as f64);
        }
        Ok(())
    }
}

/// `node_filefd_allocated` and `node_filefd_maximum` from `<procfs>/sys/fs/file-nr`.
#[derive(Debug)]
pub struct FilefdCollector {
    path: PathBuf,
}

impl FilefdCollector {
    /// Reads `<procfs>/sys/fs/file-nr`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        FilefdCollector { path: procfs.into().join("sys/fs/file-nr") }
    }
}

impl Collector for FilefdCollector {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        let v: Vec<f64> = text.split_ascii_whitespace().filter_map(|v| v.parse().ok()).collect();
        let [allocated, _, maximum] = v.as_slice() else {
            return Err(CollectError::Parse {
                path: self.path.display().to_string(),
                reason: format!("unexpected content {text:?}"),
            });
        };
        batch
            .family("node_filefd_allocated", "File descriptor statistics: allocated.", MetricType::Gauge)
            .sample(NO_LABELS, *allocated);
        batch
            .family("node_filefd_maximum", "File descriptor statistics: maximum.", MetricType::Gauge)
            .sample(NO_LABELS, *maximum);
        Ok(())
    }
}

/// `node_pressure_*` from `<procfs>/pressure/{cpu,memory,io,irq}`.
#[derive(Debug)]
pub struct PressureCollector {
    dir: PathBuf,
}

impl PressureCollector {
    /// Reads `<procfs>/pressure/*`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        PressureCollector { dir: procfs.into().join("pressure") }
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let resources = [
            (
                "cpu",
                "Total time in seconds that processes have waited for CPU time",
                "Total time in seconds no process could make progress due to CPU congestion",
            ),
            (
                "memory",
                "Total time in seconds that processes have waited for memory",
                "Total time in seconds no process could make progress due to memory congestion",
            ),
            (
                "io",
                "Total time in seconds that processes have waited due to IO congestion",
                "Total time in seconds no process could make progress due to IO congestion",
            ),
            ("irq", "", "Total time in seconds no process could make progress due to IRQ congestion"),
        ];
        let mut found = false;
        for (res, waiting_help, stalled_help) in resources {
            let Ok(text) = std::fs::read_to_string(self.dir.join(res)) else { continue };
            found = true;
            let p = parse::pressure(&text);
            // The kernel's irq file has only a `full` line; the cpu `full` line is zero at the
            // system level but node_exporter reports it.
            if let (Some(us), false) = (p.some_us, waiting_help.is_empty()) {
                batch
                    .family(
                        &format!("node_pressure_{res}_waiting_seconds_total"),
                        waiting_help,
                        MetricType::Counter,
                    )
                    .sample(NO_LABELS, us as f64 / 1e6);
            }
            if let Some(us) = p.full_us {
                batch
                    .family(
                        &format!("node_pressure_{res}_stalled_seconds_total"),
                        stalled_help,
                        MetricType::Counter,
                    )
                    .sample(NO_LABELS, us as f64 / 1e6);
            }
        }
        if found {
            Ok(())
        } else {
            Err(CollectError::read(
                &self.dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no PSI files (kernel without CONFIG_PSI, or psi=0)",
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmstat_default_fields_match_node_exporter() {
        for k in ["oom_kill", "pgpgin", "pswpout", "pgfault", "pgmajfault"] {
            assert!(vmstat_default_field(k), "{k}");
        }
        for k in ["nr_free_pages", "pgfree", "thp_fault_alloc"] {
            assert!(!vmstat_default_field(k), "{k}");
        }
    }
}
