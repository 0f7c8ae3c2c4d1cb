//! Test harness: runs the built `kahu` binary on a free port and talks HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `kahu` binary under test.
pub fn kahu_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kahu"))
}

/// A running `kahu serve`, killed on drop.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines the server logged to stderr after start-up. Kept so that the draining thread keeps
    /// the pipe empty; a full pipe would block the server.
    pub log: mpsc::Receiver<String>,
}

impl TestServer {
    /// Starts `kahu serve --data-dir DIR --listen 127.0.0.1:0 EXTRA…` and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> TestServer {
        let mut args = vec!["serve".into(), "--data-dir".into(), data_dir.display().to_string()];
        args.extend(["--listen", "127.0.0.1:0"].iter().chain(extra).map(|a| a.to_string()));
        TestServer::spawn(&args)
    }

    /// Runs `kahu ARGS…` (a `serve` that listens on 127.0.0.1:0) and waits until it listens.
    pub fn spawn(args: &[String]) -> TestServer {
        let mut child = Command::new(kahu_bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kahu");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        while addr.is_none() {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("kahu did not log its address in 60s");
            if line.contains("kahu listening") {
                addr = line
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("address="))
                    .and_then(|a| a.parse().ok());
            }
        }
        TestServer { child, addr: addr.expect("address"), log: rx }
    }

    /// GET `path`, returning status, headers (lower-cased names) and body.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Sends one HTTP/1.0 request (so the body ends at EOF).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http(self.addr, method, path, headers, body)
    }

    /// Waits until `/-/ready` answers 200.
    pub fn wait_ready(&self) {
        for _ in 0..600 {
            if self.get("/-/ready").status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kahu not ready after 60s");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kahu did not exit within 30s of SIGTERM");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to `addr`.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response has a header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response { status, headers, body }
}

/// Path of a program, or a panic that says how to install it (scripts/test does).
pub fn require_program(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found on PATH: install the Debian package {package} (scripts/test does this)");
}

/// The problems `promtool check metrics` reports for an exposition, one per line. Panics if
/// promtool cannot parse it at all.
pub fn promtool_check_metrics(body: &[u8]) -> Vec<String> {
    let promtool = require_program("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().expect("stdin").write_all(body).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!report.contains("error while linting"), "promtool cannot parse the exposition: {report}");
    report.lines().map(str::to_string).filter(|l| !l.trim().is_empty()).collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// One scrape of the real node_exporter (Debian package `prometheus-node-exporter`).
pub fn node_exporter_metrics() -> Vec<u8> {
    let bin = require_program("prometheus-node-exporter", "prometheus-node-exporter");
    let port = free_port();
    let mut child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node_exporter");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut body = None;
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            body = Some(http(addr, "GET", "/metrics", &[], b"").body);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    body.expect("node_exporter did not listen within 10s")
}

impl TestServer {
    /// The log lines received so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}
