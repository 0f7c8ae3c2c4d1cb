//! The `--storage.*` flags of `kahu serve` (flattened into `ServeArgs`) and their translation
//! into `kahu_tsdb::Options`.

use std::time::Duration;

use clap::ValueEnum;
use kahu_tsdb::{FsyncPolicy, LabelLimits, Options};

use crate::cli::parse_duration;

/// `--storage.wal.fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncMode {
    /// fsync before every commit returns: a power loss loses nothing acknowledged.
    Always,
    /// fsync every --storage.wal.fsync-interval: a power loss loses at most that.
    Interval,
    /// Leave write-back to the kernel.
    Never,
}

/// Storage flags. A `kill -9` never loses an acknowledged sample, whatever these say; the fsync
/// policy bounds what a power loss can lose.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// When the WAL is fsynced.
    #[arg(long = "storage.wal.fsync", value_enum, default_value = "interval")]
    pub wal_fsync: FsyncMode,

    /// WAL fsync period for --storage.wal.fsync=interval.
    #[arg(long = "storage.wal.fsync-interval", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub wal_fsync_interval: Duration,

    /// Size at which a WAL segment file is closed and the next one started (e.g. 32MB).
    #[arg(long = "storage.tsdb.wal-segment-size", value_name = "BYTES", default_value = "32MB", value_parser = parse_bytes)]
    pub wal_segment_size: u64,

    /// Most labels (with __name__) a series may have; 0 means no limit.
    #[arg(long = "storage.tsdb.max-label-names-per-series", value_name = "N", default_value_t = 64)]
    pub max_label_names: usize,

    /// Longest label name in bytes; 0 means no limit.
    #[arg(long = "storage.tsdb.max-label-name-length", value_name = "BYTES", default_value_t = 1024)]
    pub max_label_name_length: usize,

    /// Longest label value in bytes; 0 means no limit.
    #[arg(long = "storage.tsdb.max-label-value-length", value_name = "BYTES", default_value_t = 4096)]
    pub max_label_value_length: usize,

    /// Largest remote-write request accepted at /api/v1/write, compressed and decompressed
    /// (e.g. 32MB); larger ones get 413.
    #[arg(long = "storage.remote-write.max-request-bytes", value_name = "BYTES", default_value = "32MB", value_parser = parse_bytes)]
    pub remote_write_max_request_bytes: u64,

    /// How long to keep data, measured back from the newest sample (e.g. 15d, 1y). Default 15d
    /// unless only --storage.retention.size is given; 0 means unset.
    #[arg(long = "storage.retention.time", visible_alias = "storage.tsdb.retention.time", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_time: Option<Duration>,

    /// Most bytes the blocks and the WAL may take (e.g. 10GB); the oldest blocks go first.
    /// 0 means no limit.
    #[arg(long = "storage.retention.size", visible_alias = "storage.tsdb.retention.size", value_name = "BYTES", value_parser = parse_bytes)]
    pub retention_size: Option<u64>,

    /// Do not compact blocks (e.g. while another tool reads them).
    #[arg(long = "storage.tsdb.no-compaction")]
    pub no_compaction: bool,
}

impl StorageArgs {
    /// The TSDB options these flags select.
    pub fn tsdb_options(&self) -> Options {
        let mut o = Options {
            wal_fsync: match self.wal_fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => {
                    FsyncPolicy::Interval(self.wal_fsync_interval.max(Duration::from_millis(1)))
                }
                FsyncMode::Never => FsyncPolicy::Never,
            },
            wal_segment_size: self.wal_segment_size,
            ..Options::default()
        };
        let size = self.retention_size.filter(|&s| s > 0);
        let time = self
            .retention_time
            .filter(|d| !d.is_zero())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        o.retention = kahu_tsdb::compact::Retention {
            time: match (time, size) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => Some(kahu_tsdb::DEFAULT_RETENTION_MS),
            },
            size,
        };
        o.compaction = !self.no_compaction;
        o.head.limits = LabelLimits {
            max_label_names: self.max_label_names,
            max_name_length: self.max_label_name_length,
            max_value_length: self.max_label_value_length,
        };
        o
    }
}

/// Parses a size as Prometheus does (`units.Base2Bytes`): a number with an optional unit
/// `B`, `KB`, `MB`, `GB`, `TB` (powers of 1024; `KiB`-style spellings accepted too).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("not a valid size: {s:?} (use e.g. 512KB, 32MB, 1GB)");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_bytes("32MB"), Ok(32 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        for bad in ["", "MB", "1.5MB", "12XB", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
