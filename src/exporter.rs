//! Exporter wiring: its flags, the collection loop (one pass feeds the TSDB appender and the
//! snapshot the `/metrics*` endpoints serve), those endpoints, and `kahu collect`.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kahu_exporter::cgroup::layout::HostPaths;
use kahu_exporter::exposition::{self, Format, Timestamps};
use kahu_exporter::pass::{PassRunner, StaleTracker};
use kahu_exporter::setup::{COLLECTORS, ExporterConfig};
use kahu_exporter::{Batch, kubelet};
use kahu_tsdb::Appendable;
use kahu_tsdb::model::{Labels, stale_nan};
use regex::Regex;
use tokio::sync::{RwLock, watch};

use crate::cli::parse_duration;

/// Exporter flags, shared by `kahu serve` and `kahu collect`. Names follow node_exporter where it
/// has one.
#[derive(Debug, Clone, clap::Args)]
pub struct ExporterArgs {
    /// Mount point of the proc filesystem (a DaemonSet mounts the host's at /host/proc).
    #[arg(long = "path.procfs", value_name = "PATH", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Mount point of the sys filesystem (cgroups are found under it; /host/sys in a DaemonSet).
    #[arg(long = "path.sysfs", value_name = "PATH", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// Where the host's root filesystem is mounted (for filesystem statistics and /etc/machine-id).
    #[arg(long = "path.rootfs", value_name = "PATH", default_value = "/")]
    pub rootfs: PathBuf,

    /// CRI socket of the container runtime, read-only use (List calls only). containerd's
    /// default; CRI-O: unix:///var/run/crio/crio.sock; cri-dockerd: unix:///var/run/cri-dockerd.sock.
    /// Empty disables runtime lookups.
    #[arg(
        long = "runtime.endpoint",
        value_name = "URL",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    pub runtime_endpoint: String,

    /// Time limit of one runtime (CRI) call.
    #[arg(long = "runtime.request-timeout", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub runtime_timeout: Duration,

    /// How often the runtime's containers are re-listed even when no new container appears.
    #[arg(long = "runtime.resync-interval", value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub runtime_resync: Duration,

    /// Time budget of one collector in one pass: a collector that takes longer is left out of the
    /// pass (and not run again until it finishes), so one hung read cannot stall a scrape.
    #[arg(long = "collector.timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub collector_timeout: Duration,

    /// Collectors not to run (comma-separated): cgroup, machine, stat, meminfo, loadavg,
    /// filesystem, diskstats, netdev, pressure, uname, time, vmstat, filefd, netstat, conntrack.
    #[arg(long = "collector.disable", value_name = "NAMES", value_delimiter = ',')]
    pub disable: Vec<String>,

    /// Cgroups besides /, kubepods and containers to report, by path (the kubelet reports its own
    /// and the runtime's cgroups).
    #[arg(
        long = "collector.cgroup.raw",
        value_name = "REGEX",
        default_value = r"^/(system\.slice/)?(kubelet|containerd|crio|docker)\.service$"
    )]
    pub raw_cgroups: String,

    /// Do not count processes, file descriptors and sockets per container (saves reading
    /// `/proc/<pid>/fd` of every process).
    #[arg(long = "no-collector.cgroup.process-metrics")]
    pub no_process_metrics: bool,

    /// Devices to exclude from diskstats.
    #[arg(long = "collector.diskstats.device-exclude", value_name = "REGEX", default_value = kahu_exporter::node::DEFAULT_DEVICE_EXCLUDE)]
    pub disk_exclude: String,

    /// Mount points to exclude from filesystem statistics.
    #[arg(long = "collector.filesystem.mount-points-exclude", value_name = "REGEX", default_value = kahu_exporter::node::DEFAULT_MOUNT_POINTS_EXCLUDE)]
    pub mount_points_exclude: String,

    /// Filesystem types to exclude from filesystem statistics.
    #[arg(long = "collector.filesystem.fs-types-exclude", value_name = "REGEX", default_value = kahu_exporter::node::DEFAULT_FS_TYPES_EXCLUDE)]
    pub fs_types_exclude: String,

    /// How long a statfs may take before its mount point is reported with device_error 1 and
    /// skipped until it answers.
    #[arg(long = "collector.filesystem.mount-timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub mount_timeout: Duration,

    /// Give stats samples on /metrics and /metrics/cadvisor an explicit timestamp (the collection
    /// time), as the kubelet does. Off by default: explicit timestamps defeat Prometheus'
    /// staleness handling. /metrics/resource always has them, as metrics-server expects.
    #[arg(long = "metrics.timestamps")]
    pub timestamps: bool,
}

impl ExporterArgs {
    /// The exporter configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<ExporterConfig> {
        let paths =
            HostPaths { procfs: self.procfs.clone(), sysfs: self.sysfs.clone(), rootfs: self.rootfs.clone() };
        let mut cfg = ExporterConfig::with_paths(paths).context("default exclusion patterns")?;
        let re = |flag: &str, s: &str| {
            Regex::new(s).with_context(|| format!("--{flag}: invalid regular expression"))
        };
        cfg.runtime_endpoint = Some(self.runtime_endpoint.clone()).filter(|e| !e.is_empty());
        cfg.runtime_timeout = self.runtime_timeout;
        cfg.runtime_resync = self.runtime_resync;
        cfg.raw_cgroups = if self.raw_cgroups.is_empty() {
            None
        } else {
            Some(re("collector.cgroup.raw", &self.raw_cgroups)?)
        };
        cfg.process_metrics = !self.no_process_metrics;
        cfg.disk_exclude = re("collector.diskstats.device-exclude", &self.disk_exclude)?;
        cfg.filesystem.mount_points_exclude =
            re("collector.filesystem.mount-points-exclude", &self.mount_points_exclude)?;
        cfg.filesystem.fs_types_exclude =
            re("collector.filesystem.fs-types-exclude", &self.fs_types_exclude)?;
        cfg.filesystem.mount_timeout = self.mount_timeout;
        for d in &self.disable {
            if !COLLECTORS.contains(&d.as_str()) {
                anyhow::bail!(
                    "--collector.disable: unknown collector {d:?} (known: {})",
                    COLLECTORS.join(", ")
                );
            }
        }
        cfg.disabled = self.disable.clone();
        Ok(cfg)
    }
}

/// The last pass, as the endpoints serve it.
#[derive(Debug, Clone)]
struct Snapshot {
    batch: Arc<Batch>,
    t_ms: i64,
}

/// The collectors, the stale-series bookkeeping and the last snapshot.
pub struct Exporter {
    runner: Mutex<PassRunner>,
    tracker: Mutex<StaleTracker>,
    snapshot: RwLock<Option<Snapshot>>,
    timestamps: bool,
    /// Adds kahu's own families (e.g. `kahu_tsdb_*`) to each pass after it is stored.
    self_metrics: std::sync::OnceLock<SelfMetrics>,
}

/// A hook that adds families to each pass's `/metrics` snapshot.
pub type SelfMetrics = Box<dyn Fn(&mut Batch) + Send + Sync>;

impl Exporter {
    /// Starts the collectors' threads.
    pub fn new(args: &ExporterArgs) -> anyhow::Result<Exporter> {
        let cfg = args.config()?;
        let runner =
            PassRunner::new(cfg.collectors(), args.collector_timeout).context("start collector threads")?;
        Ok(Exporter {
            runner: Mutex::new(runner),
            tracker: Mutex::new(StaleTracker::new()),
            snapshot: RwLock::new(None),
            timestamps: args.timestamps,
            self_metrics: std::sync::OnceLock::new(),
        })
    }

    /// Sets the hook that adds kahu's own families to each pass (once; later calls are ignored).
    pub fn set_self_metrics(&self, hook: SelfMetrics) {
        let _ = self.self_metrics.set(hook);
    }

    /// Runs one pass at `t_ms`, appends it (plus stale markers for series that went away) and
    /// returns it. Blocking: call from a blocking thread.
    fn pass(&self, db: &dyn Appendable, t_ms: i64) -> (Batch, Option<String>) {
        let (mut batch, error) = match self.runner.lock() {
            Ok(mut r) => {
                let b = r.run(t_ms);
                (b, r.last_error())
            }
            Err(_) => return (Batch::new(), Some("collector state poisoned by an earlier panic".into())),
        };
        let mut app = db.appender();
        let mut current: HashSet<Labels> = HashSet::with_capacity(batch.sample_count());
        let mut rejected = 0u64;
        for (labels, v) in batch.series() {
            if let Err(err) = app.append(&labels, t_ms, v) {
                rejected += 1;
                tracing::debug!(error = %err, "sample rejected");
            }
            current.insert(labels);
        }
        let gone = match self.tracker.lock() {
            Ok(mut t) => t.update(current),
            Err(_) => Vec::new(),
        };
        for labels in &gone {
            if let Err(err) = app.append(labels, t_ms, stale_nan()) {
                tracing::debug!(error = %err, "stale marker rejected");
            }
        }
        match app.commit() {
            Ok(summary) => {
                tracing::debug!(
                    samples = summary.samples,
                    rejected,
                    stale = gone.len(),
                    "collection pass stored"
                )
            }
            Err(err) => tracing::error!(error = %err, "store collection pass"),
        }
        if let Some(hook) = self.self_metrics.get() {
            hook(&mut batch);
        }
        (batch, error)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// When and how a pass ran, for `/api/v1/targets`.
#[derive(Debug, Clone)]
pub struct PassInfo {
    /// Wall-clock start.
    pub started: SystemTime,
    /// Duration.
    pub took: Duration,
    /// The first collector error of the pass, if any.
    pub error: Option<String>,
}

/// Runs one pass at start, then one at every multiple of `interval` (aligned to the wall clock,
/// so that all kahu instances sample at the same instants), until `stop`. `on_pass` is called
/// after each pass is visible.
pub async fn collection_loop(
    exporter: Arc<Exporter>,
    db: Arc<dyn Appendable>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_pass: impl Fn(&Batch, &PassInfo),
) {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut t = now_ms();
    loop {
        let ex = Arc::clone(&exporter);
        let pass_db = Arc::clone(&db);
        let (started, clock) = (SystemTime::now(), std::time::Instant::now());
        match tokio::task::spawn_blocking(move || ex.pass(&*pass_db, t)).await {
            Ok((batch, error)) => {
                let info = PassInfo { started, took: clock.elapsed(), error };
                let batch = Arc::new(batch);
                *exporter.snapshot.write().await = Some(Snapshot { batch: Arc::clone(&batch), t_ms: t });
                on_pass(&batch, &info);
            }
            Err(err) => tracing::error!(error = %err, "collection pass failed"),
        }
        let next = (t.div_euclid(interval_ms) + 1).saturating_mul(interval_ms);
        let wait = Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // A pass that overran whole intervals skips them rather than running late passes back to back.
        let now = now_ms();
        t = if now >= next + interval_ms { now.div_euclid(interval_ms) * interval_ms } else { next };
    }
}

/// `/metrics`, `/metrics/cadvisor` and `/metrics/resource`.
pub fn routes(exporter: Arc<Exporter>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/cadvisor", get(metrics_cadvisor))
        .route("/metrics/resource", get(metrics_resource))
        .with_state(exporter)
}

#[derive(Clone, Copy)]
enum View {
    All,
    Cadvisor,
    Resource,
}

async fn metrics(State(ex): State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    serve_view(&ex, &headers, View::All).await
}

async fn metrics_cadvisor(State(ex): State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    serve_view(&ex, &headers, View::Cadvisor).await
}

async fn metrics_resource(State(ex): State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    serve_view(&ex, &headers, View::Resource).await
}

async fn serve_view(ex: &Exporter, headers: &HeaderMap, view: View) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let Some(snap) = ex.snapshot.read().await.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no collection pass has finished yet\n").into_response();
    };
    let timestamps = if ex.timestamps { Timestamps::Stats(snap.t_ms) } else { Timestamps::None };
    let body = tokio::task::spawn_blocking(move || {
        let (batch, ts) = match view {
            View::All => (snap.batch, timestamps),
            View::Cadvisor => (Arc::new(kubelet::cadvisor_view(&snap.batch)), timestamps),
            View::Resource => (Arc::new(kubelet::resource_view(&snap.batch)), Timestamps::Stats(snap.t_ms)),
        };
        let text = exposition::encode_with(batch, format, ts).ok()?;
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(text.len() / 8),
                flate2::Compression::fast(),
            );
            enc.write_all(text.as_bytes()).ok()?;
            enc.finish().ok()
        } else {
            Some(text.into_bytes())
        }
    })
    .await;
    match body {
        Ok(Some(body)) => {
            let mut resp = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
            if gzip {
                resp.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
            }
            resp
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "encode metrics\n").into_response(),
    }
}

/// `kahu collect`: one pass, printed in the Prometheus text format.
pub fn collect_command(args: CollectArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(crate::cli::LogFormat::Logfmt, &args.log_level)?;
    let cfg = args.exporter.config()?;
    let mut runner = PassRunner::new(cfg.collectors(), args.exporter.collector_timeout)
        .context("start collector threads")?;
    let t = now_ms();
    let batch = Arc::new(runner.run(t));
    let batch = match args.endpoint {
        Endpoint::Metrics => batch,
        Endpoint::Cadvisor => Arc::new(kubelet::cadvisor_view(&batch)),
        Endpoint::Resource => Arc::new(kubelet::resource_view(&batch)),
    };
    let ts = if args.exporter.timestamps || matches!(args.endpoint, Endpoint::Resource) {
        Timestamps::Stats(t)
    } else {
        Timestamps::None
    };
    let format = if args.openmetrics { Format::OpenMetrics } else { Format::Text };
    let text = exposition::encode_with(batch, format, ts).map_err(|_| anyhow::anyhow!("encode metrics"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("write to stdout")?;
    out.flush().context("write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Which endpoint's view `kahu collect` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Endpoint {
    /// Everything (`/metrics`).
    Metrics,
    /// The kubelet's `/metrics/cadvisor`.
    Cadvisor,
    /// The kubelet's `/metrics/resource`.
    Resource,
}

/// Flags of `kahu collect`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Exporter flags, as for `kahu serve`.
    #[command(flatten)]
    pub exporter: ExporterArgs,

    /// Which endpoint's view to print.
    #[arg(long = "endpoint", value_enum, default_value = "metrics")]
    pub endpoint: Endpoint,

    /// Print OpenMetrics 1.0 instead of the Prometheus text format 0.0.4.
    #[arg(long = "openmetrics")]
    pub openmetrics: bool,

    /// Minimum level to log (to stderr): error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "warn")]
    pub log_level: String,
}
