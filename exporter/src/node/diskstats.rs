//! node_exporter's `diskstats` collector: `node_disk_*` from `<procfs>/diskstats`.

use std::path::PathBuf;

use regex::Regex;

use crate::collector::{Batch, CollectError, Collector, MetricType};

/// Sectors in `/proc/diskstats` are always 512 bytes.
const SECTOR: f64 = 512.0;

/// node_exporter's default `--collector.diskstats.device-exclude` (partitions and virtual devices).
pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// Parses `/proc/diskstats` into (device, counters after the name). Lines with fewer than 11
/// counters are skipped; kernels before 4.18 have no discard fields, before 5.5 no flush fields.
pub fn parse_diskstats(text: &str) -> Vec<(String, Vec<u64>)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace().skip(2);
            let name = it.next()?.to_string();
            let v: Vec<u64> = it.map_while(|f| f.parse().ok()).collect();
            (v.len() >= 11).then_some((name, v))
        })
        .collect()
}

/// `node_disk_*{device}` for every device not matching the exclude pattern.
#[derive(Debug)]
pub struct DiskstatsCollector {
    path: PathBuf,
    exclude: Regex,
}

impl DiskstatsCollector {
    /// Reads `<procfs>/diskstats`, skipping devices that match `exclude`.
    pub fn new(procfs: impl Into<PathBuf>, exclude: Regex) -> Self {
        DiskstatsCollector { path: procfs.into().join("diskstats"), exclude }
    }
}

impl Collector for DiskstatsCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| CollectError::read(&self.path, e))?;
        // (field index, name, help, type, scale)
        const FIELDS: [(usize, &str, &str, MetricType, f64); 17] = [
            (
                0,
                "node_disk_reads_completed_total",
                "The total number of reads completed successfully.",
                MetricType::Counter,
                1.0,
            ),
            (
                1,
                "node_disk_reads_merged_total",
                "The total number of reads merged.",
                MetricType::Counter,
                1.0,
            ),
            (
                2,
                "node_disk_read_bytes_total",
                "The total number of bytes read successfully.",
                MetricType::Counter,
                SECTOR,
            ),
            (
                3,
                "node_disk_read_time_seconds_total",
                "The total number of seconds spent by all reads.",
                MetricType::Counter,
                0.001,
            ),
            (
                4,
                "node_disk_writes_completed_total",
                "The total number of writes completed successfully.",
                MetricType::Counter,
                1.0,
            ),
            (5, "node_disk_writes_merged_total", "The number of writes merged.", MetricType::Counter, 1.0),
            (
                6,
                "node_disk_written_bytes_total",
                "The total number of bytes written successfully.",
                MetricType::Counter,
                SECTOR,
            ),
            (
                7,
                "node_disk_write_time_seconds_total",
                "This is the total number of seconds spent by all writes.",
                MetricType::Counter,
                0.001,
            ),
            (8, "node_disk_io_now", "The number of I/Os currently in progress.", MetricType::Gauge, 1.0),
            (
                9,
                "node_disk_io_time_seconds_total",
                "Total seconds spent doing I/Os.",
                MetricType::Counter,
                0.001,
            ),
            (
                10,
                "node_disk_io_time_weighted_seconds_total",
                "The weighted # of seconds spent doing I/Os.",
                MetricType::Counter,
                0.001,
            ),
            (
                11,
                "node_disk_discards_completed_total",
                "The total number of discards completed successfully.",
                MetricType::Counter,
                1.0,
            ),
            (
                12,
                "node_disk_discards_merged_total",
                "The total number of discards merged.",
                MetricType::Counter,
                1.0,
            ),
            (
                13,
                "node_disk_discarded_sectors_total",
                "The total number of sectors discarded successfully.",
                MetricType::Counter,
                1.0,
            ),
            (
                14,
                "node_disk_discard_time_seconds_total",
                "This is the total number of seconds spent by all discards.",
                MetricType::Counter,
                0.001,
            ),
            (
                15,
                "node_disk_flush_requests_total",
                "The total number of flush requests completed successfully",
                MetricType::Counter,
                1.0,
            ),
            (
                16,
                "node_disk_flush_requests_time_seconds_total",
                "This is the total number of seconds spent by all flush requests.",
                MetricType::Counter,
                0.001,
            ),
        ];
        let disks: Vec<_> =
            parse_diskstats(&text).into_iter().filter(|(d, _)| !self.exclude.is_match(d)).collect();
        for (idx, name, help, kind, scale) in FIELDS {
            for (dev, v) in &disks {
                if let Some(&x) = v.get(idx) {
                    batch.family(name, help, kind).sample([("device", dev.as_str())], x as f64 * scale);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_lines_and_default_exclusions() {
        let t = " 254       0 vda 221493 9992 12798178 304810 19359 51074 16131432 109359 0 30832 420211 9748 61 843016 3682 1217 2359\n \
                 254       1 vda1 1 2 3 4 5 6 7 8 9 10 11\n   7 0 loop0 1 2 3\n";
        let d = parse_diskstats(t);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "vda");
        assert_eq!(d[0].1.len(), 17);
        let re = Regex::new(DEFAULT_DEVICE_EXCLUDE).unwrap();
        assert!(
            re.is_match("vda1") && re.is_match("nvme0n1p2") && re.is_match("loop0") && re.is_match("zram0")
        );
        assert!(!re.is_match("vda") && !re.is_match("nvme0n1") && !re.is_match("dm-0"));
    }
}
