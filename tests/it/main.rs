//! Integration tests of the `kahu` binary: one test binary (fast to link), one module per area.

// Test code may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod admin_api;
mod api;
mod capture;
mod containerd;
mod deploy;
mod exporter;
mod grafana;
mod harness;
mod promql_vs_prometheus;
mod promqltest;
mod query_cli;
mod remote_write;
mod serve;
mod tsdb_cli;
