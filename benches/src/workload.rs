//! The standard Kubernetes-node workload: a deterministic generator of the series one node's
//! kubelet (cAdvisor) and node_exporter expose, as kube-prometheus scrapes them.
//!
//! What makes it realistic, and therefore a fair compression benchmark (see
//! `shared/reference/anchors.md`):
//!
//! - **Labels** as kube-prometheus' ServiceMonitors attach them: cAdvisor series carry `id` (the
//!   full cgroup path with the pod UID and the 64-hex container id), `name`, `image`, `pod`,
//!   `namespace`, `container`, plus `endpoint`, `instance`, `job`, `metrics_path`, `node`,
//!   `service`; node_exporter series carry the node-exporter pod's target labels. About 440 label
//!   bytes per series on average ([`Stats::label_bytes_per_series`]).
//! - **Values** as the kernel and the exporters produce them: CPU counters in microseconds
//!   (cgroup v2 `usage_usec`, exposed as float seconds), node CPU in USER_HZ hundredths, integer
//!   byte and packet counters, memory gauges in whole 4 KiB pages (cgroup) or KiB (`/proc/meminfo`),
//!   constant limits and specs, rarely-moving error counters, durations in whole nanoseconds
//!   (Go's `Duration.Seconds()`: scrape durations, GC pause quantiles that move only at a GC,
//!   schedstat), and the few full-precision floats a real node_exporter exposes
//!   (`node_time_seconds`, `go_memstats_last_gc_time_seconds`: `float64(UnixNano) / 1e9`).
//! - **Time** as Prometheus scrapes: one timestamp per target per scrape, every 15 s, each target
//!   at its own offset, with a few milliseconds of jitter.
//! - **Pod churn**: pods of Deployments and Jobs are replaced over the day; the old pod's series
//!   end with a staleness marker (as Prometheus writes it) and the new pod's series start from zero.
//!
//! Everything comes from [`Rng`] seeded by [`Config::seed`], so a configuration always yields the
//! same bytes.

use std::sync::Arc;

use kahu_tsdb::model::{Labels, stale_nan};

use crate::rng::Rng;

/// Parameters of the workload. [`Config::default`] is the standard run of `anchors.md`
/// (10,000 active series for 24 h).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Target number of active series (node_exporter + cAdvisor); pods are added until reached.
    /// The node itself (node_exporter and system cgroups) is about 1,300 series, so smaller
    /// values give a node without pods.
    pub series: usize,
    /// Start of the first scrape interval, milliseconds since the epoch.
    pub start_ms: i64,
    /// Length of the run in milliseconds.
    pub duration_ms: i64,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// Scrape timestamps deviate from the ideal grid by up to this many milliseconds either way.
    pub jitter_ms: i64,
    /// Pod replacements per day, as a fraction of the active series: 0.5 means churn creates
    /// about half as many new series per day as there are active ones.
    pub churn_per_day: f64,
    /// Logical CPUs of the node (node_exporter's per-CPU series scale with it).
    pub cpus: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            series: 10_000,
            start_ms: 1_795_737_600_000, // 2026-11-27T00:00:00Z
            duration_ms: 24 * 3_600_000,
            interval_ms: 15_000,
            jitter_ms: 3,
            churn_per_day: 0.5,
            cpus: 8,
            seed: 0x6b61_6875, // "kahu"
        }
    }
}

/// Index of a series in [`Workload::labels`]; assigned in order of first appearance.
pub type SeriesId = u32;

/// One scrape of one target: a timestamp and the values of that target's active series.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// Which target was scraped.
    pub target: Target,
    /// Scrape timestamp (milliseconds), shared by every sample of the scrape.
    pub t: i64,
    /// `(series, value)` pairs; a series that just disappeared gets the staleness marker.
    pub samples: Vec<(SeriesId, f64)>,
}

/// The scrape targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// node_exporter behind kube-rbac-proxy (`job="node-exporter"`).
    NodeExporter,
    /// The kubelet's `/metrics/cadvisor` endpoint (`job="kubelet"`).
    Cadvisor,
    /// Anything else (a captured kahu `/metrics`).
    Other,
}

/// Anything that yields scrapes in time order: the generated [`Workload`] or a replayed capture.
pub trait Source {
    /// The next scrape, or `None` at the end.
    fn next_scrape(&mut self) -> Option<Scrape>;
    /// Labels of series `id`.
    fn labels(&self, id: SeriesId) -> Option<&Labels>;
    /// Number of series that have appeared so far (ids are `0..series_created()`).
    fn series_created(&self) -> usize;
}

impl Source for Workload {
    fn next_scrape(&mut self) -> Option<Scrape> {
        self.next()
    }
    fn labels(&self, id: SeriesId) -> Option<&Labels> {
        Workload::labels(self, id)
    }
    fn series_created(&self) -> usize {
        Workload::series_created(self)
    }
}

/// The relative noise of an [`Model::Int`] counter's increments. Calibrated on the real
/// node_exporter capture (`kahu-workload floor --capture
/// benches/testdata/node-exporter-1h.capture.zst --duration 1h`): the steady high-rate integer
/// counters there (context switches, interrupts, page faults, Go allocations, forks) have a
/// local noise (deviation of second differences over sqrt 2, over the mean step) of 0.12-0.48,
/// median 0.20, where 0.3 gave the generator's same-named counters 0.30-0.38; 0.18 gives
/// about 0.2. Bursty real counters (disk, network) vary more but cost less per sample, idle
/// half the time (benches/runs/2026-11-28-compress/README.md).
const INT_NOISE: f64 = 0.18;

/// How one series' value evolves from scrape to scrape.
#[derive(Debug, Clone)]
enum Model {
    /// Never changes (limits, specs, info metrics, start times).
    Const(f64),
    /// A counter of integer microseconds exposed as float seconds (cgroup v2 `usage_usec`).
    /// `rate` is in cores; `walk` wanders the rate multiplicatively.
    Micro { usec: u64, rate: f64, walk: f64 },
    /// A counter in USER_HZ ticks (1/100 s), as `/proc/stat` gives node CPU time.
    Centi { ticks: u64, rate: f64, walk: f64 },
    /// A counter in nanoseconds exposed as float seconds (`/proc/schedstat`).
    Nano { ns: u64, rate: f64 },
    /// An integer counter (bytes, packets, operations) with bursty increments.
    Int { v: u64, per_s: f64, walk: f64 },
    /// An integer counter that moves only now and then (errors, drops, throttling).
    Sparse { v: u64, p: f64, max_step: u64 },
    /// A gauge of whole units (`unit` bytes: 4096 for pages, 1024 for KiB, 1 for counts) that
    /// wanders between `lo` and `hi` units.
    Units { v: i64, lo: i64, hi: i64, step: i64, p: f64, unit: f64 },
    /// Seconds since the epoch at the scrape, whole (`container_last_seen`).
    LastSeen,
    /// The scrape time plus a little delay, as node_exporter computes it:
    /// `float64(UnixNano) / 1e9` (`node_time_seconds`), a full-precision float.
    TimeNow,
    /// A sub-second duration that jitters around `mean` seconds, as Go exposes durations:
    /// `Duration.Seconds()` of whole nanoseconds, i.e. `ns / 1e9` (scrape durations).
    Duration { mean: f64, rel: f64 },
    /// A duration that changes only when the event it measures happens again (probability `p`
    /// per scrape): a GC pause quantile.
    Pause { ns: u64, mean: f64, rel: f64, p: f64 },
    /// The time of the last GC, `float64(UnixNano) / 1e9`, updated with probability `p` per
    /// scrape (`go_memstats_last_gc_time_seconds`).
    LastGc { ns: i64, p: f64 },
    /// A load average with two decimals.
    Load { v: f64, target: f64 },
}

impl Model {
    fn next(&mut self, rng: &mut Rng, t: i64, dt_s: f64) -> f64 {
        match self {
            Model::Const(v) => *v,
            Model::Micro { usec, rate, walk } => {
                *walk = (*walk + 0.08 * rng.normal()).clamp(-2.5, 2.5);
                let inc = (*rate * walk.exp() * dt_s * 1e6 * (1.0 + 0.15 * rng.normal())).max(0.0);
                *usec += inc.round() as u64;
                *usec as f64 / 1e6
            }
            Model::Centi { ticks, rate, walk } => {
                *walk = (*walk + 0.05 * rng.normal()).clamp(-2.0, 2.0);
                let inc = (*rate * walk.exp() * dt_s * 100.0 * (1.0 + 0.1 * rng.normal())).max(0.0);
                *ticks += inc.round() as u64;
                *ticks as f64 / 100.0
            }
            Model::Nano { ns, rate } => {
                let inc = (*rate * dt_s * 1e9 * (1.0 + 0.3 * rng.normal())).max(0.0);
                *ns += inc.round() as u64;
                *ns as f64 / 1e9
            }
            Model::Int { v, per_s, walk } => {
                *walk = (*walk + 0.1 * rng.normal()).clamp(-3.0, 3.0);
                let inc = (*per_s * walk.exp() * dt_s * (1.0 + INT_NOISE * rng.normal())).max(0.0);
                *v += inc.round() as u64;
                *v as f64
            }
            Model::Sparse { v, p, max_step } => {
                if rng.chance(*p) {
                    *v += 1 + rng.below(*max_step);
                }
                *v as f64
            }
            Model::Units { v, lo, hi, step, p, unit } => {
                if rng.chance(*p) {
                    *v = (*v + rng.range_i64(-*step, *step)).clamp(*lo, *hi);
                }
                *v as f64 * *unit
            }
            Model::LastSeen => (t / 1000) as f64,
            Model::TimeNow => {
                let delay_ns = 300_000 + rng.below(2_000_000) as i64;
                t.saturating_mul(1_000_000).saturating_add(delay_ns) as f64 / 1e9
            }
            Model::Duration { mean, rel } => {
                let ns = (*mean * 1e9 * (1.0 + *rel * rng.normal()).max(0.01)).round();
                ns / 1e9
            }
            Model::Pause { ns, mean, rel, p } => {
                if *ns == 0 || rng.chance(*p) {
                    *ns = (*mean * 1e9 * (1.0 + *rel * rng.normal()).max(0.01)).round() as u64;
                }
                *ns as f64 / 1e9
            }
            Model::LastGc { ns, p } => {
                if *ns == 0 || rng.chance(*p) {
                    let delay_ns = rng.below(15_000_000_000) as i64;
                    *ns = t.saturating_mul(1_000_000).saturating_sub(delay_ns);
                }
                *ns as f64 / 1e9
            }
            Model::Load { v, target } => {
                if rng.chance(0.02) {
                    *target = (rng.f64() * 3.0).max(0.05);
                }
                *v += (*target - *v) * 0.1 + 0.05 * rng.normal();
                *v = v.max(0.0);
                (*v * 100.0).round() / 100.0
            }
        }
    }
}

impl Model {
    /// The kind, for grouping figures: the variant's name.
    fn kind(&self) -> &'static str {
        match self {
            Model::Const(_) => "Const",
            Model::Micro { .. } => "Micro",
            Model::Centi { .. } => "Centi",
            Model::Nano { .. } => "Nano",
            Model::Int { .. } => "Int",
            Model::Sparse { .. } => "Sparse",
            Model::Units { .. } => "Units",
            Model::LastSeen => "LastSeen",
            Model::TimeNow => "TimeNow",
            Model::Duration { .. } => "Duration",
            Model::Pause { .. } => "Pause",
            Model::LastGc { .. } => "LastGc",
            Model::Load { .. } => "Load",
        }
    }

    /// The generator's own randomness in the value it has just produced, in bits: the entropy of
    /// that value given everything before it and the model's hidden state before this step (the
    /// rate walk included). No codec can do better on average; see [`entropy`].
    fn floor_bits(&self, t: i64, dt_s: f64) -> f64 {
        use entropy::{binary, rounded, ulp_ns};
        match self {
            Model::Const(_) | Model::LastSeen => 0.0,
            // The increment is round(m (1 + sigma N)) with m = rate e^walk dt; the walk moved by
            // sigma_w N' this step, so given the previous walk its spread is m sqrt(sigma^2 +
            // sigma_w^2) (e^x ~ 1 + x for these small steps).
            Model::Micro { rate, walk, .. } => {
                let m = rate * walk.exp() * dt_s * 1e6;
                rounded(m, m * f64::hypot(0.15, 0.08))
            }
            Model::Centi { rate, walk, .. } => {
                let m = rate * walk.exp() * dt_s * 100.0;
                rounded(m, m * f64::hypot(0.1, 0.05))
            }
            Model::Nano { rate, .. } => {
                let m = rate * dt_s * 1e9;
                rounded(m, m * 0.3)
            }
            Model::Int { per_s, walk, .. } => {
                let m = per_s * walk.exp() * dt_s;
                rounded(m, m * f64::hypot(INT_NOISE, 0.1))
            }
            Model::Sparse { p, max_step, .. } => binary(*p) + p * (*max_step as f64).log2(),
            Model::Units { p, step, .. } => binary(*p) + p * ((2 * step + 1) as f64).log2(),
            // A uniform delay of 2 ms, as many distinct values as the float has steps in it.
            Model::TimeNow => (2_000_000.0 / ulp_ns(t as f64 / 1e3)).max(1.0).log2(),
            Model::Duration { mean, rel } => rounded(mean * 1e9, mean * 1e9 * rel),
            Model::Pause { mean, rel, p, .. } => binary(*p) + p * rounded(mean * 1e9, mean * 1e9 * rel),
            Model::LastGc { p, .. } => {
                binary(*p) + p * (15_000_000_000.0 / ulp_ns(t as f64 / 1e3)).max(1.0).log2()
            }
            // Given the previous (unrounded) level, the next is normal with a deviation of 5
            // hundredths; the rare target change adds its own choice.
            Model::Load { .. } => rounded(0.0, 5.0) + binary(0.02),
        }
    }
}

/// Entropy of the generator's draws, for [`Workload::track_floor`].
pub mod entropy {
    /// The Irwin-Hall(4) distribution function (sum of four uniforms on [0, 1)).
    fn irwin_hall4_cdf(x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        if x >= 4.0 {
            return 1.0;
        }
        const C: [f64; 5] = [1.0, 4.0, 6.0, 4.0, 1.0];
        let mut s = 0.0;
        for (k, c) in C.iter().enumerate() {
            let d = x - k as f64;
            if d <= 0.0 {
                break;
            }
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            s += sign * c * d.powi(4);
        }
        s / 24.0
    }

    /// The distribution function of the generator's `Rng::normal` (Irwin-Hall(4), centred and
    /// scaled to deviation 1).
    pub fn normal_cdf(z: f64) -> f64 {
        irwin_hall4_cdf(z / 1.732_050_8 + 2.0)
    }

    /// Differential entropy of `Rng::normal` in bits, by numerical integration (a Gaussian of
    /// the same deviation has 2.047; the sum of four uniforms a little less).
    pub fn normal_differential_bits() -> f64 {
        let n = 20_000;
        let (lo, hi) = (-2.0 * 1.732_050_8, 2.0 * 1.732_050_8);
        let h = (hi - lo) / n as f64;
        let mut s = 0.0;
        for i in 0..n {
            let a = lo + i as f64 * h;
            let p = normal_cdf(a + h) - normal_cdf(a);
            if p > 0.0 {
                s -= p * (p / h).log2();
            }
        }
        s
    }

    /// Entropy in bits of `round(m + s N)` with `N` from `Rng::normal`: exact over the integers
    /// for small `s`, the differential entropy plus `log2 s` (exact to a few thousandths) above.
    pub fn rounded(m: f64, s: f64) -> f64 {
        if s.is_nan() || s <= 0.0 || !m.is_finite() {
            return 0.0;
        }
        if s > 8.0 {
            return normal_differential_bits_cached() + s.log2();
        }
        let reach = 2.0 * 1.732_050_8 * s + 1.0;
        let (lo, hi) = ((m - reach).floor() as i64, (m + reach).ceil() as i64);
        let mut h = 0.0;
        for k in lo..=hi {
            let p = normal_cdf((k as f64 + 0.5 - m) / s) - normal_cdf((k as f64 - 0.5 - m) / s);
            if p > 0.0 {
                h -= p * p.log2();
            }
        }
        h
    }

    fn normal_differential_bits_cached() -> f64 {
        static H: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        *H.get_or_init(normal_differential_bits)
    }

    /// Entropy in bits of a coin that comes up with probability `p`.
    pub fn binary(p: f64) -> f64 {
        if p <= 0.0 || p >= 1.0 {
            return 0.0;
        }
        -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
    }

    /// The spacing of `f64`s near `secs`, in nanoseconds.
    pub fn ulp_ns(secs: f64) -> f64 {
        let e = secs.abs().max(f64::MIN_POSITIVE).log2().floor();
        2f64.powf(e - 52.0) * 1e9
    }
}

/// The generator's randomness and the series count of one model kind, from
/// [`Workload::floor_by_kind`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindFloor {
    /// Series of this kind.
    pub series: u64,
    /// Samples of this kind (staleness markers excluded).
    pub samples: u64,
    /// Bits of randomness the generator drew for them, summed.
    pub bits: f64,
}

#[derive(Debug)]
struct SeriesState {
    model: Model,
    rng: Rng,
    active: bool,
    /// Emit one staleness marker at the next scrape, then go inactive.
    ending: bool,
}

/// One application whose pods run on the node.
struct App {
    namespace: &'static str,
    name: &'static str,
    kind: PodKind,
    /// `(container, image, cpu cores, memory pages)`.
    containers: &'static [(&'static str, &'static str, f64, i64)],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PodKind {
    /// A DaemonSet pod: never replaced, suffix of 5.
    DaemonSet,
    /// A Deployment pod: replaced by churn, `<name>-<10>-<5>`.
    Deployment,
    /// A StatefulSet pod: never replaced, `<name>-<ordinal>`.
    StatefulSet,
}

const APPS: &[App] = &[
    App {
        namespace: "kube-system",
        name: "kube-proxy",
        kind: PodKind::DaemonSet,
        containers: &[("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4", 0.01, 9_000)],
    },
    App {
        namespace: "kube-system",
        name: "coredns",
        kind: PodKind::Deployment,
        containers: &[("coredns", "registry.k8s.io/coredns/coredns:v1.11.3", 0.005, 6_000)],
    },
    App {
        namespace: "kube-flannel",
        name: "kube-flannel-ds",
        kind: PodKind::DaemonSet,
        containers: &[("kube-flannel", "docker.io/flannel/flannel:v0.26.1", 0.004, 7_000)],
    },
    App {
        namespace: "monitoring",
        name: "node-exporter",
        kind: PodKind::DaemonSet,
        containers: &[
            ("node-exporter", "quay.io/prometheus/node-exporter:v1.8.2", 0.01, 5_000),
            ("kube-rbac-proxy", "quay.io/brancz/kube-rbac-proxy:v0.18.1", 0.002, 3_000),
        ],
    },
    App {
        namespace: "ingress-nginx",
        name: "ingress-nginx-controller",
        kind: PodKind::Deployment,
        containers: &[("controller", "registry.k8s.io/ingress-nginx/controller:v1.11.3", 0.05, 40_000)],
    },
    App {
        namespace: "cert-manager",
        name: "cert-manager",
        kind: PodKind::Deployment,
        containers: &[(
            "cert-manager-controller",
            "quay.io/jetstack/cert-manager-controller:v1.16.2",
            0.003,
            8_000,
        )],
    },
    App {
        namespace: "shop",
        name: "frontend",
        kind: PodKind::Deployment,
        containers: &[
            ("server", "europe-docker.pkg.dev/acme-prod/shop/frontend:2026.11.3", 0.08, 30_000),
            ("istio-proxy", "docker.io/istio/proxyv2:1.24.1", 0.02, 15_000),
        ],
    },
    App {
        namespace: "shop",
        name: "checkoutservice",
        kind: PodKind::Deployment,
        containers: &[
            ("server", "europe-docker.pkg.dev/acme-prod/shop/checkoutservice:2026.11.3", 0.03, 12_000),
            ("istio-proxy", "docker.io/istio/proxyv2:1.24.1", 0.015, 15_000),
        ],
    },
    App {
        namespace: "shop",
        name: "cartservice",
        kind: PodKind::Deployment,
        containers: &[
            ("server", "europe-docker.pkg.dev/acme-prod/shop/cartservice:2026.11.3", 0.04, 25_000),
            ("istio-proxy", "docker.io/istio/proxyv2:1.24.1", 0.015, 15_000),
        ],
    },
    App {
        namespace: "shop",
        name: "redis-cart",
        kind: PodKind::StatefulSet,
        containers: &[("redis", "docker.io/library/redis:7.4.1-alpine", 0.01, 20_000)],
    },
    App {
        namespace: "search",
        name: "query-api",
        kind: PodKind::Deployment,
        containers: &[
            ("api", "ghcr.io/acme/search/query-api:v3.18.0", 0.2, 120_000),
            ("log-shipper", "cr.fluentbit.io/fluent/fluent-bit:3.2.2", 0.01, 6_000),
        ],
    },
    App {
        namespace: "search",
        name: "indexer",
        kind: PodKind::StatefulSet,
        containers: &[("indexer", "ghcr.io/acme/search/indexer:v3.18.0", 0.5, 400_000)],
    },
    App {
        namespace: "data",
        name: "etl-worker",
        kind: PodKind::Deployment,
        containers: &[("worker", "ghcr.io/acme/data/etl-worker:1.42.7", 0.3, 200_000)],
    },
    App {
        namespace: "payments",
        name: "payments-api",
        kind: PodKind::Deployment,
        containers: &[
            ("app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments/api:4.9.12", 0.06, 60_000),
            ("vault-agent", "docker.io/hashicorp/vault:1.18.2", 0.001, 4_000),
        ],
    },
];

struct Pod {
    app: usize,
    series: Vec<SeriesId>,
}

/// The generator: iterate it for [`Scrape`]s in time order; look series labels up with
/// [`Workload::labels`].
pub struct Workload {
    cfg: Config,
    labels: Vec<Labels>,
    states: Vec<SeriesState>,
    node_series: Vec<SeriesId>,
    cadvisor_static: Vec<SeriesId>,
    pods: Vec<Pod>,
    /// Series of replaced pods that still owe their staleness marker.
    ending: Vec<SeriesId>,
    /// Next scrape index per target.
    next_k: [i64; 2],
    offsets: [i64; 2],
    rng: Rng,
    pod_serial: u64,
    replace_p: f64,
    /// Interned strings so that 10,000 series share one allocation per distinct value.
    strings: std::collections::HashMap<String, Arc<str>>,
    /// Per series: samples and bits of randomness drawn, when [`Workload::track_floor`] is on.
    floor: Option<Vec<(u64, f64)>>,
    /// Scrapes per target, for the timestamps' share of the floor.
    scrapes: u64,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload").field("cfg", &self.cfg).field("series", &self.labels.len()).finish()
    }
}

const NODE: &str = "node-01";
const NODE_IP: &str = "10.0.0.1";

impl Workload {
    /// Builds the node and its initial pods.
    pub fn new(cfg: Config) -> Self {
        let mut w = Workload {
            labels: Vec::new(),
            states: Vec::new(),
            node_series: Vec::new(),
            cadvisor_static: Vec::new(),
            pods: Vec::new(),
            ending: Vec::new(),
            next_k: [0, 0],
            offsets: [4_321, 11_077],
            rng: Rng::fork(cfg.seed, 1),
            pod_serial: 0,
            replace_p: 0.0,
            strings: std::collections::HashMap::new(),
            floor: None,
            scrapes: 0,
            cfg,
        };
        w.add_node_exporter();
        w.add_system_cgroups();
        let mut app = 0usize;
        let mut guard = 0;
        while w.active_series() < w.cfg.series && guard < 100_000 {
            w.add_pod(app % APPS.len());
            app += 1;
            guard += 1;
        }
        let per_pod = if w.pods.is_empty() {
            1.0
        } else {
            w.pods.iter().map(|p| p.series.len()).sum::<usize>() as f64 / w.pods.len() as f64
        };
        let churnable =
            w.pods.iter().filter(|p| APPS.get(p.app).is_some_and(|a| a.kind == PodKind::Deployment)).count();
        let replacements_per_day = w.cfg.churn_per_day * w.cfg.series as f64 / per_pod;
        let scrapes_per_day = 86_400_000.0 / w.cfg.interval_ms.max(1) as f64;
        w.replace_p = if churnable == 0 { 0.0 } else { replacements_per_day / scrapes_per_day };
        w
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Labels of series `id` (every series ever created, active or not).
    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.labels.get(id as usize)
    }

    /// Counts, from now on, the bits of randomness the generator draws for each value (the
    /// entropy of the value given the model's state before the step): the floor no codec can
    /// beat on average. Costs a few logarithms per sample.
    pub fn track_floor(mut self) -> Self {
        self.floor = Some(Vec::new());
        self
    }

    /// The floor counted by [`Workload::track_floor`], by model kind (`Micro`, `Int`, ...), plus
    /// a `timestamps` row: the jitter drawn once per scrape, shared by the target's series.
    pub fn floor_by_kind(&self) -> std::collections::BTreeMap<&'static str, KindFloor> {
        let mut by: std::collections::BTreeMap<&'static str, KindFloor> = std::collections::BTreeMap::new();
        for (state, &(n, bits)) in self.states.iter().zip(self.floor.iter().flatten()) {
            if n == 0 {
                continue;
            }
            let e = by.entry(state.model.kind()).or_default();
            e.series += 1;
            e.samples += n;
            e.bits += bits;
        }
        let jitter = ((2 * self.cfg.jitter_ms + 1) as f64).log2();
        by.insert("timestamps", KindFloor { series: 0, samples: 0, bits: jitter * self.scrapes as f64 });
        by
    }

    /// The model kind of series `id` (`Micro`, `Int`, `Units`, ...).
    pub fn model_kind(&self, id: SeriesId) -> Option<&'static str> {
        self.states.get(id as usize).map(|s| s.model.kind())
    }

    /// Number of distinct series created so far.
    pub fn series_created(&self) -> usize {
        self.labels.len()
    }

    /// Number of series scraped now.
    pub fn active_series(&self) -> usize {
        self.states.iter().filter(|s| s.active).count()
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(s.to_owned(), a.clone());
        a
    }

    fn add(
        &mut self,
        base: &[(&str, String)],
        name: &str,
        extra: &[(&str, String)],
        model: Model,
    ) -> SeriesId {
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(base.len() + extra.len() + 1);
        pairs.push((self.intern("__name__"), self.intern(name)));
        for (n, v) in base.iter().chain(extra) {
            pairs.push((self.intern(n), self.intern(v)));
        }
        let id = self.labels.len() as SeriesId;
        self.labels.push(Labels::from_pairs(pairs));
        self.states.push(SeriesState {
            model,
            rng: Rng::fork(self.cfg.seed, 0x1000_0000 + u64::from(id)),
            active: true,
            ending: false,
        });
        id
    }

    fn add_node_exporter(&mut self) {
        let mut r = Rng::fork(self.cfg.seed, 2);
        let pod = format!("node-exporter-{}", r.k8s_suffix(5));
        let base: Vec<(&str, String)> = vec![
            ("container", "kube-rbac-proxy".into()),
            ("endpoint", "https".into()),
            ("instance", NODE.into()),
            ("job", "node-exporter".into()),
            ("namespace", "monitoring".into()),
            ("pod", pod),
            ("service", "node-exporter".into()),
        ];
        let b = &base;
        let mut ids = Vec::new();
        let s = |v: &str| v.to_string();
        // CPU time per CPU and mode, in USER_HZ.
        let modes = [
            ("idle", 0.7),
            ("iowait", 0.01),
            ("irq", 0.0),
            ("nice", 0.0),
            ("softirq", 0.004),
            ("steal", 0.001),
            ("system", 0.06),
            ("user", 0.2),
        ];
        for cpu in 0..self.cfg.cpus {
            for (mode, rate) in modes {
                let m = if rate == 0.0 {
                    Model::Const(0.0)
                } else {
                    Model::Centi { ticks: r.below(50_000_000), rate, walk: 0.0 }
                };
                ids.push(self.add(
                    b,
                    "node_cpu_seconds_total",
                    &[("cpu", cpu.to_string()), ("mode", s(mode))],
                    m,
                ));
            }
            for mode in ["guest", "nice"] {
                let extra = [("cpu", cpu.to_string()), ("mode", s(mode))];
                ids.push(self.add(b, "node_cpu_guest_seconds_total", &extra, Model::Const(0.0)));
            }
            for (name, rate) in [
                ("node_schedstat_running_seconds_total", 0.3),
                ("node_schedstat_waiting_seconds_total", 0.02),
            ] {
                let m = Model::Nano { ns: r.below(1 << 50), rate };
                ids.push(self.add(b, name, &[("cpu", cpu.to_string())], m));
            }
            let m = Model::Int { v: r.below(1 << 30), per_s: 400.0, walk: 0.0 };
            ids.push(self.add(b, "node_schedstat_timeslices_total", &[("cpu", cpu.to_string())], m));
            for (name, per_s, sparse) in [
                ("node_softnet_processed_total", 80.0, false),
                ("node_softnet_dropped_total", 0.0, true),
                ("node_softnet_times_squeezed_total", 0.0, true),
            ] {
                let m = if sparse {
                    Model::Sparse { v: r.below(20), p: 0.001, max_step: 2 }
                } else {
                    Model::Int { v: r.below(1 << 28), per_s, walk: 0.0 }
                };
                ids.push(self.add(b, name, &[("cpu", cpu.to_string())], m));
            }
        }
        // /proc/meminfo, in KiB exposed as bytes.
        let total_kib: i64 = 32 * 1024 * 1024;
        for (name, frac, moving) in [
            ("MemTotal", 1.0, false),
            ("MemFree", 0.2, true),
            ("MemAvailable", 0.55, true),
            ("Buffers", 0.02, true),
            ("Cached", 0.3, true),
            ("SwapCached", 0.0, false),
            ("Active", 0.3, true),
            ("Inactive", 0.25, true),
            ("Active_anon", 0.2, true),
            ("Inactive_anon", 0.02, true),
            ("Active_file", 0.1, true),
            ("Inactive_file", 0.23, true),
            ("Unevictable", 0.0001, false),
            ("Mlocked", 0.0001, false),
            ("SwapTotal", 0.0, false),
            ("SwapFree", 0.0, false),
            ("Dirty", 0.0002, true),
            ("Writeback", 0.0, false),
            ("AnonPages", 0.21, true),
            ("Mapped", 0.04, true),
            ("Shmem", 0.01, true),
            ("KReclaimable", 0.03, true),
            ("Slab", 0.05, true),
            ("SReclaimable", 0.03, true),
            ("SUnreclaim", 0.02, true),
            ("KernelStack", 0.0005, true),
            ("PageTables", 0.002, true),
            ("NFS_Unstable", 0.0, false),
            ("Bounce", 0.0, false),
            ("WritebackTmp", 0.0, false),
            ("CommitLimit", 0.5, false),
            ("Committed_AS", 0.6, true),
            ("VmallocTotal", 1024.0, false),
            ("VmallocUsed", 0.001, true),
            ("VmallocChunk", 0.0, false),
            ("Percpu", 0.0002, false),
            ("HardwareCorrupted", 0.0, false),
            ("AnonHugePages", 0.01, true),
            ("ShmemHugePages", 0.0, false),
            ("ShmemPmdMapped", 0.0, false),
            ("FileHugePages", 0.0, false),
            ("FilePmdMapped", 0.0, false),
            ("HugePages_Total", 0.0, false),
            ("HugePages_Free", 0.0, false),
            ("Hugepagesize", 0.0000625, false),
            ("DirectMap4k", 0.01, false),
            ("DirectMap2M", 0.7, false),
        ] {
            let kib = (total_kib as f64 * frac) as i64;
            let m = if moving {
                Model::Units {
                    v: kib,
                    lo: kib / 2,
                    hi: kib * 2 + 1,
                    step: (kib / 200).max(4),
                    p: 0.9,
                    unit: 1024.0,
                }
            } else {
                Model::Const(kib as f64 * 1024.0)
            };
            ids.push(self.add(b, &format!("node_memory_{name}_bytes"), &[], m));
        }
        // Network devices.
        for (dev, per_s) in
            [("cni0", 200_000.0), ("eth0", 400_000.0), ("flannel.1", 20_000.0), ("lo", 50_000.0)]
        {
            for dir in ["receive", "transmit"] {
                let d = || vec![("device", dev.to_string())];
                let m = Model::Int { v: r.below(1 << 40), per_s, walk: 0.0 };
                ids.push(self.add(b, &format!("node_network_{dir}_bytes_total"), &d(), m));
                let m = Model::Int { v: r.below(1 << 32), per_s: per_s / 900.0, walk: 0.0 };
                ids.push(self.add(b, &format!("node_network_{dir}_packets_total"), &d(), m));
                for what in ["errs", "drop", "fifo", "compressed"] {
                    let m = Model::Sparse { v: r.below(3), p: 0.0005, max_step: 1 };
                    ids.push(self.add(b, &format!("node_network_{dir}_{what}_total"), &d(), m));
                }
            }
            for (name, v) in [
                ("node_network_up", 1.0),
                ("node_network_mtu_bytes", if dev == "lo" { 65_536.0 } else { 1_500.0 }),
                ("node_network_carrier", 1.0),
                ("node_network_transmit_queue_length", 1_000.0),
                ("node_network_flags", 4_099.0),
                ("node_network_iface_id", r.below(40) as f64),
                ("node_network_protocol_type", if dev == "lo" { 772.0 } else { 1.0 }),
            ] {
                ids.push(self.add(b, name, &[("device", dev.to_string())], Model::Const(v)));
            }
        }
        // Block devices.
        for dev in ["vda", "vdb"] {
            let d = || vec![("device", dev.to_string())];
            for (name, m) in [
                (
                    "node_disk_reads_completed_total",
                    Model::Int { v: r.below(1 << 24), per_s: 5.0, walk: 0.0 },
                ),
                ("node_disk_reads_merged_total", Model::Int { v: r.below(1 << 20), per_s: 0.5, walk: 0.0 }),
                (
                    "node_disk_read_bytes_total",
                    Model::Int { v: r.below(1 << 36) * 512, per_s: 80_000.0, walk: 0.0 },
                ),
                (
                    "node_disk_read_time_seconds_total",
                    Model::Int { v: r.below(1 << 20), per_s: 0.01, walk: 0.0 },
                ),
                (
                    "node_disk_writes_completed_total",
                    Model::Int { v: r.below(1 << 26), per_s: 40.0, walk: 0.0 },
                ),
                ("node_disk_writes_merged_total", Model::Int { v: r.below(1 << 24), per_s: 20.0, walk: 0.0 }),
                (
                    "node_disk_written_bytes_total",
                    Model::Int { v: r.below(1 << 38) * 512, per_s: 600_000.0, walk: 0.0 },
                ),
                (
                    "node_disk_write_time_seconds_total",
                    Model::Micro { usec: r.below(1 << 40), rate: 0.02, walk: 0.0 },
                ),
                ("node_disk_io_now", Model::Units { v: 0, lo: 0, hi: 4, step: 1, p: 0.2, unit: 1.0 }),
                (
                    "node_disk_io_time_seconds_total",
                    Model::Micro { usec: r.below(1 << 40), rate: 0.03, walk: 0.0 },
                ),
                (
                    "node_disk_io_time_weighted_seconds_total",
                    Model::Micro { usec: r.below(1 << 40), rate: 0.04, walk: 0.0 },
                ),
                (
                    "node_disk_discards_completed_total",
                    Model::Sparse { v: r.below(1000), p: 0.01, max_step: 3 },
                ),
                ("node_disk_discards_merged_total", Model::Const(0.0)),
                (
                    "node_disk_discarded_sectors_total",
                    Model::Sparse { v: r.below(1 << 20), p: 0.01, max_step: 4096 },
                ),
                (
                    "node_disk_discard_time_seconds_total",
                    Model::Sparse { v: r.below(1000), p: 0.01, max_step: 2 },
                ),
                ("node_disk_flush_requests_total", Model::Int { v: r.below(1 << 20), per_s: 2.0, walk: 0.0 }),
                (
                    "node_disk_flush_requests_time_seconds_total",
                    Model::Sparse { v: r.below(100), p: 0.02, max_step: 1 },
                ),
            ] {
                ids.push(self.add(b, name, &d(), m));
            }
        }
        // Filesystems.
        for (device, fstype, mount, size_gib) in [
            ("/dev/vda1", "ext4", "/", 100i64),
            ("/dev/vda15", "vfat", "/boot/efi", 0),
            ("/dev/vdb", "xfs", "/var/lib/containerd", 200),
            ("tmpfs", "tmpfs", "/run", 3),
            ("tmpfs", "tmpfs", "/run/lock", 0),
            ("shm", "tmpfs", "/dev/shm", 16),
        ] {
            let extra = vec![("device", s(device)), ("fstype", s(fstype)), ("mountpoint", s(mount))];
            let blocks = (size_gib.max(1) << 30) / 4096;
            let free = blocks / 2;
            let moving = Model::Units { v: free, lo: free / 2, hi: blocks, step: 64, p: 0.5, unit: 4096.0 };
            ids.push(self.add(b, "node_filesystem_avail_bytes", &extra, moving.clone()));
            ids.push(self.add(b, "node_filesystem_free_bytes", &extra, moving));
            ids.push(self.add(b, "node_filesystem_size_bytes", &extra, Model::Const(blocks as f64 * 4096.0)));
            let files = blocks / 4;
            let m = Model::Units { v: files / 2, lo: 0, hi: files, step: 20, p: 0.3, unit: 1.0 };
            ids.push(self.add(b, "node_filesystem_files_free", &extra, m));
            ids.push(self.add(b, "node_filesystem_files", &extra, Model::Const(files as f64)));
            ids.push(self.add(b, "node_filesystem_readonly", &extra, Model::Const(0.0)));
            ids.push(self.add(b, "node_filesystem_device_error", &extra, Model::Const(0.0)));
        }
        for name in ["node_load1", "node_load5", "node_load15"] {
            ids.push(self.add(b, name, &[], Model::Load { v: 0.8, target: 0.8 }));
        }
        for (name, per_s) in [
            ("node_context_switches_total", 9_000.0),
            ("node_intr_total", 6_000.0),
            ("node_forks_total", 12.0),
            ("node_vmstat_pgfault", 20_000.0),
            ("node_vmstat_pgmajfault", 0.2),
            ("node_vmstat_pgpgin", 80.0),
            ("node_vmstat_pgpgout", 600.0),
            ("node_vmstat_pswpin", 0.0),
            ("node_vmstat_pswpout", 0.0),
            ("node_vmstat_oom_kill", 0.0),
            ("node_netstat_Tcp_ActiveOpens", 15.0),
            ("node_netstat_Tcp_PassiveOpens", 12.0),
            ("node_netstat_Tcp_InSegs", 900.0),
            ("node_netstat_Tcp_OutSegs", 950.0),
            ("node_netstat_Tcp_RetransSegs", 0.3),
            ("node_netstat_Tcp_InErrs", 0.0),
            ("node_netstat_Tcp_OutRsts", 2.0),
            ("node_netstat_Udp_InDatagrams", 60.0),
            ("node_netstat_Udp_OutDatagrams", 60.0),
            ("node_netstat_Udp_InErrors", 0.0),
            ("node_netstat_Udp_NoPorts", 0.05),
            ("node_netstat_Icmp_InMsgs", 0.01),
            ("node_netstat_Icmp_OutMsgs", 0.01),
            ("node_netstat_Ip_Forwarding", 0.0),
            ("node_netstat_IpExt_InOctets", 400_000.0),
            ("node_netstat_IpExt_OutOctets", 420_000.0),
            ("node_netstat_TcpExt_ListenDrops", 0.0),
            ("node_netstat_TcpExt_ListenOverflows", 0.0),
            ("node_netstat_TcpExt_SyncookiesSent", 0.0),
            ("node_netstat_TcpExt_TCPTimeouts", 0.05),
        ] {
            let m = if per_s == 0.0 {
                Model::Const(if name.ends_with("Forwarding") { 1.0 } else { 0.0 })
            } else if per_s < 1.0 {
                Model::Sparse { v: r.below(10_000), p: per_s, max_step: 3 }
            } else {
                Model::Int { v: r.below(1 << 34), per_s, walk: 0.0 }
            };
            ids.push(self.add(b, name, &[], m));
        }
        for (name, v, step) in [
            ("node_sockstat_sockets_used", 900, 8),
            ("node_sockstat_TCP_alloc", 300, 5),
            ("node_sockstat_TCP_inuse", 120, 3),
            ("node_sockstat_TCP_orphan", 0, 1),
            ("node_sockstat_TCP_tw", 60, 6),
            ("node_sockstat_TCP_mem", 40, 3),
            ("node_sockstat_TCP_mem_bytes", 40 * 4096, 4096 * 3),
            ("node_sockstat_UDP_inuse", 8, 1),
            ("node_sockstat_UDP_mem", 4, 1),
            ("node_sockstat_UDP_mem_bytes", 4 * 4096, 4096),
            ("node_sockstat_TCP6_inuse", 30, 2),
            ("node_sockstat_UDP6_inuse", 2, 1),
            ("node_procs_running", 3, 2),
            ("node_procs_blocked", 0, 1),
            ("node_entropy_available_bits", 256, 0),
            ("node_filefd_allocated", 9_000, 20),
            ("node_nf_conntrack_entries", 2_000, 30),
            ("node_processes_threads", 1_400, 10),
            ("node_processes_pids", 600, 5),
        ] {
            let m = Model::Units { v, lo: 0, hi: v * 3 + 5, step, p: 0.6, unit: 1.0 };
            ids.push(self.add(b, name, &[], m));
        }
        for (name, v) in [
            ("node_boot_time_seconds", 1_795_000_123.0),
            ("node_filefd_maximum", 9_223_372_036_854_775_807.0),
            ("node_nf_conntrack_entries_limit", 262_144.0),
            ("node_entropy_pool_size_bits", 256.0),
            ("node_processes_max_processes", 4_194_304.0),
            ("node_processes_max_threads", 255_426.0),
            ("process_max_fds", 1_048_576.0),
            ("process_start_time_seconds", 1_795_000_187.69),
            ("process_virtual_memory_max_bytes", 18_446_744_073_709_552_000.0),
            ("node_textfile_scrape_error", 0.0),
        ] {
            ids.push(self.add(b, name, &[], Model::Const(v)));
        }
        let uname = [
            ("domainname", s("(none)")),
            ("machine", s("x86_64")),
            ("nodename", s(NODE)),
            ("release", s("6.1.0-28-cloud-amd64")),
            ("sysname", s("Linux")),
            ("version", s("#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)")),
        ];
        ids.push(self.add(b, "node_uname_info", &uname, Model::Const(1.0)));
        let os = [
            ("id", s("debian")),
            ("name", s("Debian GNU/Linux")),
            ("pretty_name", s("Debian GNU/Linux 12 (bookworm)")),
            ("version", s("12 (bookworm)")),
            ("version_id", s("12")),
        ];
        ids.push(self.add(b, "node_os_info", &os, Model::Const(1.0)));
        ids.push(self.add(b, "node_time_seconds", &[], Model::TimeNow));
        for name in ["node_pressure_cpu_waiting_seconds_total", "node_pressure_io_waiting_seconds_total"] {
            ids.push(self.add(b, name, &[], Model::Micro { usec: r.below(1 << 36), rate: 0.01, walk: 0.0 }));
        }
        for name in ["node_pressure_io_stalled_seconds_total", "node_pressure_memory_waiting_seconds_total"] {
            ids.push(self.add(
                b,
                name,
                &[],
                Model::Micro { usec: r.below(1 << 30), rate: 0.0005, walk: 0.0 },
            ));
        }
        ids.push(self.add(b, "node_pressure_memory_stalled_seconds_total", &[], Model::Const(0.0)));
        // node_exporter's own collectors and Go runtime.
        for collector in [
            "arp",
            "bcache",
            "bonding",
            "btrfs",
            "conntrack",
            "cpu",
            "cpufreq",
            "diskstats",
            "dmi",
            "edac",
            "entropy",
            "fibrechannel",
            "filefd",
            "filesystem",
            "hwmon",
            "infiniband",
            "ipvs",
            "loadavg",
            "mdadm",
            "meminfo",
            "netclass",
            "netdev",
            "netstat",
            "nfs",
            "nfsd",
            "nvme",
            "os",
            "powersupplyclass",
            "pressure",
            "rapl",
            "schedstat",
            "selinux",
            "sockstat",
            "softnet",
            "stat",
            "tapestats",
            "textfile",
            "thermal_zone",
            "time",
            "timex",
            "udp_queues",
            "uname",
            "vmstat",
            "xfs",
            "zfs",
        ] {
            let extra = [("collector", s(collector))];
            let mean = 0.000_2 + r.f64() * 0.01;
            ids.push(self.add(
                b,
                "node_scrape_collector_duration_seconds",
                &extra,
                Model::Duration { mean, rel: 0.3 },
            ));
            ids.push(self.add(b, "node_scrape_collector_success", &extra, Model::Const(1.0)));
        }
        for q in ["0", "0.25", "0.5", "0.75", "1"] {
            let mean = 0.000_02 * (1.0 + 4.0 * r.f64());
            let extra = [("quantile", s(q))];
            let m = Model::Pause { ns: 0, mean, rel: 0.2, p: 0.2 };
            ids.push(self.add(b, "go_gc_duration_seconds", &extra, m));
        }
        ids.push(self.add(
            b,
            "go_gc_duration_seconds_sum",
            &[],
            Model::Micro { usec: r.below(1 << 24), rate: 0.000_01, walk: 0.0 },
        ));
        ids.push(self.add(
            b,
            "go_gc_duration_seconds_count",
            &[],
            Model::Int { v: r.below(1 << 16), per_s: 0.1, walk: 0.0 },
        ));
        ids.push(self.add(
            b,
            "go_goroutines",
            &[],
            Model::Units { v: 9, lo: 7, hi: 14, step: 1, p: 0.3, unit: 1.0 },
        ));
        ids.push(self.add(b, "go_threads", &[], Model::Const(9.0)));
        ids.push(self.add(b, "go_memstats_last_gc_time_seconds", &[], Model::LastGc { ns: 0, p: 0.2 }));
        for (name, v, p) in [
            ("go_memstats_alloc_bytes", 3_000_000, 0.99),
            ("go_memstats_heap_alloc_bytes", 3_000_000, 0.99),
            ("go_memstats_heap_idle_bytes", 4_000_000, 0.3),
            ("go_memstats_heap_inuse_bytes", 5_000_000, 0.5),
            ("go_memstats_heap_objects", 20_000, 0.99),
            ("go_memstats_heap_released_bytes", 3_000_000, 0.2),
            ("go_memstats_heap_sys_bytes", 11_000_000, 0.05),
            ("go_memstats_stack_inuse_bytes", 700_000, 0.1),
            ("go_memstats_sys_bytes", 20_000_000, 0.05),
            ("go_memstats_next_gc_bytes", 4_500_000, 0.1),
        ] {
            let m = Model::Units { v, lo: v / 2, hi: v * 2, step: v / 20, p, unit: 1.0 };
            ids.push(self.add(b, name, &[], m));
        }
        for (name, per_s) in [
            ("go_memstats_alloc_bytes_total", 200_000.0),
            ("go_memstats_mallocs_total", 2_000.0),
            ("go_memstats_frees_total", 1_990.0),
        ] {
            ids.push(self.add(b, name, &[], Model::Int { v: r.below(1 << 36), per_s, walk: 0.0 }));
        }
        ids.push(self.add(
            b,
            "process_cpu_seconds_total",
            &[],
            Model::Centi { ticks: r.below(1 << 20), rate: 0.01, walk: 0.0 },
        ));
        ids.push(self.add(
            b,
            "process_open_fds",
            &[],
            Model::Units { v: 10, lo: 8, hi: 14, step: 1, p: 0.2, unit: 1.0 },
        ));
        let m = Model::Units { v: 5_000, lo: 4_000, hi: 7_000, step: 10, p: 0.5, unit: 4096.0 };
        ids.push(self.add(b, "process_resident_memory_bytes", &[], m));
        let m = Model::Units { v: 180_000, lo: 170_000, hi: 200_000, step: 30, p: 0.1, unit: 4096.0 };
        ids.push(self.add(b, "process_virtual_memory_bytes", &[], m));
        for (code, per_s) in [("200", 1.0 / 15.0), ("500", 0.0), ("503", 0.0)] {
            let m = if per_s == 0.0 {
                Model::Const(0.0)
            } else {
                Model::Sparse { v: r.below(100_000), p: 1.0, max_step: 1 }
            };
            ids.push(self.add(b, "promhttp_metric_handler_requests_total", &[("code", s(code))], m));
        }
        ids.push(self.add(b, "promhttp_metric_handler_requests_in_flight", &[], Model::Const(1.0)));
        self.node_series = ids;
    }

    fn cadvisor_base(&self) -> Vec<(&'static str, String)> {
        vec![
            ("endpoint", "https-metrics".into()),
            ("instance", format!("{NODE_IP}:10250")),
            ("job", "kubelet".into()),
            ("metrics_path", "/metrics/cadvisor".into()),
            ("node", NODE.into()),
            ("service", "kubelet".into()),
        ]
    }

    /// Cgroups outside pods that the kubelet's cAdvisor reports (`/`, system slices).
    fn add_system_cgroups(&mut self) {
        let mut ids = Vec::new();
        let mut r = Rng::fork(self.cfg.seed, 3);
        for (id, cpu, pages) in [
            ("/", 1.2, 2_000_000i64),
            ("/kubepods.slice", 1.0, 1_500_000),
            ("/kubepods.slice/kubepods-besteffort.slice", 0.02, 40_000),
            ("/kubepods.slice/kubepods-burstable.slice", 0.9, 1_300_000),
            ("/system.slice", 0.15, 300_000),
            ("/system.slice/containerd.service", 0.05, 60_000),
            ("/system.slice/kubelet.service", 0.06, 30_000),
            ("/system.slice/systemd-journald.service", 0.002, 8_000),
            ("/system.slice/ssh.service", 0.0, 2_000),
            ("/user.slice", 0.001, 5_000),
        ] {
            let mut base = self.cadvisor_base();
            base.push(("id", id.to_string()));
            self.add_container_series(&mut ids, &mut r, &base, cpu, pages, None, true);
        }
        self.cadvisor_static = ids;
    }

    /// The cAdvisor series of one cgroup. `limit_pages` is the memory limit (None: unlimited).
    #[allow(clippy::too_many_arguments)]
    fn add_container_series(
        &mut self,
        ids: &mut Vec<SeriesId>,
        r: &mut Rng,
        base: &[(&str, String)],
        cpu: f64,
        pages: i64,
        limit_pages: Option<i64>,
        network: bool,
    ) {
        let micro = |r: &mut Rng, rate: f64| Model::Micro { usec: r.below(1 << 30), rate, walk: 0.0 };
        let gauge = |v: i64, p: f64| Model::Units {
            v,
            lo: v / 2,
            hi: v.saturating_mul(2).max(1),
            step: (v / 300).max(1),
            p,
            unit: 4096.0,
        };
        let cpu_total = [("cpu", "total".to_string())];
        ids.push(self.add(base, "container_cpu_usage_seconds_total", &cpu_total, micro(r, cpu)));
        ids.push(self.add(base, "container_cpu_user_seconds_total", &[], micro(r, cpu * 0.75)));
        ids.push(self.add(base, "container_cpu_system_seconds_total", &[], micro(r, cpu * 0.25)));
        ids.push(self.add(base, "container_cpu_load_average_10s", &[], Model::Const(0.0)));
        if let Some(limit) = limit_pages {
            let periods = Model::Int { v: r.below(1 << 24), per_s: 10.0, walk: 0.0 };
            ids.push(self.add(base, "container_cpu_cfs_periods_total", &[], periods));
            let m = Model::Sparse { v: r.below(1_000), p: 0.02, max_step: 5 };
            ids.push(self.add(base, "container_cpu_cfs_throttled_periods_total", &[], m));
            let m = Model::Sparse { v: r.below(1 << 26), p: 0.02, max_step: 400_000 };
            ids.push(self.add(base, "container_cpu_cfs_throttled_seconds_total", &[], m));
            let quota = ((cpu * 4.0).max(0.1) * 100_000.0).round();
            ids.push(self.add(base, "container_spec_cpu_quota", &[], Model::Const(quota)));
            ids.push(self.add(base, "container_spec_cpu_period", &[], Model::Const(100_000.0)));
            ids.push(self.add(
                base,
                "container_spec_memory_limit_bytes",
                &[],
                Model::Const(limit as f64 * 4096.0),
            ));
        }
        let shares = ((cpu * 2.0).max(0.002) * 1024.0).round();
        ids.push(self.add(base, "container_spec_cpu_shares", &[], Model::Const(shares)));
        ids.push(self.add(base, "container_spec_memory_reservation_limit_bytes", &[], Model::Const(0.0)));
        ids.push(self.add(base, "container_spec_memory_swap_limit_bytes", &[], Model::Const(0.0)));
        let start = (1_795_000_000 + r.below(700_000)) as f64;
        ids.push(self.add(base, "container_start_time_seconds", &[], Model::Const(start)));
        ids.push(self.add(base, "container_last_seen", &[], Model::LastSeen));
        ids.push(self.add(base, "container_memory_usage_bytes", &[], gauge(pages + pages / 3, 0.9)));
        ids.push(self.add(base, "container_memory_working_set_bytes", &[], gauge(pages, 0.9)));
        ids.push(self.add(base, "container_memory_rss", &[], gauge(pages * 4 / 5, 0.8)));
        ids.push(self.add(base, "container_memory_cache", &[], gauge(pages / 3, 0.5)));
        ids.push(self.add(base, "container_memory_mapped_file", &[], gauge(pages / 20, 0.1)));
        ids.push(self.add(base, "container_memory_kernel_usage", &[], gauge(pages / 50, 0.3)));
        ids.push(self.add(base, "container_memory_swap", &[], Model::Const(0.0)));
        ids.push(self.add(base, "container_memory_failcnt", &[], Model::Const(0.0)));
        ids.push(self.add(base, "container_oom_events_total", &[], Model::Const(0.0)));
        for (ft, scope, per_s) in [
            ("pgfault", "container", 30.0 * cpu.max(0.01) * 100.0),
            ("pgfault", "hierarchy", 30.0 * cpu.max(0.01) * 100.0),
            ("pgmajfault", "container", 0.0),
            ("pgmajfault", "hierarchy", 0.0),
        ] {
            let extra = [("failure_type", ft.to_string()), ("scope", scope.to_string())];
            let m = if per_s == 0.0 {
                Model::Sparse { v: r.below(50), p: 0.001, max_step: 2 }
            } else {
                Model::Int { v: r.below(1 << 24), per_s, walk: 0.0 }
            };
            ids.push(self.add(base, "container_memory_failures_total", &extra, m));
        }
        let procs = (1 + r.below(6)) as i64;
        let m = Model::Units { v: procs, lo: 1, hi: procs + 3, step: 1, p: 0.01, unit: 1.0 };
        ids.push(self.add(base, "container_processes", &[], m));
        let threads = procs * (2 + r.below(30) as i64);
        let m = Model::Units { v: threads, lo: 1, hi: threads * 2, step: 1, p: 0.05, unit: 1.0 };
        ids.push(self.add(base, "container_threads", &[], m));
        ids.push(self.add(base, "container_threads_max", &[], Model::Const(0.0)));
        let m = Model::Units { v: threads, lo: 3, hi: threads * 3 + 3, step: 2, p: 0.05, unit: 1.0 };
        ids.push(self.add(base, "container_file_descriptors", &[], m));
        let m = Model::Units { v: procs * 2, lo: 0, hi: procs * 8, step: 1, p: 0.05, unit: 1.0 };
        ids.push(self.add(base, "container_sockets", &[], m));
        let dev = [("device", "/dev/vdb".to_string())];
        for (name, per_s) in [
            ("container_fs_reads_bytes_total", 300.0 * cpu),
            ("container_fs_writes_bytes_total", 6_000.0 * cpu),
            ("container_fs_reads_total", 0.05 * cpu),
            ("container_fs_writes_total", 1.5 * cpu),
        ] {
            let m = if per_s < 1.0 {
                Model::Sparse { v: r.below(1 << 12), p: (per_s * 15.0).min(1.0), max_step: 4 }
            } else {
                // Block I/O is counted in whole 4 KiB blocks for most filesystems.
                Model::Int { v: r.below(1 << 20) * 4096, per_s, walk: 0.0 }
            };
            ids.push(self.add(base, name, &dev, m));
        }
        if network {
            let eth0 = [("interface", "eth0".to_string())];
            let bps = 20_000.0 * cpu.max(0.005) * 10.0;
            for (name, per_s) in [
                ("container_network_receive_bytes_total", bps),
                ("container_network_transmit_bytes_total", bps * 0.8),
                ("container_network_receive_packets_total", bps / 700.0),
                ("container_network_transmit_packets_total", bps / 800.0),
            ] {
                ids.push(self.add(base, name, &eth0, Model::Int { v: r.below(1 << 30), per_s, walk: 0.0 }));
            }
            for name in [
                "container_network_receive_errors_total",
                "container_network_transmit_errors_total",
                "container_network_receive_packets_dropped_total",
                "container_network_transmit_packets_dropped_total",
            ] {
                ids.push(self.add(base, name, &eth0, Model::Sparse { v: 0, p: 0.0003, max_step: 1 }));
            }
        }
    }

    fn add_pod(&mut self, app_idx: usize) {
        let Some(app) = APPS.get(app_idx) else { return };
        self.pod_serial += 1;
        let mut r = Rng::fork(self.cfg.seed, 0x5000_0000 + self.pod_serial);
        let ordinal = self.pods.iter().filter(|p| p.app == app_idx).count();
        let name = match app.kind {
            PodKind::DaemonSet => format!("{}-{}", app.name, r.k8s_suffix(5)),
            PodKind::Deployment => format!("{}-{}-{}", app.name, r.k8s_suffix(10), r.k8s_suffix(5)),
            PodKind::StatefulSet => format!("{}-{}", app.name, ordinal),
        };
        let uid = format!("{}_{}_{}_{}_{}", r.hex(8), r.hex(4), r.hex(4), r.hex(4), r.hex(12));
        // Guaranteed pods sit directly under kubepods.slice; the others under their QoS class.
        let pod_slice = match app.kind {
            PodKind::StatefulSet => format!("/kubepods.slice/kubepods-pod{uid}.slice"),
            _ => format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"),
        };
        let mut ids = Vec::new();
        // The pod-level cgroup: no container, image or name; carries the pod's network.
        let mut base = self.cadvisor_base();
        base.push(("id", pod_slice.clone()));
        base.push(("namespace", app.namespace.to_string()));
        base.push(("pod", name.clone()));
        let total_cpu: f64 = app.containers.iter().map(|c| c.2).sum();
        let total_pages: i64 = app.containers.iter().map(|c| c.3).sum();
        self.add_container_series(&mut ids, &mut r, &base, total_cpu, total_pages, None, true);
        // The sandbox (pause) container.
        let sandbox = r.hex(64);
        let mut base = self.cadvisor_base();
        base.push(("id", format!("{pod_slice}/cri-containerd-{sandbox}.scope")));
        base.push(("image", "registry.k8s.io/pause:3.10".to_string()));
        base.push(("name", sandbox));
        base.push(("namespace", app.namespace.to_string()));
        base.push(("pod", name.clone()));
        self.add_container_series(&mut ids, &mut r, &base, 0.0, 60, None, false);
        for &(container, image, cpu, pages) in app.containers {
            let cid = r.hex(64);
            let mut base = self.cadvisor_base();
            base.push(("container", container.to_string()));
            base.push(("id", format!("{pod_slice}/cri-containerd-{cid}.scope")));
            base.push(("image", image.to_string()));
            base.push(("name", cid));
            base.push(("namespace", app.namespace.to_string()));
            base.push(("pod", name.clone()));
            let cpu = cpu * (0.5 + r.f64());
            let pages = (pages as f64 * (0.5 + r.f64())) as i64;
            self.add_container_series(&mut ids, &mut r, &base, cpu, pages, Some(pages * 2), false);
        }
        self.pods.push(Pod { app: app_idx, series: ids });
    }

    /// Replaces one Deployment pod: its series end with a staleness marker at the next scrape
    /// and a new pod of the same app starts.
    fn churn(&mut self) {
        let candidates: Vec<usize> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| APPS.get(p.app).is_some_and(|a| a.kind == PodKind::Deployment))
            .map(|(i, _)| i)
            .collect();
        let Some(&victim) = self.rng.pick(&candidates) else { return };
        let old = self.pods.remove(victim);
        for id in &old.series {
            if let Some(s) = self.states.get_mut(*id as usize) {
                s.ending = true;
            }
        }
        self.ending.extend(old.series);
        self.add_pod(old.app);
    }

    /// The ideal (unjittered) time of scrape `k` of `target`.
    fn ideal(&self, target: usize, k: i64) -> i64 {
        self.cfg.start_ms
            + self.offsets.get(target).copied().unwrap_or(0) % self.cfg.interval_ms.max(1)
            + k * self.cfg.interval_ms
    }
}

impl Iterator for Workload {
    type Item = Scrape;

    fn next(&mut self) -> Option<Scrape> {
        let end = self.cfg.start_ms + self.cfg.duration_ms;
        let (ti, k) = {
            let a = self.ideal(0, self.next_k[0]);
            let b = self.ideal(1, self.next_k[1]);
            if a <= b { (0usize, self.next_k[0]) } else { (1usize, self.next_k[1]) }
        };
        let ideal = self.ideal(ti, k);
        if ideal >= end {
            return None;
        }
        if let Some(n) = self.next_k.get_mut(ti) {
            *n += 1;
        }
        let jitter = self.rng.range_i64(-self.cfg.jitter_ms, self.cfg.jitter_ms);
        self.scrapes += 1;
        let t = ideal + jitter;
        let dt_s = self.cfg.interval_ms as f64 / 1000.0;
        let target = if ti == 0 { Target::NodeExporter } else { Target::Cadvisor };
        let ids: Vec<SeriesId> = match target {
            Target::NodeExporter | Target::Other => self.node_series.clone(),
            Target::Cadvisor => {
                if self.replace_p > 0.0 {
                    // More than one replacement per scrape is possible at high churn.
                    let mut p = self.replace_p;
                    while p > 0.0 {
                        if self.rng.chance(p.min(1.0)) {
                            self.churn();
                        }
                        p -= 1.0;
                    }
                }
                let mut v = self.cadvisor_static.clone();
                v.append(&mut self.ending);
                v.extend(self.pods.iter().flat_map(|p| p.series.iter().copied()));
                v
            }
        };
        let mut samples = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(s) = self.states.get_mut(id as usize) else { continue };
            if !s.active {
                continue;
            }
            if s.ending {
                s.active = false;
                samples.push((id, stale_nan()));
                continue;
            }
            let v = s.model.next(&mut s.rng, t, dt_s);
            if let Some(floor) = self.floor.as_mut() {
                if floor.len() <= id as usize {
                    floor.resize(id as usize + 1, (0, 0.0));
                }
                if let Some(f) = floor.get_mut(id as usize) {
                    f.0 += 1;
                    f.1 += s.model.floor_bits(t, dt_s);
                }
            }
            samples.push((id, v));
        }
        Some(Scrape { target, t, samples })
    }
}

/// Figures of a workload, from running it once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Distinct series over the whole run.
    pub series_created: usize,
    /// Active series at the start.
    pub active_at_start: usize,
    /// Samples, staleness markers included.
    pub samples: u64,
    /// Mean of `len(name) + len(value)` summed over a series' labels (`__name__` included).
    pub label_bytes_per_series: f64,
}

/// Runs the workload of `cfg` once and measures it.
pub fn stats(cfg: &Config) -> Stats {
    let mut w = Workload::new(cfg.clone());
    let active_at_start = w.active_series();
    let mut samples = 0u64;
    for s in w.by_ref() {
        samples += s.samples.len() as u64;
    }
    let total: usize =
        w.labels.iter().map(|l| l.iter().map(|l| l.name.len() + l.value.len()).sum::<usize>()).sum();
    Stats {
        series_created: w.series_created(),
        active_at_start,
        samples,
        label_bytes_per_series: total as f64 / w.series_created().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small() -> Config {
        Config { series: 2_500, duration_ms: 3 * 3_600_000, churn_per_day: 4.0, ..Config::default() }
    }

    #[test]
    fn entropy_of_the_generators_draws() {
        // The sum of four uniforms has a little less entropy than a Gaussian (2.047 bits).
        let h = entropy::normal_differential_bits();
        assert!((2.0..2.047).contains(&h), "{h}");
        // Large deviations: differential entropy plus log2 of the deviation, from either side
        // of the switch to the formula.
        assert!((entropy::rounded(1e6, 7.9) - (h + 7.9f64.log2())).abs() < 0.01);
        assert!((entropy::rounded(1e6, 1000.0) - (h + 1000f64.log2())).abs() < 1e-9);
        // No spread, no entropy; a tiny one, almost none.
        assert_eq!(entropy::rounded(5.0, 0.0), 0.0);
        assert!(entropy::rounded(5.0, 0.05) < 0.01);
        assert_eq!(entropy::binary(0.5), 1.0);
        assert_eq!(entropy::binary(0.0), 0.0);
        // f64 steps near the epoch seconds of 2026: 2^-22 s.
        assert!((entropy::ulp_ns(1.79e9) - 238.4).abs() < 0.1);
    }

    #[test]
    fn the_floor_is_counted_per_kind_when_asked() {
        let cfg = Config { series: 300, duration_ms: 600_000, ..Config::default() };
        let mut w = Workload::new(cfg.clone()).track_floor();
        let samples: usize = w.by_ref().map(|s| s.samples.len()).sum();
        let by = w.floor_by_kind();
        let counted: u64 = by.values().map(|k| k.samples).sum();
        assert_eq!(counted as usize, samples);
        assert!(by["Int"].bits > 0.0 && by["Const"].bits == 0.0);
        let mut off = Workload::new(cfg);
        off.by_ref().for_each(drop);
        assert!(off.floor_by_kind().values().all(|k| k.samples == 0));
    }

    #[test]
    fn the_same_config_yields_the_same_scrapes() {
        let a: Vec<Scrape> = Workload::new(small()).take(300).collect();
        let b: Vec<Scrape> = Workload::new(small()).take(300).collect();
        assert_eq!(a.len(), 300);
        // PartialEq on f64 would call NaN != NaN; compare bits.
        let bits = |v: &[Scrape]| -> Vec<(i64, Vec<(u32, u64)>)> {
            v.iter().map(|s| (s.t, s.samples.iter().map(|&(i, v)| (i, v.to_bits())).collect())).collect()
        };
        assert_eq!(bits(&a), bits(&b));
    }

    #[test]
    fn the_standard_workload_has_the_shape_anchors_md_describes() {
        let s = stats(&Config { duration_ms: 3_600_000, ..Config::default() });
        assert!((10_000..10_300).contains(&s.active_at_start), "{s:?}");
        assert!((400.0..480.0).contains(&s.label_bytes_per_series), "{s:?}");
    }

    #[test]
    fn scrapes_are_in_time_order_on_a_jittered_15s_grid_per_target() {
        let cfg = small();
        let mut last: HashMap<&'static str, i64> = HashMap::new();
        let mut prev_t = cfg.start_ms - cfg.jitter_ms;
        for s in Workload::new(cfg.clone()) {
            assert!(s.t >= prev_t - 2 * cfg.jitter_ms);
            prev_t = s.t;
            let key = if s.target == Target::Cadvisor { "c" } else { "n" };
            if let Some(l) = last.insert(key, s.t) {
                let d = s.t - l;
                assert!(
                    (cfg.interval_ms - 2 * cfg.jitter_ms..=cfg.interval_ms + 2 * cfg.jitter_ms).contains(&d),
                    "{d}"
                );
            }
        }
    }

    #[test]
    fn values_look_like_what_exporters_expose() {
        let mut w = Workload::new(small());
        let mut per_series: HashMap<SeriesId, Vec<f64>> = HashMap::new();
        let mut stale = 0;
        for s in w.by_ref() {
            for (id, v) in s.samples {
                if kahu_tsdb::model::is_stale_nan(v) {
                    stale += 1;
                }
                per_series.entry(id).or_default().push(v);
            }
        }
        assert!(stale > 0, "churn must end some series with a staleness marker");
        assert!(w.series_created() > w.active_series(), "churn must create new series");
        let mut checked = [0usize; 3];
        for (id, vals) in &per_series {
            let name = w.labels(*id).and_then(|l| l.metric_name()).unwrap_or("").to_string();
            let vals: Vec<f64> = vals.iter().copied().filter(|v| !v.is_nan()).collect();
            if name == "container_memory_working_set_bytes" {
                assert!(vals.iter().all(|v| v % 4096.0 == 0.0), "{name} in whole pages");
                checked[0] += 1;
            }
            if name == "container_cpu_usage_seconds_total" {
                assert!(vals.windows(2).all(|w| w[1] >= w[0]), "counters never decrease");
                assert!(
                    vals.iter().all(|v| ((v * 1e6).round() / 1e6).to_bits() == v.to_bits()),
                    "microseconds"
                );
                checked[1] += 1;
            }
            if name == "container_spec_memory_limit_bytes" {
                assert!(vals.windows(2).all(|w| w[0] == w[1]), "limits are constant");
                checked[2] += 1;
            }
        }
        assert!(checked.iter().all(|&c| c > 5), "{checked:?}");
    }
}
