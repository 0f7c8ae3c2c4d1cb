//! `kahu serve` end to end: node metrics collected, exposed, stored and queried.

use std::process::Command;

use crate::harness::{TestServer, kahu_bin, node_exporter_metrics, promtool_check_metrics};

#[test]
fn metrics_expose_node_cpu_and_memory_in_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    let resp = server.get("/metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = resp.text();
    assert!(text.contains("# TYPE node_cpu_seconds_total counter\n"), "{text}");
    assert!(text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} "), "{text}");
    assert!(text.contains("# TYPE node_memory_MemTotal_bytes gauge\n"), "{text}");
}

/// `promtool check metrics` parses kahu's exposition without error, and lints nothing that the
/// real node_exporter does not also trip over: names such as `node_memory_MemTotal_bytes` are not
/// snake_case, but dashboards need exactly those names, so kahu must keep them.
#[test]
fn promtool_finds_no_problem_in_metrics_beyond_node_exporters_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    let kahu = promtool_check_metrics(&server.get("/metrics").body);
    let node_exporter = promtool_check_metrics(&node_exporter_metrics());
    // kahu's netstat fields are current node_exporter's defaults, which add TcpExt_TCPOFOQueue and
    // TcpExt_TCPRcvQDrop to the Debian 1.5 build's: the same camelCase finding on more names.
    let same_kind = |p: &str| {
        p.starts_with("node_netstat_") && p.ends_with("should be written in 'snake_case' not 'camelCase'")
    };
    let extra: Vec<&String> = kahu.iter().filter(|p| !node_exporter.contains(p) && !same_kind(p)).collect();
    assert!(extra.is_empty(), "promtool reports problems node_exporter does not have: {extra:#?}");
}

#[test]
fn instant_query_returns_collected_memory_as_a_vector() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    let resp = server.get("/api/v1/query?query=node_memory_MemTotal_bytes");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"]["__name__"], "node_memory_MemTotal_bytes");
    let value: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(value, kb * 1024.0);
}

#[test]
fn query_by_post_form_with_label_matchers() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    let body = "query=node_cpu_seconds_total%7Bcpu%3D%220%22%2Cmode%3D~%22idle%7Cuser%22%7D";
    let resp = server.request(
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    let modes: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["idle", "user"]);
}

#[test]
fn a_query_that_does_not_parse_is_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    let resp = server.get("/api/v1/query?query=sum(");
    assert_eq!(resp.status, 400);
    let v = resp.json();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(v["error"].as_str().unwrap().starts_with("invalid parameter \"query\": "), "{v}");
}

#[test]
fn an_unknown_path_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    assert_eq!(server.get("/no/such/path").status, 404);
}

#[test]
fn health_and_readiness_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    assert_eq!(server.get("/-/healthy").status, 200);
    assert_eq!(server.get("/-/ready").status, 200);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let early = server.log_lines();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(early.iter().all(|l| l.starts_with("time=") && l.contains(" level=")), "not logfmt: {early:?}");
}

#[test]
fn an_unusable_data_directory_stops_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let data_dir = file.join("data");
    let out = Command::new(kahu_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&data_dir.display().to_string()), "{stderr}");
    assert!(lines[0].contains("Not a directory"), "{stderr}");
}

#[test]
fn version_names_the_git_commit() {
    let out = Command::new(kahu_bin()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with("kahu 0."), "{text}");
    assert!(text.contains("(commit "), "{text}");
}
