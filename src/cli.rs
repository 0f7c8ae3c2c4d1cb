//! Command-line definitions (clap derive). Validation only: nothing here touches the system.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// The version line: crate version and the git commit the binary was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KAHU_GIT_COMMIT"), ")");

/// kahu: a per-node metrics agent with its own TSDB and PromQL engine.
#[derive(Debug, Parser)]
#[command(name = "kahu", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect node metrics, store them, and serve /metrics and the Prometheus query API.
    Serve(ServeArgs),
    /// Run PromQL test scripts written in the format of Prometheus' own tests.
    Promqltest(crate::promqltest::PromqltestArgs),
    /// Evaluate a PromQL expression against a kahu server or a data directory.
    Query(crate::query::QueryArgs),
    /// Run one collection pass and print it in the exposition format (for debugging a node).
    Collect(crate::exporter::CollectArgs),
    /// Inspect a data directory's blocks: `analyze` (what is there), `verify` (every checksum).
    Tsdb(crate::tsdb_cmd::TsdbArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` text, one line per event.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Flags of `kahu serve`. Flag names follow Prometheus where it has one.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory for the TSDB (created if missing).
    #[arg(
        long = "data-dir",
        visible_alias = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Address to serve HTTP on: /metrics, /api/v1/*, /-/healthy, /-/ready. Port 0 picks a free port.
    #[arg(
        long = "listen",
        visible_alias = "web.listen-address",
        value_name = "HOST:PORT",
        default_value = "0.0.0.0:9470"
    )]
    pub listen: SocketAddr,

    /// How often to collect node and container metrics (e.g. 15s, 1m).
    #[arg(long = "collect.interval", value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub collect_interval: Duration,

    /// Exporter flags (host paths, runtime, collectors).
    #[command(flatten)]
    pub exporter: crate::exporter::ExporterArgs,

    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// Minimum level to log: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,

    /// PromQL engine flags (`--query.*`).
    #[command(flatten)]
    pub query: crate::query_flags::QueryFlags,
    /// HTTP API flags.
    #[command(flatten)]
    pub web: crate::web::WebArgs,

    /// Storage flags (WAL, label limits, remote-write request size).
    #[command(flatten)]
    pub storage: Box<crate::storage_flags::StorageArgs>,
}

/// Parses a Prometheus-style duration: `1y`, `2w`, `3d`, `4h`, `5m`, `6s`, `7ms`, combined
/// largest unit first (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("ms", 1),
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let &(unit, ms) = UNITS.iter().find(|(u, _)| tail.starts_with(u)).ok_or_else(bad)?;
        if ms >= last_unit {
            return Err(bad());
        }
        last_unit = ms;
        total_ms = n.checked_mul(ms).and_then(|v| total_ms.checked_add(v)).ok_or_else(bad)?;
        rest = tail.get(unit.len()..).unwrap_or("");
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus_does() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "15", "s", "1m1h", "1x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
