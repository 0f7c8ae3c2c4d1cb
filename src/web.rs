//! Wiring of the Prometheus HTTP API into `kahu serve`: the `--web.*` flags, the API state
//! (build info, flags, config, targets, metadata) and what the collection loop reports to it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::CommandFactory;
use kahu_exporter::Batch;
use kahu_query::Engine;
use kahu_query::api::{
    ApiOptions, ApiState, BuildInfo, ScrapeHealth, Target, TargetSource, TsdbStatus, TsdbStatusSource,
};
use kahu_tsdb::metadata::{Metadata, MetadataStore, MetricType};
use kahu_tsdb::{Db, Queryable};
use parking_lot::Mutex;

use crate::cli::{Cli, ServeArgs};

mod admin;

/// Flags of the HTTP API, as Prometheus names them.
#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Enable the admin endpoints /api/v1/admin/tsdb/{delete_series,clean_tombstones,snapshot}.
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,

    /// Regex of the origins allowed by CORS, anchored at both ends (e.g. 'https?://(a|b)\.example').
    #[arg(long = "web.cors.origin", value_name = "REGEX", default_value = ".*")]
    pub cors_origin: String,

    /// Largest request body the API accepts (bytes, or with a unit: 512KiB, 10MiB); larger
    /// requests are refused with 413.
    #[arg(long = "web.max-request-body-size", value_name = "SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub max_request_body_size: u64,
}

/// Parses a byte size: a number with an optional unit `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?} (examples: 1048576, 512KiB, 10MiB)"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(format!("unknown size unit {unit:?} in {s:?} (use B, KB, KiB, MB, MiB, GB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

/// Where kahu's own collection loop reports each pass, for `/api/v1/targets`.
#[derive(Debug)]
pub struct CollectionStatus {
    listen: String,
    interval: Duration,
    last: Mutex<Option<Pass>>,
}

#[derive(Debug, Clone)]
struct Pass {
    started: SystemTime,
    took: Duration,
    error: Option<String>,
}

impl CollectionStatus {
    /// Status for a loop collecting every `interval`, exposed at `listen`.
    pub fn new(listen: String, interval: Duration) -> Self {
        CollectionStatus { listen, interval, last: Mutex::new(None) }
    }

    /// Records a finished pass.
    pub fn record(&self, started: SystemTime, took: Duration, error: Option<String>) {
        *self.last.lock() = Some(Pass { started, took, error });
    }
}

impl TargetSource for CollectionStatus {
    fn active_targets(&self) -> Vec<Target> {
        let last = self.last.lock().clone();
        let labels =
            vec![("instance".to_string(), self.listen.clone()), ("job".to_string(), "kahu".to_string())];
        let mut discovered = labels.clone();
        discovered.push(("__address__".into(), self.listen.clone()));
        discovered.push(("__metrics_path__".into(), "/metrics".into()));
        discovered.push(("__scheme__".into(), "http".into()));
        vec![Target {
            discovered_labels: discovered,
            labels,
            scrape_pool: "kahu".into(),
            scrape_url: format!("http://{}/metrics", self.listen),
            last_error: last.as_ref().and_then(|p| p.error.clone()).unwrap_or_default(),
            last_scrape: last.as_ref().map(|p| p.started),
            last_scrape_duration: last.as_ref().map(|p| p.took).unwrap_or_default(),
            health: match &last {
                None => ScrapeHealth::Unknown,
                Some(p) if p.error.is_some() => ScrapeHealth::Down,
                Some(_) => ScrapeHealth::Up,
            },
            scrape_interval: self.interval,
            scrape_timeout: self.interval,
        }]
    }
}

/// Records the TYPE and HELP of a pass's families as kahu's own metadata.
pub fn record_metadata(store: &MetadataStore, batch: &Batch) {
    for f in batch.families() {
        let kind = match f.kind {
            kahu_exporter::collector::MetricType::Counter => MetricType::Counter,
            kahu_exporter::collector::MetricType::Gauge => MetricType::Gauge,
            kahu_exporter::collector::MetricType::Untyped => MetricType::Unknown,
        };
        let unit = f.unit().unwrap_or("").to_string();
        store.set("kahu", &f.name, Metadata { kind, help: f.help.to_string(), unit });
    }
}

/// The API state for `kahu serve`.
pub fn api_state(
    args: &ServeArgs,
    db: &Arc<Db>,
    engine: Engine,
    collection: Arc<CollectionStatus>,
) -> anyhow::Result<ApiState> {
    let web = &args.web;
    let cors = kahu_query::api::cors_regex(&web.cors_origin)
        .map_err(|e| anyhow::anyhow!("--web.cors.origin {:?} is not a valid regex: {e}", web.cors_origin))?;
    let mut state = ApiState::new(Arc::clone(db) as Arc<dyn Queryable>, engine);
    state.metadata = Arc::clone(db.metadata());
    state.options = ApiOptions {
        cors_origin: cors,
        max_body_bytes: usize::try_from(web.max_request_body_size).unwrap_or(usize::MAX),
        enable_admin: web.enable_admin_api,
    };
    state.build = BuildInfo {
        revision: env!("KAHU_GIT_COMMIT").to_string(),
        go_version: format!("rust{}", env!("CARGO_PKG_RUST_VERSION")),
        ..BuildInfo::default()
    };
    state.flags = flag_values();
    state.config_yaml = format!(
        "# kahu is configured with command-line flags (see /api/v1/status/flags).\n\
         global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\n",
        interval = kahu_query::api::go_duration(args.collect_interval)
    );
    state.start_time = SystemTime::now();
    state.targets = Some(collection);
    state.tsdb_status = Some(Arc::new(DbStatus(Arc::clone(db))));
    state.admin = Some(Arc::new(admin::DbAdmin(Arc::clone(db))));
    Ok(state)
}

/// Head statistics of the database for `/api/v1/status/tsdb`.
struct DbStatus(Arc<Db>);

impl TsdbStatusSource for DbStatus {
    fn head_status(&self) -> TsdbStatus {
        let head = self.0.stats().head;
        TsdbStatus {
            num_series: head.series,
            // The head keeps every chunk it cut (nothing is persisted to blocks yet), so the
            // chunks created since start are the chunks it holds.
            chunk_count: head.chunks_created,
            min_time: head.min_time.unwrap_or(0),
            max_time: head.max_time.unwrap_or(0),
        }
    }
}

/// Every flag of the running subcommand with its value (defaults included), as
/// `/api/v1/status/flags` lists Prometheus' flags.
fn flag_values() -> Vec<(String, String)> {
    let cmd = Cli::command();
    let Ok(matches) = cmd.clone().try_get_matches_from(std::env::args_os()) else { return Vec::new() };
    let Some((name, sub)) = matches.subcommand() else { return Vec::new() };
    let Some(sub_cmd) = cmd.find_subcommand(name) else { return Vec::new() };
    let mut out = Vec::new();
    for arg in sub_cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let value = match sub.get_raw(arg.get_id().as_str()) {
            Some(values) => values.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","),
            None => String::new(),
        };
        out.push((long.to_string(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
