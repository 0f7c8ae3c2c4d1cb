//! kahu-exporter: reads the host (cgroups, `/proc`, the container runtime) and names what it reads
//! the way cAdvisor and node_exporter do.
//!
//! # Overview
//!
//! - [`Collector`] is the boundary: one collector reads one part of the host and adds metric
//!   families to a [`Batch`] for one collection pass.
//! - [`node`] holds node_exporter-compatible collectors (`node_cpu_seconds_total`,
//!   `node_memory_*_bytes`, …).
//! - [`exposition`] encodes a batch as Prometheus text 0.0.4 or OpenMetrics for `/metrics`.
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
//! MeminfoCollector::new("/proc").collect(&mut batch)?;
//! for (labels, value) in batch.series() {
//!     println!("{labels} {value}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod collector;
pub mod exposition;
pub mod node;

pub use collector::{Batch, CollectError, Collector, Family, MetricType};
