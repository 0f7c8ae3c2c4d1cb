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

/// `node_time_seconds` (the pass's wall-clock time) and, from
/// `<sysfs>/devices/system/clocksource/clocksource<N>`, `node_time_clocksource_available_info` and
/// `node_time_clocksource_current_info` `{device="<N>",clocksource}` as node_exporter has them.
#[derive(Debug)]
pub struct TimeCollector {
    dir: PathBuf,
}

impl TimeCollector {
    /// Reads the clock sources under `<sysfs>/devices/system/clocksource`.
    pub fn new(sysfs: impl Into<PathBuf>) -> Self {
        TimeCollector { dir: sysfs.into().join("devices/system/clocksource") }
    }

    /// (device, available, current) of each `clocksource<N>` directory, sorted by device.
    fn clocksources(&self) -> Vec<(String, String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out: Vec<(String, String, String)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let device = name.strip_prefix("clocksource")?.to_string();
                let available = std::fs::read_to_string(e.path().join("available_clocksource")).ok()?;
                let current = std::fs::read_to_string(e.path().join("current_clocksource")).ok()?;
                Some((device, available, current.trim().to_string()))
            })
            .collect();
        out.sort();
        out
    }
}

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, batch: &mut Batch, now_ms: i64) -> Result<(), CollectError> {
        batch
            .family("node_time_seconds", "System time in seconds since epoch (1970).", MetricType::Gauge)
            .sample(NO_LABELS, now_ms as f64 / 1000.0);
        let sources = self.clocksources();
        if sources.is_empty() {
            return Ok(());
        }
        let fam = batch.family(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        for (device, available, _) in &sources {
            for cs in available.split_whitespace() {
                fam.sample([("clocksource", cs), ("device", device.as_str())], 1.0);
            }
        }
        let fam = batch.family(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        for (device, _, current) in &sources {
            fam.sample([("clocksource", current.as_str()), ("device", device.as_str())], 1.0);
        }
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

/// node_exporter's default `--collector.netstat.fields`.
pub const DEFAULT_NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// Parses `/proc/net/netstat` or `/proc/net/snmp`: pairs of `Proto: names…` / `Proto: values…`
/// lines, into (`Proto_Name`, value).
pub fn parse_netstat(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((proto, names)), Some((_, values))) = (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_ascii_whitespace().zip(values.split_ascii_whitespace()) {
            if let Ok(v) = v.parse::<f64>() {
                out.push((format!("{proto}_{n}"), v));
            }
        }
    }
    out
}

/// `node_netstat_<Proto>_<Name>` (untyped) from `<procfs>/net/{netstat,snmp}` for the fields
/// node_exporter exposes by default (`Tcp_RetransSegs`, `TcpExt_TCPSynRetrans`, …).
#[derive(Debug)]
pub struct NetstatCollector {
    dir: PathBuf,
    fields: regex::Regex,
}

impl NetstatCollector {
    /// Reads `<procfs>/net/netstat` and `<procfs>/net/snmp`, keeping fields matching `fields`.
    pub fn new(procfs: impl Into<PathBuf>, fields: regex::Regex) -> Self {
        NetstatCollector { dir: procfs.into().join("net"), fields }
    }
}

impl Collector for NetstatCollector {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let mut all = Vec::new();
        for f in ["netstat", "snmp"] {
            all.extend(parse_netstat(&read(&self.dir.join(f))?));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, v) in all.into_iter().filter(|(n, _)| self.fields.is_match(n)) {
            let help = format!("Statistic {}.", name.replace('_', ""));
            batch.family(&format!("node_netstat_{name}"), help, MetricType::Untyped).sample(NO_LABELS, v);
        }
        Ok(())
    }
}

/// `node_nf_conntrack_entries` and `node_nf_conntrack_entries_limit` from
/// `<procfs>/sys/net/netfilter/nf_conntrack_{count,max}` (absent without the conntrack module).
#[derive(Debug)]
pub struct ConntrackCollector {
    dir: PathBuf,
}

impl ConntrackCollector {
    /// Reads `<procfs>/sys/net/netfilter/`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        ConntrackCollector { dir: procfs.into().join("sys/net/netfilter") }
    }
}

impl Collector for ConntrackCollector {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        // Like node_exporter, a node without the conntrack module simply has no such metrics.
        let Ok(count) = std::fs::read_to_string(self.dir.join("nf_conntrack_count")) else { return Ok(()) };
        let max = read(&self.dir.join("nf_conntrack_max"))?;
        let parse = |s: &str, path: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| CollectError::Parse { path: path.to_string(), reason: e.to_string() })
        };
        batch
            .family(
                "node_nf_conntrack_entries",
                "Number of currently allocated flow entries for connection tracking.",
                MetricType::Gauge,
            )
            .sample(NO_LABELS, parse(&count, "nf_conntrack_count")?);
        batch
            .family(
                "node_nf_conntrack_entries_limit",
                "Maximum size of connection tracking table.",
                MetricType::Gauge,
            )
            .sample(NO_LABELS, parse(&max, "nf_conntrack_max")?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksources_are_reported_like_node_exporter() {
        let sys = tempfile::tempdir().unwrap();
        let dir = sys.path().join("devices/system/clocksource/clocksource0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("available_clocksource"), "kvm-clock tsc acpi_pm \n").unwrap();
        std::fs::write(dir.join("current_clocksource"), "kvm-clock\n").unwrap();
        let mut batch = Batch::new();
        TimeCollector::new(sys.path()).collect(&mut batch, 1_700_000_000_500).unwrap();
        let text =
            crate::exposition::encode(std::sync::Arc::new(batch), crate::exposition::Format::Text).unwrap();
        for line in [
            "node_time_seconds 1700000000.5",
            r#"node_time_clocksource_available_info{clocksource="acpi_pm",device="0"} 1"#,
            r#"node_time_clocksource_available_info{clocksource="tsc",device="0"} 1"#,
            r#"node_time_clocksource_current_info{clocksource="kvm-clock",device="0"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line || l == format!("{line}.0")), "{line} in\n{text}");
        }
        // No clocksource directory (a fixture, a container without /sys): the time alone.
        let mut batch = Batch::new();
        TimeCollector::new(sys.path().join("nothing")).collect(&mut batch, 0).unwrap();
        assert_eq!(batch.sample_count(), 1);
    }

    #[test]
    fn netstat_pairs_of_lines() {
        let t = "Tcp: RtoAlgorithm RetransSegs CurrEstab\nTcp: 1 42 7\nUdp: InDatagrams\nUdp: 9\n";
        let v = parse_netstat(t);
        assert_eq!(
            v,
            vec![
                ("Tcp_RtoAlgorithm".into(), 1.0),
                ("Tcp_RetransSegs".into(), 42.0),
                ("Tcp_CurrEstab".into(), 7.0),
                ("Udp_InDatagrams".into(), 9.0)
            ]
        );
        let re = regex::Regex::new(DEFAULT_NETSTAT_FIELDS).unwrap();
        assert!(
            re.is_match("Tcp_RetransSegs")
                && re.is_match("TcpExt_TCPSynRetrans")
                && !re.is_match("Tcp_RtoAlgorithm")
        );
    }

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
