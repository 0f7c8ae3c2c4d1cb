//! Shared by the head benchmarks.

use kahu_tsdb::model::Labels;

/// Labels like a cAdvisor container series under kube-prometheus (~440 bytes).
pub fn k8s_labels(i: usize) -> Labels {
    let pod = format!("app-{}-7d9f8b6c5d-{:05}", i % 97, i);
    Labels::from_pairs([
        ("__name__", "container_cpu_usage_seconds_total".to_string()),
        ("container", format!("c{}", i % 3)),
        ("cpu", "total".to_string()),
        ("endpoint", "https-metrics".to_string()),
        (
            "id",
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{i:08x}-1a2b-3c4d-5e6f-7a8b9c0d1e2f.slice/cri-containerd-{i:016x}.scope"
            ),
        ),
        ("image", format!("registry.example.com/team/app-{}:v1.{}.0", i % 97, i % 13)),
        ("instance", "10.0.3.17:10250".to_string()),
        ("job", "kubelet".to_string()),
        ("metrics_path", "/metrics/cadvisor".to_string()),
        ("name", format!("{:064x}", i)),
        ("namespace", format!("ns-{}", i % 11)),
        ("node", "node-a-17".to_string()),
        ("pod", pod),
        ("service", "kubelet".to_string()),
    ])
}
