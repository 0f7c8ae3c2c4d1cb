//! node_exporter's `filesystem` collector: `node_filesystem_*{device, fstype, mountpoint}` by
//! statvfs on every mount in the host's mount table, with node_exporter's default exclusions.
//!
//! Unlike node_exporter (node_exporter#244), a hung mount cannot stall the pass: each statvfs runs
//! on its own thread with a time limit; a mount that does not answer in time is reported with
//! `node_filesystem_device_error` 1 and skipped until its call returns.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;

use crate::cgroup::layout::{HostPaths, parse_mountinfo};
use crate::collector::{Batch, CollectError, Collector, MetricType};

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|erofs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// Options of the filesystem collector.
#[derive(Debug, Clone)]
pub struct FilesystemOptions {
    /// Mount points to skip.
    pub mount_points_exclude: Regex,
    /// Filesystem types to skip.
    pub fs_types_exclude: Regex,
    /// How long one statvfs may take before the mount is reported as stuck.
    pub mount_timeout: Duration,
}

/// Filesystem sizes and inode counts.
#[derive(Debug)]
pub struct FilesystemCollector {
    paths: HostPaths,
    opts: FilesystemOptions,
    stuck: Arc<Mutex<HashSet<String>>>,
}

impl FilesystemCollector {
    /// Reads the mount table from `<procfs>/1/mountinfo` and statvfs's `<rootfs>/<mountpoint>`.
    pub fn new(paths: HostPaths, opts: FilesystemOptions) -> Self {
        FilesystemCollector { paths, opts, stuck: Arc::new(Mutex::new(HashSet::new())) }
    }

    fn is_stuck(&self, mp: &str) -> bool {
        self.stuck.lock().map(|s| s.contains(mp)).unwrap_or(false)
    }

    fn statvfs(&self, mount_point: &str) -> Result<rustix::fs::StatVfs, String> {
        let path = self.paths.rootfs.join(mount_point.trim_start_matches('/'));
        let (tx, rx) = std::sync::mpsc::channel();
        let stuck = Arc::clone(&self.stuck);
        let mp = mount_point.to_string();
        let spawned = std::thread::Builder::new().name("kahu-statfs".into()).spawn(move || {
            let r = rustix::fs::statvfs(&path).map_err(|e| e.to_string());
            if tx.send(r).is_err() {
                // The pass gave up on us: the mount answers again, so it is no longer stuck.
                if let Ok(mut s) = stuck.lock() {
                    s.remove(&mp);
                }
            }
        });
        if let Err(e) = spawned {
            return Err(format!("spawn statfs thread: {e}"));
        }
        match rx.recv_timeout(self.opts.mount_timeout) {
            Ok(r) => r,
            Err(_) => {
                if let Ok(mut s) = self.stuck.lock() {
                    s.insert(mount_point.to_string());
                }
                tracing::warn!(mountpoint = mount_point, timeout = ?self.opts.mount_timeout, "mount point timed out, it is being labeled as stale and will only be queried after its statfs returns");
                Err("statfs timed out".into())
            }
        }
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = self
            .paths
            .read_mountinfo()
            .map_err(|e| CollectError::read(&self.paths.procfs.join("1/mountinfo"), e))?;
        let mut seen = HashSet::new();
        for m in parse_mountinfo(&text) {
            if self.opts.mount_points_exclude.is_match(&m.mount_point)
                || self.opts.fs_types_exclude.is_match(&m.fstype)
            {
                continue;
            }
            if !seen.insert((m.source.clone(), m.mount_point.clone(), m.fstype.clone())) {
                continue;
            }
            let labels = [
                ("device", m.source.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", m.mount_point.as_str()),
            ];
            let stat = if self.is_stuck(&m.mount_point) {
                Err("stuck".to_string())
            } else {
                self.statvfs(&m.mount_point)
            };
            let error = stat.is_err();
            batch
                .family(
                    "node_filesystem_device_error",
                    "Whether an error occurred while getting statistics for the given device.",
                    MetricType::Gauge,
                )
                .sample(labels, if error { 1.0 } else { 0.0 });
            let readonly = m.mount_options.split(',').any(|o| o == "ro");
            batch
                .family("node_filesystem_readonly", "Filesystem read-only status.", MetricType::Gauge)
                .sample(labels, if readonly { 1.0 } else { 0.0 });
            let Ok(s) = stat else {
                if let Err(e) = &stat {
                    tracing::debug!(mountpoint = %m.mount_point, error = %e, "statfs failed");
                }
                continue;
            };
            let bs = s.f_frsize as f64;
            let values = [
                ("node_filesystem_size_bytes", "Filesystem size in bytes.", s.f_blocks as f64 * bs),
                ("node_filesystem_free_bytes", "Filesystem free space in bytes.", s.f_bfree as f64 * bs),
                (
                    "node_filesystem_avail_bytes",
                    "Filesystem space available to non-root users in bytes.",
                    s.f_bavail as f64 * bs,
                ),
                ("node_filesystem_files", "Filesystem total file nodes.", s.f_files as f64),
                ("node_filesystem_files_free", "Filesystem total free file nodes.", s.f_ffree as f64),
            ];
            for (name, help, v) in values {
                batch.family(name, help, MetricType::Gauge).sample(labels, v);
            }
        }
        Ok(())
    }
}
