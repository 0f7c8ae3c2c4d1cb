//! Pure parsers of cgroup v1 and v2 files and of the `/proc` files the container collector reads.
//! Each takes the file's content and never fails: lines that do not parse are skipped, as the
//! kernel documentation asks readers to tolerate new keys anywhere.

/// Iterates `key value` lines (`cpu.stat`, `memory.stat`, `memory.events`, `cpuacct.stat`).
pub fn flat_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let mut it = line.split_ascii_whitespace();
        let key = it.next()?;
        let v = it.next()?.parse().ok()?;
        Some((key, v))
    })
}

/// The value of `key` in a flat-keyed file.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    flat_keyed(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// A file holding one integer. `max` (v2's "no limit") and negative values (`-1` in v1's
/// `cpu.cfs_quota_us`) are `None`.
pub fn single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// v2 `cpu.max`: `$MAX $PERIOD` → (quota µs or `None` for `max`, period µs).
pub fn cpu_max(text: &str) -> (Option<u64>, Option<u64>) {
    let mut it = text.split_ascii_whitespace();
    let quota = it.next().and_then(|q| q.parse().ok());
    let period = it.next().and_then(|p| p.parse().ok());
    (quota, period)
}

/// v2 `cpu.weight` (1..10000) converted to v1 shares, as cAdvisor and runc do.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.saturating_sub(1) * 262_142) / 9_999
}

/// Block I/O of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoDevice {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub reads: u64,
    /// Write operations.
    pub writes: u64,
}

fn maj_min(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v2 `io.stat`: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`, one line per device.
pub fn io_stat(text: &str) -> Vec<IoDevice> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some((major, minor)) = it.next().and_then(maj_min) else { continue };
        let mut d = IoDevice { major, minor, ..IoDevice::default() };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => d.read_bytes = v,
                "wbytes" => d.write_bytes = v,
                "rios" => d.reads = v,
                "wios" => d.writes = v,
                _ => {}
            }
        }
        out.push(d);
    }
    out
}

/// v1 `blkio.*io_service_bytes*` and `blkio.*io_serviced*` (`MAJ:MIN Op N` lines, then
/// `Total N`), merged into per-device [`IoDevice`]s: bytes from the first text, operations from
/// the second.
pub fn blkio(service_bytes: &str, serviced: &str) -> Vec<IoDevice> {
    let mut out: Vec<IoDevice> = Vec::new();
    let mut apply = |text: &str, bytes: bool| {
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(dev), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else { continue };
            let (Some((major, minor)), Ok(v)) = (maj_min(dev), v.parse::<u64>()) else { continue };
            let pos = match out.iter().position(|d| d.major == major && d.minor == minor) {
                Some(p) => p,
                None => {
                    out.push(IoDevice { major, minor, ..IoDevice::default() });
                    out.len() - 1
                }
            };
            let Some(d) = out.get_mut(pos) else { continue };
            match (op, bytes) {
                ("Read", true) => d.read_bytes = v,
                ("Write", true) => d.write_bytes = v,
                ("Read", false) => d.reads = v,
                ("Write", false) => d.writes = v,
                _ => {}
            }
        }
    };
    apply(service_bytes, true);
    apply(serviced, false);
    out
}

/// Cumulative stall time from a PSI file (`some … total=µs` and `full … total=µs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `some` total, µs: time at least one task stalled ("waiting" in cAdvisor and node_exporter).
    pub some_us: Option<u64>,
    /// `full` total, µs: time all tasks stalled ("stalled").
    pub full_us: Option<u64>,
}

/// Parses `cpu.pressure`, `memory.pressure`, `io.pressure` or `/proc/pressure/*`.
pub fn pressure(text: &str) -> Pressure {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let kind = it.next();
        let total = it.find_map(|kv| kv.strip_prefix("total=")).and_then(|v| v.parse().ok());
        match kind {
            Some("some") => p.some_us = total,
            Some("full") => p.full_us = total,
            _ => {}
        }
    }
    p
}

/// `cgroup.procs`: pids, deduplicated, in file order.
pub fn procs(text: &str) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for pid in text.lines().filter_map(|l| l.trim().parse().ok()) {
        if !out.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

/// One interface of `/proc/<pid>/net/dev`: the 16 counters in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub name: String,
    /// rx bytes, packets, errs, drop, fifo, frame, compressed, multicast, then tx bytes, packets,
    /// errs, drop, fifo, colls, carrier, compressed.
    pub counters: [u64; 16],
}

impl NetDev {
    /// Received bytes.
    pub fn rx_bytes(&self) -> u64 {
        self.counters[0]
    }
}

/// Parses `/proc/<pid>/net/dev` (two header lines, then `name: 16 counters`).
pub fn net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let mut counters = [0u64; 16];
            let mut n = 0;
            for (slot, v) in counters.iter_mut().zip(rest.split_ascii_whitespace()) {
                *slot = v.parse().ok()?;
                n += 1;
            }
            (n == 16).then(|| NetDev { name: name.trim().to_string(), counters })
        })
        .collect()
}

/// Whether cAdvisor skips interface `name` in container network stats (`lo`, `veth*`, `docker*`,
/// `nerdctl*`).
pub fn skip_container_interface(name: &str) -> bool {
    ["lo", "veth", "docker", "nerdctl"].iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_cpu_stat_and_memory_stat_are_looked_up_by_key() {
        let cpu = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 3\nthrottled_usec 120000\n";
        assert_eq!(keyed(cpu, "usage_usec"), Some(2_500_000));
        assert_eq!(keyed(cpu, "throttled_usec"), Some(120_000));
        assert_eq!(keyed(cpu, "nr_bursts"), None);
        assert_eq!(
            keyed("anon 4096\nfile 8192\nnew_key 1\ninactive_file 4096\n", "inactive_file"),
            Some(4096)
        );
    }

    #[test]
    fn cpu_max_and_weight() {
        assert_eq!(cpu_max("max 100000\n"), (None, Some(100_000)));
        assert_eq!(cpu_max("50000 100000\n"), (Some(50_000), Some(100_000)));
        assert_eq!(weight_to_shares(100), 2597);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(single("max\n"), None);
        assert_eq!(single("-1\n"), None);
        assert_eq!(single("9223372036854771712\n"), Some(9_223_372_036_854_771_712));
    }

    #[test]
    fn io_stat_lines_in_any_order_with_cost_keys() {
        let t = "259:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=0 dios=0\n\
                 8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.usage=7 cost.wait=8\n";
        let d = io_stat(t);
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0],
            IoDevice {
                major: 259,
                minor: 0,
                read_bytes: 90_430_464,
                write_bytes: 299_008_000,
                reads: 8950,
                writes: 1252
            }
        );
        assert_eq!((d[1].major, d[1].writes), (8, 4));
    }

    #[test]
    fn blkio_merges_bytes_and_ops_per_device() {
        let bytes = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n";
        let ops = "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n";
        assert_eq!(
            blkio(bytes, ops),
            vec![IoDevice { major: 8, minor: 0, read_bytes: 4096, write_bytes: 8192, reads: 1, writes: 2 }]
        );
        assert!(blkio("Total 0\n", "Total 0\n").is_empty());
    }

    #[test]
    fn pressure_some_and_full_totals() {
        let t = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=567\n";
        assert_eq!(pressure(t), Pressure { some_us: Some(1234), full_us: Some(567) });
        assert_eq!(pressure("some avg10=1.00 avg60=0.50 avg300=0.10 total=99\n").full_us, None);
    }

    #[test]
    fn net_dev_needs_sixteen_counters() {
        let t = "Inter-|   Receive                                                |  Transmit\n \
                 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                 lo:     504       6    0    0    0     0          0         0      504       6    0    0    0     0       0          0\n  \
                 eth0:    1416      16    1    2    0     0          0         0      878       9    0    3    0     0       0          0\n  \
                 bad: 1 2 3\n";
        let d = net_dev(t);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].name, "eth0");
        assert_eq!(
            (d[1].rx_bytes(), d[1].counters[2], d[1].counters[3], d[1].counters[8], d[1].counters[11]),
            (1416, 1, 2, 878, 3)
        );
        assert!(
            skip_container_interface("veth1234")
                && skip_container_interface("lo")
                && !skip_container_interface("eth0")
        );
    }

    #[test]
    fn procs_are_deduplicated() {
        assert_eq!(procs("12\n7\n12\n\n"), vec![12, 7]);
    }
}
