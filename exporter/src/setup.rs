//! The set of collectors `kahu serve` and `kahu collect` run, built from one configuration.

use std::time::Duration;

use regex::Regex;

use crate::cgroup::layout::HostPaths;
use crate::cgroup::{CgroupCollector, CgroupOptions, MachineCollector};
use crate::collector::Collector;
use crate::node::{self, FilesystemOptions};
use crate::runtime::Resolver;

/// Every collector's options.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Host paths (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
    pub paths: HostPaths,
    /// CRI socket (`--runtime.endpoint`); `None` disables runtime lookups.
    pub runtime_endpoint: Option<String>,
    /// Time limit of one CRI call.
    pub runtime_timeout: Duration,
    /// Full re-list interval of the runtime cache.
    pub runtime_resync: Duration,
    /// Non-container cgroups to report (besides `/` and `kubepods`).
    pub raw_cgroups: Option<Regex>,
    /// Per-process counts in containers.
    pub process_metrics: bool,
    /// `--collector.diskstats.device-exclude`.
    pub disk_exclude: Regex,
    /// Filesystem collector options.
    pub filesystem: FilesystemOptions,
    /// `--collector.netstat.fields`.
    pub netstat_fields: Regex,
    /// Collectors not to run, by name (`cgroup`, `machine`, `stat`, `meminfo`, …).
    pub disabled: Vec<String>,
}

/// Names of every collector, in the order a pass runs them.
pub const COLLECTORS: [&str; 15] = [
    "cgroup",
    "machine",
    "stat",
    "meminfo",
    "loadavg",
    "filesystem",
    "diskstats",
    "netdev",
    "pressure",
    "uname",
    "time",
    "vmstat",
    "filefd",
    "netstat",
    "conntrack",
];

impl ExporterConfig {
    /// Defaults for `paths`: node_exporter's exclusions, no raw cgroups, no runtime.
    pub fn with_paths(paths: HostPaths) -> Result<ExporterConfig, regex::Error> {
        Ok(ExporterConfig {
            paths,
            runtime_endpoint: None,
            runtime_timeout: Duration::from_secs(2),
            runtime_resync: Duration::from_secs(60),
            raw_cgroups: None,
            process_metrics: true,
            disk_exclude: Regex::new(node::DEFAULT_DEVICE_EXCLUDE)?,
            netstat_fields: Regex::new(node::DEFAULT_NETSTAT_FIELDS)?,
            filesystem: FilesystemOptions {
                mount_points_exclude: Regex::new(node::DEFAULT_MOUNT_POINTS_EXCLUDE)?,
                fs_types_exclude: Regex::new(node::DEFAULT_FS_TYPES_EXCLUDE)?,
                mount_timeout: Duration::from_secs(5),
            },
            disabled: Vec::new(),
        })
    }

    /// Builds the enabled collectors.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let procfs = &self.paths.procfs;
        let mut out: Vec<Box<dyn Collector>> = Vec::new();
        for name in COLLECTORS {
            if self.disabled.iter().any(|d| d == name) {
                continue;
            }
            let c: Box<dyn Collector> = match name {
                "cgroup" => Box::new(CgroupCollector::new(
                    CgroupOptions {
                        paths: self.paths.clone(),
                        raw_cgroups: self.raw_cgroups.clone(),
                        process_metrics: self.process_metrics,
                    },
                    Resolver::new(
                        self.runtime_endpoint.as_deref(),
                        self.runtime_timeout,
                        self.runtime_resync,
                    ),
                )),
                "machine" => Box::new(MachineCollector::new(self.paths.clone())),
                "stat" => Box::new(node::StatCollector::new(procfs)),
                "meminfo" => Box::new(node::MeminfoCollector::new(procfs)),
                "loadavg" => Box::new(node::LoadavgCollector::new(procfs)),
                "filesystem" => {
                    Box::new(node::FilesystemCollector::new(self.paths.clone(), self.filesystem.clone()))
                }
                "diskstats" => Box::new(node::DiskstatsCollector::new(procfs, self.disk_exclude.clone())),
                "netdev" => Box::new(node::NetdevCollector::new(procfs)),
                "pressure" => Box::new(node::PressureCollector::new(procfs)),
                "uname" => Box::new(node::UnameCollector::new(procfs)),
                "time" => Box::new(node::TimeCollector::new(&self.paths.sysfs)),
                "vmstat" => Box::new(node::VmstatCollector::new(procfs)),
                "netstat" => Box::new(node::NetstatCollector::new(procfs, self.netstat_fields.clone())),
                "conntrack" => Box::new(node::ConntrackCollector::new(procfs)),
                _ => Box::new(node::FilefdCollector::new(procfs)),
            };
            out.push(c);
        }
        out
    }
}
