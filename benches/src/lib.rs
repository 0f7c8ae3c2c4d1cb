//! Workloads and tools shared by kahu's benchmarks and side-by-side peer comparisons.
//!
//! - [`workload`]: the standard Kubernetes-node workload (cAdvisor + node_exporter series as
//!   kube-prometheus labels them, pod churn, 15 s scrapes with jitter), deterministic per seed.
//! - [`remote_write`]: pushes a workload into any Prometheus remote-write 1.0 receiver, so kahu,
//!   Prometheus and VictoriaMetrics receive byte-identical requests.
//! - [`capture`]: real exposition scraped from this machine over time, stored compactly, and read
//!   back as samples (the canned datasets under `tsdb/testdata/`).
//!
//! - [`compress`]: kahu's bytes per sample on a source, as 2 h blocks and as one compacted block.
//!
//! The `kahu-workload` binary wraps them: `stats`, `push`, `capture`, `pack`, `blocks`.

pub mod capture;
pub mod compress;
pub mod remote_write;
pub mod rng;
pub mod workload;
