//! The `container_*` and `machine_*` collectors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use regex::Regex;

use super::layout::{HostPaths, Layout};
use super::parse::{self, NetDev};
use super::path::{self, Identity, Level, Runtime};
use super::stats::{self, CgroupStats, RootHints};
use crate::collector::{Batch, CollectError, Collector, LabelPairs, MetricType};
use crate::runtime::Resolver;

/// Options of the container collector.
#[derive(Debug, Clone)]
pub struct CgroupOptions {
    /// Host paths (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
    pub paths: HostPaths,
    /// Cgroups other than the root, `kubepods` and containers to report (the kubelet reports its
    /// own and the runtime's cgroups); matched against the cgroup path (`/system.slice/kubelet.service`).
    pub raw_cgroups: Option<Regex>,
    /// Whether to read per-process counts (`container_processes`, `…_file_descriptors`,
    /// `…_sockets`) from `/proc/<pid>` of each process in each container.
    pub process_metrics: bool,
}

impl Default for CgroupOptions {
    fn default() -> Self {
        CgroupOptions { paths: HostPaths::default(), raw_cgroups: None, process_metrics: true }
    }
}

/// Label names and constant values, allocated once.
#[derive(Debug)]
struct Names {
    container: Arc<str>,
    id: Arc<str>,
    image: Arc<str>,
    name: Arc<str>,
    namespace: Arc<str>,
    pod: Arc<str>,
    cpu: Arc<str>,
    device: Arc<str>,
    interface: Arc<str>,
    failure_type: Arc<str>,
    scope: Arc<str>,
    major: Arc<str>,
    minor: Arc<str>,
    operation: Arc<str>,
    empty: Arc<str>,
    total: Arc<str>,
    pod_infra: Arc<str>,
}

impl Names {
    fn new() -> Self {
        let a = |s: &str| Arc::<str>::from(s);
        Names {
            container: a("container"),
            id: a("id"),
            image: a("image"),
            name: a("name"),
            namespace: a("namespace"),
            pod: a("pod"),
            cpu: a("cpu"),
            device: a("device"),
            interface: a("interface"),
            failure_type: a("failure_type"),
            scope: a("scope"),
            major: a("major"),
            minor: a("minor"),
            operation: a("operation"),
            empty: a(""),
            total: a("total"),
            pod_infra: a("POD"),
        }
    }
}

/// One reported cgroup in this pass.
#[derive(Debug)]
struct Row {
    ident: Identity,
    labels: LabelPairs,
    stats: CgroupStats,
    pids: Vec<u32>,
    net: Vec<NetDev>,
    fds: Option<(u64, u64)>,
    start_time: Option<f64>,
}

/// Adds `extra` pairs to the sorted `base`, keeping the result sorted by name.
fn with(base: &LabelPairs, extra: &[(&Arc<str>, &Arc<str>)]) -> LabelPairs {
    let mut out = Vec::with_capacity(base.len() + extra.len());
    let mut extra = extra.iter().peekable();
    for pair in base {
        while let Some((k, v)) = extra.next_if(|(k, _)| k.as_ref() < pair.0.as_ref()) {
            out.push((Arc::clone(k), Arc::clone(v)));
        }
        out.push(pair.clone());
    }
    out.extend(extra.map(|(k, v)| (Arc::clone(k), Arc::clone(v))));
    out
}

/// Adds family `name` with `samples`, unless there are none.
fn put(
    batch: &mut Batch,
    name: &str,
    help: impl Into<std::borrow::Cow<'static, str>>,
    kind: MetricType,
    samples: Vec<(LabelPairs, f64)>,
) {
    if samples.is_empty() {
        return;
    }
    let fam = batch.family(name, help, kind);
    fam.samples.reserve(samples.len());
    for (labels, v) in samples {
        fam.push(labels, v);
    }
}

/// Reads every container's cgroup each pass and emits cAdvisor's `container_*` families.
#[derive(Debug)]
pub struct CgroupCollector {
    opts: CgroupOptions,
    layout: Option<Layout>,
    resolver: Resolver,
    names: Names,
    devices: HashMap<(u32, u32), Arc<str>>,
    host_netns: Option<String>,
    boot_time: Option<f64>,
    containers_seen: usize,
    cgroups_seen: usize,
}

impl CgroupCollector {
    /// A collector with `opts`, naming containers through `resolver`.
    pub fn new(opts: CgroupOptions, resolver: Resolver) -> Self {
        CgroupCollector {
            opts,
            layout: None,
            resolver,
            names: Names::new(),
            devices: HashMap::new(),
            host_netns: None,
            boot_time: None,
            containers_seen: 0,
            cgroups_seen: 0,
        }
    }

    /// The cgroup layout found (after the first pass).
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    fn procfs(&self) -> &Path {
        &self.opts.paths.procfs
    }

    /// Every cgroup directory under `root` (relative paths, `/` first, parents before children),
    /// not descending below container cgroups.
    fn walk(root: &Path) -> Vec<String> {
        let mut out = vec!["/".to_string()];
        let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut children: Vec<(PathBuf, String)> = Vec::new();
            for e in entries.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
                let child_rel = format!("{rel}/{name}");
                let is_container = path::container_id(&name).is_some();
                out.push(child_rel.clone());
                if !is_container {
                    children.push((e.path(), child_rel));
                }
            }
            children.sort_by(|a, b| b.1.cmp(&a.1));
            stack.extend(children);
        }
        out
    }

    fn wanted(&self, rel: &str, ident: &Identity) -> bool {
        match ident.level {
            Level::Root | Level::Kubepods | Level::QosClass | Level::Pod | Level::Container => true,
            Level::Other => self.opts.raw_cgroups.as_ref().is_some_and(|re| re.is_match(rel)),
        }
    }

    fn device_name(&mut self, major: u32, minor: u32) -> Arc<str> {
        let sysfs = &self.opts.paths.sysfs;
        Arc::clone(self.devices.entry((major, minor)).or_insert_with(|| {
            std::fs::read_link(sysfs.join(format!("dev/block/{major}:{minor}")))
                .ok()
                .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(|n| Arc::from(format!("/dev/{n}"))))
                .unwrap_or_else(|| Arc::from(format!("{major}:{minor}")))
        }))
    }

    fn netns(&self, pid: u32) -> Option<String> {
        std::fs::read_link(self.procfs().join(format!("{pid}/ns/net")))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn read_net(&self, pid_dir: &str) -> Vec<NetDev> {
        std::fs::read_to_string(self.procfs().join(pid_dir).join("net/dev"))
            .map(|t| {
                parse::net_dev(&t).into_iter().filter(|d| !parse::skip_container_interface(&d.name)).collect()
            })
            .unwrap_or_default()
    }

    fn fd_counts(&self, pids: &[u32]) -> (u64, u64) {
        let (mut fds, mut sockets) = (0u64, 0u64);
        for pid in pids {
            let Ok(entries) = std::fs::read_dir(self.procfs().join(format!("{pid}/fd"))) else { continue };
            for e in entries.flatten() {
                fds += 1;
                if std::fs::read_link(e.path())
                    .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
                {
                    sockets += 1;
                }
            }
        }
        (fds, sockets)
    }

    fn labels_for(&self, rel: &str, ident: &Identity) -> LabelPairs {
        let n = &self.names;
        let e = || Arc::clone(&n.empty);
        let (mut container, mut image, mut name, mut namespace, mut pod) = (e(), e(), e(), e(), e());
        match ident.level {
            Level::Container => {
                if let Some(cid) = &ident.container_id {
                    name = Arc::from(cid.as_str());
                    if let Some(meta) = self.resolver.container(cid) {
                        container = if meta.sandbox
                            && matches!(ident.runtime, Some(Runtime::Docker) | Some(Runtime::Crio))
                        {
                            Arc::clone(&n.pod_infra)
                        } else {
                            Arc::clone(&meta.name)
                        };
                        image = Arc::clone(&meta.image);
                        namespace = Arc::clone(&meta.namespace);
                        pod = Arc::clone(&meta.pod);
                    }
                }
            }
            Level::Pod => {
                if let Some(meta) = ident.pod_uid.as_deref().and_then(|uid| self.resolver.pod(uid)) {
                    namespace = Arc::clone(&meta.namespace);
                    pod = Arc::clone(&meta.name);
                }
            }
            _ => {}
        }
        vec![
            (Arc::clone(&n.container), container),
            (Arc::clone(&n.id), Arc::from(rel)),
            (Arc::clone(&n.image), image),
            (Arc::clone(&n.name), name),
            (Arc::clone(&n.namespace), namespace),
            (Arc::clone(&n.pod), pod),
        ]
    }

    fn start_time(&self, rel: &str, ident: &Identity, walk_root: &Path) -> Option<f64> {
        if let Some(meta) = ident.container_id.as_deref().and_then(|c| self.resolver.container(c))
            && meta.created_at_ns > 0
        {
            return Some(meta.created_at_ns as f64 / 1e9);
        }
        let dir = walk_root.join(rel.trim_start_matches('/'));
        let mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
        let secs = mtime.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
        Some(self.boot_time.map_or(secs, |b| secs.max(b)))
    }

    fn gather(&mut self) -> Result<Vec<Row>, CollectError> {
        if self.layout.is_none() {
            let layout = Layout::discover(&self.opts.paths)
                .map_err(|e| CollectError::read(&self.opts.paths.procfs.join("1/mountinfo"), e))?;
            tracing::info!(
                mode = layout.mode().map(|m| m.as_str()).unwrap_or("none"),
                "cgroup layout discovered"
            );
            self.layout = Some(layout);
        }
        let Some(layout) = self.layout.clone() else { return Ok(Vec::new()) };
        let Some(walk_root) = layout.walk_root().map(Path::to_path_buf) else {
            return Err(CollectError::Parse {
                path: self.opts.paths.procfs.join("1/mountinfo").display().to_string(),
                reason: "no cgroup hierarchy is mounted".into(),
            });
        };
        if self.boot_time.is_none() {
            self.boot_time = std::fs::read_to_string(self.procfs().join("stat"))
                .ok()
                .and_then(|t| parse::keyed(&t, "btime"))
                .map(|b| b as f64);
        }
        // The host's network namespace: PID 1's (the host's init when procfs is the host's), or
        // kahu's own when PID 1 cannot be inspected (a DaemonSet runs with hostNetwork).
        self.host_netns = self.netns(1).or_else(|| {
            std::fs::read_link(self.procfs().join("self/ns/net"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        });
        let hints = RootHints {
            swap_used: std::fs::read_to_string(self.procfs().join("meminfo")).ok().and_then(|t| {
                let kb = |k: &str| {
                    t.lines().find_map(|l| l.strip_prefix(k)?.split_whitespace().next()?.parse::<u64>().ok())
                };
                Some((kb("SwapTotal:")?.saturating_sub(kb("SwapFree:")?)) * 1024)
            }),
        };

        let rels = Self::walk(&walk_root);
        let idents: Vec<(String, Identity)> = rels
            .into_iter()
            .map(|r| {
                let id = path::identify(&r);
                (r, id)
            })
            .filter(|(r, id)| self.wanted(r, id))
            .collect();
        self.resolver.prepare(idents.iter().filter_map(|(_, id)| id.container_id.as_deref()));
        self.containers_seen = idents.iter().filter(|(_, id)| id.level == Level::Container).count();
        self.cgroups_seen = idents.len();

        let mut rows = Vec::with_capacity(idents.len());
        for (rel, ident) in idents {
            let stats = stats::read_stats(&layout, &rel, hints);
            let pids = if matches!(ident.level, Level::Container | Level::Other) {
                let procs = walk_root.join(rel.trim_start_matches('/')).join("cgroup.procs");
                std::fs::read_to_string(procs).map(|t| parse::procs(&t)).unwrap_or_default()
            } else {
                Vec::new()
            };
            let fds =
                (self.opts.process_metrics && ident.level == Level::Container).then(|| self.fd_counts(&pids));
            let start_time = self.start_time(&rel, &ident, &walk_root);
            let labels = self.labels_for(&rel, &ident);
            rows.push(Row { ident, labels, stats, pids, net: Vec::new(), fds, start_time });
        }
        self.attach_network(&mut rows);
        Ok(rows)
    }

    /// Network stats: the host's on the root row; for containers, one row per network namespace —
    /// the pod's sandbox when the runtime names it, else the first container of the pod — and none
    /// for containers in the host's namespace (host-network pods).
    fn attach_network(&self, rows: &mut [Row]) {
        if let Some(root) = rows.iter_mut().find(|r| r.ident.level == Level::Root) {
            root.net = self.read_net("1");
            if root.net.is_empty() {
                root.net = self.read_net("self");
            }
        }
        let mut seen: HashSet<String> = HashSet::new();
        let is_sandbox = |r: &Row| {
            r.ident
                .container_id
                .as_deref()
                .and_then(|c| self.resolver.container(c))
                .is_some_and(|m| m.sandbox)
        };
        let order: Vec<usize> = {
            let mut idx: Vec<usize> = (0..rows.len())
                .filter(|&i| rows.get(i).is_some_and(|r| r.ident.level == Level::Container))
                .collect();
            // Sandboxes first; without runtime names, the earliest-started container (the
            // sandbox is created before its pod's containers).
            idx.sort_by(|&a, &b| {
                let key = |i: usize| rows.get(i).map(|r| (!is_sandbox(r), r.start_time.unwrap_or(f64::MAX)));
                let (ka, kb) = (key(a), key(b));
                ka.map(|k| k.0).cmp(&kb.map(|k| k.0)).then_with(|| {
                    let (ta, tb) = (ka.map_or(f64::MAX, |k| k.1), kb.map_or(f64::MAX, |k| k.1));
                    ta.total_cmp(&tb)
                })
            });
            idx
        };
        for i in order {
            let Some(row) = rows.get_mut(i) else { continue };
            let Some(&pid) = row.pids.first() else { continue };
            let Some(ns) = self.netns(pid) else { continue };
            tracing::trace!(pid, netns = %ns, host = ?self.host_netns, "container network namespace");
            if self.host_netns.as_deref() == Some(ns.as_str()) || !seen.insert(ns) {
                continue;
            }
            row.net = self.read_net(&pid.to_string());
        }
    }

    fn emit(&mut self, rows: &[Row], batch: &mut Batch, now_ms: i64) {
        let n = &self.names;
        type Get = fn(&CgroupStats) -> Option<u64>;
        let simple = |batch: &mut Batch,
                      name: &str,
                      help: &'static str,
                      kind: MetricType,
                      get: &dyn Fn(&Row) -> Option<f64>| {
            let v: Vec<(LabelPairs, f64)> =
                rows.iter().filter_map(|r| Some((r.labels.clone(), get(r)?))).collect();
            put(batch, name, help, kind, v);
        };
        let secs = |ns: Option<u64>| ns.map(|v| v as f64 / 1e9);
        let f = |v: Option<u64>| v.map(|v| v as f64);

        // CPU.
        {
            let v = rows
                .iter()
                .filter_map(|r| Some((with(&r.labels, &[(&n.cpu, &n.total)]), secs(r.stats.cpu_usage_ns)?)))
                .collect();
            put(
                batch,
                "container_cpu_usage_seconds_total",
                "Cumulative cpu time consumed in seconds.",
                MetricType::Counter,
                v,
            );
        }
        simple(
            batch,
            "container_cpu_user_seconds_total",
            "Cumulative user cpu time consumed in seconds.",
            MetricType::Counter,
            &|r| secs(r.stats.cpu_user_ns),
        );
        simple(
            batch,
            "container_cpu_system_seconds_total",
            "Cumulative system cpu time consumed in seconds.",
            MetricType::Counter,
            &|r| secs(r.stats.cpu_system_ns),
        );
        // cAdvisor reports CFS counters only for cgroups with a quota.
        let quota = |r: &Row| r.stats.cpu_quota_us.is_some();
        simple(
            batch,
            "container_cpu_cfs_periods_total",
            "Number of elapsed enforcement period intervals.",
            MetricType::Counter,
            &|r| f(r.stats.cfs_periods).filter(|_| quota(r)),
        );
        simple(
            batch,
            "container_cpu_cfs_throttled_periods_total",
            "Number of throttled period intervals.",
            MetricType::Counter,
            &|r| f(r.stats.cfs_throttled_periods).filter(|_| quota(r)),
        );
        simple(
            batch,
            "container_cpu_cfs_throttled_seconds_total",
            "Total time duration the container has been throttled.",
            MetricType::Counter,
            &|r| secs(r.stats.cfs_throttled_ns).filter(|_| quota(r)),
        );

        // Memory.
        let mem: [(&str, &'static str, Get); 11] = [
            (
                "container_memory_usage_bytes",
                "Current memory usage in bytes, including all memory regardless of when it was accessed",
                |s| s.mem_usage,
            ),
            ("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", |s| {
                s.mem_max_usage
            }),
            ("container_memory_working_set_bytes", "Current working set in bytes.", |s| s.mem_working_set),
            ("container_memory_rss", "Size of RSS in bytes.", |s| s.mem_rss),
            ("container_memory_cache", "Number of bytes of page cache memory.", |s| s.mem_cache),
            ("container_memory_mapped_file", "Size of memory mapped files in bytes.", |s| s.mem_mapped_file),
            ("container_memory_swap", "Container swap usage in bytes.", |s| s.mem_swap),
            ("container_memory_failcnt", "Number of memory usage hits limits", |s| s.mem_failcnt),
            ("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", |s| s.mem_kernel),
            ("container_memory_total_active_file_bytes", "Current total active file in bytes.", |s| {
                s.mem_active_file
            }),
            ("container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", |s| {
                s.mem_inactive_file
            }),
        ];
        for (name, help, get) in mem {
            simple(batch, name, help, MetricType::Gauge, &|r| f(get(&r.stats)));
        }
        {
            let (pgfault, pgmajfault, container, hierarchy): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) = (
                Arc::from("pgfault"),
                Arc::from("pgmajfault"),
                Arc::from("container"),
                Arc::from("hierarchy"),
            );
            let mut out = Vec::new();
            for r in rows {
                for (ft, v) in [(&pgfault, r.stats.pgfault), (&pgmajfault, r.stats.pgmajfault)] {
                    let Some(v) = v else { continue };
                    // cgroup counters are hierarchical; cAdvisor reports the same value for both scopes.
                    for scope in [&container, &hierarchy] {
                        out.push((with(&r.labels, &[(&n.failure_type, ft), (&n.scope, scope)]), v as f64));
                    }
                }
            }
            put(
                batch,
                "container_memory_failures_total",
                "Cumulative count of memory allocation failures.",
                MetricType::Counter,
                out,
            );
        }
        simple(
            batch,
            "container_oom_events_total",
            "Count of out of memory events observed for the container",
            MetricType::Counter,
            &|r| f(r.stats.oom_kills),
        );

        // Spec (limits and requests as the cgroup has them).
        simple(batch, "container_spec_cpu_period", "CPU period of the container.", MetricType::Gauge, &|r| {
            f(r.stats.cpu_period_us)
        });
        simple(batch, "container_spec_cpu_quota", "CPU quota of the container.", MetricType::Gauge, &|r| {
            f(r.stats.cpu_quota_us)
        });
        simple(batch, "container_spec_cpu_shares", "CPU share of the container.", MetricType::Gauge, &|r| {
            f(r.stats.cpu_shares).filter(|_| r.ident.level != Level::Root)
        });
        simple(
            batch,
            "container_spec_memory_limit_bytes",
            "Memory limit for the container.",
            MetricType::Gauge,
            &|r| f(r.stats.mem_limit),
        );
        simple(
            batch,
            "container_spec_memory_reservation_limit_bytes",
            "Memory reservation limit for the container.",
            MetricType::Gauge,
            &|r| f(r.stats.mem_reservation),
        );
        simple(
            batch,
            "container_spec_memory_swap_limit_bytes",
            "Memory swap limit for the container.",
            MetricType::Gauge,
            &|r| f(r.stats.swap_limit),
        );

        // Block I/O.
        let devices: Vec<Vec<Arc<str>>> = rows
            .iter()
            .map(|r| r.stats.io.iter().map(|d| self.device_name(d.major, d.minor)).collect())
            .collect();
        let n = &self.names;
        type IoGet = fn(&parse::IoDevice) -> u64;
        let io: [(&str, &'static str, IoGet); 4] = [
            ("container_fs_reads_bytes_total", "Cumulative count of bytes read", |d| d.read_bytes),
            ("container_fs_writes_bytes_total", "Cumulative count of bytes written", |d| d.write_bytes),
            ("container_fs_reads_total", "Cumulative count of reads completed", |d| d.reads),
            ("container_fs_writes_total", "Cumulative count of writes completed", |d| d.writes),
        ];
        for (name, help, get) in io {
            let mut out = Vec::new();
            for (r, devs) in rows.iter().zip(&devices) {
                for (d, dev) in r.stats.io.iter().zip(devs) {
                    out.push((with(&r.labels, &[(&n.device, dev)]), get(d) as f64));
                }
            }
            put(batch, name, help, MetricType::Counter, out);
        }
        {
            let (read, write): (Arc<str>, Arc<str>) = (Arc::from("Read"), Arc::from("Write"));
            let mut out = Vec::new();
            for (r, devs) in rows.iter().zip(&devices) {
                for (d, dev) in r.stats.io.iter().zip(devs) {
                    let (major, minor): (Arc<str>, Arc<str>) =
                        (Arc::from(d.major.to_string()), Arc::from(d.minor.to_string()));
                    for (op, v) in [(&read, d.read_bytes), (&write, d.write_bytes)] {
                        out.push((
                            with(
                                &r.labels,
                                &[
                                    (&n.device, dev),
                                    (&n.major, &major),
                                    (&n.minor, &minor),
                                    (&n.operation, op),
                                ],
                            ),
                            v as f64,
                        ));
                    }
                }
            }
            put(
                batch,
                "container_blkio_device_usage_total",
                "Blkio Device bytes usage",
                MetricType::Counter,
                out,
            );
        }

        // Network (sandbox rows and the root only).
        let net: [(&str, &'static str, usize); 8] = [
            ("container_network_receive_bytes_total", "Cumulative count of bytes received", 0),
            ("container_network_receive_packets_total", "Cumulative count of packets received", 1),
            (
                "container_network_receive_errors_total",
                "Cumulative count of errors encountered while receiving",
                2,
            ),
            (
                "container_network_receive_packets_dropped_total",
                "Cumulative count of packets dropped while receiving",
                3,
            ),
            ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", 8),
            ("container_network_transmit_packets_total", "Cumulative count of packets transmitted", 9),
            (
                "container_network_transmit_errors_total",
                "Cumulative count of errors encountered while transmitting",
                10,
            ),
            (
                "container_network_transmit_packets_dropped_total",
                "Cumulative count of packets dropped while transmitting",
                11,
            ),
        ];
        let ifaces: Vec<Vec<Arc<str>>> =
            rows.iter().map(|r| r.net.iter().map(|d| Arc::from(d.name.as_str())).collect()).collect();
        for (name, help, idx) in net {
            let mut out = Vec::new();
            for (r, names) in rows.iter().zip(&ifaces) {
                for (d, iface) in r.net.iter().zip(names) {
                    let v = d.counters.get(idx).copied().unwrap_or(0);
                    out.push((with(&r.labels, &[(&n.interface, iface)]), v as f64));
                }
            }
            put(batch, name, help, MetricType::Counter, out);
        }

        // Processes.
        let is_ctr = |r: &Row| r.ident.level == Level::Container;
        if self.opts.process_metrics {
            simple(
                batch,
                "container_processes",
                "Number of processes running inside the container.",
                MetricType::Gauge,
                &|r| is_ctr(r).then_some(r.pids.len() as f64),
            );
            simple(
                batch,
                "container_file_descriptors",
                "Number of open file descriptors for the container.",
                MetricType::Gauge,
                &|r| r.fds.map(|f| f.0 as f64),
            );
            simple(
                batch,
                "container_sockets",
                "Number of open sockets for the container.",
                MetricType::Gauge,
                &|r| r.fds.map(|f| f.1 as f64),
            );
        }
        simple(
            batch,
            "container_threads",
            "Number of threads running inside the container",
            MetricType::Gauge,
            &|r| f(r.stats.threads),
        );
        simple(
            batch,
            "container_threads_max",
            "Maximum number of threads allowed inside the container, infinity if value is zero",
            MetricType::Gauge,
            &|r| f(r.stats.threads_max),
        );

        // PSI.
        for (i, res) in ["cpu", "memory", "io"].iter().enumerate() {
            let some_help =
                format!("Total time duration tasks in the container have waited due to {res} pressure.");
            let full_help = format!(
                "Total time duration no tasks in the container could make progress due to {res} congestion."
            );
            let get = |r: &Row| r.stats.pressure.get(i).copied().flatten();
            let waiting = format!("container_pressure_{res}_waiting_seconds_total");
            let stalled = format!("container_pressure_{res}_stalled_seconds_total");
            for (name, help, full) in [(waiting, some_help, false), (stalled, full_help, true)] {
                let out = rows
                    .iter()
                    .filter_map(|r| {
                        let p = get(r)?;
                        let us = if full { p.full_us } else { p.some_us }?;
                        Some((r.labels.clone(), us as f64 / 1e6))
                    })
                    .collect();
                put(batch, &name, help, MetricType::Counter, out);
            }
        }

        simple(
            batch,
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds.",
            MetricType::Gauge,
            &|r| r.start_time,
        );
        let seen = now_ms as f64 / 1000.0;
        simple(
            batch,
            "container_last_seen",
            "Last time a container was seen by the exporter",
            MetricType::Gauge,
            &|_| Some(seen),
        );
    }

    fn self_metrics(&self, batch: &mut Batch) {
        let s = self.resolver.stats();
        batch
            .family("kahu_cgroup_containers", "Container cgroups found in the last pass.", MetricType::Gauge)
            .sample::<&str, &str>([], self.containers_seen as f64);
        batch
            .family("kahu_cgroup_reported", "Cgroups reported (root, kubepods, QoS, pods, containers, listed system services) in the last pass.", MetricType::Gauge)
            .sample::<&str, &str>([], self.cgroups_seen as f64);
        if let Some(mode) = self.layout.as_ref().and_then(Layout::mode) {
            batch
                .family(
                    "kahu_cgroup_mode_info",
                    "The node's cgroup mode (v1, v2 or hybrid).",
                    MetricType::Gauge,
                )
                .sample([("mode", mode.as_str())], 1.0);
        }
        if self.resolver.configured() {
            batch
                .family("kahu_runtime_up", "Whether the last container runtime (CRI) list call succeeded; 0 means pod, namespace, container and image labels are empty.", MetricType::Gauge)
                .sample::<&str, &str>([], if s.up { 1.0 } else { 0.0 });
            batch
                .family(
                    "kahu_runtime_refreshes_total",
                    "Container runtime cache refreshes (ListPodSandbox + ListContainers), by result.",
                    MetricType::Counter,
                )
                .sample([("result", "success")], s.refreshes as f64)
                .sample([("result", "error")], s.failures as f64);
        }
    }
}

impl Collector for CgroupCollector {
    fn name(&self) -> &'static str {
        "cgroup"
    }

    fn collect(&mut self, batch: &mut Batch, now_ms: i64) -> Result<(), CollectError> {
        let rows = self.gather();
        match rows {
            Ok(rows) => {
                self.emit(&rows, batch, now_ms);
                self.self_metrics(batch);
                Ok(())
            }
            Err(e) => {
                self.self_metrics(batch);
                Err(e)
            }
        }
    }
}

/// `machine_cpu_cores` and `machine_memory_bytes` with cAdvisor's `boot_id`, `machine_id` and
/// `system_uuid` labels.
#[derive(Debug)]
pub struct MachineCollector {
    paths: HostPaths,
}

impl MachineCollector {
    /// Reads `<procfs>/cpuinfo`, `<procfs>/meminfo`, `<rootfs>/etc/machine-id`,
    /// `<sysfs>/class/dmi/id/product_uuid` and `<procfs>/sys/kernel/random/boot_id`.
    pub fn new(paths: HostPaths) -> Self {
        MachineCollector { paths }
    }
}

impl Collector for MachineCollector {
    fn name(&self) -> &'static str {
        "machine"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let read = |p: PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
        let labels = [
            ("boot_id", read(self.paths.procfs.join("sys/kernel/random/boot_id"))),
            ("machine_id", read(self.paths.rootfs.join("etc/machine-id"))),
            ("system_uuid", read(self.paths.sysfs.join("class/dmi/id/product_uuid"))),
        ];
        let cpuinfo_path = self.paths.procfs.join("cpuinfo");
        let cpuinfo =
            std::fs::read_to_string(&cpuinfo_path).map_err(|e| CollectError::read(&cpuinfo_path, e))?;
        let cores = cpuinfo.lines().filter(|l| l.starts_with("processor") && l.contains(':')).count();
        batch
            .family("machine_cpu_cores", "Number of logical CPU cores.", MetricType::Gauge)
            .sample(labels.clone(), cores as f64);
        let meminfo_path = self.paths.procfs.join("meminfo");
        let meminfo =
            std::fs::read_to_string(&meminfo_path).map_err(|e| CollectError::read(&meminfo_path, e))?;
        if let Some(kb) = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok())
        {
            batch
                .family(
                    "machine_memory_bytes",
                    "Amount of memory installed on the machine.",
                    MetricType::Gauge,
                )
                .sample(labels, (kb * 1024) as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_labels_are_merged_in_name_order() {
        let a = |s: &str| Arc::<str>::from(s);
        let base: LabelPairs = vec![(a("container"), a("c")), (a("id"), a("/x")), (a("pod"), a("p"))];
        let merged = with(&base, &[(&a("cpu"), &a("total")), (&a("scope"), &a("container"))]);
        let names: Vec<&str> = merged.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["container", "cpu", "id", "pod", "scope"]);
    }
}
