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
    samples_by_id(source)
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| source.labels(i as u32).map(|l| (l.clone(), s)))
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// Reads the whole source into sample lists indexed by series id.
fn samples_by_id(source: &mut impl Source) -> Vec<Vec<Sample>> {
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
                format!("decimal-rc e{exp} {}", rc_head(d.u8()?))
            }
            6 => format!("bits-rc {}", rc_head(d.u8()?)),
            c => format!("codec {c}"),
        })
    };
    parse(&mut d).unwrap_or_else(|e| format!("unparsed: {e}"))
}

/// Bytes of a chunk's sample count and timestamps when written with timestamp codec `ts`: the
/// same timestamps with a constant value, less the constant (flags byte, codec byte, 8 bytes).
/// Encoding the timestamps with whatever codecs [`encode_chunk`] picks would not do: on short
/// chunks a constant 0 is cheaper in another value codec, which moved the cut.
///
/// [`encode_chunk`]: kahu_tsdb::block::codec::encode_chunk
fn ts_part_len(chunk: &[Sample], ts: kahu_tsdb::block::codec::TsCodec) -> usize {
    use kahu_tsdb::block::codec::{ValueCodec, estimate_chunk_with};
    let ts_only: Vec<Sample> = chunk.iter().map(|x| Sample::new(x.t, 0.0)).collect();
    estimate_chunk_with(&ts_only, ts, ValueCodec::Const).unwrap_or(0).saturating_sub(10)
}

/// A range-coded sequence's head byte: the transform in bits 0-1, the model above.
fn rc_head(b: u8) -> String {
    let t = ["offset", "delta", "dod", "dma"].get(usize::from(b & 3)).copied().unwrap_or("?");
    format!("{t} m{}", b >> 2)
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
            let codecs = encode_chunk(&mut full, chunk);
            let p = ts_part_len(chunk, codecs.ts).min(full.len());
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

/// Value bytes of `samples` cut into `range_ms` chunks (at most [`MAX_CHUNK_SAMPLES`] samples)
/// as [`encode_chunk`] writes them, before zstd: the chunk minus its header and timestamps.
///
/// [`MAX_CHUNK_SAMPLES`]: kahu_tsdb::block::codec::MAX_CHUNK_SAMPLES
/// [`encode_chunk`]: kahu_tsdb::block::codec::encode_chunk
pub fn value_bytes(samples: &[Sample], range_ms: i64) -> u64 {
    use kahu_tsdb::block::codec::{MAX_CHUNK_SAMPLES, encode_chunk};
    let mut total = 0u64;
    let mut rest = samples;
    let mut buf = Vec::new();
    while let Some(first) = rest.first() {
        let end = first.t.div_euclid(range_ms) * range_ms + range_ms;
        let n = rest.partition_point(|x| x.t < end).clamp(1, MAX_CHUNK_SAMPLES);
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        buf.clear();
        let codecs = encode_chunk(&mut buf, chunk);
        total += buf.len().saturating_sub(ts_part_len(chunk, codecs.ts)) as u64;
        rest = tail;
    }
    total
}

/// One row of [`floor_by_kind`]: a generator model kind, its randomness and what kahu pays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloorRow {
    /// The model kind (`Micro`, `Int`, ...; `timestamps` for the scrape jitter).
    pub kind: String,
    /// Series of this kind.
    pub series: u64,
    /// Samples of this kind.
    pub samples: u64,
    /// Bits of randomness the generator drew for them.
    pub floor_bits: f64,
    /// Value bytes kahu's codecs write for them, before zstd (0 for `timestamps`).
    pub value_bytes: u64,
}

/// Runs the generated workload of `cfg` with [`Workload::track_floor`] and encodes every series'
/// values in `range_ms` chunks: by model kind, the generator's entropy against what kahu pays.
///
/// [`Workload::track_floor`]: crate::workload::Workload::track_floor
pub fn floor_by_kind(cfg: crate::workload::Config, range_ms: i64) -> Vec<FloorRow> {
    use crate::workload::Workload;
    let mut w = Workload::new(cfg).track_floor();
    let by_id = samples_by_id(&mut w);
    let floor = w.floor_by_kind();
    let mut rows: BTreeMap<&'static str, FloorRow> = BTreeMap::new();
    for (kind, f) in &floor {
        rows.insert(
            kind,
            FloorRow {
                kind: (*kind).to_string(),
                series: f.series,
                samples: f.samples,
                floor_bits: f.bits,
                value_bytes: 0,
            },
        );
    }
    for (i, samples) in by_id.iter().enumerate() {
        let Some(kind) = w.model_kind(i as u32) else { continue };
        if let Some(r) = rows.get_mut(kind) {
            r.value_bytes += value_bytes(samples, range_ms);
        }
    }
    let mut v: Vec<FloorRow> = rows.into_values().collect();
    v.sort_by(|a, b| b.value_bytes.cmp(&a.value_bytes).then(b.floor_bits.total_cmp(&a.floor_bits)));
    v
}

/// Statistics of one metric's series, comparable between a capture and the generator
/// ([`metric_stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricStats {
    /// Series.
    pub series: u64,
    /// Samples (staleness markers excluded).
    pub samples: u64,
    /// Share of consecutive pairs whose value did not change.
    pub unchanged: f64,
    /// Median over series of the mean absolute step between consecutive values.
    pub mean_step: f64,
    /// Median over the series that move of the step's relative variation: the deviation of
    /// the step from the series' mean step, over the mean absolute step (0 for a perfectly
    /// steady counter; 0.3 for the generator's 30% noise).
    pub step_cv: f64,
    /// Median over the moving series of the bits per step of that local noise at the values'
    /// resolution (`log2(deviation / resolution) + 2.05`, the entropy of a normal
    /// of that deviation; 0 when the steps hardly vary).
    pub step_bits: f64,
    /// Value bytes per sample kahu's codecs write (2 h chunks, before zstd).
    pub value_bytes_per_sample: f64,
}

/// The resolution of `vals`: the largest power of ten (down to 1e-9) that divides every value.
fn resolution(vals: &[f64]) -> f64 {
    for e in (-9..=12).rev() {
        let r = 10f64.powi(e);
        if vals.iter().all(|v| {
            let q = v / r;
            (q - q.round()).abs() <= 1e-6 * q.abs().max(1.0)
        }) {
            return r;
        }
    }
    1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Per metric name, statistics of how the values step from sample to sample: the same figures
/// for a capture and for the generator, so that the generator's noise can be checked against
/// real data.
pub fn metric_stats(data: &BTreeMap<Labels, Vec<Sample>>) -> BTreeMap<String, MetricStats> {
    // Per metric: figures, per-series mean steps, noise ratios, noise bits; unchanged pairs,
    // pairs, value bytes.
    type Acc = (MetricStats, Vec<f64>, Vec<f64>, Vec<f64>, u64, u64, u64);
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for (l, s) in data {
        let vals: Vec<f64> = s.iter().map(|x| x.v).filter(|v| !v.is_nan()).collect();
        let e = acc.entry(l.metric_name().unwrap_or("").to_string()).or_default();
        e.0.series += 1;
        e.0.samples += vals.len() as u64;
        e.6 += value_bytes(s, 2 * 3_600_000);
        let steps: Vec<f64> =
            vals.windows(2).map(|w| w.get(1).unwrap_or(&0.0) - w.first().unwrap_or(&0.0)).collect();
        e.4 += steps.iter().filter(|d| **d == 0.0).count() as u64;
        e.5 += steps.len() as u64;
        if steps.is_empty() {
            continue;
        }
        let mean_abs = steps.iter().map(|d| d.abs()).sum::<f64>() / steps.len() as f64;
        e.1.push(mean_abs);
        if mean_abs > 0.0 {
            // The local noise: the deviation of second differences over sqrt 2, which a slowly
            // drifting rate does not inflate (white noise of deviation s in the steps, or a
            // random walk of steps s, both give s).
            let dd: Vec<f64> =
                steps.windows(2).map(|w| w.get(1).unwrap_or(&0.0) - w.first().unwrap_or(&0.0)).collect();
            let sd = (dd.iter().map(|d| d * d).sum::<f64>() / dd.len().max(1) as f64 / 2.0).sqrt();
            e.2.push(sd / mean_abs);
            let res = resolution(&vals);
            e.3.push(if sd > res { (sd / res).log2() + 2.05 } else { 0.0 });
        }
    }
    acc.into_iter()
        .map(|(k, (mut m, steps, cv, bits, unchanged, pairs, bytes))| {
            m.unchanged = unchanged as f64 / pairs.max(1) as f64;
            m.mean_step = median(steps);
            m.step_cv = median(cv);
            m.step_bits = median(bits);
            m.value_bytes_per_sample = bytes as f64 / m.samples.max(1) as f64;
            (k, m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Capture;
    use crate::workload::Config;

    fn capture() -> BTreeMap<Labels, Vec<Sample>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/node-exporter-1h.capture.zst");
        collect(&mut Capture::read(&path).unwrap().replay())
    }

    /// Every chunk of the capture gets a known codec label, the 30-sample chunks at the 2 h
    /// boundary included (their timestamps were once cut a byte late, labelled "codec 0"), and
    /// the range-coded ones name their transform and model.
    #[test]
    fn breakdown_labels_every_capture_chunk_with_its_codec() {
        let data = capture();
        let rows = breakdown_zstd(&data, 2 * 3_600_000, 3);
        assert!(rows.iter().map(|r| r.samples).sum::<u64>() > 120_000);
        for r in &rows {
            let known = ["const", "raw", "decimal ", "decimal-rc ", "bits-rc "];
            assert!(known.iter().any(|k| r.kind.starts_with(k)), "{}", r.kind);
            assert!(!r.kind.contains('?'), "{}", r.kind);
        }
        assert!(rows.iter().any(|r| r.kind.starts_with("decimal-rc") && r.kind.ends_with(" m1")));
        // The parts add up to the chunks as written.
        let total: u64 = rows.iter().map(|r| r.ts_raw + r.val_raw).sum();
        let written: u64 = data
            .values()
            .map(|s| {
                let mut rest: &[Sample] = s;
                let mut n = 0u64;
                while let Some(first) = rest.first() {
                    let end = first.t.div_euclid(7_200_000) * 7_200_000 + 7_200_000;
                    let (c, tail) = rest.split_at(rest.partition_point(|x| x.t < end));
                    n += kahu_tsdb::block::codec::estimate_chunk(c) as u64;
                    rest = tail;
                }
                n
            })
            .sum();
        assert_eq!(total, written);
    }

    /// On the generated workload the codecs pay at least the generator's randomness (nothing
    /// can do better on average) and, where values are noisy, not much more.
    #[test]
    fn the_codecs_pay_at_least_the_generators_randomness_and_little_more() {
        let cfg = Config { series: 300, duration_ms: 3_600_000, ..Config::default() };
        let rows = floor_by_kind(cfg, 2 * 3_600_000);
        let int = rows.iter().find(|r| r.kind == "Int").unwrap();
        let bits = 8.0 * int.value_bytes as f64;
        assert!(int.samples > 10_000);
        assert!(bits >= int.floor_bits, "{bits} < {}", int.floor_bits);
        assert!(bits <= int.floor_bits * 1.15, "{bits} vs {}", int.floor_bits);
        let c = rows.iter().find(|r| r.kind == "Const").unwrap();
        assert_eq!(c.floor_bits, 0.0);
        assert!(rows.iter().any(|r| r.kind == "timestamps" && r.floor_bits > 0.0));
    }

    #[test]
    fn metric_stats_measure_steps_and_their_noise() {
        let mk = |vals: &[f64]| -> Vec<Sample> {
            vals.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * 15_000, v)).collect()
        };
        let mut data = BTreeMap::new();
        let steady: Vec<f64> = (0..100).map(|i| 1_000.0 * i as f64).collect();
        data.insert(Labels::from_pairs(vec![("__name__", "steady")]), mk(&steady));
        let flat = vec![5.0; 100];
        data.insert(Labels::from_pairs(vec![("__name__", "flat")]), mk(&flat));
        let s = metric_stats(&data);
        let steady = &s["steady"];
        assert_eq!((steady.unchanged, steady.mean_step, steady.step_cv), (0.0, 1_000.0, 0.0));
        assert_eq!(s["flat"].unchanged, 1.0);
    }
}
