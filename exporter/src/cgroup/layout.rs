//! Where the cgroup hierarchies are: parsed from `mountinfo`, under a configurable root.
//!
//! Three layouts exist in the wild:
//! - **v2** (unified): one `cgroup2` mount with the controllers enabled in its root's
//!   `cgroup.controllers`;
//! - **v1**: one `cgroup` mount per controller, or several controllers co-mounted
//!   (`cpu,cpuacct`), each with its super options naming the controllers;
//! - **hybrid**: v1 controllers plus a `cgroup2` mount (usually `/sys/fs/cgroup/unified`) that has
//!   few or no controllers but still carries `cpu.stat` and the PSI files.
//!
//! A controller is read from its v1 mount when it has one, else from the v2 mount when the v2
//! root enables it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The cgroup layout of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// v1 controller name (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`, `name=systemd`, …) → mount point.
    pub v1: BTreeMap<String, PathBuf>,
    /// The `cgroup2` mount point, if any.
    pub v2: Option<PathBuf>,
    /// Controllers the v2 root enables (`cgroup.controllers` of the v2 mount).
    pub v2_controllers: Vec<String>,
}

/// The cgroup mode of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only cgroup v1 controllers.
    V1,
    /// Only the unified hierarchy.
    V2,
    /// v1 controllers plus a unified hierarchy.
    Hybrid,
}

impl Mode {
    /// `v1`, `v2` or `hybrid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::V1 => "v1",
            Mode::V2 => "v2",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// The resource groups kahu reads, by their v2 controller name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `cpu` (v1: `cpu` and `cpuacct`).
    Cpu,
    /// `cpuacct` in v1; the `cpu` controller's `cpu.stat` in v2.
    Cpuacct,
    /// `memory`.
    Memory,
    /// `io` (v1: `blkio`).
    Io,
    /// `pids`.
    Pids,
}

impl Controller {
    fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Io => "blkio",
            Controller::Pids => "pids",
        }
    }

    fn v2_name(self) -> &'static str {
        match self {
            Controller::Cpu | Controller::Cpuacct => "cpu",
            Controller::Memory => "memory",
            Controller::Io => "io",
            Controller::Pids => "pids",
        }
    }
}

/// Decodes the octal escapes (`\040` for a space) that mountinfo uses in paths.
pub fn unescape_mount_path(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\'
            && let Some(oct) = bytes.get(i + 1..i + 4)
            && oct.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = oct.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// `MAJ:MIN` of the filesystem.
    pub dev: String,
    /// Mount point, unescaped, as the mounting process sees it.
    pub mount_point: String,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// Filesystem type (`cgroup2`, `ext4`).
    pub fstype: String,
    /// Mount source (`/dev/sda1`, `cgroup`).
    pub source: String,
    /// Per-superblock options (for v1 cgroups, the controllers: `rw,cpu,cpuacct`).
    pub super_options: String,
}

/// Parses mountinfo (`proc(5)`); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mut pre = pre.split(' ');
            let _id = pre.next()?;
            let _parent = pre.next()?;
            let dev = pre.next()?;
            let _root = pre.next()?;
            let mount_point = pre.next()?;
            let mount_options = pre.next()?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let source = post.next()?;
            let super_options = post.next().unwrap_or("");
            Some(MountInfo {
                dev: dev.to_string(),
                mount_point: unescape_mount_path(mount_point),
                mount_options: mount_options.to_string(),
                fstype: fstype.to_string(),
                source: unescape_mount_path(source),
                super_options: super_options.to_string(),
            })
        })
        .collect()
}

/// Maps a path as the host sees it (`/sys/fs/cgroup/cpu`) to where kahu sees it: under
/// `--path.sysfs` for `/sys/...`, under `--path.procfs` for `/proc/...`, else under `--path.rootfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// `--path.procfs` (default `/proc`).
    pub procfs: PathBuf,
    /// `--path.sysfs` (default `/sys`).
    pub sysfs: PathBuf,
    /// `--path.rootfs` (default `/`).
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths { procfs: "/proc".into(), sysfs: "/sys".into(), rootfs: "/".into() }
    }
}

impl HostPaths {
    /// Where kahu finds host path `p`.
    pub fn map(&self, p: &str) -> PathBuf {
        if let Some(rest) = p.strip_prefix("/sys").filter(|r| r.is_empty() || r.starts_with('/')) {
            return self.sysfs.join(rest.trim_start_matches('/'));
        }
        if let Some(rest) = p.strip_prefix("/proc").filter(|r| r.is_empty() || r.starts_with('/')) {
            return self.procfs.join(rest.trim_start_matches('/'));
        }
        self.rootfs.join(p.trim_start_matches('/'))
    }

    /// The host's mount table: `<procfs>/1/mountinfo` (PID 1 is the host's init when procfs is the
    /// host's), falling back to `<procfs>/self/mountinfo`.
    pub fn read_mountinfo(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.procfs.join("1/mountinfo"))
            .or_else(|_| std::fs::read_to_string(self.procfs.join("self/mountinfo")))
    }
}

impl Layout {
    /// Builds the layout from mountinfo text; mount points are mapped through `paths`.
    pub fn from_mountinfo(text: &str, paths: &HostPaths) -> Layout {
        let mut layout = Layout::default();
        for m in parse_mountinfo(text) {
            match m.fstype.as_str() {
                "cgroup2" if layout.v2.is_none() => layout.v2 = Some(paths.map(&m.mount_point)),
                "cgroup" => {
                    for opt in m.super_options.split(',') {
                        let known = matches!(
                            opt,
                            "cpu"
                                | "cpuacct"
                                | "cpuset"
                                | "memory"
                                | "blkio"
                                | "pids"
                                | "devices"
                                | "freezer"
                                | "hugetlb"
                                | "net_cls"
                                | "net_prio"
                                | "perf_event"
                                | "rdma"
                                | "misc"
                        ) || opt.starts_with("name=");
                        if known {
                            layout.v1.entry(opt.to_string()).or_insert_with(|| paths.map(&m.mount_point));
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(v2) = &layout.v2 {
            layout.v2_controllers = std::fs::read_to_string(v2.join("cgroup.controllers"))
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
        }
        layout
    }

    /// Reads the host's mountinfo and builds the layout.
    pub fn discover(paths: &HostPaths) -> std::io::Result<Layout> {
        Ok(Layout::from_mountinfo(&paths.read_mountinfo()?, paths))
    }

    /// The node's cgroup mode, or `None` when no cgroup hierarchy is mounted.
    pub fn mode(&self) -> Option<Mode> {
        let v1 = self.v1.keys().any(|k| !k.starts_with("name="));
        match (v1, self.v2.is_some()) {
            (true, true) => Some(Mode::Hybrid),
            (true, false) => Some(Mode::V1),
            (false, true) => Some(Mode::V2),
            (false, false) => None,
        }
    }

    /// Where `controller`'s files for cgroup `rel` (`/kubepods/...`, `/` for the root) are, and
    /// whether they use the v2 file names.
    pub fn dir(&self, controller: Controller, rel: &str) -> Option<(PathBuf, bool)> {
        let rel = rel.trim_start_matches('/');
        if let Some(mount) = self.v1.get(controller.v1_name()) {
            return Some((join_rel(mount, rel), false));
        }
        let v2 = self.v2.as_ref()?;
        let enabled = self.v2_controllers.iter().any(|c| c == controller.v2_name())
            // cpu.stat's usage lines exist in every v2 cgroup, even without the cpu controller.
            || (controller == Controller::Cpuacct && self.v1.is_empty());
        enabled.then(|| (join_rel(v2, rel), true))
    }

    /// The unified hierarchy's directory for `rel` (PSI files live there, also in hybrid mode).
    pub fn unified_dir(&self, rel: &str) -> Option<PathBuf> {
        self.v2.as_ref().map(|v2| join_rel(v2, rel.trim_start_matches('/')))
    }

    /// The hierarchy to walk to find cgroups: the unified one in v2 mode, else the first v1
    /// hierarchy of cpu, cpuacct, memory, pids (runc creates a container's cgroup in all of them).
    pub fn walk_root(&self) -> Option<&Path> {
        if self.mode() == Some(Mode::V2) {
            return self.v2.as_deref();
        }
        ["cpu", "cpuacct", "memory", "pids", "name=systemd"]
            .iter()
            .find_map(|c| self.v1.get(*c))
            .map(PathBuf::as_path)
            .or(self.v2.as_deref())
    }
}

fn join_rel(mount: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() { mount.to_path_buf() } else { mount.join(rel) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_reads_v1_controllers_and_psi_from_unified() {
        let paths =
            HostPaths { procfs: "/host/proc".into(), sysfs: "/host/sys".into(), rootfs: "/host/root".into() };
        let l = Layout::from_mountinfo(HYBRID, &paths);
        assert_eq!(l.mode(), Some(Mode::Hybrid));
        assert_eq!(l.dir(Controller::Cpu, "/a/b"), Some(("/host/sys/fs/cgroup/cpu/a/b".into(), false)));
        assert_eq!(l.dir(Controller::Memory, "/"), Some(("/host/sys/fs/cgroup/memory".into(), false)));
        assert_eq!(l.dir(Controller::Pids, "/a"), None);
        assert_eq!(l.unified_dir("/a"), Some("/host/sys/fs/cgroup/unified/a".into()));
        assert_eq!(l.walk_root(), Some(Path::new("/host/sys/fs/cgroup/cpu")));
    }

    #[test]
    fn comounted_v1_controllers_share_a_mount() {
        let text = "25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                    26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let l = Layout::from_mountinfo(text, &HostPaths::default());
        assert_eq!(l.mode(), Some(Mode::V1));
        assert_eq!(l.dir(Controller::Cpuacct, "/x"), Some(("/sys/fs/cgroup/cpu,cpuacct/x".into(), false)));
        assert_eq!(l.dir(Controller::Cpu, "/x"), Some(("/sys/fs/cgroup/cpu,cpuacct/x".into(), false)));
    }

    #[test]
    fn pure_v2_is_recognised_and_escaped_paths_decoded() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                    31 23 8:1 / /mnt/my\\040disk rw - ext4 /dev/sda1 rw\n";
        let l = Layout::from_mountinfo(text, &HostPaths::default());
        assert_eq!(l.mode(), Some(Mode::V2));
        assert_eq!(l.walk_root(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(parse_mountinfo(text)[1].mount_point, "/mnt/my disk");
    }
}
