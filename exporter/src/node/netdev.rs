//! node_exporter's `netdev` collector: `node_network_*_total{device}` from `<procfs>/net/dev`.

use std::path::PathBuf;

use crate::cgroup::parse;
use crate::collector::{Batch, CollectError, Collector, MetricType};

const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Network interface counters of kahu's network namespace (the host's in a `hostNetwork` DaemonSet).
#[derive(Debug)]
pub struct NetdevCollector {
    path: PathBuf,
}

impl NetdevCollector {
    /// Reads `<procfs>/net/dev`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        NetdevCollector { path: procfs.into().join("net/dev") }
    }
}

impl Collector for NetdevCollector {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| CollectError::read(&self.path, e))?;
        let devs = parse::net_dev(&text);
        for (i, field) in FIELDS.iter().enumerate() {
            let fam = batch.family(
                &format!("node_network_{field}_total"),
                format!("Network device statistic {field}."),
                MetricType::Counter,
            );
            for d in &devs {
                fam.sample([("device", d.name.as_str())], d.counters.get(i).copied().unwrap_or(0) as f64);
            }
        }
        Ok(())
    }
}
