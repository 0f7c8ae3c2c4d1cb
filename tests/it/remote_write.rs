//! End to end: a real Prometheus (Debian `prometheus`) scrapes itself and remote-writes into
//! `kahu serve`; kahu is killed with SIGKILL while Prometheus is sending and restarted on the same
//! port and data directory; then every sample that Prometheus had sent successfully must be in
//! kahu's data directory.
//!
//! "Sent successfully": Prometheus runs one remote-write shard, which sends in WAL order, and
//! reports `prometheus_remote_storage_queue_highest_sent_timestamp_seconds` after each
//! acknowledged request. Every sample of its TSDB at or before that time was acknowledged by kahu.
//!
//! Also: the receiver's status codes (204, 400 with counts and reasons, 413, 415) on a running
//! `kahu serve`, and that what it acknowledged survives a SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kahu_tsdb::model::{Labels, MatchOp, Matcher};
use kahu_tsdb::{Db, Queryable};

use crate::harness::{free_port, http, kahu_bin, require_program};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_kahu(data: &Path, addr: SocketAddr) -> Proc {
    let mut child = Command::new(kahu_bin())
        .args(["serve", "--collect.interval", "1h", "--storage.wal.fsync", "never"])
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kahu");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("kahu did not start");
        if line.contains("kahu listening") {
            break;
        }
    }
    // Keep draining so that kahu never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Proc(child)
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn prom_query(addr: SocketAddr, q: &str, time: f64) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}&time={time:.3}", encode(q));
    let r = http(addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn highest_sent(prom: SocketAddr) -> f64 {
    let v = prom_query(prom, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", now_s());
    v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

#[test]
fn every_sample_prometheus_sent_survives_a_sigkill_of_kahu() {
    let prometheus = require_program("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let kahu_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['{prom_addr}']\n\
             remote_write:\n  - url: http://{kahu_addr}/api/v1/write\n    metadata_config:\n      send: false\n    queue_config:\n      min_shards: 1\n      max_shards: 1\n      max_samples_per_send: 500\n      batch_send_deadline: 500ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n"
        ),
    )
    .unwrap();
    let kahu_data = dir.path().join("kahu");
    let mut kahu = start_kahu(&kahu_data, kahu_addr);
    let _prom = Proc(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("prom").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(prom_addr, "/-/ready") != Some(200) {
        assert!(Instant::now() < deadline, "prometheus not ready in 60s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Wait until kahu has acknowledged a few seconds of scrapes.
    let first_sent = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sent = highest_sent(prom_addr);
            if sent > 0.0 {
                break sent;
            }
            assert!(Instant::now() < deadline, "prometheus sent nothing to kahu in 60s");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let started = now_s();
    // Two SIGKILLs while Prometheus is sending, each followed by a restart on the same port.
    let mut kills = Vec::new();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        kahu.0.kill().unwrap();
        kahu.0.wait().unwrap();
        kills.push(now_s());
        std::thread::sleep(Duration::from_secs(2));
        kahu = start_kahu(&kahu_data, kahu_addr);
    }
    // Let Prometheus catch up on what it could not send while kahu was down.
    let restarted = now_s();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = highest_sent(prom_addr);
    while sent < restarted + 2.0 {
        assert!(
            Instant::now() < deadline,
            "prometheus did not catch up: highest sent {sent}, restart {restarted}"
        );
        std::thread::sleep(Duration::from_millis(500));
        sent = highest_sent(prom_addr);
    }
    // What Prometheus holds up to the highest acknowledged timestamp.
    let want = prom_query(prom_addr, "{job=\"prom\"}[10m]", sent);
    // Kill kahu once more, then read its directory.
    kahu.0.kill().unwrap();
    kahu.0.wait().unwrap();
    let db = Db::open_read_only(&kahu_data).unwrap();
    let q = db.querier().unwrap();
    let mut got: BTreeMap<Labels, BTreeSet<(i64, u64)>> = BTreeMap::new();
    let m = [Matcher::new(MatchOp::Equal, "job", "prom").unwrap()];
    for s in q.select(&m, i64::MIN, i64::MAX).unwrap() {
        let mut it = s.iter();
        let set = got.entry(s.labels().clone()).or_default();
        while let Some(x) = it.next() {
            set.insert((x.t, x.v.to_bits()));
        }
    }
    let mut checked = 0usize;
    let (mut before_kill, mut after_restart) = (0usize, 0usize);
    let mut missing = Vec::new();
    for series in want["data"]["result"].as_array().unwrap() {
        let labels = Labels::from_pairs(
            series["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        );
        let have = got.get(&labels);
        for pair in series["values"].as_array().unwrap() {
            let t_s = pair[0].as_f64().unwrap();
            let t = (t_s * 1000.0).round() as i64;
            let v: f64 = match pair[1].as_str().unwrap() {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap(),
            };
            checked += 1;
            if t_s < kills[0] {
                before_kill += 1;
            }
            if t_s > kills[1] + 2.0 {
                after_restart += 1;
            }
            let found = have.is_some_and(|h| {
                h.contains(&(t, v.to_bits()))
                    || (v.is_nan() && h.iter().any(|&(ht, hv)| ht == t && f64::from_bits(hv).is_nan()))
            });
            if !found && missing.len() < 10 {
                missing.push(format!("{labels} @ {t} = {v}"));
            }
        }
    }
    assert!(missing.is_empty(), "samples Prometheus sent are missing in kahu (of {checked}): {missing:#?}");
    assert!(checked > 2000, "only {checked} samples compared");
    assert!(
        before_kill > 100 && after_restart > 100,
        "samples before the first kill: {before_kill}, after the last restart: {after_restart}"
    );
    assert!(first_sent < started && started < kills[0]);
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    Some(http(addr, "GET", path, &[], b"").status)
}

/// A `WriteRequest` with one series per `(name, samples)`.
fn write_request(series: &[(&str, &[(i64, f64)])]) -> Vec<u8> {
    use kahu_query::api::prompb::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    WriteRequest {
        timeseries: series
            .iter()
            .map(|(name, samples)| TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "rw_status_test".into() },
                    Label { name: "series".into(), value: (*name).into() },
                ],
                samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

const V1: &[(&str, &str)] = &[
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// Every series `rw_status_test` in the data directory, as `series label → [(t, v)]`.
fn stored(data: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let db = Db::open_read_only(data).unwrap();
    let q = db.querier().unwrap();
    let mut out = BTreeMap::new();
    for s in q.select(&[Matcher::equal("__name__", "rw_status_test")], i64::MIN, i64::MAX).unwrap() {
        let mut it = s.iter();
        let mut v = Vec::new();
        while let Some(x) = it.next() {
            v.push((x.t, x.v));
        }
        out.insert(s.labels().get("series").unwrap().to_string(), v);
    }
    out
}

#[test]
fn remote_write_answers_with_prometheus_status_codes_and_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::harness::TestServer::start(
        dir.path(),
        &["--collect.interval", "1h", "--storage.remote-write.max-request-bytes", "64KB"],
    );
    let t = (now_s() * 1000.0) as i64 - 60_000;
    let post = |headers: &[(&str, &str)], body: &[u8]| server.request("POST", "/api/v1/write", headers, body);
    let written = |r: &crate::harness::Response| {
        r.header("x-prometheus-remote-write-samples-written").map(|v| v.parse::<u64>().unwrap())
    };

    // Stored: 204 after the commit, with the count.
    let good = write_request(&[("a", &[(t, 1.0), (t + 1000, 2.0)]), ("b", &[(t, 10.0)])]);
    let r = post(V1, &snappy(&good));
    assert_eq!((r.status, written(&r)), (204, Some(3)), "{}", r.text());
    // A retry of an acknowledged request: its older samples are out of order now, which is a 400
    // (the sender drops the request rather than retrying it, as with Prometheus' receiver); the
    // newest sample of each series is an exact duplicate, which is a no-op. Nothing changes.
    let r = post(V1, &snappy(&good));
    assert_eq!((r.status, written(&r)), (400, Some(0)), "retry: {}", r.text());
    assert!(r.text().contains("0 of 3 samples written; rejected: 1 out of order"), "{}", r.text());
    // Out of order and duplicate samples are rejected one by one; the rest is stored.
    let mixed =
        write_request(&[("a", &[(t - 1000, 0.5), (t + 1000, 99.0), (t + 2000, 3.0)]), ("c", &[(t, 7.0)])]);
    let r = post(V1, &snappy(&mixed));
    assert_eq!((r.status, written(&r)), (400, Some(2)), "{}", r.text());
    let msg = r.text();
    assert!(
        msg.contains("2 of 4 samples written")
            && msg.contains("1 out of order")
            && msg.contains("1 duplicate timestamp"),
        "{msg}"
    );
    // What a retry cannot fix: 400 with a message, nothing stored.
    let r = post(V1, b"\xff\xff\xff\xff\xff garbage");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("snappy"), "{}", r.text());
    let r = post(V1, &snappy(b"\x0a\x05\x0a\x03\x0a"));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("protobuf"), "{}", r.text());
    let mut not_utf8 = write_request(&[("XX", &[(t + 5000, 1.0)])]);
    let at = not_utf8.windows(2).position(|w| w == b"XX").unwrap();
    not_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let r = post(V1, &snappy(&not_utf8));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("UTF-8"), "{}", r.text());
    // A truncated message after a good series: the whole request is refused, nothing of it stored.
    let mut cut = write_request(&[("d", &[(t, 1.0)]), ("e", &[(t, 1.0)])]);
    cut.truncate(cut.len() - 3);
    let r = post(V1, &snappy(&cut));
    assert_eq!(r.status, 400, "{}", r.text());
    // Too large: the body itself, or what it decompresses to (a small body of many zeros).
    let r = post(V1, &vec![0u8; 70 * 1024]);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = post(V1, &snappy(&vec![0u8; 200 * 1024]));
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("exceeds the limit"), "{}", r.text());
    // Not remote write 1.0: 415.
    let r = post(&[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")], &snappy(&good));
    assert_eq!(r.status, 415, "{}", r.text());
    let r = post(
        &[
            ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            ("Content-Encoding", "snappy"),
        ],
        &snappy(&good),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    // An empty request stores nothing and is fine.
    let r = post(V1, &snappy(b""));
    assert_eq!((r.status, written(&r)), (204, Some(0)), "{}", r.text());

    let want: BTreeMap<String, Vec<(i64, f64)>> = [
        ("a".to_string(), vec![(t, 1.0), (t + 1000, 2.0), (t + 2000, 3.0)]),
        ("b".to_string(), vec![(t, 10.0)]),
        ("c".to_string(), vec![(t, 7.0)]),
    ]
    .into();
    assert_eq!(stored(dir.path()), want, "while running");
    // Acknowledged means durable: still there after a SIGKILL.
    drop(server);
    assert_eq!(stored(dir.path()), want, "after SIGKILL");
}
