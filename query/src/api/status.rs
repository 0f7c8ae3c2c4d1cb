//! `status/*`, `rules`, `alerts`, `targets` and the admin endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kahu_tsdb::model::Matcher;

use super::params::{
    go_quote, invalid_param, parse_go_bool, parse_go_int, parse_match_sets, parse_selector, time_param,
};
use super::response::{self, ApiError, ErrorType, json_str, write_json_str, write_labels};
use super::{ApiRequest, ApiState, MAX_TIME_MS, MIN_TIME_MS};

/// What `status/buildinfo` reports. All strings, as Prometheus' `PrometheusVersion`; there is
/// deliberately no `features` key, which would make Grafana treat kahu as Mimir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// A Prometheus-compatible version (`3.5.0-kahu.0.1.0`): Grafana gates features on it.
    pub version: String,
    /// The git commit.
    pub revision: String,
    /// The git branch.
    pub branch: String,
    /// Who built it.
    pub build_user: String,
    /// When it was built.
    pub build_date: String,
    /// The compiler (Prometheus reports its Go version here).
    pub go_version: String,
}

/// The Prometheus version whose API and PromQL kahu answers like.
pub const PROMETHEUS_COMPATIBLE_VERSION: &str = "3.5.0";

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo {
            version: format!("{PROMETHEUS_COMPATIBLE_VERSION}-kahu.{}", env!("CARGO_PKG_VERSION")),
            revision: "unknown".into(),
            branch: "unknown".into(),
            build_user: "unknown".into(),
            build_date: "unknown".into(),
            go_version: "unknown".into(),
        }
    }
}

/// Health of a target's last scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeHealth {
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
    /// Not scraped yet.
    Unknown,
}

/// One target kahu collects from (its own collectors) or scrapes, as `/api/v1/targets` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Labels before relabelling.
    pub discovered_labels: Vec<(String, String)>,
    /// The target's labels (`job`, `instance`).
    pub labels: Vec<(String, String)>,
    /// The scrape pool (job name).
    pub scrape_pool: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// The last error, empty when none.
    pub last_error: String,
    /// When the last scrape started; `None` before the first.
    pub last_scrape: Option<SystemTime>,
    /// How long the last scrape took.
    pub last_scrape_duration: Duration,
    /// Health.
    pub health: ScrapeHealth,
    /// The scrape interval.
    pub scrape_interval: Duration,
    /// The scrape timeout.
    pub scrape_timeout: Duration,
}

/// Lists the targets (kahu's collection loop, scrapes).
pub trait TargetSource: Send + Sync {
    /// The active targets now.
    fn active_targets(&self) -> Vec<Target>;
}

/// Head statistics for `status/tsdb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsdbStatus {
    /// Series in the head.
    pub num_series: u64,
    /// Chunks in the head.
    pub chunk_count: u64,
    /// Oldest sample in the head (milliseconds).
    pub min_time: i64,
    /// Newest sample in the head (milliseconds).
    pub max_time: i64,
}

/// Provides head statistics (the store behind the API).
pub trait TsdbStatusSource: Send + Sync {
    /// Statistics now.
    fn head_status(&self) -> TsdbStatus;
}

/// An admin operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(pub String);

/// The store's admin operations (`--web.enable-admin-api`).
pub trait Admin: Send + Sync {
    /// Deletes the samples of the series matching `matchers` in `[mint, maxt]`.
    fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<(), AdminError>;
    /// Removes deleted data from disk.
    fn clean_tombstones(&self) -> Result<(), AdminError>;
    /// Writes a snapshot under `<data-dir>/snapshots/` and returns its name.
    fn snapshot(&self, skip_head: bool) -> Result<String, AdminError>;
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo(State(state): State<Arc<ApiState>>) -> Response {
    let b = &state.build;
    response::success(&format!(
        "{{\"version\":{},\"revision\":{},\"branch\":{},\"buildUser\":{},\"buildDate\":{},\"goVersion\":{}}}",
        json_str(&b.version),
        json_str(&b.revision),
        json_str(&b.branch),
        json_str(&b.build_user),
        json_str(&b.build_date),
        json_str(&b.go_version),
    ))
}

/// `GET /api/v1/status/runtimeinfo`.
pub async fn runtimeinfo(State(state): State<Arc<ApiState>>) -> Response {
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
    let procs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    response::success(&format!(
        "{{\"startTime\":{},\"CWD\":{},\"hostname\":{},\"serverTime\":{},\"reloadConfigSuccess\":true,\
         \"lastConfigTime\":{},\"corruptionCount\":0,\"goroutineCount\":{threads},\"GOMAXPROCS\":{procs},\
         \"GOMEMLIMIT\":{},\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":{}}}",
        json_str(&rfc3339(state.start_time)),
        json_str(&cwd),
        json_str(&hostname),
        json_str(&rfc3339(SystemTime::now())),
        json_str(&rfc3339(state.start_time)),
        i64::MAX,
        json_str(&state.storage_retention),
    ))
}

/// A time as Go's `time.Time` JSON (RFC 3339 with nanoseconds, trailing zeros trimmed).
fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `GET /api/v1/status/flags`.
pub async fn flags(State(state): State<Arc<ApiState>>) -> Response {
    let mut out = String::from("{");
    let sorted: BTreeMap<&str, &str> = state.flags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(&mut out, k);
        out.push(':');
        write_json_str(&mut out, v);
    }
    out.push('}');
    response::success(&out)
}

/// `GET /api/v1/status/config`.
pub async fn config(State(state): State<Arc<ApiState>>) -> Response {
    response::success(&format!("{{\"yaml\":{}}}", json_str(&state.config_yaml)))
}

/// `GET /api/v1/status/tsdb`: head statistics and the top-`limit` (default 10) cardinality
/// lists, computed over the series in the head's time range.
pub async fn tsdb(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let limit = match req.params.get("limit").map(parse_go_int) {
        None => 10,
        Some(Ok(n)) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(_) => return invalid_param("limit", "limit must be a positive number").into_response(),
    };
    let result = tokio::task::spawn_blocking(move || tsdb_json(&state, limit)).await;
    match result {
        Ok(Ok(json)) => response::success(&json),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

fn tsdb_json(state: &ApiState, limit: usize) -> Result<String, ApiError> {
    let head = state.tsdb_status.as_ref().map(|s| s.head_status());
    let (mint, maxt) = match head {
        Some(h) if h.num_series > 0 => (h.min_time, h.max_time),
        _ => (MIN_TIME_MS, MAX_TIME_MS),
    };
    let q = state.storage.querier().map_err(|e| ApiError::internal(e.to_string()))?;
    let mut by_metric: HashMap<String, u64> = HashMap::new();
    let mut by_pair: HashMap<(String, String), u64> = HashMap::new();
    let mut series = 0u64;
    // Without statistics from the store, the time range comes from the samples themselves.
    let mut seen = (i64::MAX, i64::MIN);
    for s in q.select(&[], mint, maxt).map_err(|e| ApiError::internal(e.to_string()))? {
        series += 1;
        if head.is_none() {
            let mut it = s.iter();
            if let Some(first) = it.next() {
                seen.0 = seen.0.min(first.t);
                let mut last = first.t;
                while let Some(x) = it.next() {
                    last = x.t;
                }
                seen.1 = seen.1.max(last);
            }
        }
        for l in s.labels() {
            if l.name.as_ref() == kahu_tsdb::model::METRIC_NAME {
                *by_metric.entry(l.value.to_string()).or_default() += 1;
            }
            *by_pair.entry((l.name.to_string(), l.value.to_string())).or_default() += 1;
        }
    }
    let mut values_by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in by_pair.keys() {
        values_by_name.entry(name).or_default().insert(value);
    }
    let value_counts: Vec<(String, u64)> =
        values_by_name.iter().map(|(n, vs)| (n.to_string(), vs.len() as u64)).collect();
    let memory: Vec<(String, u64)> = values_by_name
        .iter()
        .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.len() as u64).sum()))
        .collect();
    let pairs: Vec<(String, u64)> = by_pair.iter().map(|((n, v), c)| (format!("{n}={v}"), *c)).collect();
    // chunkCount stays 0 until the store reports its statistics (`tsdb_status`).
    let (min_time, max_time) = if seen.0 <= seen.1 { seen } else { (0, 0) };
    let head = head.unwrap_or(TsdbStatus { num_series: series, chunk_count: 0, min_time, max_time });
    let mut out = format!(
        "{{\"headStats\":{{\"numSeries\":{},\"numLabelPairs\":{},\"chunkCount\":{},\"minTime\":{},\"maxTime\":{}}}",
        head.num_series,
        by_pair.len(),
        head.chunk_count,
        head.min_time,
        head.max_time
    );
    top_list(&mut out, "seriesCountByMetricName", by_metric.into_iter().collect(), limit);
    top_list(&mut out, "labelValueCountByLabelName", value_counts, limit);
    top_list(&mut out, "memoryInBytesByLabelName", memory, limit);
    top_list(&mut out, "seriesCountByLabelValuePair", pairs, limit);
    out.push('}');
    Ok(out)
}

/// `,"key":[{"name":…,"value":…}]`, the `limit` largest, ties by name.
fn top_list(out: &mut String, key: &str, mut items: Vec<(String, u64)>, limit: usize) {
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, (name, value)) in items.iter().take(limit).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        write_json_str(out, name);
        out.push_str(&format!(",\"value\":{value}}}"));
    }
    out.push(']');
}

/// `GET /api/v1/rules`: kahu evaluates no rules; the parameters are checked as Prometheus does
/// and the answer is an empty group list.
pub async fn rules(req: ApiRequest) -> Response {
    let p = &req.params;
    let kind = p.value("type").to_ascii_lowercase();
    if !kind.is_empty() && kind != "alert" && kind != "record" {
        return invalid_param("type", format!("not supported value {}", go_quote(&kind))).into_response();
    }
    if let Some(v) = p.get("exclude_alerts")
        && let Err(e) = parse_go_bool(v)
    {
        return invalid_param("exclude_alerts", e).into_response();
    }
    if let Err(e) = parse_match_sets(&p.all("match[]")) {
        return ApiError::bad_data(e).into_response();
    }
    match (p.get("group_limit"), p.get("group_next_token")) {
        (None, Some(_)) => {
            return invalid_param(
                "group_next_token",
                "group_limit needs to be present in order to paginate over the groups",
            )
            .into_response();
        }
        (Some(l), token) => match l.parse::<i32>() {
            Err(_) => {
                return invalid_param(
                    "group_limit",
                    format!("group_limit needs to be a valid number: strconv.ParseInt: parsing {}: invalid syntax", go_quote(l)),
                )
                .into_response();
            }
            Ok(n) if n <= 0 => {
                return invalid_param("group_limit", "group_limit needs to be greater than 0")
                    .into_response();
            }
            Ok(_) if token.is_some() => {
                // No group carries the token, since there are no groups.
                return invalid_param(
                    "group_next_token",
                    "group_next_token supplied in the page request was not found",
                )
                .into_response();
            }
            Ok(_) => {}
        },
        (None, None) => {}
    }
    response::success("{\"groups\":[]}")
}

/// `GET /api/v1/alerts`: kahu evaluates no alerting rules.
pub async fn alerts() -> Response {
    response::success("{\"alerts\":[]}")
}

/// `GET /api/v1/targets` with Prometheus' `state` (`active`, `dropped`, `any`) and `scrapePool`.
pub async fn targets(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let want = req.params.value("state").to_ascii_lowercase();
    let pool = req.params.get("scrapePool");
    let show_active = want.is_empty() || want == "any" || want == "active";
    let show_dropped = want.is_empty() || want == "any" || want == "dropped";
    let mut active: Vec<Target> = state.targets.as_ref().map(|t| t.active_targets()).unwrap_or_default();
    active.retain(|t| pool.is_none_or(|p| p == t.scrape_pool));
    let mut out = String::from("{");
    if show_active {
        out.push_str("\"activeTargets\":[");
        for (i, t) in active.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_target(&mut out, t);
        }
        out.push(']');
    }
    if show_dropped {
        if show_active {
            out.push(',');
        }
        out.push_str("\"droppedTargets\":[],\"droppedTargetCounts\":{");
        let pools: BTreeSet<&str> = active.iter().map(|t| t.scrape_pool.as_str()).collect();
        for (i, p) in pools.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_str(&mut out, p);
            out.push_str(":0");
        }
        out.push('}');
    }
    out.push('}');
    response::success(&out)
}

fn write_target(out: &mut String, t: &Target) {
    let labels = |pairs: &[(String, String)]| kahu_tsdb::model::Labels::from_pairs(pairs.iter().cloned());
    out.push_str("{\"discoveredLabels\":");
    write_labels(out, &labels(&t.discovered_labels));
    out.push_str(",\"labels\":");
    write_labels(out, &labels(&t.labels));
    out.push_str(",\"scrapePool\":");
    write_json_str(out, &t.scrape_pool);
    out.push_str(",\"scrapeUrl\":");
    write_json_str(out, &t.scrape_url);
    out.push_str(",\"globalUrl\":");
    write_json_str(out, &t.scrape_url);
    out.push_str(",\"lastError\":");
    write_json_str(out, &t.last_error);
    out.push_str(",\"lastScrape\":");
    // Go's zero time for a target not scraped yet.
    let last = t.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    write_json_str(out, &last);
    out.push_str(&format!(",\"lastScrapeDuration\":{}", t.last_scrape_duration.as_secs_f64()));
    out.push_str(",\"health\":\"");
    out.push_str(match t.health {
        ScrapeHealth::Up => "up",
        ScrapeHealth::Down => "down",
        ScrapeHealth::Unknown => "unknown",
    });
    out.push_str("\",\"scrapeInterval\":");
    write_json_str(out, &go_duration(t.scrape_interval));
    out.push_str(",\"scrapeTimeout\":");
    write_json_str(out, &go_duration(t.scrape_timeout));
    out.push('}');
}

/// A duration as Prometheus' `model.Duration` prints it (`15s`, `1m`, `1h30m`).
pub fn go_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 31_536_000_000u64),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

fn admin(state: &ApiState) -> Result<&Arc<dyn Admin>, ApiError> {
    if !state.options.enable_admin {
        return Err(ApiError::new(ErrorType::Unavailable, "admin APIs disabled"));
    }
    state
        .admin
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorType::Unavailable, "this store does not support admin operations"))
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series`.
pub async fn delete_series(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let result = async {
        let admin = Arc::clone(admin(&state)?);
        let p = &req.params;
        let selectors = p.all("match[]");
        if selectors.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let start = time_param(p, "start", MIN_TIME_MS)?;
        let end = time_param(p, "end", MAX_TIME_MS)?;
        let sets = selectors
            .iter()
            .map(|s| parse_selector(s).map_err(|e| invalid_param("match[]", e)))
            .collect::<Result<Vec<_>, _>>()?;
        tokio::task::spawn_blocking(move || {
            for set in &sets {
                admin.delete_series(set, start, end).map_err(|e| ApiError::internal(e.to_string()))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }
    .await;
    match result {
        Ok(()) => response::no_content(),
        Err(e) => e.into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`.
pub async fn clean_tombstones(State(state): State<Arc<ApiState>>) -> Response {
    let admin = match admin(&state) {
        Ok(a) => Arc::clone(a),
        Err(e) => return e.into_response(),
    };
    match tokio::task::spawn_blocking(move || admin.clean_tombstones()).await {
        Ok(Ok(())) => response::no_content(),
        Ok(Err(e)) => ApiError::internal(e.to_string()).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot` with `skip_head`.
pub async fn snapshot(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let admin = match admin(&state) {
        Ok(a) => Arc::clone(a),
        Err(e) => return e.into_response(),
    };
    let skip_head = match req.params.get("skip_head").map(parse_go_bool) {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            return ApiError::bad_data(format!("unable to parse boolean 'skip_head' argument: {e}"))
                .into_response();
        }
    };
    match tokio::task::spawn_blocking(move || admin.snapshot(skip_head)).await {
        Ok(Ok(name)) => response::success(&format!("{{\"name\":{}}}", json_str(&name))),
        Ok(Err(e)) => ApiError::internal(format!("create snapshot: {e}")).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_prometheus_model_duration() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m");
        assert_eq!(go_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
