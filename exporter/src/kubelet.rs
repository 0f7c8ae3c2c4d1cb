//! The kubelet's endpoints, derived from one pass: `/metrics/cadvisor` (the container and machine
//! families exactly as the kubelet serves them) and `/metrics/resource` (the families
//! metrics-server reads, in the kubelet's format; see `reference/exporter.md` 1.3 and 2.5).

use std::collections::HashSet;
use std::sync::Arc;

use crate::collector::{Batch, LabelPairs, MetricType, Sample};

/// The families the kubelet serves on `/metrics/cadvisor`: `container_*` and `machine_*`.
pub fn cadvisor_view(batch: &Batch) -> Batch {
    batch.filter(|f| f.name.starts_with("container_") || f.name.starts_with("machine_"))
}

fn label<'a>(s: &'a Sample, name: &str) -> &'a str {
    s.labels.iter().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref()).unwrap_or("")
}

/// Which rows of the container families a resource family takes.
#[derive(Clone, Copy)]
enum Rows {
    Node,
    Container,
    Pod,
}

fn pick(batch: &Batch, from: &str, rows: Rows) -> Vec<(LabelPairs, f64)> {
    let Some(fam) = batch.get(from) else { return Vec::new() };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in &fam.samples {
        let (container, pod, ns) = (label(s, "container"), label(s, "pod"), label(s, "namespace"));
        let keep = match rows {
            Rows::Node => label(s, "id") == "/",
            // App containers only: no sandbox (container "" or "POD"), no unnamed cgroups.
            Rows::Container => !container.is_empty() && container != "POD" && !pod.is_empty(),
            Rows::Pod => {
                container.is_empty()
                    && label(s, "image").is_empty()
                    && label(s, "name").is_empty()
                    && !pod.is_empty()
            }
        };
        if !keep {
            continue;
        }
        let labels: LabelPairs = match rows {
            Rows::Node => Vec::new(),
            Rows::Container => vec![
                (Arc::from("container"), Arc::from(container)),
                (Arc::from("namespace"), Arc::from(ns)),
                (Arc::from("pod"), Arc::from(pod)),
            ],
            Rows::Pod => vec![(Arc::from("namespace"), Arc::from(ns)), (Arc::from("pod"), Arc::from(pod))],
        };
        if seen.insert(labels.clone()) {
            out.push((labels, s.value));
        }
    }
    out
}

/// The kubelet's `/metrics/resource` families, from the container families of `batch`.
pub fn resource_view(batch: &Batch) -> Batch {
    let mut out = Batch::new();
    let families: [(&str, &'static str, MetricType, &str, Rows); 7] = [
        (
            "node_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
            MetricType::Counter,
            "container_cpu_usage_seconds_total",
            Rows::Node,
        ),
        (
            "node_memory_working_set_bytes",
            "[STABLE] Current working set of the node in bytes",
            MetricType::Gauge,
            "container_memory_working_set_bytes",
            Rows::Node,
        ),
        (
            "container_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
            MetricType::Counter,
            "container_cpu_usage_seconds_total",
            Rows::Container,
        ),
        (
            "container_memory_working_set_bytes",
            "[STABLE] Current working set of the container in bytes",
            MetricType::Gauge,
            "container_memory_working_set_bytes",
            Rows::Container,
        ),
        (
            "container_start_time_seconds",
            "[STABLE] Start time of the container since unix epoch in seconds",
            MetricType::Gauge,
            "container_start_time_seconds",
            Rows::Container,
        ),
        (
            "pod_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            MetricType::Counter,
            "container_cpu_usage_seconds_total",
            Rows::Pod,
        ),
        (
            "pod_memory_working_set_bytes",
            "[STABLE] Current working set of the pod in bytes",
            MetricType::Gauge,
            "container_memory_working_set_bytes",
            Rows::Pod,
        ),
    ];
    for (name, help, kind, from, rows) in families {
        let samples = pick(batch, from, rows);
        if samples.is_empty() {
            continue;
        }
        let fam = out.family(name, help, kind);
        for (labels, v) in samples {
            fam.push(labels, v);
        }
    }
    let error = if batch.get("container_cpu_usage_seconds_total").is_some() { 0.0 } else { 1.0 };
    out.family(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        MetricType::Gauge,
    )
    .sample::<&str, &str>([], error);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        container: &str,
        id: &str,
        image: &str,
        name: &str,
        ns: &str,
        pod: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("container", container.into()),
            ("id", id.into()),
            ("image", image.into()),
            ("name", name.into()),
            ("namespace", ns.into()),
            ("pod", pod.into()),
        ]
    }

    #[test]
    fn resource_view_keeps_node_app_containers_and_pods() {
        let mut b = Batch::new();
        let f = b.family("container_cpu_usage_seconds_total", "h", MetricType::Counter);
        f.sample(row("", "/", "", "", "", ""), 100.0);
        f.sample(row("", "/kubepods/burstable/podu", "", "", "default", "web"), 12.0);
        f.sample(row("", "/kubepods/burstable/podu/sb", "pause", "sb", "default", "web"), 1.0);
        f.sample(row("nginx", "/kubepods/burstable/podu/c1", "nginx:1", "c1", "default", "web"), 11.0);
        f.sample(row("", "/kubepods/burstable", "", "", "", ""), 50.0);
        let r = resource_view(&b);
        let names: Vec<&str> = r.families().iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_cpu_usage_seconds_total",
                "container_cpu_usage_seconds_total",
                "pod_cpu_usage_seconds_total",
                "resource_scrape_error"
            ]
        );
        assert_eq!(r.get("node_cpu_usage_seconds_total").unwrap().samples[0].value, 100.0);
        let c = &r.get("container_cpu_usage_seconds_total").unwrap().samples;
        assert_eq!(c.len(), 1);
        assert_eq!((label(&c[0], "container"), label(&c[0], "pod"), c[0].value), ("nginx", "web", 11.0));
        let p = &r.get("pod_cpu_usage_seconds_total").unwrap().samples;
        assert_eq!((p.len(), p[0].value), (1, 12.0));
        assert_eq!(r.get("resource_scrape_error").unwrap().samples[0].value, 0.0);
    }
}
