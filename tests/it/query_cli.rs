//! `kahu query` against a running `kahu serve`.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{TestServer, kahu_bin};

fn kahu_query(server: &TestServer, args: &[&str]) -> Output {
    Command::new(kahu_bin())
        .arg("query")
        .args(["--server", &format!("http://{}", server.addr)])
        .args(args)
        .output()
        .unwrap()
}

fn fixture_server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let procfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/procfs");
    let server = TestServer::start(
        dir.path(),
        &["--path.procfs", procfs.to_str().unwrap(), "--collect.interval", "1s"],
    );
    server.wait_ready();
    (dir, server)
}

#[test]
fn instant_queries_print_json_csv_and_aligned_tables() {
    let (_dir, server) = fixture_server();
    let out = kahu_query(&server, &["node_memory_MemTotal_bytes", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "16777216000");

    let out = kahu_query(&server, &["node_cpu_seconds_total{mode=\"idle\"}", "--output", "csv"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,value,__name__,cpu,mode");
    assert!(lines[1].ends_with(",5,node_cpu_seconds_total,0,idle"), "{text}");
    assert!(lines[2].ends_with(",5,node_cpu_seconds_total,1,idle"), "{text}");

    // Duration expressions and Go string escapes parse as the engine reads them.
    let out = kahu_query(
        &server,
        &["count_over_time({__name__=\"node_memory_\x4demTotal_bytes\"}[1m+1m])", "-o", "json"],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");

    let out = kahu_query(&server, &["sum by (cpu) (node_cpu_seconds_total)", "-o", "table"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{cpu=\"0\"}  5.9799999999999995\n{cpu=\"1\"}                5.67\n"
    );
}

#[test]
fn range_queries_draw_a_chart_per_series() {
    let (_dir, server) = fixture_server();
    let out =
        kahu_query(&server, &["node_memory_MemFree_bytes", "--since", "10m", "--step", "15s", "-o", "table"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "node_memory_MemFree_bytes", "{text}");
    assert!(lines[1].contains('┤') && text.contains('└'), "{text}");
    assert!(text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "braille dots drawn: {text}");
}

#[test]
fn a_parse_error_exits_2_with_a_caret_and_an_execution_error_exits_1() {
    let (_dir, server) = fixture_server();
    let out = kahu_query(&server, &["sum(rate(x[5m])) by (a"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("kahu: parse error: "), "{err}");
    assert_eq!(lines[1], "  sum(rate(x[5m])) by (a");
    assert_eq!(lines[2].find('^'), Some(2 + "sum(rate(x[5m])) by (a".len()), "{err}");

    // Vector matching that finds duplicates on the one side fails during evaluation.
    let out = kahu_query(&server, &["node_cpu_seconds_total + on(cpu) node_cpu_seconds_total"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("kahu: error: execution: "), "{out:?}");

    let out =
        Command::new(kahu_bin()).args(["query", "up", "--server", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an unreachable server is an execution error");
}

/// `--data-dir` reads the directory a running server writes, without its lock and without
/// disturbing it: the server keeps answering and collecting.
#[test]
fn a_data_directory_is_queried_while_the_server_runs() {
    let (dir, server) = fixture_server();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let query = |args: &[&str]| {
        Command::new(kahu_bin()).arg("query").arg("--data-dir").arg(dir.path()).args(args).output().unwrap()
    };
    let out = query(&["node_memory_MemTotal_bytes", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "16777216000", "{v}");

    let out = query(&["sum(node_cpu_seconds_total)", "--since", "1m", "--step", "10s", "-o", "csv"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("timestamp,value\n"), "{text}");
    assert!(text.lines().skip(1).all(|l| l.ends_with(",11.65")), "{text}");

    assert_eq!(server.get("/api/v1/query?query=1").status, 200, "the server is undisturbed");
}
