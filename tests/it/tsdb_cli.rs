//! `kahu tsdb analyze` and `kahu tsdb verify` on real block directories.

use std::process::Command;

use kahu_tsdb::block::{BlockSpec, WriteOptions, write_block};
use kahu_tsdb::model::{Labels, Sample};

use crate::harness::kahu_bin;

fn data_dir_with_blocks() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for k in 0..2i64 {
        let series: std::collections::BTreeMap<Labels, Vec<Sample>> = (0..50)
            .map(|i| {
                let l = Labels::from_pairs([("__name__", format!("m{}", i % 3)), ("pod", format!("p{i}"))]);
                let s: Vec<Sample> =
                    (0..480).map(|j| Sample::new(k * 7_200_000 + j * 15_000, (i * j) as f64)).collect();
                (l, s)
            })
            .collect();
        let spec = BlockSpec { min_time: k * 7_200_000, max_time: (k + 1) * 7_200_000, ..Default::default() };
        ids.push(write_block(dir.path(), series, &spec, &WriteOptions::default()).unwrap().unwrap().ulid);
    }
    (dir, ids)
}

#[test]
fn verify_passes_on_whole_blocks_and_names_the_damaged_file() {
    let (dir, ids) = data_dir_with_blocks();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2 blocks checked, 0 damaged"), "{stdout}");

    let seg = dir.path().join(&ids[1]).join("chunks/000001");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{}/chunks/000001", ids[1])), "{stdout}");
    assert!(stdout.contains("checksum mismatch"), "{stdout}");
    assert!(stdout.contains("2 blocks checked, 1 damaged"), "{stdout}");
}

#[test]
fn analyze_lists_blocks_and_cardinalities() {
    let (dir, ids) = data_dir_with_blocks();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "analyze", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Blocks: 2"), "{stdout}");
    assert!(stdout.contains(&ids[0]) && stdout.contains(&ids[1]), "{stdout}");
    assert!(stdout.contains("1970-01-01T02:00:00Z"), "{stdout}");
    assert!(stdout.contains("Total: 48000 samples"), "{stdout}");
    // m0 has pods 0,3,…,48: 17 series; the label with most values is pod (50).
    assert!(stdout.contains("        17 m0"), "{stdout}");
    assert!(stdout.contains("        50 pod"), "{stdout}");
}

/// `kahu serve` persists the head of a data directory whose head spans 8 hours into blocks at
/// start, serves queries over blocks and head, reports its blocks in its self-metrics, and
/// `kahu query --data-dir` reads the blocks too.
#[test]
fn serve_persists_the_head_into_blocks_and_both_query_paths_read_them() {
    use kahu_tsdb::{Appendable, Db, Options};

    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = now - 8 * 3_600_000;
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        for k in 0..(8 * 60) {
            let mut app = db.appender();
            for i in 0..20 {
                let l = Labels::from_pairs([("__name__", "persist_test".to_string()), ("i", format!("{i}"))]);
                app.append(&l, start + k * 60_000, (k * i) as f64).unwrap();
            }
            app.commit().unwrap();
        }
    }
    let server = crate::harness::TestServer::start(dir.path(), &["--storage.tsdb.retention.time", "30d"]);
    // Persisting runs in the background; a loaded CI machine may take a while.
    let loaded = wait_for_metric(&server, "kahu_tsdb_blocks_loaded", |v| v >= 2.0);
    assert!(loaded >= 2.0, "blocks loaded: {loaded}");
    let old = (start + 3_600_000) / 1000;
    let v = server.get(&format!("/api/v1/query?query=count(persist_test)&time={old}")).json();
    assert_eq!(v["data"]["result"][0]["value"][1], "20", "{v}");
    let v = server
        .get(&format!(
            "/api/v1/query?query=count_over_time(persist_test%7Bi%3D%223%22%7D%5B9h%5D)&time={}",
            now / 1000
        ))
        .json();
    assert_eq!(v["data"]["result"][0]["value"][1], "480", "every sample once, across blocks and head: {v}");
    let out = Command::new(kahu_bin())
        .args(["query", "--data-dir"])
        .arg(dir.path())
        .args([
            "count_over_time(persist_test{i=\"3\"}[9h])",
            "-o",
            "json",
            "--time",
            &(now / 1000).to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "480", "{v}");
    assert!(server.terminate().success());
    let blocks = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 26)
        .count();
    assert!(blocks >= 2, "{blocks}");
}

/// A block whose checksum fails is quarantined by `kahu serve` at start (a counter, the rest
/// serving) and `kahu tsdb verify` still names it.
#[test]
fn serve_quarantines_a_damaged_block_and_verify_names_it() {
    let (dir, ids) = data_dir_with_blocks();
    let index = dir.path().join(&ids[0]).join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 4;
    std::fs::write(&index, bytes).unwrap();
    let server = crate::harness::TestServer::start(dir.path(), &[]);
    assert_eq!(wait_for_metric(&server, "kahu_tsdb_blocks_quarantined_total", |_| true), 1.0);
    assert_eq!(wait_for_metric(&server, "kahu_tsdb_blocks_loaded", |_| true), 1.0);
    let v = server.get("/api/v1/query?query=count(m0)&time=8000").json();
    assert_eq!(v["data"]["result"][0]["value"][1], "17", "the other block still serves: {v}");
    assert!(server.terminate().success());
    assert!(dir.path().join("quarantine").join(&ids[0]).is_dir());
    let out =
        Command::new(kahu_bin()).args(["tsdb", "verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("QUARANTINED  {}", dir.path().join("quarantine").join(&ids[0]).display())),
        "{stdout}"
    );
    assert!(stdout.contains("2 blocks checked, 1 damaged"), "{stdout}");
}

/// Polls `/metrics` (up to 120 s: the first collection pass must finish, and a loaded CI
/// machine may be slow) until `name` has a
/// value that `done` accepts; returns the last value seen (NaN if none).
fn wait_for_metric(server: &crate::harness::TestServer, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let mut last = f64::NAN;
    for _ in 0..1200 {
        let r = server.get("/metrics");
        if r.status == 200 {
            let prefix = format!("{name} ");
            if let Some(v) =
                r.text().lines().find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse::<f64>().ok())
            {
                last = v;
                if done(v) {
                    return v;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}
