//! The Prometheus HTTP API of `kahu serve`: parameters, errors, envelopes, encodings, and the
//! real `promtool` as a client.

use std::io::Read;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{TestServer, require_program};

fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    server.wait_ready();
    (dir, server)
}

fn form_post(server: &TestServer, path: &str, body: &str) -> crate::harness::Response {
    server.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
}

/// Every malformed parameter gets the error Prometheus gives: its status, errorType and text.
#[test]
fn malformed_parameters_get_prometheus_errors() {
    let (_dir, server) = server();
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            "/api/v1/query?query=up&time=abc",
            400,
            "bad_data",
            r#"invalid parameter "time": invalid time value for 'time': cannot parse "abc" to a valid timestamp"#,
        ),
        (
            "/api/v1/query?query=up&timeout=x",
            400,
            "bad_data",
            r#"invalid parameter "timeout": cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/query?query=up&limit=-1",
            400,
            "bad_data",
            r#"invalid parameter "limit": limit must be non-negative"#,
        ),
        (
            "/api/v1/query?query=up&limit=x",
            400,
            "bad_data",
            r#"invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            "/api/v1/query?query=up&lookback_delta=x",
            400,
            "bad_data",
            r#"error parsing lookback delta duration: cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=x&end=1&step=1",
            400,
            "bad_data",
            r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&end=1&step=1",
            400,
            "bad_data",
            r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=x&step=1",
            400,
            "bad_data",
            r#"invalid parameter "end": cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=1&step=1",
            400,
            "bad_data",
            r#"invalid parameter "end": end timestamp must not be before start time"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1",
            400,
            "bad_data",
            r#"invalid parameter "step": cannot parse "" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1&step=0",
            400,
            "bad_data",
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1&step=-5s",
            400,
            "bad_data",
            r#"invalid parameter "step": cannot parse "-5s" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1&step=-1",
            400,
            "bad_data",
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        ("/api/v1/series", 400, "bad_data", "no match[] parameter provided"),
        ("/api/v1/series?match[]=", 400, "bad_data", r#"invalid parameter "match[]": parse error: "#),
        (
            "/api/v1/series?match[]=%7Ba%3D~%22.*%22%7D",
            400,
            "bad_data",
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
        ),
        (
            "/api/v1/series?match[]=up&start=x",
            400,
            "bad_data",
            r#"invalid parameter "start": invalid time value for 'start': cannot parse "x" to a valid timestamp"#,
        ),
        ("/api/v1/series?match[]=sum(up)", 400, "bad_data", r#"invalid parameter "match[]": parse error: "#),
        (
            "/api/v1/labels?match[]=%7Ba%3D%22%22%7D",
            400,
            "bad_data",
            "match[] must contain at least one non-empty matcher",
        ),
        (
            "/api/v1/labels?end=x",
            400,
            "bad_data",
            r#"invalid parameter "end": invalid time value for 'end': cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/label/job/values?limit=1.5",
            400,
            "bad_data",
            r#"invalid parameter "limit": strconv.Atoi: parsing "1.5": invalid syntax"#,
        ),
        ("/api/v1/label/job/values?match[]=%7B", 400, "bad_data", "parse error: "),
        ("/api/v1/metadata?limit=x", 400, "bad_data", "limit must be a number"),
        ("/api/v1/metadata?limit_per_metric=x", 400, "bad_data", "limit_per_metric must be a number"),
        (
            "/api/v1/query_exemplars?query=up&start=10&end=1",
            400,
            "bad_data",
            "end timestamp must not be before start timestamp",
        ),
        ("/api/v1/query_exemplars?query=sum(", 400, "bad_data", ""),
        ("/api/v1/format_query?query=sum(", 400, "bad_data", r#"invalid parameter "query": "#),
        ("/api/v1/parse_query?query=1%2B", 400, "bad_data", r#"invalid parameter "query": "#),
        ("/api/v1/rules?type=x", 400, "bad_data", r#"invalid parameter "type": not supported value "x""#),
        (
            "/api/v1/rules?exclude_alerts=maybe",
            400,
            "bad_data",
            r#"invalid parameter "exclude_alerts": strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (
            "/api/v1/rules?group_next_token=a",
            400,
            "bad_data",
            r#"invalid parameter "group_next_token": group_limit needs to be present in order to paginate over the groups"#,
        ),
        (
            "/api/v1/rules?group_limit=0",
            400,
            "bad_data",
            r#"invalid parameter "group_limit": group_limit needs to be greater than 0"#,
        ),
        (
            "/api/v1/status/tsdb?limit=0",
            400,
            "bad_data",
            r#"invalid parameter "limit": limit must be a positive number"#,
        ),
    ];
    for (path, status, error_type, message_prefix) in cases {
        let resp = server.get(path);
        assert_eq!(resp.status, *status, "{path}: {}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"), "{path}");
        let v = resp.json();
        assert_eq!(v["status"], "error", "{path}");
        assert_eq!(v["errorType"], *error_type, "{path}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.starts_with(message_prefix),
            "{path}: got {msg:?}, want a message starting {message_prefix:?}"
        );
        assert!(v.get("data").is_none(), "{path}");
    }
}

#[test]
fn series_labels_and_values_follow_match_time_and_limit() {
    let (_dir, server) = server();
    let v = server.get("/api/v1/labels").json();
    assert_eq!(v["status"], "success");
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"__name__"));
    assert!(names.contains(&"cpu") && names.contains(&"mode"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // match[] restricts, by GET and by form POST.
    let v = server.get("/api/v1/labels?match[]=node_memory_MemTotal_bytes").json();
    assert_eq!(v["data"], json!(["__name__"]));
    let v = form_post(&server, "/api/v1/labels", "match%5B%5D=node_cpu_seconds_total").json();
    assert_eq!(v["data"], json!(["__name__", "cpu", "mode"]));

    // Label values, U__-escaped names, limit with its warning, time bounds.
    let v = server.get("/api/v1/label/mode/values").json();
    let modes = v["data"].as_array().unwrap().clone();
    assert!(modes.contains(&json!("idle")) && modes.contains(&json!("user")), "{v}");
    assert_eq!(server.get("/api/v1/label/U__mo_64_e/values").json()["data"], json!(modes));
    let v = server.get("/api/v1/label/mode/values?limit=2").json();
    assert_eq!(v["data"], json!([modes[0], modes[1]]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let v = form_post(&server, "/api/v1/label/mode/values", "").json();
    assert_eq!(v["data"], json!(modes), "POST is accepted too");
    assert_eq!(
        server.get("/api/v1/label/mode/values?start=1&end=2").json()["data"],
        json!([]),
        "no data in 1970"
    );
    assert_eq!(server.get("/api/v1/label/no_such_label/values").json()["data"], json!([]));

    // Series: union of the match[] sets, in label order, labels as objects.
    let v = server
        .get("/api/v1/series?match[]=node_memory_MemTotal_bytes&match[]=node_cpu_seconds_total%7Bcpu%3D%220%22%2Cmode%3D%22idle%22%7D")
        .json();
    assert_eq!(
        v["data"],
        json!([
            {"__name__": "node_cpu_seconds_total", "cpu": "0", "mode": "idle"},
            {"__name__": "node_memory_MemTotal_bytes"},
        ])
    );
    let v = server.get("/api/v1/series?match[]=node_cpu_seconds_total&limit=3").json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let v = server.get("/api/v1/series?match[]=node_cpu_seconds_total&start=1&end=2").json();
    assert_eq!(v["data"], json!([]));
}

#[test]
fn metadata_comes_from_the_collectors_families() {
    let (_dir, server) = server();
    let v = server.get("/api/v1/metadata?metric=node_cpu_seconds_total").json();
    assert_eq!(
        v["data"],
        json!({"node_cpu_seconds_total": [{"type": "counter", "unit": "seconds", "help": "Seconds the CPUs spent in each mode."}]})
    );
    let all = server.get("/api/v1/metadata").json();
    let families = all["data"].as_object().unwrap();
    assert!(families.len() > 10, "{all}");
    assert_eq!(families["node_memory_MemTotal_bytes"][0]["type"], "gauge");
    let two = server.get("/api/v1/metadata?limit=2").json();
    assert_eq!(two["data"].as_object().unwrap().len(), 2);
    assert_eq!(server.get("/api/v1/metadata?limit=0").json()["data"], json!({}));
    assert_eq!(server.get("/api/v1/metadata?metric=nope").json()["data"], json!({}));
}

#[test]
fn status_endpoints_have_prometheus_shapes() {
    let (_dir, server) = server();
    let b = server.get("/api/v1/status/buildinfo").json();
    let data = b["data"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{b}");
    for k in ["version", "revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(data[k].is_string(), "{k} in {b}");
    }
    assert!(data.get("features").is_none(), "a features key makes Grafana treat kahu as Mimir");
    assert!(data["version"].as_str().unwrap().starts_with("3."), "{b}");

    let r = server.get("/api/v1/status/runtimeinfo").json();
    for k in [
        "startTime",
        "CWD",
        "hostname",
        "serverTime",
        "lastConfigTime",
        "GOGC",
        "GODEBUG",
        "storageRetention",
    ] {
        assert!(r["data"][k].is_string(), "{k} in {r}");
    }
    assert_eq!(r["data"]["reloadConfigSuccess"], true);
    assert!(r["data"]["GOMAXPROCS"].as_u64().unwrap() >= 1);

    let f = server.get("/api/v1/status/flags").json();
    assert_eq!(f["data"]["web.enable-admin-api"], "false");
    assert_eq!(f["data"]["listen"], "127.0.0.1:0");

    let c = server.get("/api/v1/status/config").json();
    assert!(c["data"]["yaml"].as_str().unwrap().contains("scrape_interval: 15s"), "{c}");

    let t = server.get("/api/v1/status/tsdb?limit=3").json();
    let d = &t["data"];
    assert!(d["headStats"]["numSeries"].as_u64().unwrap() > 10, "{t}");
    let (min, max) =
        (d["headStats"]["minTime"].as_i64().unwrap(), d["headStats"]["maxTime"].as_i64().unwrap());
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(min <= max && max <= now_ms && now_ms - min < 120_000, "the collected samples' range: {t}");
    // Largest first. Which family leads depends on the node: the pods of a real-containerd test
    // running at the same time make container_memory_failures_total outnumber node_cpu_seconds_total.
    let top: Vec<(&str, u64)> = d["seriesCountByMetricName"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_u64().unwrap()))
        .collect();
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{t}");
    assert!(top.iter().any(|(n, _)| *n == "node_cpu_seconds_total" || n.starts_with("container_")), "{t}");
    for list in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        assert_eq!(d[list].as_array().unwrap().len(), 3, "{list}: {t}");
    }

    assert_eq!(server.get("/api/v1/rules").json(), json!({"status": "success", "data": {"groups": []}}));
    assert_eq!(server.get("/api/v1/rules?type=alert&group_limit=5").json()["data"], json!({"groups": []}));
    assert_eq!(server.get("/api/v1/alerts").json(), json!({"status": "success", "data": {"alerts": []}}));

    let targets = server.get("/api/v1/targets").json();
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["labels"]["job"], "kahu");
    assert_eq!(active["health"], "up");
    assert_eq!(active["scrapeInterval"], "15s");
    assert_eq!(targets["data"]["droppedTargets"], json!([]));
    assert!(server.get("/api/v1/targets?state=dropped").json()["data"].get("activeTargets").is_none());
}

#[test]
fn format_parse_and_exemplar_queries() {
    let (_dir, server) = server();
    let v = server.get("/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(a)").json();
    assert_eq!(v, json!({"status": "success", "data": "sum by (a) (rate(x[5m]))"}));
    let v = form_post(&server, "/api/v1/parse_query", "query=up%7Bjob%3D%22a%22%7D").json();
    assert_eq!(
        v["data"],
        json!({"type": "vectorSelector", "name": "up", "offset": 0, "timestamp": null, "startOrEnd": null,
               "matchers": [{"name": "job", "type": "=", "value": "a"}, {"name": "__name__", "type": "=", "value": "up"}]})
    );
    let v = server.get("/api/v1/query_exemplars?query=up&start=0&end=10").json();
    assert_eq!(v, json!({"status": "success", "data": []}));
    let resp = server.get("/api/v1/query_exemplars?query=1");
    assert_eq!(resp.status, 204, "a query without selectors has no exemplars to look for");
}

#[test]
fn admin_endpoints_are_off_unless_enabled() {
    let (_dir, server) = server();
    for path in [
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        "/api/v1/admin/tsdb/clean_tombstones",
        "/api/v1/admin/tsdb/snapshot",
    ] {
        let resp = server.request("POST", path, &[], b"");
        assert_eq!(resp.status, 500, "{path}");
        assert_eq!(
            resp.json(),
            json!({"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"})
        );
        assert_eq!(server.get(path).status, 405, "{path} is POST/PUT only");
    }
}

#[test]
fn gzip_cors_options_and_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        &["--web.max-request-body-size=1KiB", "--web.cors.origin=https?://grafana\\.example"],
    );
    server.wait_ready();
    let resp = server.request("GET", "/api/v1/labels", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&resp.body[..]).read_to_string(&mut text).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "success");

    let resp = server.request("GET", "/api/v1/labels", &[("Origin", "https://grafana.example")], b"");
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://grafana.example"));
    assert_eq!(resp.header("access-control-allow-methods"), Some("GET, POST, OPTIONS"));
    assert_eq!(resp.header("vary"), Some("Origin"));
    let resp = server.request("GET", "/api/v1/labels", &[("Origin", "https://evil.example")], b"");
    assert_eq!(resp.header("access-control-allow-origin"), None);
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("Accept, Authorization, Content-Type, Origin")
    );
    assert_eq!(
        server.request("GET", "/api/v1/labels", &[], b"").header("access-control-allow-methods"),
        None
    );

    let resp = server.request("OPTIONS", "/api/v1/query_range", &[("Origin", "http://grafana.example")], b"");
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("http://grafana.example"));

    let big = format!("query=up&pad={}", "x".repeat(2048));
    let resp = form_post(&server, "/api/v1/query", &big);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(resp.json()["status"], "error");
    let resp = form_post(&server, "/api/v1/query", "query=up");
    assert_eq!(resp.status, 200, "a small body still works: {}", resp.text());
}

#[test]
fn default_cors_allows_any_origin() {
    let (_dir, server) = server();
    let resp = server.request("GET", "/api/v1/status/buildinfo", &[("Origin", "http://anything")], b"");
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
}

fn promtool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(require_program("promtool", "prometheus")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real promtool (Debian's `prometheus` package) as an API client: its four query
/// subcommands against kahu, output checked.
#[test]
fn promtool_queries_kahu() {
    let (_dir, server) = server();
    let url = format!("http://{}", server.addr);

    let (ok, out, err) = promtool(&["query", "labels", &url, "mode"]);
    assert!(ok, "{err}");
    let modes: Vec<&str> = out.lines().collect();
    assert!(modes.contains(&"idle") && modes.contains(&"user"), "{out}");

    let (ok, out, err) = promtool(&["query", "series", "--match=node_memory_MemTotal_bytes", &url]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "{__name__=\"node_memory_MemTotal_bytes\"}");

    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let (ok, out, err) = promtool(&["query", "instant", &url, "node_memory_MemTotal_bytes"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("node_memory_MemTotal_bytes => {} @[", kb * 1024.0)), "{out}");

    let (ok, out, err) = promtool(&["query", "instant", "-o", "json", &url, "node_memory_MemTotal_bytes"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["metric"]["__name__"], "node_memory_MemTotal_bytes");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The first pass stored its samples just now; steps up to a minute ahead see them.
    let (start, end) = ((now - 30).to_string(), (now + 60).to_string());
    let (ok, out, err) = promtool(&[
        "query",
        "range",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "15s",
        &url,
        "node_memory_MemTotal_bytes",
    ]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("node_memory_MemTotal_bytes =>"), "{out}");
    let points: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    assert!(!points.is_empty(), "{out}");
    assert!(points.iter().all(|p| p.starts_with(&format!("{} @[", kb * 1024.0))), "{out}");

    let (ok, _, err) = promtool(&["query", "instant", &url, "sum("]);
    assert!(!ok, "a parse error fails promtool");
    assert!(err.contains("bad_data"), "{err}");
}

/// A large answer is streamed (no Content-Length: it is never held as one string), and a client
/// that hangs up mid-answer leaves the server answering others.
#[test]
fn large_answers_are_streamed() {
    let (_dir, server) = server();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Every node series at every second of five minutes: several chunks of JSON.
    let path = format!(
        "/api/v1/query_range?query=%7B__name__%3D~%22node_.%2B%22%7D&start={}&end={}&step=1",
        now - 10,
        now + 290
    );
    let resp = server.get(&path);
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-length").is_none(), "streamed, not buffered");
    let v = resp.json();
    assert_eq!(v["status"], "success");
    let series = v["data"]["result"].as_array().unwrap();
    assert!(series.len() > 10, "{}", resp.text().chars().take(500).collect::<String>());

    // Start the same answer and hang up after the headers.
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    let _ = s.read(&mut first).unwrap();
    drop(s);
    let t = std::time::Instant::now();
    assert_eq!(server.get("/api/v1/status/buildinfo").status, 200);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

/// A client that disconnects mid-query cancels it: with one query slot, a query that would run
/// for about 40 s stops holding the slot as soon as its client hangs up, so the next query runs
/// at once instead of timing out in the queue.
#[test]
fn a_client_disconnect_cancels_its_query() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--query.max-concurrency=1"]);
    server.wait_ready();
    let slow = vec!["count_over_time(vector(1)[100d:1s])"; 20].join(" + ");
    let body: String = form_urlencoded_pairs(&[("query", &slow), ("time", "100000")]);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        s,
        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(s);
    let resp = server.get("/api/v1/query?query=1%2B1&time=4&timeout=10s");
    assert_eq!(resp.status, 200, "the slot is still held: {}", resp.text());
    assert_eq!(resp.json()["data"]["result"], json!([4, "2"]));
}

fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}
