//! Bytes per sample of kahu's blocks on a [`Source`]: the samples are written as 2 h blocks (what
//! persisting the head produces) and as one block over the whole run (what compaction
//! produces), and the blocks' bytes on disk are divided by the samples.

use std::collections::BTreeMap;
use std::path::Path;

use kahu_tsdb::block::{BlockSpec, BlockWriteError, WriteOptions, write_block};
use kahu_tsdb::model::{Labels, Sample};

use crate::workload::Source;

/// Sizes of the blocks written for one source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Samples written.
    pub samples: u64,
    /// Series written.
    pub series: u64,
    /// Bytes of all 2 h blocks.
    pub bytes_2h: u64,
    /// Bytes of the one block over the whole run.
    pub bytes_all: u64,
    /// Bytes of the whole-run block's index file.
    pub index_bytes_all: u64,
}

impl Report {
    /// Bytes per sample of the 2 h blocks.
    pub fn per_sample_2h(&self) -> f64 {
        self.bytes_2h as f64 / self.samples.max(1) as f64
    }
    /// Bytes per sample of the compacted block.
    pub fn per_sample_all(&self) -> f64 {
        self.bytes_all as f64 / self.samples.max(1) as f64
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() { dir_size(&path) } else { e.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}

/// Reads the whole source into per-series sample lists.
pub fn collect(source: &mut impl Source) -> BTreeMap<Labels, Vec<Sample>> {
    let mut by_id: Vec<Vec<Sample>> = Vec::new();
    while let Some(s) = source.next_scrape() {
        for (id, v) in s.samples {
            let i = id as usize;
            if by_id.len() <= i {
                by_id.resize_with(i + 1, Vec::new);
            }
            if let Some(list) = by_id.get_mut(i) {
                list.push(Sample::new(s.t, v));
            }
        }
    }
    by_id
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| source.labels(i as u32).map(|l| (l.clone(), s)))
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// Writes `data` into `dir` as 2 h blocks (aligned to 2 h, as the head persists them) and as
/// one block over everything, and measures them.
pub fn measure(
    data: &BTreeMap<Labels, Vec<Sample>>,
    dir: &Path,
    opts: &WriteOptions,
) -> Result<Report, BlockWriteError> {
    const RANGE: i64 = 2 * 3_600_000;
    let mint = data.values().filter_map(|s| s.first()).map(|s| s.t).min().unwrap_or(0);
    let maxt = data.values().filter_map(|s| s.last()).map(|s| s.t).max().unwrap_or(0);
    let samples: u64 = data.values().map(|s| s.len() as u64).sum();
    let two_h = dir.join("2h");
    let all = dir.join("all");
    for d in [&two_h, &all] {
        std::fs::create_dir_all(d).map_err(|source| BlockWriteError::Io {
            step: "create",
            path: d.clone(),
            source,
        })?;
    }
    let mut lo = mint.div_euclid(RANGE) * RANGE;
    while lo <= maxt {
        let hi = lo + RANGE;
        let series = data.iter().map(|(l, s)| {
            let a = s.partition_point(|x| x.t < lo);
            let b = s.partition_point(|x| x.t < hi);
            (l.clone(), s.get(a..b).unwrap_or(&[]).to_vec())
        });
        write_block(&two_h, series, &BlockSpec { min_time: lo, max_time: hi, ..Default::default() }, opts)?;
        lo = hi;
    }
    let spec = BlockSpec { min_time: mint, max_time: maxt + 1, ..Default::default() };
    let meta = write_block(&all, data.iter().map(|(l, s)| (l.clone(), s.clone())), &spec, opts)?;
    let index_bytes_all =
        meta.as_ref().and_then(|m| m.files.iter().find(|f| f.name == "index")).map_or(0, |f| f.size);
    Ok(Report {
        samples,
        series: data.len() as u64,
        bytes_2h: dir_size(&two_h),
        bytes_all: dir_size(&all),
        index_bytes_all,
    })
}

/// Pre-zstd bytes by metric name: `(name, samples, timestamp bytes, value bytes)`, largest
/// first, with every series' samples cut into `range_ms` chunks. For finding what to improve.
pub fn breakdown(data: &BTreeMap<Labels, Vec<Sample>>, range_ms: i64) -> Vec<(String, u64, u64, u64)> {
    use kahu_tsdb::block::codec::estimate_chunk;
    let mut by: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (l, s) in data {
        let e = by.entry(l.metric_name().unwrap_or("").to_string()).or_default();
        let mut rest: &[Sample] = s;
        while let Some(first) = rest.first() {
            let end = first.t.div_euclid(range_ms) * range_ms + range_ms;
            let n = rest.partition_point(|x| x.t < end);
            let (chunk, tail) = rest.split_at(n);
            let total = estimate_chunk(chunk) as u64;
            let ts_only: Vec<Sample> = chunk.iter().map(|x| Sample::new(x.t, 0.0)).collect();
            let ts = estimate_chunk(&ts_only).saturating_sub(8) as u64;
            e.0 += chunk.len() as u64;
            e.1 += ts;
            e.2 += total.saturating_sub(ts);
            rest = tail;
        }
    }
    let mut v: Vec<(String, u64, u64, u64)> = by.into_iter().map(|(k, (a, b, c))| (k, a, b, c)).collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.2 + x.3));
    v
}
