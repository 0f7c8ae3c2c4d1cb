//! The Gorilla ("XOR") chunk codec of the head, byte-compatible with Prometheus'
//! `chunkenc.XORChunk`: a 2-byte big-endian sample count, then a bit stream with the first
//! timestamp as a varint, the first value as 64 raw bits, the second timestamp as a uvarint delta,
//! later timestamps as delta-of-delta in buckets of 14/17/20/64 bits, and every value XORed with
//! its predecessor. Layout: `../../docs/format/chunks.md` (Prometheus' `docs/format/chunks.md`).
//!
//! Timestamps must strictly increase within a chunk; arithmetic wraps, so any `i64` round-trips.

use super::bits::{BitReader, BitWriter, write_uvarint, write_varint};
use crate::model::Sample;

/// The largest number of samples one chunk can count (the header is a `u16`).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// An XOR chunk being appended to in place.
#[derive(Debug, Clone)]
pub struct XorChunk {
    w: BitWriter<XorState>,
    t: i64,
    t_delta: u64,
    v_bits: u64,
}

/// The small part of an [`XorChunk`]'s state, kept in its writer's padding (so that the chunk
/// is smaller than a decimal chunk and the head's chunk enum needs no tag word).
#[derive(Debug, Clone, Copy, Default)]
struct XorState {
    num: u16,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::with_capacity(32)
    }

    /// An empty chunk with room for `capacity` bytes (e.g. the size of the series' previous
    /// chunk) before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut w = BitWriter::with_prefix_capacity(&[0, 0], capacity);
        w.extra = XorState { num: 0, leading: 0xff, trailing: 0 };
        XorChunk { w, t: 0, t_delta: 0, v_bits: 0 }
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
        self.v_bits
    }

    /// Appends a sample. Returns `false` (and appends nothing) when the chunk is full; the caller
    /// guarantees that `t` is greater than the last timestamp.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        if usize::from(self.w.extra.num) >= MAX_SAMPLES {
            return false;
        }
        let v_bits = v.to_bits();
        match self.w.extra.num {
            0 => {
                write_varint(&mut self.w, t);
                self.w.write_bits(v_bits, 64);
            }
            1 => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                write_uvarint(&mut self.w, t_delta);
                self.write_value(v_bits);
                self.t_delta = t_delta;
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64, 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(v_bits);
                self.t_delta = t_delta;
            }
        }
        self.t = t;
        self.v_bits = v_bits;
        self.w.extra.num += 1;
        let [hi, lo] = self.w.extra.num.to_be_bytes();
        if let [h, l, ..] = self.w.bytes_mut() {
            *h = hi;
            *l = lo;
        }
        true
    }

    fn write_value(&mut self, v_bits: u64) {
        let delta = v_bits ^ self.v_bits;
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        // Clamped so that it fits the 5-bit field.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.w.extra.leading != 0xff
            && leading >= self.w.extra.leading
            && trailing >= self.w.extra.trailing
        {
            self.w.write_bit(false);
            self.w.write_bits(
                delta >> self.w.extra.trailing,
                64 - self.w.extra.leading - self.w.extra.trailing,
            );
            return;
        }
        self.w.extra.leading = leading;
        self.w.extra.trailing = trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), 5);
        // 64 significant bits do not fit in 6 bits; they are written as 0 (0 never occurs,
        // since a zero delta takes the branch above).
        let sig = 64 - leading - trailing;
        self.w.write_bits(u64::from(sig), 6);
        self.w.write_bits(delta >> trailing, sig);
    }

    /// Gives back spare capacity (when the chunk is closed).
    pub fn shrink(&mut self) {
        self.w.shrink();
    }
}

/// Whether `x` fits the `nbits`-bit bucket, as Prometheus' `bitRange` decides.
fn bit_range(x: i64, nbits: u8) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// Number of samples in an encoded chunk, from its header.
pub fn num_samples(bytes: &[u8]) -> usize {
    match bytes {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => 0,
    }
}

/// Decodes an XOR chunk. Stops at `limit` samples (or the header's count) and records an error
/// when the bytes end early or are malformed.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    remaining: usize,
    read: usize,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u8,
    trailing: u8,
    corrupt: bool,
}

impl<'a> XorIter<'a> {
    /// Iterates over all samples of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self::with_limit(bytes, usize::MAX)
    }

    /// Iterates over at most `limit` samples of `bytes`.
    pub fn with_limit(bytes: &'a [u8], limit: usize) -> Self {
        let n = num_samples(bytes).min(limit);
        let stream = bytes.get(2..).unwrap_or(&[]);
        let corrupt = bytes.len() < 2;
        XorIter {
            r: BitReader::new(stream),
            remaining: n,
            read: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0,
            trailing: 0,
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
                self.v_bits = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.r.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0u8;
                for _ in 0..4 {
                    prefix <<= 1;
                    if !self.r.read_bit()? {
                        break;
                    }
                    prefix |= 1;
                }
                let dod: i64 = match prefix {
                    0b0 => 0,
                    0b10 => read_signed(&mut self.r, 14)?,
                    0b110 => read_signed(&mut self.r, 17)?,
                    0b1110 => read_signed(&mut self.r, 20)?,
                    _ => self.r.read_bits(64)? as i64,
                };
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Some(Sample::new(self.t, f64::from_bits(self.v_bits)))
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.read_bit()? {
            return Some(());
        }
        if self.r.read_bit()? {
            self.leading = self.r.read_bits(5)? as u8;
            let mut sig = self.r.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.checked_sub(self.leading + sig)?;
        }
        let sig = 64u8.checked_sub(self.leading + self.trailing)?;
        let bits = self.r.read_bits(sig)?;
        self.v_bits ^= bits.checked_shl(u32::from(self.trailing)).unwrap_or(0);
        Some(())
    }
}

fn read_signed(r: &mut BitReader<'_>, n: u8) -> Option<i64> {
    let mut bits = r.read_bits(n)?;
    if bits > (1u64 << (n - 1)) {
        bits = bits.wrapping_sub(1u64 << n);
    }
    Some(bits as i64)
}

impl Iterator for XorIter<'_> {
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
    use crate::chunk::adaptive::{ChunkKind, HeadChunk, HeadChunkIter};
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    /// The one shared check every chunk codec goes through: encode (as XOR, and as the head's
    /// adaptive chunk, which must stay decimal when every value is one), decode twice (the second
    /// time with a fresh iterator), decode with a sample limit, and seek to every stored
    /// timestamp and to the points between them.
    pub(crate) fn check_codec(samples: &[Sample]) -> Result<(), TestCaseError> {
        let mut c = XorChunk::new();
        for s in samples {
            prop_assert!(c.append(s.t, s.v));
        }
        prop_assert_eq!(c.len(), samples.len());
        let decoded: Vec<Sample> = XorIter::new(c.bytes()).collect();
        prop_assert_eq!(&decoded, &samples.to_vec());
        check_bytes(ChunkKind::Xor, c.bytes(), samples)?;

        let mut h = HeadChunk::new();
        for s in samples {
            prop_assert!(h.append(s.t, s.v));
        }
        prop_assert_eq!(h.len(), samples.len());
        if let Some(last) = samples.last() {
            prop_assert_eq!(h.last_t(), last.t);
            prop_assert_eq!(h.last_v_bits(), last.v.to_bits());
        }
        if let Some(first) = samples.first() {
            prop_assert_eq!(h.first_t(), first.t);
        }
        let all_decimal = samples.iter().all(|s| {
            (0..=super::super::dec::MAX_K).any(|k| {
                let p = 10f64.powi(i32::from(k));
                let m = (s.v * p).round();
                m.abs() <= 9_007_199_254_740_992.0 && ((m as i64) as f64 / p).to_bits() == s.v.to_bits()
            })
        });
        // A chunk whose decimals need different exponents may still not fit one exponent
        // (an m beyond 2^53 after rescaling), so only the single-exponent case must stay decimal.
        if all_decimal && samples.iter().all(|s| s.v.fract() == 0.0 && s.v.abs() < 1e15) {
            prop_assert_eq!(h.kind(), ChunkKind::Dec);
        }
        check_bytes(h.kind(), h.bytes(), samples)?;
        Ok(())
    }

    fn check_bytes(kind: ChunkKind, bytes: &[u8], samples: &[Sample]) -> Result<(), TestCaseError> {
        prop_assert_eq!(num_samples(bytes), samples.len());
        let decoded: Vec<Sample> = HeadChunkIter::with_limit(kind, bytes, usize::MAX).collect();
        prop_assert_eq!(decoded.len(), samples.len());
        for (d, s) in decoded.iter().zip(samples) {
            // Bit-exact, NaN payloads included.
            prop_assert_eq!((d.t, d.v.to_bits()), (s.t, s.v.to_bits()));
        }
        let again: Vec<Sample> = HeadChunkIter::with_limit(kind, bytes, usize::MAX).collect();
        prop_assert_eq!(&again, &decoded);
        let half = samples.len() / 2;
        let mut limited = HeadChunkIter::with_limit(kind, bytes, half);
        let got: Vec<Sample> = limited.by_ref().collect();
        prop_assert_eq!(got.as_slice(), decoded.get(..half).unwrap_or(&[]));
        prop_assert!(!limited.is_corrupt());
        // Seek through the generic head iterator over this one chunk.
        let single = || crate::head::ChunkSampleIter::single_of(kind, bytes, i64::MIN, i64::MAX);
        for (i, s) in decoded.iter().enumerate() {
            let mut it = single();
            prop_assert_eq!(crate::querier::SampleIter::seek(&mut it, s.t), Some(*s));
            prop_assert_eq!(crate::querier::SampleIter::next(&mut it), decoded.get(i + 1).copied());
            if s.t > i64::MIN {
                let mut it = single();
                let want = decoded.iter().find(|x| x.t >= s.t - 1).copied();
                prop_assert_eq!(crate::querier::SampleIter::seek(&mut it, s.t - 1), want);
            }
        }
        if let Some(last) = samples.last()
            && last.t < i64::MAX
        {
            let mut it = single();
            prop_assert_eq!(crate::querier::SampleIter::seek(&mut it, last.t + 1), None);
        }
        Ok(())
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::from_bits(STALE_NAN_BITS)),
            Just(f64::NAN),
            // NaNs with arbitrary payloads and sign.
            any::<u64>().prop_map(|p| f64::from_bits(0x7ff0_0000_0000_0001 | (p & 0x800f_ffff_ffff_ffff))),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            (0i64..1_000_000).prop_map(|i| i as f64),
            (0i64..1000).prop_map(|i| i as f64 / 100.0),
        ]
    }

    /// Values as exporters print them: integers and short decimals of every exponent the decimal
    /// chunk takes, with the odd value that no decimal chunk holds.
    fn decimal_series() -> impl Strategy<Value = Vec<f64>> {
        let shape = prop_oneof![
            // A counter: start, steps, exponent.
            (0i64..1 << 40, 0i64..1 << 24, 0u8..=9).prop_map(|(start, step, k)| (start, step, k, false)),
            // A gauge around a value, any exponent, sometimes huge.
            (any::<i64>().prop_map(|m| m >> 8), 0i64..1000, 0u8..=17)
                .prop_map(|(start, step, k)| (start, step, k, true)),
        ];
        (shape, proptest::collection::vec((any::<u32>(), 0u8..40), 130), value()).prop_map(
            |((start, step, k, gauge), noise, odd)| {
                let p = 10f64.powi(i32::from(k));
                let mut m = start;
                noise
                    .iter()
                    .map(|&(r, pick)| {
                        let d = if step == 0 { 0 } else { i64::from(r) % step };
                        m = if gauge { start + d - step / 2 } else { m.saturating_add(d) };
                        match pick {
                            0 => odd,
                            1 => (m as f64 / p) * 1.000_000_1,
                            _ => m as f64 / p,
                        }
                    })
                    .collect()
            },
        )
    }

    fn timestamps() -> impl Strategy<Value = Vec<i64>> {
        prop_oneof![
            // Irregular, including negative and the extremes.
            proptest::collection::btree_set(
                prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -5000i64..5000],
                0..130
            )
            .prop_map(|s| s.into_iter().collect()),
            // Regular with jitter, as scrapes produce.
            (any::<i32>(), 1i64..60_000, 0..130usize, 0i64..50).prop_map(|(start, step, n, jitter)| {
                let mut t = i64::from(start);
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(t);
                    t += step + if i % 7 == 3 { jitter } else { 0 };
                }
                out
            }),
            // Increments of every size from 1 ms to 2^40 ms, so that every delta-of-delta bucket
            // of both codecs is used.
            (any::<i32>(), proptest::collection::vec((1u8..41, any::<u64>()), 0..130)).prop_map(
                |(start, steps)| {
                    let mut t = i64::from(start);
                    steps
                        .iter()
                        .map(|&(bits, r)| {
                            t += 1 + (r % (1u64 << bits)) as i64;
                            t
                        })
                        .collect()
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
        ))]
        #[test]
        fn xor_round_trips(ts in timestamps(), vs in proptest::collection::vec(value(), 130)) {
            let samples: Vec<Sample> = ts.iter().zip(vs.iter()).map(|(&t, &v)| Sample::new(t, v)).collect();
            check_codec(&samples)?;
        }

        #[test]
        fn decimal_values_round_trip(ts in timestamps(), vs in decimal_series()) {
            let samples: Vec<Sample> = ts.iter().zip(vs.iter()).map(|(&t, &v)| Sample::new(t, v)).collect();
            check_codec(&samples)?;
        }
    }

    #[test]
    fn edge_cases_round_trip() {
        let cases: Vec<Vec<Sample>> = vec![
            vec![],
            vec![Sample::new(0, 0.0)],
            vec![Sample::new(i64::MIN, -0.0), Sample::new(i64::MAX, f64::from_bits(STALE_NAN_BITS))],
            vec![Sample::new(i64::MIN, 1.0), Sample::new(0, 1.0), Sample::new(i64::MAX, 1.0)],
            (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, i as f64)).collect(),
            // Decimal, then a value that forces the XOR re-encoding: the staleness marker, -0.0,
            // NaN with a payload, ±Inf, an integer past 2^53, a full-precision float.
            [
                f64::from_bits(STALE_NAN_BITS),
                -0.0,
                f64::from_bits(0x7ff8_dead_beef_0001),
                f64::INFINITY,
                f64::NEG_INFINITY,
                9_007_199_254_740_993.0,
                0.1 + 0.2,
            ]
            .iter()
            .flat_map(|&odd| {
                (0..10).map(move |i| Sample::new(i * 15_000, if i == 7 { odd } else { i as f64 * 0.25 }))
            })
            .enumerate()
            .map(|(i, s)| Sample::new(i as i64 * 15_000 + (i as i64 % 3), s.v))
            .collect(),
            // Exponents that grow inside the chunk (rescaling): 1, 1.5, 1.25, 0.001, µs.
            [1.0, 1.5, 1.25, 0.001, 12_345.678_901, 3.0, 1e15, 0.5]
                .iter()
                .enumerate()
                .map(|(i, &v)| Sample::new(i as i64 * 1000, v))
                .collect(),
            // A µs CPU counter exposed as float seconds, and page-multiple gauges.
            (0..120).map(|i| Sample::new(i * 15_000, (1_234_567_890 + i * 750_123) as f64 / 1e6)).collect(),
            (0..120).map(|i| Sample::new(i * 15_000, ((1000 + (i % 7) * 3) * 4096) as f64)).collect(),
        ];
        for c in cases {
            check_codec(&c).unwrap();
        }
    }

    #[test]
    fn prometheus_reference_bytes() {
        // Prometheus `XORChunk` for (1000, 1.0), (2000, 1.0), (3000, 2.0) — computed by hand from
        // chunkenc/xor.go: header 00 03; varint(1000) (zig-zag 2000) = d0 0f; 64 bits of 1.0 = 3f f0 00…;
        // uvarint(1000) = e8 07; value unchanged bit 0; dod 0 bit 0; value 2.0 xor 1.0.
        let mut c = XorChunk::new();
        c.append(1000, 1.0);
        c.append(2000, 1.0);
        c.append(3000, 2.0);
        let b = c.bytes();
        assert_eq!(&b[..4], &[0x00, 0x03, 0xd0, 0x0f]);
        assert_eq!(XorIter::new(b).collect::<Vec<_>>().len(), 3);
    }

    #[test]
    fn truncated_chunk_is_reported_not_panicked() {
        let mut c = XorChunk::new();
        for i in 0..50 {
            c.append(i * 1000, i as f64 * 1.5);
        }
        let b = c.bytes();
        for cut in 0..b.len() {
            let mut it = XorIter::new(&b[..cut]);
            let n = it.by_ref().count();
            assert!(n < 50);
            assert!(it.is_corrupt());
        }
    }
}
