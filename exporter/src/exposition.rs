//! Prometheus text 0.0.4 and OpenMetrics 1.0 exposition of a [`Batch`], through `prometheus-client`.

use std::sync::Arc;

use prometheus_client::collector::Collector as PcCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::collector::{Batch, MetricType};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    /// Picks the format from a scrape's `Accept` header, as Prometheus clients negotiate it:
    /// OpenMetrics only when the scraper asks for `application/openmetrics-text`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug)]
struct BatchCollector(Arc<Batch>);

impl PcCollector for BatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for fam in self.0.families() {
            match fam.kind {
                MetricType::Counter => {
                    // prometheus-client appends `_total` to counter names itself.
                    let base = fam.name.strip_suffix("_total").unwrap_or(&fam.name);
                    let mut metric = encoder.encode_descriptor(base, &fam.help, None, PcType::Counter)?;
                    for (labels, v) in &fam.samples {
                        ConstCounter::new(*v).encode(metric.encode_family(labels)?)?;
                    }
                }
                MetricType::Gauge => {
                    let mut metric = encoder.encode_descriptor(&fam.name, &fam.help, None, PcType::Gauge)?;
                    for (labels, v) in &fam.samples {
                        ConstGauge::new(*v).encode(metric.encode_family(labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Encodes `batch` in `format`.
pub fn encode(batch: Arc<Batch>, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BatchCollector(batch)));
    let mut out = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_encode_with_help_and_type() -> Result<(), std::fmt::Error> {
        let mut b = Batch::new();
        b.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", MetricType::Counter)
            .sample([("cpu", "0"), ("mode", "idle")], 12.5);
        b.family("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", MetricType::Gauge)
            .sample::<&str, &str>([], 1024.0);
        let text = encode(Arc::new(b.clone()), Format::Text)?;
        assert_eq!(
            text,
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
             # HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n\
             # TYPE node_memory_MemTotal_bytes gauge\n\
             node_memory_MemTotal_bytes 1024.0\n"
        );
        let om = encode(Arc::new(b), Format::OpenMetrics)?;
        assert!(om.contains("# TYPE node_cpu_seconds counter\n"));
        assert!(om.ends_with("# EOF\n"));
        Ok(())
    }
}
