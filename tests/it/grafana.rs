//! Grafana's Prometheus data source, replayed: every request it makes (health check, instant,
//! range and exemplar queries with its parameters, the metric browser's label, value, series and
//! metadata calls, recording-rule discovery, query formatting), with its methods and parameter
//! encodings, against `kahu serve` collecting from a fixed procfs. Each answer is compared with
//! a golden file (timestamps made relative to the request's start; timings and sample counts,
//! which depend on how many passes ran, zeroed).
//!
//! `KAHU_UPDATE_GOLDEN=1 cargo test grafana` rewrites the golden files.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Response, TestServer};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden/grafana")
}

/// A request as Grafana sends it.
struct Req {
    name: &'static str,
    method: &'static str,
    path: String,
    /// Form body (POST) — Grafana's default method sends every parameter here.
    form: Option<String>,
    status: u16,
}

fn post(name: &'static str, path: &str, form: String) -> Req {
    Req { name, method: "POST", path: path.to_string(), form: Some(form), status: 200 }
}

fn get(name: &'static str, path: String) -> Req {
    Req { name, method: "GET", path, form: None, status: 200 }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Makes timestamps relative to `origin` (seconds) and zeroes durations that vary run to run.
fn normalize(v: &mut Value, origin: f64) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match k.as_str() {
                    "value" => shift_point(val, origin),
                    "values" => {
                        if let Value::Array(points) = val {
                            points.iter_mut().for_each(|p| shift_point(p, origin));
                        }
                    }
                    "timings" | "samples" => {
                        if let Value::Object(t) = val {
                            t.values_mut().for_each(|x| *x = json!(0));
                        }
                    }
                    _ => normalize(val, origin),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalize(i, origin)),
        _ => {}
    }
}

fn shift_point(p: &mut Value, origin: f64) {
    if let Some(t) = p.get_mut(0)
        && let Some(secs) = t.as_f64()
    {
        *t = json!(secs - origin);
    }
}

fn send(server: &TestServer, r: &Req) -> Response {
    match &r.form {
        Some(body) => server.request(
            r.method,
            &r.path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("User-Agent", "Grafana/12.0.0 (linux; amd64)"),
            ],
            body.as_bytes(),
        ),
        None => server.request(r.method, &r.path, &[("User-Agent", "Grafana/12.0.0 (linux; amd64)")], b""),
    }
}

#[test]
fn grafana_requests_get_prometheus_answers() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/procfs");
    let server = TestServer::start(
        dir.path(),
        &["--path.procfs", procfs.to_str().unwrap(), "--collect.interval", "1s"],
    );
    server.wait_ready();
    // A few passes, so that rate() has samples to work on.
    std::thread::sleep(std::time::Duration::from_millis(2500));

    // Grafana aligns range queries to the step. Start on the next 15 s boundary after the first
    // collection pass, so that every step finds the (constant) fixture values.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let s = (now / 15 + 1) * 15;
    let (e, r0) = (s + 60, s - 3600);
    let now_ms = now * 1000;
    let requests = vec![
        // Save & test: the health check, then buildinfo (checked separately: it varies by build).
        post("health_check", "/api/v1/query", "query=1%2B1&time=4".into()),
        // Datasource init: recording rules, exemplar probe (times in ms, read as seconds).
        get("rules", "/api/v1/rules".into()),
        post(
            "exemplar_probe",
            "/api/v1/query_exemplars",
            format!("query=test&start={}&end={now_ms}", now_ms - 1_800_000),
        ),
        // Panels: range queries with Grafana's parameters (stats and timeout when configured).
        post(
            "range_sum_by_mode",
            "/api/v1/query_range",
            format!("query={}&start={s}&end={e}&step=15", enc("sum by (mode) (node_cpu_seconds_total)")),
        ),
        post(
            "range_rate_with_stats_and_timeout",
            "/api/v1/query_range",
            format!(
                "query={}&start={s}&end={e}&step=15&timeout=60s&stats=all",
                enc("rate(node_cpu_seconds_total{cpu=\"0\",mode=~\"user|system\"}[5m0s])")
            ),
        ),
        post(
            "instant_memory",
            "/api/v1/query",
            format!("query={}&time={s}", enc("node_memory_MemTotal_bytes / 1024")),
        ),
        post(
            "instant_table_topk",
            "/api/v1/query",
            format!("query={}&time={s}.5", enc("topk(2, node_cpu_seconds_total{cpu=\"1\"})")),
        ),
        post(
            "exemplars",
            "/api/v1/query_exemplars",
            format!("query={}&start={s}&end={e}", enc("node_memory_MemTotal_bytes")),
        ),
        // Metric browser and autocomplete.
        get(
            "label_values_of_name",
            format!(
                "/api/v1/label/__name__/values?match[]={}&limit=40000&start={r0}&end={s}",
                enc("{__name__=~\"node_memory_Mem.*\"}")
            ),
        ),
        post(
            "labels",
            "/api/v1/labels",
            format!("limit=40000&start={r0}&end={s}&match[]={}", enc("node_cpu_seconds_total")),
        ),
        get(
            "label_values_with_match",
            format!(
                "/api/v1/label/mode/values?match[]={}&limit=40000&start={r0}&end={s}",
                enc("node_cpu_seconds_total{cpu=\"0\"}")
            ),
        ),
        get("label_values_u_escaped", format!("/api/v1/label/U__cpu/values?limit=40000&start={r0}&end={s}")),
        post(
            "series",
            "/api/v1/series",
            format!("match[]={}&start={r0}&end={s}&limit=40000", enc("{__name__=~\"node_memory_Mem.*\"}")),
        ),
        get("metadata_of_metric", "/api/v1/metadata?metric=node_cpu_seconds_total".into()),
        // Variables.
        get(
            "variable_query_result",
            format!("/api/v1/query?query={}&time={s}", enc("count(node_cpu_seconds_total)")),
        ),
        get("format_query", format!("/api/v1/format_query?query={}", enc("sum(rate(x[5m]))by(job)"))),
        // A panel with a typo: Grafana shows the message of a 400.
        Req {
            status: 400,
            ..post("parse_error", "/api/v1/query", format!("query={}&time={s}", enc("sum(rate(x[5m])")))
        },
    ];

    let update = std::env::var_os("KAHU_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for r in &requests {
        let resp = send(&server, r);
        assert_eq!(resp.status, r.status, "{}: {}", r.name, resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"), "{}", r.name);
        let mut v = resp.json();
        normalize(&mut v, s as f64);
        let path = golden_dir().join(format!("{}.json", r.name));
        let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
        if text != want {
            failures.push(format!("{}:\n--- want\n{want}--- got\n{text}", r.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What varies by build is checked by shape: Grafana needs strings and no `features`.
    let b = server.get("/api/v1/status/buildinfo").json();
    let keys: Vec<&String> = b["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["branch", "buildDate", "buildUser", "goVersion", "revision", "version"]);
    // The metric browser's first calls, without match[]: everything kahu collects.
    let names = server.get(&format!("/api/v1/label/__name__/values?limit=40000&start={r0}&end={s}")).json();
    let names: Vec<&str> = names["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(
        names.contains(&"node_cpu_seconds_total") && names.contains(&"node_memory_MemTotal_bytes"),
        "{names:?}"
    );
    let labels = form_post_labels(&server, r0, s);
    assert!(labels.contains(&"mode".to_string()), "{labels:?}");
    let md = server.get("/api/v1/metadata?limit=40000").json();
    assert_eq!(md["data"]["node_memory_MemTotal_bytes"][0]["type"], "gauge");
}

fn form_post_labels(server: &TestServer, start: u64, end: u64) -> Vec<String> {
    let v = server
        .request(
            "POST",
            "/api/v1/labels",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("limit=40000&start={start}&end={end}").as_bytes(),
        )
        .json();
    v["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}
