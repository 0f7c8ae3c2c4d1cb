//! The container and node exporter end to end: real containerd pods read by `kahu serve`, checked
//! through the query API; `/metrics` through promtool and a real Prometheus; the series the common
//! Kubernetes dashboards and the kube-prometheus rules use; `kahu collect`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::containerd::{self, Containerd, Spec};
use crate::harness::{TestServer, free_port, http, kahu_bin, promtool_check_metrics, require_program};

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

/// Instant query against any Prometheus-compatible API; returns (labels, value) of each sample.
fn query_at(addr: SocketAddr, q: &str, time: Option<f64>) -> Vec<(HashMap<String, String>, f64)> {
    let mut path = format!("/api/v1/query?query={}", enc(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t:.3}"));
    }
    let resp = http(addr, "GET", &path, &[], b"");
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

/// Instant query against kahu.
fn query(server: &TestServer, q: &str, time: Option<f64>) -> Vec<(HashMap<String, String>, f64)> {
    query_at(server.addr, q, time)
}

/// Polls `check` every 250 ms until it returns `Some`, or panics with `what` (and the last
/// observation) after `limit`. Conditions, not fixed sleeps: a loaded machine only makes it slower.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > limit => panic!("{what}: not after {limit:?}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The Debian `prometheus` scraping kahu; killed on drop.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML list items, indented by two) every `interval`.
    fn start(dir: &std::path::Path, interval: &str, scrape_configs: &str) -> Prometheus {
        let prometheus = require_program("prometheus", "prometheus");
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prom").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus { child, addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    /// Waits until every target has been scraped with `up == 1`.
    fn wait_up(&self, targets: usize) {
        wait_for("Prometheus scraping every kahu endpoint", Duration::from_secs(40), || {
            let ok = std::net::TcpStream::connect(self.addr).is_ok()
                && http(self.addr, "GET", "/-/ready", &[], b"").status == 200;
            let up = if ok { query_at(self.addr, "up == 1", None) } else { Vec::new() };
            if up.len() == targets { Ok(()) } else { Err(format!("up == 1: {up:?}")) }
        })
    }

    /// `lastError` of every active target (empty when the last scrape was clean).
    fn target_errors(&self) -> Vec<String> {
        let targets = http(self.addr, "GET", "/api/v1/targets", &[], b"").json();
        targets["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["lastError"] != "")
            .map(|t| t.to_string())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one(server: &TestServer, q: &str, time: Option<f64>) -> f64 {
    let r = query(server, q, time);
    assert_eq!(r.len(), 1, "{q} at {time:?}: {r:?}");
    r[0].1
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

const BURN: &str = "while :; do :; done";
// 2 MiB more in /dev/shm (tmpfs, charged to the cgroup) every 0.5 s up to 160 MiB (limit 256 MiB),
// then idle: it keeps growing for as long as the test watches, however slow the machine is.
const FILL: &str = "i=0; while [ $i -lt 80 ]; do dd if=/dev/zero of=/dev/shm/f$i bs=1M count=2 2>/dev/null; i=$((i+1)); sleep 0.5; done; while :; do sleep 1; done";
const IDLE: &str = "while :; do sleep 1; done";
const MIB: f64 = 1024.0 * 1024.0;

/// Real pods in a real containerd, read by `kahu serve` and scraped by a real Prometheus for the
/// whole run: kahu's query API and Prometheus' own TSDB must both answer what the pods did (CPU held
/// at its quota, a growing working set, traffic on the bridge pod only), with every series named
/// from the runtime, and the kube-prometheus recording-rule and alert expressions must work on what
/// Prometheus scraped from /metrics/cadvisor.
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
        None,
        false,
        &[
            Spec { name: "burn", script: BURN, cpu_quota: 20_000 },
            Spec { name: "fill", script: FILL, cpu_quota: 10_000 },
        ],
    );
    let hostnet = ctr.run_pod(
        "agent",
        "kube-system",
        None,
        true,
        &[Spec { name: "agent", script: IDLE, cpu_quota: 10_000 }],
    );

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", ctr.socket.display());
    let server = TestServer::start(
        &dir.path().join("kahu"),
        &["--collect.interval", "2s", "--runtime.endpoint", &endpoint],
    );
    server.wait_ready();
    // Scraped as the kube-prometheus ServiceMonitors do (deploy/kubernetes/daemonset.yaml).
    let prom = Prometheus::start(
        dir.path(),
        "2s",
        &format!(
            "  - job_name: kubelet\n    metrics_path: /metrics/cadvisor\n    honor_labels: true\n    static_configs: [{{targets: ['{a}'], labels: {{metrics_path: /metrics/cadvisor}}}}]\n  - job_name: node-exporter\n    static_configs: [{{targets: ['{a}']}}]\n",
            a = server.addr
        ),
    );

    // Traffic into the bridge pod's eth0.
    let sandbox_cg = format!("/kubepods/burstable/pod{}/{}", bridge.uid, bridge.sandbox_id);
    let sandbox_pid = ctr.pid_of(&sandbox_cg).expect("sandbox pid");
    let ip = ctr.pod_ip(sandbox_pid).expect("bridge pod has an eth0 address");
    Containerd::ping(&ip, 3);

    let burn_sel =
        r#"container_cpu_usage_seconds_total{namespace="kahu-test",pod="burner",container="burn"}"#;
    let ws = r#"container_memory_working_set_bytes{namespace="kahu-test",pod="burner",container="fill"}"#;
    wait_for("kahu names the pods' containers", Duration::from_secs(30), || {
        let (b, w) = (query(&server, burn_sel, None), query(&server, ws, None));
        if b.len() == 1 && w.len() == 1 { Ok(()) } else { Err(format!("{b:?} {w:?}")) }
    });
    prom.wait_up(2);
    let t1 = now_s();
    let ws1 = one(&server, ws, Some(t1));
    // At least 12 s of history (six passes) and at least 8 MiB more working set.
    let t2 = wait_for("12 s of history and a growing working set", Duration::from_secs(45), || {
        let t = now_s();
        let w = one(&server, ws, Some(t));
        if t - t1 >= 12.0 && w - ws1 > 8.0 * MIB {
            Ok(t)
        } else {
            Err(format!("{:.1} s, working set {ws1} -> {w}", t - t1))
        }
    });

    // CPU: the burner is held at its quota (0.2 CPU), the filler far below its own.
    let window = (t2 - t1).floor() as u64;
    let burn = one(&server, &format!("rate({burn_sel}[{window}s])"), Some(t2));
    assert!((0.15..=0.23).contains(&burn), "burn container used {burn} CPU, quota 0.2");
    let throttled =
        one(&server, r#"container_cpu_cfs_throttled_periods_total{pod="burner",container="burn"}"#, Some(t2));
    assert!(throttled > 0.0, "a busy loop under a quota is throttled");
    assert_eq!(
        one(&server, r#"container_spec_cpu_quota{pod="burner",container="burn"}"#, Some(t2)),
        20_000.0
    );

    // Network: on the bridge pod's sandbox row only; nothing for the host-network pod.
    let rx = query(
        &server,
        r#"container_network_receive_bytes_total{namespace="kahu-test",pod="burner"}"#,
        Some(t2),
    );
    assert_eq!(rx.len(), 1, "one interface (eth0, lo skipped) on one row (the sandbox): {rx:?}");
    assert_eq!(rx[0].0.get("interface").map(String::as_str), Some("eth0"));
    assert_eq!(rx[0].0.get("container"), None, "network series carry the sandbox's labels (container empty)");
    assert!(rx[0].1 > 0.0, "{rx:?}");
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

    // Prometheus' own TSDB, over what it scraped: the kube-prometheus expressions.
    let pq = |q: &str| query_at(prom.addr, q, Some(t2));
    let by_pod = |rows: Vec<(HashMap<String, String>, f64)>| -> HashMap<(String, String, String), f64> {
        rows.into_iter()
            .map(|(l, v)| {
                let get = |k: &str| l.get(k).cloned().unwrap_or_default();
                ((get("namespace"), get("pod"), get("container")), v)
            })
            .collect()
    };
    // node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate (without the
    // kube-state-metrics join, which needs kube_pod_info).
    let cpu = by_pod(pq(&format!(
        r#"sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{job="kubelet", metrics_path="/metrics/cadvisor", image!=""}}[{window}s]))"#
    )));
    let key = |ns: &str, pod: &str, c: &str| (ns.to_string(), pod.to_string(), c.to_string());
    let prom_burn = cpu.get(&key("kahu-test", "burner", "burn")).copied();
    assert!(
        prom_burn.is_some_and(|r| (0.15..=0.23).contains(&r) && (r - burn).abs() < 0.03),
        "Prometheus: burner/burn at {prom_burn:?} CPU, kahu {burn}: {cpu:?}"
    );
    for k in [key("kahu-test", "burner", "fill"), key("kube-system", "agent", "agent")] {
        assert!(cpu.get(&k).is_some_and(|r| *r < 0.1), "{k:?} in {cpu:?}");
    }
    // Pod CPU (the dashboards' "CPU usage by pod"): the pod cgroup row of cAdvisor's layout.
    let pod_cpu = by_pod(pq(&format!(
        r#"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{job="kubelet", metrics_path="/metrics/cadvisor", container="", image="", pod!=""}}[{window}s]))"#
    )));
    let burner_total = pod_cpu.get(&key("kahu-test", "burner", "")).copied();
    assert!(
        burner_total.is_some_and(|r| r >= prom_burn.unwrap_or(0.0) - 0.02 && r <= 0.33),
        "pod burner at {burner_total:?} CPU (burn {prom_burn:?}, quotas 0.2 + 0.1): {pod_cpu:?}"
    );
    // node_namespace_pod_container:container_memory_working_set_bytes
    let mem = by_pod(pq(
        r#"max_over_time(container_memory_working_set_bytes{job="kubelet", metrics_path="/metrics/cadvisor", image!=""}[1m])"#,
    ));
    let fill = mem.get(&key("kahu-test", "burner", "fill")).copied();
    assert!(fill.is_some_and(|w| w > ws1), "Prometheus saw the working set grow past {ws1}: {fill:?}");
    // CPUThrottlingHigh
    let throttling = by_pod(pq(&format!(
        r#"sum(increase(container_cpu_cfs_throttled_periods_total{{container!="", job="kubelet", metrics_path="/metrics/cadvisor"}}[{window}s])) by (container, pod, namespace) / sum(increase(container_cpu_cfs_periods_total{{job="kubelet", metrics_path="/metrics/cadvisor"}}[{window}s])) by (container, pod, namespace) > (25 / 100)"#
    )));
    assert!(
        throttling.contains_key(&key("kahu-test", "burner", "burn")),
        "CPUThrottlingHigh: {throttling:?}"
    );
    assert!(!throttling.contains_key(&key("kube-system", "agent", "agent")), "{throttling:?}");
    // Network by pod: the bridge pod, never the host-network one.
    let net = by_pod(pq(
        r#"sum by (namespace, pod) (container_network_receive_bytes_total{job="kubelet", metrics_path="/metrics/cadvisor", pod!=""})"#,
    ));
    assert_eq!(
        net.keys().collect::<Vec<_>>(),
        vec![&key("kahu-test", "burner", "")],
        "network by pod: {net:?}"
    );
    // node-mixin: instance:node_cpu_utilisation:rate, instance:node_memory_utilisation:ratio
    let util = pq(&format!(
        r#"1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{{job="node-exporter", mode=~"idle|iowait|steal"}}[{window}s])))"#
    ));
    assert!(util.len() == 1 && (0.0..=1.0).contains(&util[0].1), "node CPU utilisation: {util:?}");
    let memu = pq(
        r#"1 - (node_memory_MemAvailable_bytes{job="node-exporter"} / node_memory_MemTotal_bytes{job="node-exporter"})"#,
    );
    assert!(memu.len() == 1 && memu[0].1 > 0.0 && memu[0].1 < 1.0, "node memory utilisation: {memu:?}");
    let up = pq("up");
    assert!(up.len() == 2 && up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    let errors = prom.target_errors();
    assert!(errors.is_empty(), "scrape errors: {errors:#?}");
    drop(prom);

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
    wait_for("the removed container's series go stale", Duration::from_secs(30), || {
        let now = query(&server, ws, None);
        if now.is_empty() { Ok(()) } else { Err(format!("still current: {now:?}")) }
    });
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

/// A real Prometheus scrapes /metrics, /metrics/cadvisor and /metrics/resource for 30 s: `up`
/// stays 1 on every scrape and no scrape reports an error.
#[test]
fn real_prometheus_scrapes_kahu() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start(&dir.path().join("kahu"), &["--runtime.endpoint", "", "--collect.interval", "5s"]);
    server.wait_ready();
    let prom = Prometheus::start(
        dir.path(),
        "2s",
        &format!(
            "  - job_name: kahu\n    static_configs: [{{targets: ['{a}']}}]\n  - job_name: cadvisor\n    metrics_path: /metrics/cadvisor\n    static_configs: [{{targets: ['{a}']}}]\n  - job_name: resource\n    metrics_path: /metrics/resource\n    static_configs: [{{targets: ['{a}']}}]\n",
            a = server.addr
        ),
    );
    prom.wait_up(3);
    let first = now_s();
    std::thread::sleep(Duration::from_secs(30));
    let t = now_s();
    let window = (t - first).floor() as u64;
    let scrapes = query_at(prom.addr, &format!("count_over_time(up[{window}s])"), Some(t));
    let worst = query_at(prom.addr, &format!("min_over_time(up[{window}s])"), Some(t));
    let samples = query_at(prom.addr, &format!("min_over_time(scrape_samples_scraped[{window}s])"), Some(t));
    let errors = prom.target_errors();
    assert_eq!(scrapes.len(), 3, "{scrapes:?}");
    for (labels, n) in &scrapes {
        assert!(*n >= 10.0, "30 s at 2 s: {labels:?} scraped {n} times");
    }
    assert!(worst.len() == 3 && worst.iter().all(|(_, v)| *v == 1.0), "up: {worst:?}");
    for (labels, n) in &samples {
        // /metrics/resource has only the node rows and resource_scrape_error on a node without pods.
        let min = if labels["job"] == "resource" { 3.0 } else { 50.0 };
        assert!(*n >= min, "{labels:?}: {n} samples");
    }
    assert!(errors.is_empty(), "scrape errors: {errors:#?}");
}

/// One `kahu collect` pass over a fixture node (no runtime), in the view of `endpoint`.
fn collect_fixture(node: &str, endpoint: &str) -> String {
    let node = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("exporter/tests/fixtures").join(node);
    let out = Command::new(kahu_bin())
        .args(["collect", "--runtime.endpoint", "", "--endpoint", endpoint])
        .arg(format!("--path.procfs={}", node.join("proc").display()))
        .arg(format!("--path.sysfs={}", node.join("sys").display()))
        .arg(format!("--path.rootfs={}", node.join("root").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Label names of each sample line, by metric name.
type SampleLabels<'a> = HashMap<&'a str, Vec<Vec<String>>>;

/// Family types from `# TYPE`, and the label names of every sample line, by metric name.
fn exposition(text: &str) -> (HashMap<&str, &str>, SampleLabels<'_>) {
    let mut types = HashMap::new();
    let mut labels: HashMap<&str, Vec<Vec<String>>> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            types.insert(name, t);
        } else if !line.starts_with('#') && !line.is_empty() {
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
            labels.entry(name).or_default().push(names);
        }
    }
    (types, labels)
}

/// The cAdvisor and node_exporter series the common Kubernetes dashboards (kubernetes-mixin,
/// dotdc/grafana-dashboards-kubernetes) and the kube-prometheus recording rules read, and the other
/// families the kubelet serves by default: each must exist with its type and labels. The list is in
/// `tests/it/compat.txt`.
#[test]
fn dashboard_and_recording_rule_series_exist_with_their_types_and_labels() {
    let text = collect_fixture("v2-systemd-containerd", "metrics");
    let (types, labels) = exposition(&text);
    let list = include_str!("compat.txt");
    let mut missing = Vec::new();
    for line in list.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (name, want_type) = (parts.next().unwrap(), parts.next().unwrap());
        let want_labels: Vec<&str> =
            parts.next().map(|l| l.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        match (types.get(name), labels.get(name)) {
            (Some(t), Some(rows)) => {
                if *t != want_type {
                    missing.push(format!("{name}: type {t}, want {want_type}"));
                }
                for have in rows {
                    for l in &want_labels {
                        if !have.iter().any(|h| h == l) {
                            missing.push(format!("{name}: no label {l} (has {have:?})"));
                        }
                    }
                }
            }
            _ => missing.push(format!("{name}: not exposed")),
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The kubelet's `/metrics/cadvisor` label contract (reference/exporter.md 1.1) on a v2, a v1 and a
/// hybrid node: container and machine families only, every container series with the full base
/// label set (empty strings for unknown values), and the compatibility list's container families
/// all there; `/metrics/resource` has the families metrics-server decodes.
#[test]
fn cadvisor_view_keeps_the_kubelet_label_contract_on_every_cgroup_layout() {
    let base = ["container", "id", "image", "name", "namespace", "pod"];
    let wanted: Vec<&str> = include_str!("compat.txt")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("container_"))
        .collect();
    for node in ["v2-systemd-containerd", "v1-cgroupfs-docker", "hybrid-cgroupfs-containerd"] {
        let text = collect_fixture(node, "cadvisor");
        assert!(
            promtool_check_metrics(text.as_bytes()).is_empty(),
            "{node}: promtool check metrics has findings"
        );
        let (types, labels) = exposition(&text);
        for name in types.keys() {
            assert!(
                name.starts_with("container_") || name.starts_with("machine_"),
                "{node}: {name} in the cadvisor view"
            );
        }
        let mut rows = 0;
        for (name, series) in labels.iter().filter(|(n, _)| n.starts_with("container_")) {
            for have in series {
                rows += 1;
                for b in base {
                    assert!(have.iter().any(|h| h == b), "{node}: {name} lacks {b}: {have:?}");
                }
            }
        }
        assert!(rows > 100, "{node}: {rows} container series");
        // Where the fixture's files have nothing to report: v1 has no PSI files and no
        // memory.events; the hybrid node was captured on a VM whose blkio.throttle files read
        // "Total 0" (no device rows). Everything else must be there on every layout.
        let expected_absent = |n: &str| match node {
            "v1-cgroupfs-docker" => n.starts_with("container_pressure_") || n == "container_oom_events_total",
            "hybrid-cgroupfs-containerd" => {
                n.starts_with("container_fs_") || n == "container_blkio_device_usage_total"
            }
            _ => false,
        };
        let absent: Vec<&&str> =
            wanted.iter().filter(|n| !labels.contains_key(**n) && !expected_absent(n)).collect();
        assert!(absent.is_empty(), "{node}: {absent:?}");

        let resource = collect_fixture(node, "resource");
        let (types, _) = exposition(&resource);
        for (family, t) in [
            ("node_cpu_usage_seconds_total", "counter"),
            ("node_memory_working_set_bytes", "gauge"),
            ("resource_scrape_error", "gauge"),
        ] {
            assert_eq!(types.get(family), Some(&t), "{node} /metrics/resource: {family}\n{resource}");
        }
    }
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
