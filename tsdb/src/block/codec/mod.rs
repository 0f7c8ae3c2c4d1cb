//! Persisted-block chunk codecs: each chunk's timestamps and values are encoded with the codec
//! whose exactly-estimated size is smallest. The byte layout is `docs/format/chunks.md`.
//!
//! Design as in tantivy's `ColumnCodecEstimator`: every codec can say, without writing, exactly
//! how many bytes it would take; the writer keeps the smallest. Codec ids are `#[repr(u8)]` with
//! `to_code`/`try_from_code`, and an unknown byte is an error, never a panic.

pub mod bitpack;
pub mod buf;
pub mod ints;
pub mod rc;
pub mod ts;
pub mod values;

use crate::model::{STALE_NAN_BITS, Sample, stale_nan};
use buf::{Dec, put_uvarint, uvarint_len};

/// Most samples in one chunk. A longer series in a block is cut into several chunks, so that a
/// query over a short range does not decode a whole day of samples.
pub const MAX_CHUNK_SAMPLES: usize = 8_192;

/// A chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes end before the chunk does.
    #[error("chunk data ends early")]
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// The timestamp codec id is not one this version knows.
    #[error("unknown timestamp codec id {0}")]
    UnknownTsCodec(u8),
    /// The value codec id is not one this version knows.
    #[error("unknown value codec id {0}")]
    UnknownValueCodec(u8),
    /// A field has an impossible value.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes remain after the chunk.
    #[error("{0} bytes after the end of the chunk")]
    Trailing(usize),
}

/// How a chunk's timestamps are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TsCodec {
    /// First timestamp, then delta-of-deltas as varints. Any timestamps.
    Delta = 1,
    /// A regular grid plus packed deviations and anchors. Scrape timestamps.
    Grid = 2,
}

impl TsCodec {
    /// Every timestamp codec.
    pub const ALL: [TsCodec; 2] = [TsCodec::Delta, TsCodec::Grid];

    /// The id byte.
    pub fn to_code(self) -> u8 {
        self as u8
    }

    /// The codec with id `code`, if any.
    pub fn try_from_code(code: u8) -> Option<TsCodec> {
        Self::ALL.into_iter().find(|c| c.to_code() == code)
    }
}

/// How a chunk's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueCodec {
    /// One value repeated.
    Const = 1,
    /// 8 bytes per value.
    Raw = 2,
    /// Mantissas of a power of ten, as an integer sequence, plus exceptions.
    Decimal = 4,
    /// As [`ValueCodec::Decimal`], with the mantissas range-coded.
    DecimalRc = 5,
    /// The bit patterns as a range-coded integer sequence. Full-precision floats.
    BitsRc = 6,
}

impl ValueCodec {
    /// Every value codec.
    pub const ALL: [ValueCodec; 5] =
        [ValueCodec::Const, ValueCodec::Raw, ValueCodec::Decimal, ValueCodec::DecimalRc, ValueCodec::BitsRc];

    /// The codecs whose output zstd can still shrink (everything but the entropy-coded ones).
    pub const CLASSIC: [ValueCodec; 3] = [ValueCodec::Const, ValueCodec::Raw, ValueCodec::Decimal];

    /// Whether the codec's output is entropy-coded, so that zstd cannot shrink it further.
    pub fn is_entropy_coded(self) -> bool {
        matches!(self, ValueCodec::DecimalRc | ValueCodec::BitsRc)
    }

    /// The id byte.
    pub fn to_code(self) -> u8 {
        self as u8
    }

    /// The codec with id `code`, if any.
    pub fn try_from_code(code: u8) -> Option<ValueCodec> {
        Self::ALL.into_iter().find(|c| c.to_code() == code)
    }
}

/// A timestamp encoding ready to write.
enum TsPlan {
    Delta(usize),
    Grid(ts::grid::Plan),
}

impl TsPlan {
    fn codec(&self) -> TsCodec {
        match self {
            TsPlan::Delta(_) => TsCodec::Delta,
            TsPlan::Grid(_) => TsCodec::Grid,
        }
    }
    fn size(&self) -> usize {
        match self {
            TsPlan::Delta(s) => *s,
            TsPlan::Grid(p) => p.size(),
        }
    }
}

fn ts_plan(ts: &[i64], codec: TsCodec) -> Option<TsPlan> {
    match codec {
        TsCodec::Delta => Some(TsPlan::Delta(ts::delta::estimate(ts))),
        TsCodec::Grid => ts::grid::plan(ts).map(TsPlan::Grid),
    }
}

/// A value encoding ready to write.
enum ValuePlan {
    Const,
    Raw(usize),
    Decimal(values::decimal::Plan),
    DecimalRc(Vec<u8>),
    BitsRc(Vec<u8>),
}

impl ValuePlan {
    fn codec(&self) -> ValueCodec {
        match self {
            ValuePlan::Const => ValueCodec::Const,
            ValuePlan::Raw(_) => ValueCodec::Raw,
            ValuePlan::Decimal(_) => ValueCodec::Decimal,
            ValuePlan::DecimalRc(_) => ValueCodec::DecimalRc,
            ValuePlan::BitsRc(_) => ValueCodec::BitsRc,
        }
    }
    fn size(&self) -> usize {
        match self {
            ValuePlan::Const => 8,
            ValuePlan::Raw(s) => *s,
            ValuePlan::Decimal(p) => p.size(),
            ValuePlan::DecimalRc(b) | ValuePlan::BitsRc(b) => b.len(),
        }
    }
}

fn value_plan(vals: &[f64], codec: ValueCodec) -> Option<ValuePlan> {
    match codec {
        ValueCodec::Const => values::constant::estimate(vals).map(|_| ValuePlan::Const),
        ValueCodec::Raw => Some(ValuePlan::Raw(values::raw::estimate(vals))),
        ValueCodec::Decimal => values::decimal::plan(vals).map(ValuePlan::Decimal),
        ValueCodec::DecimalRc => values::decimal::plan(vals).map(|p| ValuePlan::DecimalRc(p.encode_rc())),
        ValueCodec::BitsRc => values::bits::applies(vals, values::decimal::plan(vals).as_ref())
            .then(|| ValuePlan::BitsRc(values::bits::encode_rc(vals))),
    }
}

/// A chunk split into what the codecs see.
struct Parts {
    ts: Vec<i64>,
    stale: Vec<usize>,
    vals: Vec<f64>,
}

fn split(samples: &[Sample]) -> Parts {
    let mut p = Parts {
        ts: Vec::with_capacity(samples.len()),
        stale: Vec::new(),
        vals: Vec::with_capacity(samples.len()),
    };
    for (i, s) in samples.iter().enumerate() {
        p.ts.push(s.t);
        if s.v.to_bits() == STALE_NAN_BITS {
            p.stale.push(i);
        } else {
            p.vals.push(s.v);
        }
    }
    p
}

fn stale_size(stale: &[usize]) -> usize {
    if stale.is_empty() {
        return 0;
    }
    let mut size = uvarint_len(stale.len() as u64);
    let mut prev = 0;
    for &i in stale {
        size += uvarint_len((i - prev) as u64);
        prev = i;
    }
    size
}

fn write(out: &mut Vec<u8>, n: usize, parts: &Parts, tp: &TsPlan, vp: &ValuePlan) {
    put_uvarint(out, n as u64);
    out.push(tp.codec().to_code());
    match tp {
        TsPlan::Delta(_) => ts::delta::encode(out, &parts.ts),
        TsPlan::Grid(p) => p.encode(out),
    }
    out.push(u8::from(!parts.stale.is_empty()));
    if !parts.stale.is_empty() {
        put_uvarint(out, parts.stale.len() as u64);
        let mut prev = 0;
        for &i in &parts.stale {
            put_uvarint(out, (i - prev) as u64);
            prev = i;
        }
    }
    out.push(vp.codec().to_code());
    match vp {
        ValuePlan::Const => values::constant::encode(out, &parts.vals),
        ValuePlan::Raw(_) => values::raw::encode(out, &parts.vals),
        ValuePlan::Decimal(p) => p.encode(out),
        ValuePlan::DecimalRc(b) | ValuePlan::BitsRc(b) => out.extend_from_slice(b),
    }
}

/// Which codecs a chunk was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCodecs {
    /// The timestamp codec.
    pub ts: TsCodec,
    /// The value codec (`None` when every sample is a staleness marker).
    pub value: Option<ValueCodec>,
}

/// Appends `samples` (sorted by strictly increasing timestamp, at most [`MAX_CHUNK_SAMPLES`])
/// encoded with the smallest codecs; returns which were used.
pub fn encode_chunk(out: &mut Vec<u8>, samples: &[Sample]) -> ChunkCodecs {
    encode_chunk_among(out, samples, &ValueCodec::ALL)
}

/// As [`encode_chunk`], choosing the value codec among `value_codecs` only (with `raw` as the
/// fallback when none applies).
pub fn encode_chunk_among(out: &mut Vec<u8>, samples: &[Sample], value_codecs: &[ValueCodec]) -> ChunkCodecs {
    let parts = split(samples);
    let tp = best_ts_plan(&parts.ts);
    let vp = value_plans(&parts.vals, value_codecs)
        .into_iter()
        .min_by_key(ValuePlan::size)
        .unwrap_or(ValuePlan::Raw(values::raw::estimate(&parts.vals)));
    write_checked(out, samples, &parts, &tp, &vp)
}

/// As [`encode_chunk`]; when the chosen value codec is entropy-coded, also returns the chunk
/// encoded with the smallest of [`ValueCodec::CLASSIC`], for a writer that chooses by the size
/// after zstd. Plans shared by both are computed once.
pub fn encode_chunk_with_classic(out: &mut Vec<u8>, samples: &[Sample]) -> (ChunkCodecs, Option<Vec<u8>>) {
    let parts = split(samples);
    let tp = best_ts_plan(&parts.ts);
    let mut plans = value_plans(&parts.vals, &ValueCodec::ALL);
    let Some(best) = plans.iter().enumerate().min_by_key(|(_, p)| p.size()).map(|(i, _)| i) else {
        let vp = ValuePlan::Raw(values::raw::estimate(&parts.vals));
        return (write_checked(out, samples, &parts, &tp, &vp), None);
    };
    let vp = plans.remove(best);
    let used = write_checked(out, samples, &parts, &tp, &vp);
    if !used.value.is_some_and(ValueCodec::is_entropy_coded) {
        return (used, None);
    }
    let classic = plans
        .into_iter()
        .filter(|p| !p.codec().is_entropy_coded())
        .min_by_key(ValuePlan::size)
        .unwrap_or(ValuePlan::Raw(values::raw::estimate(&parts.vals)));
    let mut alt = Vec::with_capacity(classic.size() + tp.size() + 16);
    write_checked(&mut alt, samples, &parts, &tp, &classic);
    (used, Some(alt))
}

fn best_ts_plan(ts: &[i64]) -> TsPlan {
    TsCodec::ALL
        .into_iter()
        .filter_map(|c| ts_plan(ts, c))
        .min_by_key(TsPlan::size)
        .unwrap_or(TsPlan::Delta(ts::delta::estimate(ts)))
}

/// The plans of `codecs` that apply; the `decimal` plan is made once and shared by `decimal`,
/// `decimal-rc` and the test of whether `bits-rc` applies.
fn value_plans(vals: &[f64], codecs: &[ValueCodec]) -> Vec<ValuePlan> {
    let needs_decimal =
        codecs.iter().any(|c| matches!(c, ValueCodec::Decimal | ValueCodec::DecimalRc | ValueCodec::BitsRc));
    let decimal = if needs_decimal { values::decimal::plan(vals) } else { None };
    let mut plans: Vec<ValuePlan> = Vec::with_capacity(codecs.len());
    for &c in codecs {
        let plan = match c {
            ValueCodec::Decimal => decimal.clone().map(ValuePlan::Decimal),
            ValueCodec::DecimalRc => decimal.as_ref().map(|d| ValuePlan::DecimalRc(d.encode_rc())),
            ValueCodec::BitsRc => values::bits::applies(vals, decimal.as_ref())
                .then(|| ValuePlan::BitsRc(values::bits::encode_rc(vals))),
            ValueCodec::Const | ValueCodec::Raw => value_plan(vals, c),
        };
        plans.extend(plan);
    }
    plans
}

/// Writes the chunk and checks it decodes to `samples`.
fn write_checked(
    out: &mut Vec<u8>,
    samples: &[Sample],
    parts: &Parts,
    tp: &TsPlan,
    vp: &ValuePlan,
) -> ChunkCodecs {
    let start = out.len();
    write(out, samples.len(), parts, tp, vp);
    // Bit-exactness is the contract: check it here, once per chunk, rather than trust every
    // codec's arithmetic on every input. A failure falls back to the codecs that cannot fail.
    let ok = out.get(start..).map(decode_chunk).is_some_and(|r| r.is_ok_and(|d| d == samples));
    if !ok {
        debug_assert!(false, "chunk codec {:?}/{:?} did not round-trip", tp.codec(), vp.codec());
        out.truncate(start);
        let tp = TsPlan::Delta(ts::delta::estimate(&parts.ts));
        let vp = ValuePlan::Raw(values::raw::estimate(&parts.vals));
        write(out, samples.len(), parts, &tp, &vp);
        return ChunkCodecs { ts: TsCodec::Delta, value: Some(ValueCodec::Raw) };
    }
    ChunkCodecs { ts: tp.codec(), value: (!parts.vals.is_empty()).then(|| vp.codec()) }
}

/// The exact size [`encode_chunk`] would append for `samples`.
pub fn estimate_chunk(samples: &[Sample]) -> usize {
    let parts = split(samples);
    let ts =
        TsCodec::ALL.into_iter().filter_map(|c| ts_plan(&parts.ts, c)).map(|p| p.size()).min().unwrap_or(0);
    let v = value_plans(&parts.vals, &ValueCodec::ALL).iter().map(ValuePlan::size).min().unwrap_or(0);
    uvarint_len(samples.len() as u64) + 1 + ts + 1 + stale_size(&parts.stale) + 1 + v
}

/// Encodes with the given codecs, or `None` if one of them cannot encode these samples. For
/// tests and benchmarks that exercise one codec.
pub fn encode_chunk_with(samples: &[Sample], ts: TsCodec, value: ValueCodec) -> Option<Vec<u8>> {
    let parts = split(samples);
    let tp = ts_plan(&parts.ts, ts)?;
    let vp = value_plan(&parts.vals, value)?;
    let mut out = Vec::with_capacity(tp.size() + vp.size() + 8);
    write(&mut out, samples.len(), &parts, &tp, &vp);
    Some(out)
}

/// The exact size of [`encode_chunk_with`]'s output, without encoding.
pub fn estimate_chunk_with(samples: &[Sample], ts: TsCodec, value: ValueCodec) -> Option<usize> {
    let parts = split(samples);
    let t = ts_plan(&parts.ts, ts)?.size();
    let v = value_plan(&parts.vals, value)?.size();
    Some(uvarint_len(samples.len() as u64) + 1 + t + 1 + stale_size(&parts.stale) + 1 + v)
}

/// Decodes one whole chunk; every byte must belong to it.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<Sample>, CodecError> {
    let mut d = Dec::new(bytes);
    let n = d.len(MAX_CHUNK_SAMPLES, "sample count")?;
    if n == 0 {
        return Err(CodecError::Invalid("sample count"));
    }
    let tc = d.u8()?;
    let ts = match TsCodec::try_from_code(tc).ok_or(CodecError::UnknownTsCodec(tc))? {
        TsCodec::Delta => ts::delta::decode(&mut d, n)?,
        TsCodec::Grid => ts::grid::decode(&mut d, n)?,
    };
    let flags = d.u8()?;
    if flags > 1 {
        return Err(CodecError::Invalid("chunk flags"));
    }
    let mut stale = Vec::new();
    if flags == 1 {
        let count = d.len(n, "staleness marker count")?;
        let mut idx = 0usize;
        for k in 0..count {
            let di = d.len(n, "staleness marker index")?;
            if k > 0 && di == 0 {
                return Err(CodecError::Invalid("staleness marker index"));
            }
            idx += di;
            if idx >= n {
                return Err(CodecError::Invalid("staleness marker index"));
            }
            stale.push(idx);
        }
    }
    let m = n - stale.len();
    let vc = d.u8()?;
    let vals = match ValueCodec::try_from_code(vc).ok_or(CodecError::UnknownValueCodec(vc))? {
        ValueCodec::Const => values::constant::decode(&mut d, m)?,
        ValueCodec::Raw => values::raw::decode(&mut d, m)?,
        ValueCodec::Decimal => values::decimal::decode(&mut d, m)?,
        ValueCodec::DecimalRc => values::decimal::decode_rc(&mut d, m)?,
        ValueCodec::BitsRc => values::bits::decode_rc(&mut d, m)?,
    };
    if d.remaining() > 0 {
        return Err(CodecError::Trailing(d.remaining()));
    }
    let mut out = Vec::with_capacity(n);
    let mut vals = vals.into_iter();
    let mut stale = stale.into_iter().peekable();
    for (i, t) in ts.into_iter().enumerate() {
        let v = if stale.peek() == Some(&i) {
            stale.next();
            stale_nan()
        } else {
            vals.next().ok_or(CodecError::Truncated)?
        };
        out.push(Sample::new(t, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
