use std::path::PathBuf;

use crate::collector::{Batch, CollectError, Collector, MetricType};

/// `node_memory_<Field>_bytes` for every line of `<procfs>/meminfo`, as node_exporter names them.
#[derive(Debug)]
pub struct MeminfoCollector {
    path: PathBuf,
}

impl MeminfoCollector {
    /// Reads `<procfs>/meminfo`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        MeminfoCollector { path: procfs.into().join("meminfo") }
    }
}

/// Parses `/proc/meminfo` into node_exporter metric names and byte values. Lines that do not
/// parse are skipped; `kB` values are converted to bytes, unitless ones (`HugePages_Total`) kept.
pub fn parse_meminfo(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let mut parts = rest.split_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<f64>) else { continue };
        // node_exporter rewrites "Active(anon)" to "Active_anon".
        let key = key.trim().replace('(', "_").replace(')', "");
        let (name, value) = match parts.next() {
            Some("kB") => (format!("node_memory_{key}_bytes"), value * 1024.0),
            _ => (format!("node_memory_{key}"), value),
        };
        out.push((name, value));
    }
    out
}

impl Collector for MeminfoCollector {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&mut self, batch: &mut Batch, _now_ms: i64) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| CollectError::read(&self.path, e))?;
        for (name, value) in parse_meminfo(&text) {
            let help = format!("Memory information field {}.", name.trim_start_matches("node_memory_"));
            batch.family(&name, help, MetricType::Gauge).sample::<&str, &str>([], value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_become_node_exporter_names() {
        let text = "MemTotal:       16384 kB\nActive(anon):     10 kB\nHugePages_Total:       0\nbogus\n";
        assert_eq!(
            parse_meminfo(text),
            vec![
                ("node_memory_MemTotal_bytes".to_string(), 16384.0 * 1024.0),
                ("node_memory_Active_anon_bytes".to_string(), 10240.0),
                ("node_memory_HugePages_Total".to_string(), 0.0),
            ]
        );
    }
}
