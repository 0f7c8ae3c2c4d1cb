//! `/api/v1/admin/tsdb/*` through `kahu serve --web.enable-admin-api`: data remote-written,
//! a series range deleted and gone from queries, still gone after a restart, snapshots that open
//! as data directories, clean_tombstones.

use std::time::{SystemTime, UNIX_EPOCH};

use kahu_tsdb::model::Matcher;
use kahu_tsdb::{Db, Queryable};
use serde_json::{Value, json};

use crate::harness::{Response, TestServer};

const STEP_MS: i64 = 15_000;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A snappy-compressed remote-write 1.0 request: `adm_test{series=NAME}` for each name, one
/// sample every 15 s from `t0`, 40 samples, value = index.
fn write_request(names: &[&str], t0: i64) -> Vec<u8> {
    use kahu_query::api::prompb::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    let req = WriteRequest {
        timeseries: names
            .iter()
            .map(|name| TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "adm_test".into() },
                    Label { name: "series".into(), value: (*name).into() },
                ],
                samples: (0..40).map(|i| Sample { value: i as f64, timestamp: t0 + i * STEP_MS }).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

/// Timestamps (ms) of the raw samples of each `adm_test` series, from an instant query of
/// `adm_test[15m]` at `at`.
fn raw_samples(server: &TestServer, at: i64) -> Vec<(String, Vec<i64>)> {
    let r =
        server.get(&format!("/api/v1/query?query={}&time={}", encode("adm_test[15m]"), at as f64 / 1000.0));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let mut out: Vec<(String, Vec<i64>)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
                .collect();
            (s["metric"]["series"].as_str().unwrap().to_string(), ts)
        })
        .collect();
    out.sort();
    out
}

fn range_series(server: &TestServer, start: i64, end: i64) -> Vec<String> {
    let r = server.get(&format!(
        "/api/v1/query_range?query=adm_test&start={}&end={}&step=15",
        start as f64 / 1000.0,
        end as f64 / 1000.0
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut names: Vec<String> = r.json()["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["series"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn post(server: &TestServer, path: &str) -> Response {
    server.request("POST", path, &[], b"")
}

#[test]
fn delete_series_snapshot_and_clean_tombstones_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--web.enable-admin-api", "--collect.interval", "1h"];
    let server = TestServer::start(dir.path(), &args);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 12 * 60_000) / 1000 * 1000;
    let end = t0 + 39 * STEP_MS;
    let r = server.request(
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &write_request(&["a", "b", "c"], t0),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let all: Vec<i64> = (0..40).map(|i| t0 + i * STEP_MS).collect();
    assert_eq!(range_series(&server, t0, end), ["a", "b", "c"]);

    // Errors first: no match[], a bad selector, a bad time: nothing is deleted.
    let r = post(&server, "/api/v1/admin/tsdb/delete_series");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"status": "error", "errorType": "bad_data", "error": "no match[] parameter provided"})
    );
    let r = post(&server, "/api/v1/admin/tsdb/delete_series?match[]=%7B");
    assert_eq!((r.status, r.json()["errorType"].clone()), (400, json!("bad_data")), "{}", r.text());
    let r = post(&server, "/api/v1/admin/tsdb/delete_series?match[]=adm_test&start=yesterday");
    assert_eq!((r.status, r.json()["errorType"].clone()), (400, json!("bad_data")), "{}", r.text());
    assert_eq!(range_series(&server, t0, end), ["a", "b", "c"]);

    // Series a entirely (PUT, form body), series b from sample 10 to sample 19 (POST, query).
    let r = server.request(
        "PUT",
        "/api/v1/admin/tsdb/delete_series",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("match[]={}", encode("adm_test{series=\"a\"}")).as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    let (from, to) = (t0 + 10 * STEP_MS, t0 + 19 * STEP_MS);
    let r = post(
        &server,
        &format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
            encode("{__name__=\"adm_test\",series=\"b\"}"),
            from as f64 / 1000.0,
            to as f64 / 1000.0
        ),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let b_left: Vec<i64> = all.iter().copied().filter(|t| *t < from || *t > to).collect();
    let want = vec![("b".to_string(), b_left.clone()), ("c".to_string(), all.clone())];
    assert_eq!(range_series(&server, t0, end), ["b", "c"], "query_range no longer returns series a");
    assert_eq!(raw_samples(&server, end), want);
    // /api/v1/series still lists a while it is in the head, as Prometheus does (its open head
    // chunk is never covered by a tombstone; compared side by side below).
    let r =
        server.get(&format!("/api/v1/series?match[]=adm_test&start={}&end={}", t0 / 1000, end / 1000 + 1));
    let listed: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["series"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["a", "b", "c"], "{}", r.text());

    // Restart: the deletion was logged.
    assert!(server.terminate().success());
    let server = TestServer::start(dir.path(), &args);
    assert_eq!(range_series(&server, t0, end), ["b", "c"], "after restart");
    assert_eq!(raw_samples(&server, end), want, "after restart");

    // Snapshots.
    let r = post(&server, "/api/v1/admin/tsdb/snapshot");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["status"], "success");
    let name = v["data"]["name"].as_str().unwrap().to_string();
    assert!(regex::Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{16}$").unwrap().is_match(&name), "{name}");
    assert_eq!(v, json!({"status": "success", "data": {"name": name}}));
    let snap = dir.path().join("snapshots").join(&name);
    let r = server.request("PUT", "/api/v1/admin/tsdb/snapshot?skip_head=true", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let skipped = dir.path().join("snapshots").join(r.json()["data"]["name"].as_str().unwrap());
    let r = post(&server, "/api/v1/admin/tsdb/snapshot?skip_head=maybe");
    assert_eq!((r.status, r.json()["errorType"].clone()), (400, json!("bad_data")), "{}", r.text());

    // clean_tombstones: 204, and the data stays as it was.
    let r = server.request("PUT", "/api/v1/admin/tsdb/clean_tombstones", &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(raw_samples(&server, end), want, "after clean_tombstones");
    drop(server);

    // The snapshot is a data directory: the Db and `kahu query --data-dir` read it.
    let read = |dir: &std::path::Path| -> Vec<(String, Vec<i64>)> {
        let db = Db::open_read_only(dir).unwrap();
        let q = db.querier().unwrap();
        let mut out = Vec::new();
        for s in q.select(&[Matcher::equal("__name__", "adm_test")], i64::MIN, i64::MAX).unwrap() {
            let mut it = s.iter();
            let mut ts = Vec::new();
            while let Some(x) = it.next() {
                ts.push(x.t);
            }
            out.push((s.labels().get("series").unwrap().to_string(), ts));
        }
        out
    };
    assert_eq!(read(&snap), want, "snapshot with head");
    assert_eq!(read(&skipped), vec![], "snapshot without head (no block persisted yet)");
    let out = std::process::Command::new(crate::harness::kahu_bin())
        .args(["query", "--data-dir"])
        .arg(&snap)
        .args([
            "--output",
            "json",
            "--time",
            &format!("{}", end as f64 / 1000.0),
            "count_over_time(adm_test[15m])",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["metric"]["series"].as_str().unwrap().to_string(), s["value"][1].as_str().unwrap().to_string())
        })
        .collect();
    counts.sort();
    assert_eq!(counts, [("b".to_string(), b_left.len().to_string()), ("c".to_string(), "40".to_string())]);
}

/// Kills Prometheus when the test ends, pass or fail.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After `delete_series`, `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`
/// answer as the real Prometheus 2.42 (Debian `prometheus`) given the same remote-written data
/// and the same deletion: its head answers label names and values from postings, ignoring
/// tombstones, and its series API lists a head series whose samples were all deleted (the open
/// head chunk is never covered by a tombstone), so such a series stays listed while it is in
/// the head.
#[test]
fn series_label_names_and_values_after_delete_series_match_prometheus() {
    use crate::harness::{free_port, http, require_program};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = std::process::Command::new(require_program("prometheus", "prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("prom").display()))
        .arg(format!("--web.listen-address={addr}"))
        .args(["--web.enable-admin-api", "--web.enable-remote-write-receiver", "--log.level=error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let prom = Prometheus { child, addr };
    let server =
        TestServer::start(&dir.path().join("kahu"), &["--web.enable-admin-api", "--collect.interval", "1h"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(prom.addr).is_err()
        || http(prom.addr, "GET", "/-/ready", &[], b"").status != 200
    {
        assert!(std::time::Instant::now() < deadline, "Prometheus did not become ready");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 12 * 60_000) / 1000 * 1000;
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let body = write_request(&["a", "b", "c"], t0);
    let both = |method: &str, path: &str, body: &[u8]| -> (Response, Response) {
        let k = server.request(method, path, &headers, body);
        let p = http(prom.addr, method, path, &headers, body);
        (k, p)
    };
    let (k, p) = both("POST", "/api/v1/write", &body);
    assert_eq!((k.status, p.status), (204, 204), "{} / {}", k.text(), p.text());
    // Series a entirely, b partly.
    let del_a = format!("/api/v1/admin/tsdb/delete_series?match[]={}", encode("adm_test{series=\"a\"}"));
    let del_b = format!(
        "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
        encode("adm_test{series=\"b\"}"),
        (t0 + 10 * STEP_MS) as f64 / 1000.0,
        (t0 + 19 * STEP_MS) as f64 / 1000.0
    );
    for path in [&del_a, &del_b] {
        let (k, p) = both("POST", path, b"");
        assert_eq!((k.status, p.status), (204, 204), "{} / {}", k.text(), p.text());
    }
    let m = encode("adm_test");
    let range = format!("start={}&end={}", t0 / 1000, now / 1000 + 1);
    let outside = format!("start={}&end={}", t0 / 1000 - 7200, t0 / 1000 - 3600);
    for path in [
        "/api/v1/label/series/values".to_string(),
        format!("/api/v1/label/series/values?{range}"),
        format!("/api/v1/label/series/values?{outside}"),
        format!("/api/v1/label/series/values?match[]={m}"),
        format!("/api/v1/labels?match[]={m}"),
        format!("/api/v1/labels?match[]={m}&{range}"),
        format!("/api/v1/label/__name__/values?match[]={}", encode("{series=\"a\"}")),
    ] {
        let (k, p) = both("GET", &path, b"");
        assert_eq!((k.status, p.status), (200, 200), "{path}: {} / {}", k.text(), p.text());
        assert_eq!(k.json(), p.json(), "{path}");
    }
    // The series API: sorted (Prometheus returns head series in postings order).
    let early = format!("start={}&end={}", t0 / 1000, t0 / 1000 + 60);
    let later = format!("start={}&end={}", now / 1000 + 3600, now / 1000 + 7200);
    let deleted_part = format!("start={}&end={}", (t0 + 11 * STEP_MS) / 1000, (t0 + 18 * STEP_MS) / 1000);
    for path in [
        format!("/api/v1/series?match[]={m}"),
        format!("/api/v1/series?match[]={m}&{range}"),
        format!("/api/v1/series?match[]={m}&{outside}"),
        format!("/api/v1/series?match[]={m}&{early}"),
        format!("/api/v1/series?match[]={m}&{later}"),
        format!("/api/v1/series?match[]={m}&{deleted_part}"),
        format!("/api/v1/series?match[]={}&{range}", encode("{series=~\"a|b\"}")),
        format!(
            "/api/v1/series?match[]={}&match[]={}",
            encode("adm_test{series=\"a\"}"),
            encode("{series=\"c\"}")
        ),
    ] {
        let (k, p) = both("GET", &path, b"");
        assert_eq!((k.status, p.status), (200, 200), "{path}: {} / {}", k.text(), p.text());
        let sorted = |r: &Response| {
            let mut v = r.json()["data"].as_array().unwrap().clone();
            v.sort_by_key(|s| s.to_string());
            v
        };
        assert_eq!(sorted(&k), sorted(&p), "{path}");
    }
    // The query API does not show the deleted series, in either.
    let (k, p) = both("GET", &format!("/api/v1/query?query={}", encode("count(adm_test)")), b"");
    assert_eq!(k.json()["data"]["result"][0]["value"][1], p.json()["data"]["result"][0]["value"][1]);
    assert_eq!(p.json()["data"]["result"][0]["value"][1], "2", "{}", p.text());
    // Without match[]: kahu also holds its own metrics; every name Prometheus lists is listed.
    let (k, p) = both("GET", "/api/v1/labels", b"");
    let (k, p) = (k.json(), p.json());
    let listed: Vec<&Value> = k["data"].as_array().unwrap().iter().collect();
    assert_eq!(p["data"], json!(["__name__", "series"]), "{p}");
    for name in p["data"].as_array().unwrap() {
        assert!(listed.contains(&name), "{name} missing from {k}");
    }
}
