//! Differential check of kahu's PromQL engine against the real Prometheus (Debian `prometheus`).
//!
//! One deterministic dataset (counters with resets, gauges with NaN/±Inf and gaps, classic
//! histogram buckets, some non-monotonic, an info metric) is backfilled into a Prometheus TSDB with
//! `promtool tsdb create-blocks-from openmetrics`; Prometheus answers a list of expressions as range
//! and instant queries; its answers become the expectations of a promqltest script (`load` of the
//! same data, `eval` per expression), which kahu's runner then checks. A failure prints the script
//! path so the case can be rerun with `kahu promqltest`.
//!
//! The Debian package is Prometheus 2.42, whose range selectors are closed (`[t - r, t]`) where
//! Prometheus 3 makes them left-open (`(t - r, t]`), and whose lookback includes a sample exactly
//! 5m old. The dataset and the queries are laid out so that no sample ever sits on a window's lower
//! bound: samples are every 15s at multiples of 15s, evaluation times are 7s past a multiple of 15s,
//! and no range, offset or `@` time is congruent to 7s modulo 15s (subqueries, whose inner steps
//! are multiples of their step, use ranges that are not multiples of 5s). So both versions must
//! agree exactly (to the runner's relative 1e-6). Other 2.42 differences are handled per
//! expression: `holt_winters` is Prometheus 3's `double_exponential_smoothing`; functions and
//! aggregations newer than 2.42 (`limitk`, `sort_by_label`, `mad_over_time`...) are not in the list.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, http, require_program};

const STEP_S: i64 = 15;
const POINTS: i64 = 161; // 0..=40m
const RANGE_START_S: i64 = 607; // 10m7s
const RANGE_END_S: i64 = 2407; // 40m7s
const RANGE_STEP_S: i64 = 60;
/// Instant evaluation times; at 757s and 1357s the latest sample of one gauge is +Inf and -Inf.
const INSTANT_AT_S: &[i64] = &[427, 757, 1357, 1507, 2287];

/// Expressions checked as range queries (and instant queries at `INSTANT_AT_S`). An entry
/// `kahu_expr @@ prometheus_expr` names a function Prometheus 2.42 calls differently.
const EXPRS: &[&str] = &[
    // Literals and selectors.
    "1",
    "-2.5 * 4",
    "time()",
    "cnt",
    "gauge",
    "-gauge",
    "gappy",
    "cnt{instance=~\"i[12]\"}",
    "cnt{job!=\"api\"}",
    "{__name__=~\"cnt|flag\", instance=\"i1\"}",
    "cnt offset 3m",
    "cnt offset -2m",
    "gappy offset 4m",
    "cnt @ 601",
    "gauge @ start()",
    "gauge @ end()",
    "cnt @ 1201 offset 1m",
    // Counter functions.
    "rate(cnt[1m])",
    "rate(cnt[2m])",
    "rate(cnt[5m])",
    "rate(cnt[3m] offset 1m)",
    "irate(cnt[1m])",
    "irate(cnt[5m])",
    "increase(cnt[2m])",
    "increase(cnt[10m])",
    "increase(gappy[5m])",
    "rate(gappy[10m])",
    "resets(cnt[5m])",
    "resets(cnt[20m])",
    "changes(gauge[5m])",
    "changes(flag[10m])",
    "delta(gauge[2m])",
    "delta(gauge[5m])",
    "idelta(gauge[1m])",
    "deriv(gauge[5m])",
    "deriv(cnt[2m])",
    "predict_linear(cnt[5m], 600)",
    "predict_linear(gauge[3m], -60)",
    "double_exponential_smoothing(gauge[5m], 0.5, 0.5) @@ holt_winters(gauge[5m], 0.5, 0.5)",
    "double_exponential_smoothing(cnt[10m], 0.1, 0.9) @@ holt_winters(cnt[10m], 0.1, 0.9)",
    // Over-time functions.
    "avg_over_time(gauge[2m])",
    "sum_over_time(gauge[2m])",
    "count_over_time(gauge[2m])",
    "min_over_time(gauge[5m])",
    "max_over_time(gauge[5m])",
    "last_over_time(gappy[5m])",
    "present_over_time(gappy[3m])",
    "absent_over_time(gappy[3m])",
    "absent_over_time(nonexistent[3m])",
    "stddev_over_time(gauge[3m])",
    "stdvar_over_time(cnt[3m])",
    "quantile_over_time(0.9, gauge[5m])",
    "quantile_over_time(0, gauge[5m])",
    "quantile_over_time(1.5, gauge[5m])",
    "quantile_over_time(-1, cnt[5m])",
    // Math functions, on values with NaN and ±Inf.
    "abs(gauge)",
    "ceil(gauge / 3)",
    "floor(gauge / 3)",
    "round(gauge / 3)",
    "round(gauge, 0.3)",
    "round(gauge, 5)",
    "sqrt(gauge)",
    "exp(gauge / 10)",
    "ln(gauge)",
    "log2(cnt)",
    "log10(gauge)",
    "sgn(gauge)",
    "clamp(gauge, -5, 5)",
    "clamp(gauge, 5, -5)",
    "clamp_max(gauge, 3)",
    "clamp_min(gauge, -3)",
    "sin(gauge)",
    "cos(gauge)",
    "tan(gauge)",
    "asin(gauge / 20)",
    "acos(gauge / 20)",
    "atan(gauge)",
    "sinh(gauge / 10)",
    "cosh(gauge / 10)",
    "tanh(gauge)",
    "asinh(gauge)",
    "acosh(gauge)",
    "atanh(gauge / 20)",
    "deg(gauge)",
    "rad(gauge)",
    "pi() * gauge",
    "timestamp(gauge)",
    "timestamp(gappy)",
    "minute(cnt * 60)",
    "hour(cnt * 3600)",
    "day_of_month(cnt * 86400)",
    "day_of_week(cnt * 86400)",
    "day_of_year(cnt * 86400)",
    "days_in_month(cnt * 2000000)",
    "month(cnt * 2000000)",
    "year(cnt * 30000000)",
    "hour()",
    "scalar(gauge{instance=\"i1\", job=\"api\"})",
    "scalar(gauge)",
    "vector(time())",
    "absent(nonexistent{job=\"x\"})",
    "absent(gappy)",
    "label_replace(cnt, \"dst\", \"x-$1\", \"instance\", \"i(.*)\")",
    "label_replace(cnt, \"instance\", \"\", \"instance\", \"i1\")",
    "label_join(cnt, \"both\", \"/\", \"job\", \"instance\")",
    // Classic histograms.
    "histogram_quantile(0.5, rate(hist_bucket[2m]))",
    "histogram_quantile(0.9, sum by (le) (rate(hist_bucket[5m])))",
    "histogram_quantile(0.99, hist_bucket)",
    "histogram_quantile(0, hist_bucket)",
    "histogram_quantile(1, hist_bucket)",
    "histogram_quantile(1.5, hist_bucket)",
    "histogram_quantile(-0.5, hist_bucket)",
    "histogram_quantile(0.5, hist_bucket{le!=\"+Inf\"})",
    "histogram_quantile(0.5, increase(hist_bucket{job=\"db\"}[1m]))",
    // Aggregations.
    "sum(cnt)",
    "sum by (job) (rate(cnt[2m]))",
    "sum without (instance) (gauge)",
    "avg by (job) (gauge)",
    "min by (job) (gauge)",
    "max(gauge)",
    "count by (job) (cnt)",
    "group by (job) (cnt)",
    "stddev by (job) (gauge)",
    "stdvar(cnt)",
    "count_values(\"value\", flag)",
    "count_values by (job) (\"v\", round(gauge / 10))",
    "topk(2, gauge)",
    "topk by (job) (1, rate(cnt[2m]))",
    "bottomk(2, gauge)",
    "bottomk(1, cnt)",
    "topk(0, gauge)",
    "quantile(0.5, gauge)",
    "quantile by (job) (0.75, cnt)",
    "quantile(2, gauge)",
    "quantile(-1, gauge)",
    "sum by (job) (gauge) / on (job) group_left count by (job) (gauge)",
    "avg without (job, instance) (gauge)",
    "sum by (le) (hist_bucket)",
    "max by (nonexistent) (gauge)",
    "sum(nonexistent)",
    // Binary operators.
    "cnt + 1",
    "2 ^ gauge",
    "gauge % 7",
    "-gauge % 3",
    "cnt / gauge",
    "gauge / 0",
    "-gauge / 0",
    "cnt - cnt offset 1m",
    "cnt * on (instance, job) flag",
    // Prometheus 2.42 keeps the metric name on atan2; 3.x drops it as for the other arithmetic.
    "gauge atan2 cnt @@ label_replace(gauge atan2 cnt, \"__name__\", \"\", \"\", \"\")",
    "cnt > 100",
    "gauge < 0",
    "gauge >= bool 0",
    "gauge == bool gauge",
    "gauge != gauge",
    "1 > bool 2",
    "cnt > gauge",
    "cnt and flag == 1",
    "cnt or gappy",
    "gauge unless on (instance) flag == 0",
    "cnt and on (job) gauge > 10",
    "cnt + on (instance) group_left (version) info",
    "info * on (instance) group_right cnt{job=\"api\"}",
    "cnt / ignoring (job) group_left gauge{job=\"api\"}",
    "cnt{job=\"api\"} + on (instance) gauge",
    "cnt + on (job) gauge",
    "gauge + gauge",
    "(cnt + 1) * 2 - 3",
    "scalar(sum(flag)) * gauge",
    "sum(cnt) > bool 1000",
    "sort(gauge)",
    "sort_desc(cnt)",
    // Subqueries (inner ranges are not multiples of 5s; see the module comment).
    "max_over_time(rate(cnt[67s])[5m:20s])",
    "avg_over_time(gauge[5m:1m])",
    "min_over_time(deriv(gauge[2m1s])[10m:])",
    "sum_over_time(rate(cnt[67s])[4m:30s] offset 2m)",
    "rate(sum(cnt)[5m:20s])",
    "count_over_time(cnt[3m:10s])",
    "last_over_time(gauge[3m:8s])",
    // More edge cases: NaN/±Inf through functions and aggregations, precedence, matching.
    "count_values(\"v\", gauge)",
    "count_values(\"job\", flag)",
    "topk(3, gauge) by (job)",
    "bottomk by (job) (1, gauge)",
    "quantile(NaN, gauge)",
    "stdvar by (job) (gauge)",
    "sum by (job) (gauge)",
    "avg(gauge)",
    "min(gauge)",
    "sum(gauge) by (job)",
    "sum without () (cnt)",
    "group(gauge) by (job)",
    "count by (job) (gauge > 0)",
    "sort_desc(sum by (job) (cnt))",
    "-sum(cnt)",
    "+gauge",
    "1 - -1",
    "-2 ^ 2",
    "gauge ^ 2 ^ 0.5",
    "gauge ^ 0.5",
    "gauge % 0",
    "gauge % -7",
    "round(gauge / 2)",
    "round(-gauge / 2)",
    "clamp(gauge, NaN, 5)",
    "clamp_min(gauge, NaN)",
    "gauge > 5 < 10",
    "2 * (gauge > 0)",
    "gauge > bool on (instance, job) cnt",
    "gauge == bool 0.25",
    "cnt unless gappy",
    "gappy or vector(0)",
    "vector(1) and on () cnt",
    "cnt * on () group_left sum(flag)",
    "sum by (job) (rate(cnt[2m])) / ignoring (job) group_left sum(rate(cnt[2m]))",
    "sum by (job) (cnt) or sum by (instance) (cnt)",
    "cnt + on (instance, job) group_left (version) info",
    "info + on (instance) group_left (job) cnt{job=\"db\"}",
    "sum_over_time(gauge[5m])",
    // Not gauge: Prometheus 3 (and kahu) sum with Kahan compensation where 2.42 leaves a 4e-16.
    "avg_over_time(cnt[5m])",
    "max_over_time(gauge[1m])",
    "min_over_time(gauge[1m])",
    "stddev_over_time(gauge[5m])",
    "quantile_over_time(0.5, gauge[1m])",
    "quantile_over_time(NaN, gauge[1m])",
    "rate(gauge[2m])",
    "increase(gauge[5m])",
    "irate(gauge[2m])",
    "resets(gauge[5m])",
    "changes(gauge[1m])",
    "delta(cnt[20s])",
    "rate(cnt[20s])",
    "deriv(gappy[10m])",
    "predict_linear(gappy[5m], 300)",
    "timestamp(gauge offset 1m)",
    "timestamp(gauge @ 601)",
    "timestamp(rate(cnt[1m]))",
    "label_join(cnt, \"job\", \"-\", \"instance\", \"job\")",
    "label_replace(cnt, \"job\", \"$2-$1\", \"instance\", \"(i)(.*)\")",
    "label_replace(cnt, \"dst\", \"$1\", \"instance\", \"1\")",
    "histogram_quantile(0.5, sum by (le, job) (rate(hist_bucket[2m])))",
    "histogram_quantile(NaN, hist_bucket)",
    "histogram_quantile(0.75, hist_bucket{le=~\"1|\\\\+Inf\"})",
    "histogram_quantile(0.8, label_replace(hist_bucket, \"le\", \"x\", \"le\", \"0.1\"))",
    "histogram_quantile(0.3, hist_bucket * on (job) group_left (instance) gauge{instance=\"i1\"} * 0 + 1)",
    "max_over_time(rate(cnt[67s])[5m:20s] @ 1201)",
    "sum_over_time(gauge[10m:2m] offset -1m)",
    "rate(cnt[2m] @ end())",
    "absent_over_time(gappy[1m])",
    "present_over_time(gauge[1m])",
    "minute()",
    "days_in_month(vector(5184000))",
    "sgn(vector(-3))",
    "scalar(vector(2)) + scalar(sum(cnt))",
    "time() - timestamp(gappy)",
    "sort_desc(gauge)",
    "topk(1.5, gauge)",
    "topk(100, cnt)",
    "topk(scalar(count(cnt)) - 4, cnt)",
    "quantile(scalar(flag{instance=\"i1\", job=\"api\"}) / 2 + 0.25, gauge)",
    "5 < cnt",
    "1 == bool flag",
    "timestamp(sum(cnt))",
    "double_exponential_smoothing(gauge[5m], 1, 0.5) @@ holt_winters(gauge[5m], 1, 0.5)",
    "round(gauge, -1)",
    "round(gauge, 0)",
    "clamp_max(gauge, -Inf)",
    "clamp(gauge, -Inf, Inf)",
    "exp(gauge)",
    "ln(-gauge)",
    "sqrt(-1 * gauge)",
    "gauge ^ gauge",
    "-gauge ^ 2",
    "gauge % gauge",
    "1 / gauge",
    "count(gauge == 0)",
    "avg by (job) (gauge)",
    "sum(gauge)",
    "stddev(gauge)",
    "max by (job) (gauge)",
    "quantile(0.9, gauge)",
    "gauge - on (instance, job) cnt",
    "changes(gauge[3m])",
    "deriv(gauge[3m])",
    "predict_linear(gauge[3m], 60)",
    "sum_over_time(gauge[3m])",
    "max_over_time(gauge[3m])",
    "delta(gauge[3m])",
    "histogram_quantile(0.5, sum by (le) (hist_bucket) * on () group_left () scalar(sum(flag)))",
    "cnt unless on (instance) gauge > 0",
    "gauge or on (job) cnt",
    "vector(1) or cnt",
    // Collisions.
    "rate({__name__=~\"cnt|gauge\"}[1m])",
    "label_replace(cnt, \"instance\", \"same\", \"\", \"\")",
];

/// Expressions that do not parse: kahu's error must start with the same `LINE:COL: parse error: `
/// as Prometheus' (the wording after it is promql-parser's).
const BAD_EXPRS: &[&str] = &[
    "sum(rate(cnt[5m])",
    "sum(",
    "(1))",
    "cnt +",
    "rate(cnt[5m",
    "cnt{job=\"api\"",
    "sum(cnt)\n)",
    "cnt gauge",
    "1 +* 2",
    "cnt[5m] offset",
    "cnt @ foo()",
];

/// A tiny deterministic generator (no need for quality, only for repeatability).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u32) -> f64 {
        (self.next() * n as f64).floor()
    }
}

struct Series {
    /// `name{a="b",...}`, valid in OpenMetrics and in a promqltest `load`.
    id: String,
    values: Vec<Option<f64>>,
}

fn dataset() -> Vec<Series> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    let targets = [("api", "i1"), ("api", "i2"), ("api", "i3"), ("api", "i4"), ("db", "i1"), ("db", "i2")];
    for (n, (job, inst)) in targets.iter().enumerate() {
        let mut v = rng.below(100);
        let values = (0..POINTS)
            .map(|i| {
                if n == 3 && i < 24 {
                    return None; // starts at 6m
                }
                if rng.next() < 0.03 {
                    v = rng.below(5);
                } else {
                    v += rng.below(20) + if n == 5 { 0.5 } else { 0.0 };
                }
                Some(v)
            })
            .collect();
        out.push(Series { id: format!("cnt{{instance=\"{inst}\",job=\"{job}\"}}"), values });
    }
    for (n, (job, inst)) in targets.iter().enumerate() {
        let values = (0..POINTS)
            .map(|i| {
                let r = rng.next();
                match n {
                    0 if r < 0.05 => Some(f64::NAN),
                    1 if i == 50 => Some(f64::INFINITY),
                    1 if i == 90 => Some(f64::NEG_INFINITY),
                    2 if r < 0.05 => None,
                    _ => Some((rng.next() * 160.0 - 80.0).round() / 4.0),
                }
            })
            .collect();
        out.push(Series { id: format!("gauge{{instance=\"{inst}\",job=\"{job}\"}}"), values });
    }
    for (job, inst) in targets {
        let values = (0..POINTS).map(|_| Some(rng.below(2))).collect();
        out.push(Series { id: format!("flag{{instance=\"{inst}\",job=\"{job}\"}}"), values });
    }
    // A 7m gap (longer than the lookback) and an early end.
    let values = (0..POINTS).map(|i| (!(40..68).contains(&i) && i < 128).then_some(i as f64)).collect();
    out.push(Series { id: "gappy{instance=\"g1\"}".into(), values });
    for (inst, version) in [("i1", "v1"), ("i2", "v2"), ("i3", "v1"), ("i4", "v2")] {
        out.push(Series {
            id: format!("info{{instance=\"{inst}\",version=\"{version}\"}}"),
            values: vec![Some(1.0); POINTS as usize],
        });
    }
    // Classic histograms; job "db" has an occasionally non-monotonic 0.5 bucket.
    let les = ["0.1", "0.5", "1", "5", "+Inf"];
    for job in ["api", "db"] {
        let mut cum = [0.0; 5];
        let mut rows: Vec<Vec<Option<f64>>> = vec![Vec::new(); les.len()];
        for _ in 0..POINTS {
            let mut acc = 0.0;
            for (b, c) in cum.iter_mut().enumerate() {
                acc += rng.below(6);
                *c += acc;
                let bump = if job == "db" && b == 1 && rng.next() < 0.15 { 40.0 } else { 0.0 };
                rows[b].push(Some(*c + bump));
            }
        }
        for (le, values) in les.iter().zip(rows) {
            out.push(Series { id: format!("hist_bucket{{job=\"{job}\",le=\"{le}\"}}"), values });
        }
    }
    out
}

fn fmt_om(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

fn fmt_test(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "Inf".into() } else { "-Inf".into() } } else { format!("{v}") }
}

/// Kills Prometheus when the test ends, pass or fail.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &std::path::Path, series: &[Series]) -> Prometheus {
    let mut om = String::new();
    for s in series {
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                writeln!(om, "{} {} {}", s.id, fmt_om(*v), i as i64 * STEP_S).unwrap();
            }
        }
    }
    om.push_str("# EOF\n");
    let om_file = dir.join("data.om");
    std::fs::write(&om_file, om).unwrap();
    let tsdb = dir.join("tsdb");
    let out = Command::new(require_program("promtool", "prometheus"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_file)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(out.status.success(), "promtool backfill: {}", String::from_utf8_lossy(&out.stderr));
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(require_program("prometheus", "prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address={addr}"))
        .args([
            "--storage.tsdb.retention.time=100y",
            "--enable-feature=promql-negative-offset",
            "--log.level=error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prom = Prometheus { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() && http(addr, "GET", "/-/ready", &[], b"").status == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    prom
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(prom: &Prometheus, path: &str, params: &[(&str, String)]) -> serde_json::Value {
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
    http(prom.addr, "GET", &format!("{path}?{}", q.join("&")), &[], b"").json()
}

fn labels_of(metric: &serde_json::Value) -> String {
    let obj = metric.as_object().unwrap();
    let name = obj.get("__name__").and_then(|v| v.as_str()).unwrap_or("");
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap()))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn value_of(v: &serde_json::Value) -> f64 {
    v.as_str().unwrap().parse::<f64>().unwrap()
}

/// The expectation lines of one eval, or `expect fail` if Prometheus failed.
fn expectation(resp: &serde_json::Value, steps: Option<&[i64]>) -> String {
    if resp["status"] != "success" {
        // The message is not compared: 2.42's texts are not always Prometheus 3's.
        return "  expect fail\n".to_string();
    }
    let data = &resp["data"];
    let mut out = String::new();
    match (data["resultType"].as_str().unwrap(), steps) {
        ("scalar", None) => writeln!(out, "  {}", fmt_test(value_of(&data["result"][1]))).unwrap(),
        ("vector", None) => {
            for s in data["result"].as_array().unwrap() {
                writeln!(out, "  {} {}", labels_of(&s["metric"]), fmt_test(value_of(&s["value"][1])))
                    .unwrap();
            }
        }
        ("matrix", Some(steps)) => {
            for s in data["result"].as_array().unwrap() {
                let points: std::collections::HashMap<i64, f64> = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_f64().unwrap() as i64, value_of(&p[1])))
                    .collect();
                let vals: Vec<String> =
                    steps.iter().map(|t| points.get(t).map_or("_".to_string(), |v| fmt_test(*v))).collect();
                writeln!(out, "  {} {}", labels_of(&s["metric"]), vals.join(" ")).unwrap();
            }
        }
        (t, _) => panic!("unexpected result type {t} in {resp}"),
    }
    out
}

#[test]
fn engine_agrees_with_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let series = dataset();
    let prom = start_prometheus(dir.path(), &series);

    let mut script =
        String::from("# Generated by tests/it/promql_vs_prometheus.rs from Prometheus' answers.\n");
    writeln!(script, "load {STEP_S}s").unwrap();
    for s in &series {
        let vals: Vec<String> = s.values.iter().map(|v| v.map_or("_".to_string(), fmt_test)).collect();
        writeln!(script, "  {} {}", s.id, vals.join(" ")).unwrap();
    }
    let steps: Vec<i64> = (RANGE_START_S..=RANGE_END_S).step_by(RANGE_STEP_S as usize).collect();
    for entry in EXPRS {
        let (kahu_expr, prom_expr) = entry.split_once(" @@ ").unwrap_or((entry, entry));
        let resp = query(
            &prom,
            "/api/v1/query_range",
            &[
                ("query", prom_expr.to_string()),
                ("start", RANGE_START_S.to_string()),
                ("end", RANGE_END_S.to_string()),
                ("step", RANGE_STEP_S.to_string()),
            ],
        );
        writeln!(
            script,
            "\neval range from {RANGE_START_S}s to {RANGE_END_S}s step {RANGE_STEP_S}s {kahu_expr}\n{}",
            expectation(&resp, Some(&steps))
        )
        .unwrap();
        for at in INSTANT_AT_S {
            let resp =
                query(&prom, "/api/v1/query", &[("query", prom_expr.to_string()), ("time", at.to_string())]);
            let ordered = if kahu_expr.starts_with("sort") { "  expect ordered\n" } else { "" };
            writeln!(script, "\neval instant at {at}s {kahu_expr}\n{ordered}{}", expectation(&resp, None))
                .unwrap();
        }
    }
    for bad in BAD_EXPRS {
        let resp = query(&prom, "/api/v1/query", &[("query", bad.to_string()), ("time", "100".to_string())]);
        let err = resp["error"].as_str().unwrap_or_default();
        let at = err.find(": parse error: ").unwrap_or_else(|| panic!("{bad:?}: {resp}"));
        let prefix = err.get(r#"invalid parameter "query": "#.len()..at).unwrap();
        let line = bad.replace('\n', " ");
        // The eval line cannot hold a newline: its expression is the one-line form, and for the
        // multi-line input the expectation is computed from the input itself.
        if line == *bad {
            writeln!(script, "\neval instant at 100s {bad}\n  expect fail regex: ^{prefix}: parse error: \n")
                .unwrap();
        } else {
            let got = kahu_query::engine::positioned_parse_error(
                bad,
                &promql_parser::parser::parse(bad).unwrap_err(),
            );
            assert!(
                got.starts_with(&format!("{prefix}: parse error: ")),
                "{bad:?}: kahu {got:?}, Prometheus {err:?}"
            );
        }
    }
    drop(prom);

    let path = std::env::temp_dir().join("kahu-promql-vs-prometheus.test");
    std::fs::write(&path, &script).unwrap();
    let report = kahu_query::promqltest::run_script(&path.display().to_string(), &script);
    let one_line_bad = BAD_EXPRS.iter().filter(|b| !b.contains('\n')).count();
    assert_eq!(report.passed, EXPRS.len() * (1 + INSTANT_AT_S.len()) + one_line_bad, "{report}");
    assert_eq!(report.failed, 0, "kahu and Prometheus disagree (script: {}):\n{report}", path.display());
}
