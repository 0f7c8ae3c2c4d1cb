//! Bytes per sample of kahu's blocks on a [`Source`]: the samples are written as 2 h blocks (what
//! persisting the head produces) and as one block over the whole run (what compaction
//! produces), and the blocks' bytes on disk are divided by the samples.

use std::collections::BTreeMap;
use std::path::Path;

use kahu_tsdb::block::{BlockSpec, BlockWriteError, IoStepError, WriteOptions, write_block};
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
        std::fs::create_dir_all(d).map_err(|source| IoStepError {
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

/// One row of [`breakdown_zstd`]: a kind of chunk and its bytes before and after zstd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindBytes {
    /// The kind: value codec, decimal exponent and whether the mantissas share a divisor.
    pub kind: String,
    /// Series-chunks of this kind.
    pub chunks: u64,
    /// Samples.
    pub samples: u64,
    /// Timestamp bytes (chunk header and timestamp codec) before zstd.
    pub ts_raw: u64,
    /// Value bytes (flags, staleness markers, value codec) before zstd.
    pub val_raw: u64,
    /// Timestamp bytes after zstd, compressed apart from everything else in 256 KiB frames.
    pub ts_zstd: u64,
    /// Value bytes after zstd, likewise.
    pub val_zstd: u64,
}

fn value_kind(val: &[u8]) -> String {
    use kahu_tsdb::block::codec::buf::Dec;
    let mut d = Dec::new(val);
    let parse = |d: &mut Dec<'_>| -> Result<String, kahu_tsdb::block::codec::CodecError> {
        if d.u8()? == 1 {
            let n = d.uvarint()?;
            for _ in 0..n {
                d.uvarint()?;
            }
        }
        Ok(match d.u8()? {
            1 => "const".to_string(),
            2 => "raw".to_string(),
            4 => {
                let exp = d.u8()?;
                let exc = d.uvarint()?;
                for _ in 0..exc {
                    d.uvarint()?;
                    d.u64()?;
                }
                let t = d.u8()?;
                if t >= 1 {
                    d.varint()?;
                }
                if t == 2 {
                    d.varint()?;
                }
                let g = d.uvarint()?;
                let t = ["plain", "delta", "dod"].get(usize::from(t)).copied().unwrap_or("?");
                format!("decimal e{exp} {t}{}", if g > 1 { " gcd>1" } else { "" })
            }
            5 => {
                let exp = d.u8()?;
                let exc = d.uvarint()?;
                for _ in 0..exc {
                    d.uvarint()?;
                    d.u64()?;
                }
                let t = ["offset", "delta", "dod", "dma"].get(usize::from(d.u8()?)).copied().unwrap_or("?");
                format!("decimal-rc e{exp} {t}")
            }
            6 => {
                let t = ["offset", "delta", "dod", "dma"].get(usize::from(d.u8()?)).copied().unwrap_or("?");
                format!("bits-rc {t}")
            }
            c => format!("codec {c}"),
        })
    };
    parse(&mut d).unwrap_or_else(|e| format!("unparsed: {e}"))
}

fn zstd_frames(parts: &[Vec<u8>], level: i32) -> u64 {
    let mut total = 0u64;
    let mut frame = Vec::new();
    let flush = |frame: &mut Vec<u8>, total: &mut u64| {
        if !frame.is_empty() {
            *total += zstd::bulk::compress(frame, level).map_or(frame.len(), |c| c.len()) as u64;
            frame.clear();
        }
    };
    for p in parts {
        frame.extend_from_slice(p);
        if frame.len() >= 256 << 10 {
            flush(&mut frame, &mut total);
        }
    }
    flush(&mut frame, &mut total);
    total
}

/// Chunk bytes by kind and by part (timestamps, values), before and after zstd, with every
/// series cut into `range_ms` chunks (at most 8,192 samples) in index order. Each kind's
/// timestamps and values are compressed apart, so the zstd figures show what each part costs
/// on its own (the real frames mix them, which helps timestamps a little).
pub fn breakdown_zstd(data: &BTreeMap<Labels, Vec<Sample>>, range_ms: i64, level: i32) -> Vec<KindBytes> {
    use kahu_tsdb::block::codec::{MAX_CHUNK_SAMPLES, encode_chunk};
    // Per kind: the figures, then every chunk's timestamp bytes and value bytes.
    type Parts = (KindBytes, Vec<Vec<u8>>, Vec<Vec<u8>>);
    let mut by: BTreeMap<String, Parts> = BTreeMap::new();
    for s in data.values() {
        let mut rest: &[Sample] = s;
        while let Some(first) = rest.first() {
            let end = first.t.div_euclid(range_ms) * range_ms + range_ms;
            let n = rest.partition_point(|x| x.t < end).min(MAX_CHUNK_SAMPLES);
            let (chunk, tail) = rest.split_at(n);
            let mut full = Vec::new();
            encode_chunk(&mut full, chunk);
            let ts_only: Vec<Sample> = chunk.iter().map(|x| Sample::new(x.t, 0.0)).collect();
            let mut t = Vec::new();
            encode_chunk(&mut t, &ts_only);
            let p = t.len().saturating_sub(10).min(full.len());
            let (ts, val) = full.split_at(p);
            let kind = value_kind(val);
            let e = by
                .entry(kind.clone())
                .or_insert_with(|| (KindBytes { kind, ..KindBytes::default() }, Vec::new(), Vec::new()));
            e.0.chunks += 1;
            e.0.samples += chunk.len() as u64;
            e.0.ts_raw += ts.len() as u64;
            e.0.val_raw += val.len() as u64;
            e.1.push(ts.to_vec());
            e.2.push(val.to_vec());
            rest = tail;
        }
    }
    let mut v: Vec<KindBytes> = by
        .into_values()
        .map(|(mut k, ts, val)| {
            k.ts_zstd = zstd_frames(&ts, level);
            k.val_zstd = zstd_frames(&val, level);
            k
        })
        .collect();
    v.sort_by_key(|k| std::cmp::Reverse(k.ts_zstd + k.val_zstd));
    v
}
