//! Prometheus text 0.0.4 and OpenMetrics 1.0 exposition of a [`Batch`], through `prometheus-client`.
//!
//! By default no sample carries an explicit timestamp: cAdvisor's timestamps defeat Prometheus'
//! staleness handling (a series of an OOM-killed container lingers for 5 minutes), which is why
//! kube-prometheus scrapes with `honorTimestamps: false`. [`Timestamps`] adds them where the
//! kubelet has them (stats samples; not `container_spec_*`, start times or `machine_*`).

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector as PcCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

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

/// Which samples get an explicit timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    /// None (the default: scrapers use their scrape time, and staleness works).
    None,
    /// Samples of stats families get the collection time, in milliseconds since the epoch, as the
    /// kubelet's `/metrics/cadvisor` and `/metrics/resource` do. Spec, start-time and machine
    /// families get none.
    Stats(i64),
}

/// Whether the kubelet timestamps family `name` (a TYPE line's name, `_total` possibly stripped).
fn family_has_timestamp(name: &str) -> bool {
    !(name.starts_with("container_spec_")
        || name.starts_with("container_start_time_seconds")
        || name.starts_with("machine_")
        || name.starts_with("kahu_")
        || name.starts_with("process_"))
}

#[derive(Debug)]
struct BatchCollector(Arc<Batch>);

fn unit_of(u: &str) -> Unit {
    match u {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        "celsius" => Unit::Celsius,
        "ratio" => Unit::Ratios,
        "joules" => Unit::Joules,
        other => Unit::Other(other.to_string()),
    }
}

impl PcCollector for BatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for fam in self.0.families() {
            // prometheus-client appends `_<unit>` and, for counters, `_total` to the name itself.
            let unit = fam.unit().map(unit_of);
            let mut base: &str = &fam.name;
            if fam.kind == MetricType::Counter {
                base = base.strip_suffix("_total").unwrap_or(base);
            }
            if let Some(u) = &unit {
                base = base.strip_suffix(u.as_str()).and_then(|b| b.strip_suffix('_')).unwrap_or(base);
            }
            let kind = match fam.kind {
                MetricType::Counter => PcType::Counter,
                MetricType::Gauge => PcType::Gauge,
                MetricType::Untyped => PcType::Unknown,
            };
            let mut metric = encoder.encode_descriptor(base, &fam.help, unit.as_ref(), kind)?;
            for s in &fam.samples {
                match fam.kind {
                    MetricType::Counter => {
                        ConstCounter::new(s.value).encode(metric.encode_family(&s.labels)?)?
                    }
                    _ => ConstGauge::new(s.value).encode(metric.encode_family(&s.labels)?)?,
                }
            }
        }
        Ok(())
    }
}

/// Encodes `batch` in `format`, without timestamps.
pub fn encode(batch: Arc<Batch>, format: Format) -> Result<String, std::fmt::Error> {
    encode_with(batch, format, Timestamps::None)
}

/// Encodes `batch` in `format` with the given timestamp policy.
pub fn encode_with(batch: Arc<Batch>, format: Format, ts: Timestamps) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BatchCollector(batch)));
    let mut out = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    match ts {
        Timestamps::None => Ok(out),
        Timestamps::Stats(t_ms) => add_timestamps(&out, format, t_ms),
    }
}

/// Appends the timestamp to each sample line of a family that has one.
fn add_timestamps(text: &str, format: Format, t_ms: i64) -> Result<String, std::fmt::Error> {
    let suffix = match format {
        Format::Text => format!(" {t_ms}"),
        Format::OpenMetrics => format!(" {}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000)),
    };
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut stamped = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            stamped = family_has_timestamp(rest.split(' ').next().unwrap_or(""));
            writeln!(out, "{line}")?;
        } else if stamped && !line.starts_with('#') && !line.is_empty() {
            writeln!(out, "{line}{suffix}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> Batch {
        let mut b = Batch::new();
        b.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", MetricType::Counter)
            .sample([("cpu", "0"), ("mode", "idle")], 12.5);
        b.family("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", MetricType::Gauge)
            .sample::<&str, &str>([], 1024.0);
        b.family("container_spec_cpu_period", "CPU period of the container.", MetricType::Gauge)
            .sample([("id", "/")], 100000.0);
        b.family("node_vmstat_pgfault", "/proc/vmstat information field pgfault.", MetricType::Untyped)
            .sample::<&str, &str>([], 7.0);
        b
    }

    #[test]
    fn counters_gauges_and_untyped_encode_with_help_and_type() -> Result<(), std::fmt::Error> {
        let text = encode(Arc::new(sample_batch()), Format::Text)?;
        assert_eq!(
            text,
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
             # HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n\
             # TYPE node_memory_MemTotal_bytes gauge\n\
             node_memory_MemTotal_bytes 1024.0\n\
             # HELP container_spec_cpu_period CPU period of the container.\n\
             # TYPE container_spec_cpu_period gauge\n\
             container_spec_cpu_period{id=\"/\"} 100000.0\n\
             # HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n\
             # TYPE node_vmstat_pgfault untyped\n\
             node_vmstat_pgfault 7.0\n"
        );
        Ok(())
    }

    #[test]
    fn openmetrics_has_unit_and_eof() -> Result<(), std::fmt::Error> {
        let om = encode(Arc::new(sample_batch()), Format::OpenMetrics)?;
        assert!(om.contains("# TYPE node_cpu_seconds counter\n# UNIT node_cpu_seconds seconds\n"), "{om}");
        assert!(om.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n"), "{om}");
        assert!(om.contains("# UNIT node_memory_MemTotal_bytes bytes\n"), "{om}");
        assert!(om.contains("# TYPE node_vmstat_pgfault unknown\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        Ok(())
    }

    #[test]
    fn timestamps_go_on_stats_samples_only() -> Result<(), std::fmt::Error> {
        let text = encode_with(Arc::new(sample_batch()), Format::Text, Timestamps::Stats(1_700_000_000_123))?;
        assert!(
            text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5 1700000000123\n"),
            "{text}"
        );
        assert!(text.contains("container_spec_cpu_period{id=\"/\"} 100000.0\n"), "{text}");
        let om =
            encode_with(Arc::new(sample_batch()), Format::OpenMetrics, Timestamps::Stats(1_700_000_000_123))?;
        assert!(om.contains("node_memory_MemTotal_bytes 1024.0 1700000000.123\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        Ok(())
    }
}
