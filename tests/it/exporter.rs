//! The container and node exporter end to end: real containerd pods read by `kahu serve`, checked
//! through the query API; `/metrics` through promtool and a real Prometheus; the series the common
//! Kubernetes dashboards and the kube-prometheus rules use; `kahu collect`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::containerd::{self, Containerd, Spec};
use crate::harness::{TestServer, free_port, kahu_bin, promtool_check_metrics, require_program};

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Instant query; returns (labels, value) of each result sample.
fn query(server: &TestServer, q: &str, time: Option<f64>) -> Vec<(HashMap<String, String>, f64)> {
    let mut path = format!("/api/v1/query?query={}", enc(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t:.3}"));
    }
    let resp = server.get(&path);
    assert_eq!(resp.status, 200, "{q}: {}", resp.text());
    let v = resp.json();
    v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{q}: {v}"))
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (labels, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

fn one(server: &TestServer, q: &str, time: Option<f64>) -> f64 {
    let r = query(server, q, time);
    assert_eq!(r.len(), 1, "{q} at {time:?}: {r:?}");
    r[0].1
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Whether the query engine evaluates `rate` (the PromQL engine lands separately).
fn engine_has_rate(server: &TestServer) -> bool {
    server.get(&format!("/api/v1/query?query={}", enc("rate(kahu_collection_passes_total[1m])"))).status
        == 200
}

/// Per-second increase of `selector` between two instants, by PromQL `rate` when the engine has
/// it, else from the two raw samples.
fn cpu_rate(server: &TestServer, selector: &str, from: f64, to: f64) -> f64 {
    if engine_has_rate(server) {
        let window = (to - from).floor() as u64;
        one(server, &format!("rate({selector}[{window}s])"), Some(to))
    } else {
        eprintln!("note: query engine has no rate() yet; computing the rate from two instant queries");
        (one(server, selector, Some(to)) - one(server, selector, Some(from))) / (to - from)
    }
}

const BURN: &str = "while :; do :; done";
// 2 MiB more in /dev/shm (tmpfs, charged to the cgroup) every 0.5 s up to 48 MiB, then idle.
const FILL: &str = "i=0; while [ $i -lt 24 ]; do dd if=/dev/zero of=/dev/shm/f$i bs=1M count=2 2>/dev/null; i=$((i+1)); sleep 0.5; done; while :; do sleep 1; done";
const IDLE: &str = "while :; do sleep 1; done";

#[test]
fn real_containerd_pods_are_measured_and_named_from_the_runtime() {
    if let Some(reason) = containerd::unsupported() {
        assert!(std::env::var_os("CI").is_none(), "CI must run the real-container test, but: {reason}");
        eprintln!("SKIPPED real_containerd_pods_are_measured_and_named_from_the_runtime: {reason}");
        return;
    }
    let ctr = Containerd::start();
    let bridge = ctr.run_pod(
        "burner",
        "kahu-test",
        "0b8e9a2c-5d1f-4c3e-9a77-1f2e3d4c5b6a",
        false,
        &[
            Spec { name: "burn", script: BURN, cpu_quota: 20_000 },
            Spec { name: "fill", script: FILL, cpu_quota: 10_000 },
        ],
    );
    let hostnet = ctr.run_pod(
        "agent",
        "kube-system",
        "11111111-2222-3333-4444-555555555555",
        true,
        &[Spec { name: "agent", script: IDLE, cpu_quota: 10_000 }],
    );

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", ctr.socket.display());
    let server =
        TestServer::start(dir.path(), &["--collect.interval", "2s", "--runtime.endpoint", &endpoint]);
    server.wait_ready();

    // Traffic into the bridge pod's eth0.
    let sandbox_cg = format!("/kubepods/burstable/pod{}/{}", bridge.uid, bridge.sandbox_id);
    let sandbox_pid = ctr.pid_of(&sandbox_cg).expect("sandbox pid");
    let ip = ctr.pod_ip(sandbox_pid).expect("bridge pod has an eth0 address");
    Containerd::ping(&ip, 3);

    std::thread::sleep(Duration::from_secs(5));
    let t1 = now_s();
    let ws = r#"container_memory_working_set_bytes{namespace="kahu-test",pod="burner",container="fill"}"#;
    let ws1 = one(&server, ws, Some(t1));
    std::thread::sleep(Duration::from_secs(12));
    Containerd::ping(&ip, 2);
    std::thread::sleep(Duration::from_secs(3));
    let t2 = now_s();

    // CPU: the burner is held at its quota (0.2 CPU), the filler far below its own.
    let burn = cpu_rate(
        &server,
        r#"container_cpu_usage_seconds_total{namespace="kahu-test",pod="burner",container="burn"}"#,
        t1,
        t2,
    );
    assert!((0.15..=0.23).contains(&burn), "burn container used {burn} CPU, quota 0.2");
    let throttled =
        one(&server, r#"container_cpu_cfs_throttled_periods_total{pod="burner",container="burn"}"#, Some(t2));
    assert!(throttled > 0.0, "a busy loop under a quota is throttled");
    assert_eq!(
        one(&server, r#"container_spec_cpu_quota{pod="burner",container="burn"}"#, Some(t2)),
        20_000.0
    );

    // Memory: the filler's working set grew by most of what it wrote meanwhile.
    let ws2 = one(&server, ws, Some(t2));
    assert!(ws2 - ws1 > 8.0 * 1024.0 * 1024.0, "working set {ws1} -> {ws2}");

    // Network: on the bridge pod's sandbox row only; nothing for the host-network pod.
    let rx = query(
        &server,
        r#"container_network_receive_bytes_total{namespace="kahu-test",pod="burner"}"#,
        Some(t2),
    );
    assert_eq!(rx.len(), 1, "one interface (eth0, lo skipped) on one row (the sandbox): {rx:?}");
    assert_eq!(rx[0].0.get("interface").map(String::as_str), Some("eth0"));
    assert_eq!(rx[0].0.get("container"), None, "network series carry the sandbox's labels (container empty)");
    assert!(rx[0].1 > 0.0);
    let host_rx = query(&server, r#"container_network_receive_bytes_total{pod="agent"}"#, Some(t2));
    assert!(
        host_rx.is_empty(),
        "host-network pods must not repeat the host's interfaces: {host_rx:?}\n{}",
        server.log_lines().join("\n")
    );

    // Labels: every series of the pods' cgroups is named from the runtime.
    let all = query(
        &server,
        &format!(r#"container_cpu_usage_seconds_total{{id=~".*pod{}.*"}}"#, bridge.uid),
        Some(t2),
    );
    assert_eq!(all.len(), 4, "pod cgroup, sandbox, burn, fill: {all:?}");
    for (labels, _) in &all {
        assert_eq!(labels.get("namespace").map(String::as_str), Some("kahu-test"), "{labels:?}");
        assert_eq!(labels.get("pod").map(String::as_str), Some("burner"), "{labels:?}");
        assert_eq!(labels.get("cpu").map(String::as_str), Some("total"));
        let id = &labels["id"];
        if id.ends_with(&bridge.sandbox_id) {
            assert_eq!(labels.get("container"), None, "sandbox: {labels:?}");
            assert_eq!(
                labels.get("image").map(String::as_str),
                Some(containerd::PAUSE_IMAGE),
                "sandbox: {labels:?}"
            );
            assert_eq!(labels.get("name"), Some(&bridge.sandbox_id));
        } else if let Some((cname, cid)) =
            bridge.containers.iter().find(|(_, cid)| id.ends_with(cid.as_str()))
        {
            assert_eq!(labels.get("container"), Some(cname), "{labels:?}");
            assert_eq!(labels.get("image").map(String::as_str), Some(containerd::IMAGE), "{labels:?}");
            assert_eq!(labels.get("name"), Some(cid));
        } else {
            assert_eq!(id, &format!("/kubepods/burstable/pod{}", bridge.uid), "pod cgroup: {labels:?}");
            assert_eq!(
                (labels.get("container"), labels.get("image"), labels.get("name")),
                (None, None, None),
                "{labels:?}"
            );
        }
    }
    let agent = query(
        &server,
        r#"container_memory_working_set_bytes{namespace="kube-system",pod="agent",container="agent"}"#,
        Some(t2),
    );
    assert_eq!(agent.len(), 1, "{agent:?}");
    assert_eq!(one(&server, "kahu_runtime_up", Some(t2)), 1.0);

    // /metrics/resource: what metrics-server reads, for app containers only.
    let resource = server.get("/metrics/resource").text();
    assert!(
        resource.contains(
            r#"container_cpu_usage_seconds_total{container="burn",namespace="kahu-test",pod="burner"} "#
        ),
        "{resource}"
    );
    assert!(
        resource.contains(r#"pod_memory_working_set_bytes{namespace="kahu-test",pod="burner"} "#),
        "{resource}"
    );
    assert!(!resource.contains(r#"container="""#), "no sandbox rows: {resource}");
    let cadvisor = server.get("/metrics/cadvisor").text();
    assert!(cadvisor.contains(&format!(r#"container_network_receive_bytes_total{{container="",id="{sandbox_cg}",image="{}",interface="eth0","#, containerd::PAUSE_IMAGE)), "{cadvisor}");
    assert!(
        !cadvisor.contains("node_cpu_seconds_total"),
        "cadvisor view has container and machine families only"
    );

    // A container that goes away gets a stale marker: its series vanish at once, not after 5m.
    let (_, fill_id) = bridge.containers.iter().find(|(n, _)| n == "fill").unwrap().clone();
    ctr.remove_container(&fill_id);
    std::thread::sleep(Duration::from_secs(5));
    let gone = query(&server, ws, None);
    assert!(gone.is_empty(), "removed container still has a current value: {gone:?}");
    let before = query(&server, ws, Some(t2));
    assert_eq!(before.len(), 1, "its history stays");
    drop(hostnet);
}

/// `promtool check metrics` reports nothing on kahu's own families, and only node_exporter's own
/// lint findings on the node families (whose camelCase names dashboards need).
#[test]
fn promtool_accepts_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--runtime.endpoint", ""]);
    server.wait_ready();
    for path in ["/metrics/cadvisor", "/metrics/resource"] {
        let problems = promtool_check_metrics(&server.get(path).body);
        assert!(problems.is_empty(), "{path}: {problems:#?}");
    }
    let problems = promtool_check_metrics(&server.get("/metrics").body);
    // node_memory_MemTotal_bytes & co. are not snake_case: node_exporter's exact names, kept on purpose.
    let camel = |p: &str| {
        ["node_memory_", "node_vmstat_", "node_netstat_"].iter().any(|n| p.starts_with(n))
            && p.ends_with("should be written in 'snake_case' not 'camelCase'")
    };
    let unexpected: Vec<&String> = problems.iter().filter(|p| !camel(p)).collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

#[test]
fn metrics_negotiate_openmetrics_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--runtime.endpoint", ""]);
    server.wait_ready();
    let om = server.request(
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")],
        b"",
    );
    assert_eq!(om.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    let text = om.text();
    assert!(text.contains("# UNIT container_cpu_usage_seconds seconds\n"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    let gz = server.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.body.as_slice()), &mut plain).unwrap();
    assert!(plain.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    // No explicit timestamps by default; with the flag, stats samples carry one.
    assert!(
        plain
            .lines()
            .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
            .all(|l| l.split(' ').count() == 2)
    );
}

/// A real Prometheus scrapes /metrics and /metrics/cadvisor for 30 s: `up` stays 1 and the scrape
/// reports no sample errors.
#[test]
fn real_prometheus_scrapes_kahu() {
    let prometheus = require_program("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start(&dir.path().join("kahu"), &["--runtime.endpoint", "", "--collect.interval", "5s"]);
    server.wait_ready();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: kahu\n    static_configs: [{{targets: ['{a}']}}]\n  - job_name: cadvisor\n    metrics_path: /metrics/cadvisor\n    static_configs: [{{targets: ['{a}']}}]\n  - job_name: resource\n    metrics_path: /metrics/resource\n    static_configs: [{{targets: ['{a}']}}]\n",
            a = server.addr
        ),
    )
    .unwrap();
    let mut prom = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("prom").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let q = |expr: &str| {
        let r = crate::harness::http(addr, "GET", &format!("/api/v1/query?query={}", enc(expr)), &[], b"");
        r.json()["data"]["result"].clone()
    };
    let up = q("up");
    let samples = q("scrape_samples_scraped");
    let targets = crate::harness::http(addr, "GET", "/api/v1/targets", &[], b"").json();
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(start.elapsed() >= Duration::from_secs(30));
    let up = up.as_array().unwrap();
    assert_eq!(up.len(), 3, "{up:?}");
    for u in up {
        assert_eq!(u["value"][1], "1", "{u} targets: {targets}");
    }
    for s in samples.as_array().unwrap() {
        // /metrics/resource has only the node rows and resource_scrape_error on a node without pods.
        let min = if s["metric"]["job"] == "resource" { 3.0 } else { 50.0 };
        assert!(s["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= min, "{s}");
    }
    for t in targets["data"]["activeTargets"].as_array().unwrap() {
        assert_eq!(t["lastError"], "", "{t}");
    }
}

/// The cAdvisor and node_exporter series the common Kubernetes dashboards (kubernetes-mixin,
/// dotdc/grafana-dashboards-kubernetes) and the kube-prometheus recording rules read: each must
/// exist with its type and labels. The list is in `tests/it/compat.txt`.
#[test]
fn dashboard_and_recording_rule_series_exist_with_their_types_and_labels() {
    let node = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("exporter/tests/fixtures/v2-systemd-containerd");
    let out = Command::new(kahu_bin())
        .args(["collect", "--runtime.endpoint", ""])
        .arg(format!("--path.procfs={}", node.join("proc").display()))
        .arg(format!("--path.sysfs={}", node.join("sys").display()))
        .arg(format!("--path.rootfs={}", node.join("root").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut labels: HashMap<&str, Vec<String>> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            types.insert(name, t);
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let names: Vec<String> = line
                .split_once('{')
                .map(|(_, rest)| {
                    rest.rsplit_once('}')
                        .unwrap()
                        .0
                        .split("\",")
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, _)| k.to_string())
                        .collect()
                })
                .unwrap_or_default();
            labels.entry(name).or_insert(names);
        }
    }
    let list = include_str!("compat.txt");
    let mut missing = Vec::new();
    for line in list.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (name, want_type) = (parts.next().unwrap(), parts.next().unwrap());
        let want_labels: Vec<&str> =
            parts.next().map(|l| l.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        match (types.get(name), labels.get(name)) {
            (Some(t), Some(have)) => {
                if *t != want_type {
                    missing.push(format!("{name}: type {t}, want {want_type}"));
                }
                for l in &want_labels {
                    if !have.iter().any(|h| h == l) {
                        missing.push(format!("{name}: no label {l} (has {have:?})"));
                    }
                }
            }
            _ => missing.push(format!("{name}: not exposed")),
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn collect_prints_one_pass_and_rejects_bad_flags() {
    let out = Command::new(kahu_bin())
        .args(["collect", "--runtime.endpoint", "", "--endpoint", "cadvisor"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} "), "{text}");
    let bad = Command::new(kahu_bin()).args(["collect", "--collector.disable", "nosuch"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown collector \"nosuch\""));
    let bad = Command::new(kahu_bin()).args(["collect", "--collector.cgroup.raw", "("]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--collector.cgroup.raw: invalid regular expression")
    );
}
