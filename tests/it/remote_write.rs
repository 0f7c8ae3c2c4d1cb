//! End to end: a real Prometheus (Debian `prometheus`) scrapes itself and remote-writes into
//! `kahu serve`; kahu is killed with SIGKILL while Prometheus is sending and restarted on the same
//! port and data directory; then every sample that Prometheus had sent successfully must be in
//! kahu's data directory.
//!
//! "Sent successfully": Prometheus runs one remote-write shard, which sends in WAL order, and
//! reports `prometheus_remote_storage_queue_highest_sent_timestamp_seconds` after each
//! acknowledged request. Every sample of its TSDB at or before that time was acknowledged by kahu.

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
