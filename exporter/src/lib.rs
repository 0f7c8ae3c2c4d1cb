//! kahu-exporter: reads the host (cgroups, `/proc`, the container runtime) and names what it reads
//! the way cAdvisor and node_exporter do.
//!
//! # Overview
//!
//! - [`Collector`] is the boundary: one collector reads one part of the host and adds metric
//!   [`Family`]s (name, HELP, TYPE, UNIT, samples) to a [`Batch`] for one collection pass.
//! - [`cgroup`] reads every container's cgroup (v1, v2, hybrid) and emits cAdvisor's
//!   `container_*` families; [`runtime`] names containers through the CRI socket.
//! - [`node`] holds node_exporter-compatible collectors (`node_cpu_seconds_total`,
//!   `node_memory_*_bytes`, `node_filesystem_*`, …).
//! - [`pass`] runs the collectors with a per-collector time budget, adds kahu's own `kahu_*` and
//!   `process_*` metrics, and tracks which series disappeared (for stale markers).
//! - [`kubelet`] derives the kubelet's `/metrics/cadvisor` and `/metrics/resource` views.
//! - [`exposition`] encodes a batch as Prometheus text 0.0.4 or OpenMetrics 1.0.
//!
//! The exporter knows nothing of storage: the server turns a batch into appends through
//! `kahu_tsdb::Appender` and keeps it as the snapshot that `/metrics` serves.
//!
//! # Example
//!
//! ```no_run
//! use kahu_exporter::{Batch, Collector, node::MeminfoCollector};
//!
//! let mut batch = Batch::new();
//! MeminfoCollector::new("/proc").collect(&mut batch, 0)?;
//! for (labels, value) in batch.series() {
//!     println!("{labels} {value}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cgroup;
pub mod collector;
pub mod exposition;
pub mod kubelet;
pub mod node;
pub mod pass;
pub mod runtime;
pub mod setup;
pub mod synth;

pub use collector::{Batch, CollectError, Collector, Family, LabelPairs, MetricType, Sample};
