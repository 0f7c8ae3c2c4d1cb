//! The head's decimal chunk: for series whose values are all integers or short decimals, as
//! exporters print them (µs CPU counters as float seconds, byte counters, page-multiple gauges,
//! constant limits). Each value `v` is stored as the integer `m` with `v == m as f64 / 10^k`
//! bit for bit, for one exponent `k` per chunk; the `m` go in as delta-of-delta, zig-zagged and
//! bit-packed, which takes a few bits where Gorilla's XOR of the float bits takes tens.
//!
//! Layout: a 2-byte big-endian sample count (as an XOR chunk, so that
//! [`super::xor::num_samples`] reads either), one byte `k`, then a bit stream:
//!
//! - sample 0: the timestamp as a zig-zag varint, `m` length-prefixed (`0` for zero, else `1`,
//!   a 6-bit width - 1 and the zig-zagged bits);
//! - sample 1: the timestamp delta as a uvarint, the delta of `m` length-prefixed;
//! - later samples: the timestamp delta-of-delta in buckets (`0` for 0; `10` + 4 bits, `110` +
//!   8, `1110` + 14, `11110` + 20, `11111` + 64), then the delta-of-delta of `m`: `0` for 0,
//!   `10` + the last width in bits, or `11` + a new 6-bit width and that many bits.
//!
//! A value that is no such decimal (NaN payloads, the staleness marker, ±Inf, -0.0, full-precision
//! floats, integers beyond 2^53) does not fit: [`DecChunk::append`] says so and the caller
//! re-encodes the chunk as XOR. A value needing more decimals than the chunk's `k` re-encodes the
//! chunk with the larger `k` when every earlier `m` still fits. Decoding computes
//! `m as f64 / 10^k`, the same correctly rounded division the encoder checked, so every value
//! comes back bit-exact.
//!
//! Timestamps must strictly increase within a chunk; arithmetic wraps, so any `i64` round-trips.

use super::bits::{BitReader, BitWriter, write_uvarint, write_varint};
use super::xor::MAX_SAMPLES;
use crate::model::Sample;

/// Exact powers of ten up to the largest exponent a chunk uses.
const POW10: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The largest decimal exponent.
pub const MAX_K: u8 = 15;

/// `m` stays within ±2^53, where every integer is an exact `f64`.
const M_LIMIT: f64 = 9_007_199_254_740_992.0;

/// The integer `m` with `m as f64 / 10^k == v` bit for bit, if there is one.
#[inline]
fn scaled(v: f64, k: u8) -> Option<i64> {
    let p = *POW10.get(usize::from(k))?;
    let m = (v * p).round();
    // NaN fails this too.
    if m.is_nan() || m.abs() > M_LIMIT {
        return None;
    }
    let m = m as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// The value stored as `m` at exponent `k`.
#[inline]
fn unscaled(m: i64, k: u8) -> f64 {
    m as f64 / POW10.get(usize::from(k)).copied().unwrap_or(1.0)
}

/// The smallest exponent from `from` on at which `v` is a decimal.
fn fit(v: f64, from: u8) -> Option<(u8, i64)> {
    (from..=MAX_K).find_map(|k| scaled(v, k).map(|m| (k, m)))
}

/// What [`DecChunk::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecAppend {
    /// The sample is in the chunk.
    Appended,
    /// The chunk holds [`MAX_SAMPLES`] samples.
    Full,
    /// The value is no decimal the chunk can hold; nothing was appended.
    Unfit,
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits needed for `z` (at least 1).
fn width(z: u64) -> u8 {
    (64 - z.leading_zeros()).max(1) as u8
}

/// Writes `x` as `0` when zero, else `1`, a 6-bit width - 1 and the zig-zagged bits.
fn write_len<S>(w: &mut BitWriter<S>, x: i64) {
    let z = zigzag(x);
    if z == 0 {
        w.write_bit(false);
        return;
    }
    let n = width(z);
    w.write_bit(true);
    w.write_bits(u64::from(n - 1), 6);
    w.write_bits(z, n);
}

fn read_len(r: &mut BitReader<'_>) -> Option<i64> {
    if !r.read_bit()? {
        return Some(0);
    }
    let n = r.read_bits(6)? as u8 + 1;
    Some(unzigzag(r.read_bits(n)?))
}

/// Whether `x` fits a signed `nbits`-bit field.
fn fits_signed(x: i64, nbits: u8) -> bool {
    let half = 1i64 << (nbits - 1);
    -half <= x && x < half
}

/// Timestamp delta-of-delta buckets after their prefixes `10`, `110`, `1110`, `11110`.
const T_BUCKETS: [u8; 4] = [4, 8, 14, 20];

/// A decimal chunk being appended to in place.
#[derive(Debug, Clone)]
pub struct DecChunk {
    w: BitWriter<DecState>,
    t: i64,
    t_delta: u64,
    m: i64,
    m_delta: i64,
}

/// The small part of a [`DecChunk`]'s state, kept in its writer's padding (the chunk is
/// 64 bytes instead of 72).
#[derive(Debug, Clone, Copy, Default)]
struct DecState {
    num: u16,
    k: u8,
    /// Width of the last explicitly sized delta-of-delta of `m` (0 before the first).
    m_width: u8,
}

impl DecChunk {
    /// An empty chunk with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_k(0, capacity)
    }

    fn with_k(k: u8, capacity: usize) -> Self {
        let mut w = BitWriter::with_prefix_capacity(&[0, 0, k], capacity);
        w.extra = DecState { num: 0, k, m_width: 0 };
        DecChunk { w, t: 0, t_delta: 0, m: 0, m_delta: 0 }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        usize::from(self.w.extra.num)
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.w.extra.num == 0
    }

    /// The encoded chunk: header and bit stream.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Heap bytes held (including spare capacity).
    pub fn heap_bytes(&self) -> usize {
        self.w.capacity()
    }

    /// Timestamp of the last sample (meaningless when empty).
    pub fn last_t(&self) -> i64 {
        self.t
    }

    /// Value bits of the last sample (meaningless when empty).
    pub fn last_v_bits(&self) -> u64 {
        unscaled(self.m, self.w.extra.k).to_bits()
    }

    /// The decimal exponent of the chunk's values.
    pub fn k(&self) -> u8 {
        self.w.extra.k
    }

    /// Gives back spare capacity.
    pub fn shrink(&mut self) {
        self.w.shrink();
    }

    /// Appends a sample; the caller guarantees that `t` is greater than the last timestamp.
    pub fn append(&mut self, t: i64, v: f64) -> DecAppend {
        if usize::from(self.w.extra.num) >= MAX_SAMPLES {
            return DecAppend::Full;
        }
        let m = match scaled(v, self.w.extra.k) {
            Some(m) => m,
            None => {
                let Some((k, _)) = fit(v, self.w.extra.k.saturating_add(1)) else { return DecAppend::Unfit };
                if !self.rescale(k) {
                    return DecAppend::Unfit;
                }
                match scaled(v, self.w.extra.k) {
                    Some(m) => m,
                    None => return DecAppend::Unfit,
                }
            }
        };
        self.push(t, m);
        DecAppend::Appended
    }

    /// Re-encodes the samples so far at exponent `k` (larger than the current one). `false`
    /// (and the chunk unchanged) when an earlier value does not fit at `k`.
    fn rescale(&mut self, k: u8) -> bool {
        let mut out = Self::with_k(k, self.w.capacity() + self.w.capacity() / 4);
        for s in DecIter::new(self.bytes()) {
            let Some(m) = scaled(s.v, k) else { return false };
            out.push(s.t, m);
        }
        *self = out;
        true
    }

    fn push(&mut self, t: i64, m: i64) {
        match self.w.extra.num {
            0 => {
                write_varint(&mut self.w, t);
                write_len(&mut self.w, m);
            }
            1 => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                write_uvarint(&mut self.w, t_delta);
                let m_delta = m.wrapping_sub(self.m);
                write_len(&mut self.w, m_delta);
                self.t_delta = t_delta;
                self.m_delta = m_delta;
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                self.write_t_dod(dod);
                let m_delta = m.wrapping_sub(self.m);
                self.write_m_dod(m_delta.wrapping_sub(self.m_delta));
                self.t_delta = t_delta;
                self.m_delta = m_delta;
            }
        }
        self.t = t;
        self.m = m;
        self.w.extra.num += 1;
        let [hi, lo] = self.w.extra.num.to_be_bytes();
        if let [h, l, ..] = self.w.bytes_mut() {
            *h = hi;
            *l = lo;
        }
    }

    fn write_t_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.w.write_bit(false);
            return;
        }
        for (i, &n) in T_BUCKETS.iter().enumerate() {
            if fits_signed(dod, n) {
                // i + 1 one-bits, then a zero.
                let ones = i as u8 + 1;
                self.w.write_bits(((1u64 << ones) - 1) << 1, ones + 1);
                self.w.write_bits(dod as u64, n);
                return;
            }
        }
        self.w.write_bits(0b11111, 5);
        self.w.write_bits(dod as u64, 64);
    }

    fn write_m_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.w.write_bit(false);
            return;
        }
        let z = zigzag(dod);
        let n = width(z);
        // Reuse the last width when the value fits it and that costs no more than a new width.
        if self.w.extra.m_width >= n && self.w.extra.m_width - n <= 6 {
            self.w.write_bits(0b10, 2);
            self.w.write_bits(z, self.w.extra.m_width);
            return;
        }
        self.w.extra.m_width = n;
        self.w.write_bits(0b11, 2);
        self.w.write_bits(u64::from(n - 1), 6);
        self.w.write_bits(z, n);
    }
}

/// Decodes a decimal chunk. Stops at `limit` samples (or the header's count) and records an
/// error when the bytes end early or are malformed.
#[derive(Debug, Clone)]
pub struct DecIter<'a> {
    r: BitReader<'a>,
    remaining: usize,
    read: usize,
    k: u8,
    t: i64,
    t_delta: u64,
    m: i64,
    m_delta: i64,
    m_width: u8,
    corrupt: bool,
}

impl<'a> DecIter<'a> {
    /// Iterates over all samples of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self::with_limit(bytes, usize::MAX)
    }

    /// Iterates over at most `limit` samples of `bytes`.
    pub fn with_limit(bytes: &'a [u8], limit: usize) -> Self {
        let n = super::xor::num_samples(bytes).min(limit);
        let (k, stream, corrupt) = match bytes {
            [_, _, k, rest @ ..] => (*k, rest, *k > MAX_K),
            _ => (0, &[][..], true),
        };
        DecIter {
            r: BitReader::new(stream),
            remaining: n,
            read: 0,
            k,
            t: 0,
            t_delta: 0,
            m: 0,
            m_delta: 0,
            m_width: 0,
            corrupt,
        }
    }

    /// Whether decoding stopped because the bytes were malformed.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    fn decode(&mut self) -> Option<Sample> {
        match self.read {
            0 => {
                self.t = self.r.read_varint()?;
                self.m = read_len(&mut self.r)?;
            }
            1 => {
                self.t_delta = self.r.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.m_delta = read_len(&mut self.r)?;
                self.m = self.m.wrapping_add(self.m_delta);
            }
            _ => {
                let mut ones = 0usize;
                while ones < 5 && self.r.read_bit()? {
                    ones += 1;
                }
                let dod = match ones {
                    0 => 0,
                    5 => self.r.read_bits(64)? as i64,
                    _ => {
                        let n = *T_BUCKETS.get(ones - 1)?;
                        let bits = self.r.read_bits(n)?;
                        // Sign-extend.
                        ((bits << (64 - n)) as i64) >> (64 - n)
                    }
                };
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                let m_dod = if !self.r.read_bit()? {
                    0
                } else {
                    if self.r.read_bit()? {
                        self.m_width = self.r.read_bits(6)? as u8 + 1;
                    } else if self.m_width == 0 {
                        return None;
                    }
                    unzigzag(self.r.read_bits(self.m_width)?)
                };
                self.m_delta = self.m_delta.wrapping_add(m_dod);
                self.m = self.m.wrapping_add(self.m_delta);
            }
        }
        self.read += 1;
        Some(Sample::new(self.t, unscaled(self.m, self.k)))
    }
}

impl Iterator for DecIter<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 || self.corrupt {
            return None;
        }
        match self.decode() {
            Some(s) => {
                self.remaining -= 1;
                Some(s)
            }
            None => {
                self.corrupt = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter() -> DecChunk {
        let mut c = DecChunk::with_capacity(16);
        for i in 0..120i64 {
            let v = (1_234_567_890 + i * 750_123) as f64 / 1e6;
            assert_eq!(c.append(1_700_000_000_000 + i * 15_000 + i % 3, v), DecAppend::Appended);
        }
        c
    }

    #[test]
    fn a_microsecond_counter_stays_decimal_and_small() {
        let c = counter();
        assert_eq!(c.k(), 6);
        // Gorilla XOR needs about 4 bytes per sample here.
        assert!(c.bytes().len() < 120 * 3, "{} bytes", c.bytes().len());
    }

    #[test]
    fn more_decimals_rescale_the_chunk() {
        let vs = [1.0, 1.5, 1.25, 0.001, 12_345.678_901, 3.0, -2.5];
        let mut c = DecChunk::with_capacity(16);
        for (i, &v) in vs.iter().enumerate() {
            assert_eq!(c.append(i as i64 * 1000, v), DecAppend::Appended, "{v}");
        }
        assert_eq!(c.k(), 6);
        let back: Vec<f64> = DecIter::new(c.bytes()).map(|s| s.v).collect();
        assert_eq!(back, vs);
        // 10^15 at six decimals is past 2^53: refused, chunk unchanged.
        assert_eq!(c.append(10_000, 1e15 + 0.5), DecAppend::Unfit);
        assert_eq!(DecIter::new(c.bytes()).count(), vs.len());
    }

    #[test]
    fn values_that_are_no_decimal_are_refused_and_change_nothing() {
        for v in [
            f64::NAN,
            f64::from_bits(crate::model::STALE_NAN_BITS),
            -0.0,
            f64::INFINITY,
            0.1 + 0.2,
            2f64.powi(60),
        ] {
            let mut c = counter();
            let before = c.bytes().to_vec();
            assert_eq!(c.append(1_800_000_000_000, v), DecAppend::Unfit, "{v:?}");
            assert_eq!(c.bytes(), before.as_slice());
        }
    }

    #[test]
    fn truncated_chunk_is_reported_not_panicked() {
        let c = counter();
        let b = c.bytes();
        for cut in 0..b.len() {
            let mut it = DecIter::new(b.get(..cut).unwrap_or_default());
            assert!(it.by_ref().count() < 120);
            assert!(it.is_corrupt());
        }
    }

    proptest! {
        /// Garbage never panics the decoder.
        #[test]
        fn arbitrary_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let n = DecIter::new(&bytes).count();
            prop_assert!(n <= usize::from(u16::MAX));
        }
    }
}
