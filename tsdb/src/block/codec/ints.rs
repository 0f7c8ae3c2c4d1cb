//! Integer sequences: a transform (plain, delta or delta-of-delta, whichever is smallest), a
//! common divisor, then patched frame-of-reference bit packing in blocks of 128. See
//! `docs/format/chunks.md`, "Integer sequences".

use super::CodecError;
use super::bitpack::{bit_len, pack, packed_len, unpack};
use super::buf::{Dec, put_uvarint, put_varint, uvarint_len, varint_len};

/// Items per bit-packed block.
pub const BLOCK: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Plain = 0,
    Delta = 1,
    DeltaOfDelta = 2,
}

/// The transformed items of `vals` (wrapping arithmetic, so any `i64`s work).
fn transform(vals: &[i64], t: Transform) -> Vec<i64> {
    match t {
        Transform::Plain => vals.to_vec(),
        Transform::Delta => {
            vals.windows(2).map(|w| w.get(1).unwrap_or(&0).wrapping_sub(*w.first().unwrap_or(&0))).collect()
        }
        Transform::DeltaOfDelta => {
            let d = transform(vals, Transform::Delta);
            transform(&d, Transform::Delta)
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn items_gcd(items: &[i64]) -> u64 {
    let g = items.iter().fold(0u64, |g, &v| gcd(g, v.unsigned_abs()));
    g.max(1)
}

/// Divides by the gcd. `i64::MIN` has no positive counterpart, so a gcd of 2^63 is treated as 1.
fn divided(items: &[i64], g: u64) -> Option<Vec<i64>> {
    let g = i64::try_from(g).ok()?;
    Some(items.iter().map(|v| v / g).collect())
}

/// The width byte that marks a radix block (a plain block's width is at most 64).
pub const RADIX_MARK: u8 = 0xff;

/// Largest radix of a radix block; above it a fraction of a bit per item is not worth a division.
pub const MAX_RADIX: u64 = 1 << 40;

/// How one block of items is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// Every `item - min` in `width` bits.
    Width(u32),
    /// Items `item - min` below `radix` as digits of base-`radix` numbers, `group` digits per
    /// number, each number in just the bits it needs: `log2(radix)` bits per item, not
    /// `ceil(log2(radix))`.
    Radix(u64),
}

/// Digits per group of a radix block: the most whose largest number fits in a `u128`.
fn radix_group(radix: u64) -> usize {
    let r = u128::from(radix.max(2));
    let mut p = r;
    let mut g = 1;
    while let Some(next) = p.checked_mul(r) {
        p = next;
        g += 1;
    }
    g
}

/// Bits of a group of `len` digits in base `radix`: the bit length of `radix^len - 1`.
fn radix_group_bits(radix: u64, len: usize) -> u32 {
    let r = u128::from(radix);
    let mut p: u128 = 1;
    for _ in 0..len {
        p = p.saturating_mul(r);
    }
    128 - (p - 1).leading_zeros()
}

/// Bytes that `n` items take packed in base `radix`.
fn radix_len(n: usize, radix: u64) -> usize {
    let g = radix_group(radix);
    let full = n / g;
    let rest = n % g;
    let mut bits = full * radix_group_bits(radix, g) as usize;
    if rest > 0 {
        bits += radix_group_bits(radix, rest) as usize;
    }
    bits.div_ceil(8)
}

fn exception_cost(d: u64) -> usize {
    1 + uvarint_len(d)
}

/// Size, packing and min of the smallest encoding of one block.
fn block_plan(items: &[i64]) -> (usize, Packing, i64) {
    let min = items.iter().copied().min().unwrap_or(0);
    // Histogram of bit lengths of (item - min).
    let mut hist = [0usize; 65];
    for &v in items {
        let d = v.wrapping_sub(min) as u64;
        if let Some(h) = hist.get_mut(bit_len(d) as usize) {
            *h += 1;
        }
    }
    let header = 1 + varint_len(min);
    let mut best = (usize::MAX, Packing::Width(64));
    // Exceptions above width w: count and cost, accumulated from the top bucket down.
    let mut exc_count = 0usize;
    let mut exc_cost = 0usize;
    for w in (0..=64u32).rev() {
        let size = header + uvarint_len(exc_count as u64) + exc_cost + packed_len(items.len(), w);
        if size <= best.0 {
            best = (size, Packing::Width(w));
        }
        let c = hist.get(w as usize).copied().unwrap_or(0);
        exc_count += c;
        exc_cost += c * (1 + (w as usize).div_ceil(7).max(1));
    }
    // Radix packing: the radix is one more than the largest item kept, the items above it being
    // exceptions. Try every cut from none to a quarter of the block.
    let mut d: Vec<u64> = items.iter().map(|v| v.wrapping_sub(min) as u64).collect();
    d.sort_unstable();
    let mut exc_cost = 0usize;
    for k in 0..=items.len() / 4 {
        let Some(&top) = d.len().checked_sub(k + 1).and_then(|i| d.get(i)) else { break };
        // A cut inside a run of equal items is not a cut: they would not be exceptions.
        let cut = k == 0 || d.get(d.len() - k).is_some_and(|&above| above > top);
        let radix = top.saturating_add(1);
        if cut && (3..=MAX_RADIX).contains(&radix) && !radix.is_power_of_two() {
            let size = header
                + uvarint_len(radix)
                + uvarint_len(k as u64)
                + exc_cost
                + radix_len(items.len(), radix);
            if size < best.0 {
                best = (size, Packing::Radix(radix));
            }
        }
        exc_cost += exception_cost(top);
    }
    (best.0, best.1, min)
}

fn encode_block(out: &mut Vec<u8>, items: &[i64]) {
    let (_, packing, min) = block_plan(items);
    let limit = match packing {
        Packing::Width(w) => {
            out.push(w as u8);
            if w >= 64 { u64::MAX } else { (1u64 << w) - 1 }
        }
        Packing::Radix(r) => {
            out.push(RADIX_MARK);
            put_uvarint(out, r);
            r - 1
        }
    };
    put_varint(out, min);
    let exc: Vec<(usize, u64)> = items
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.wrapping_sub(min) as u64))
        .filter(|&(_, d)| d > limit)
        .collect();
    put_uvarint(out, exc.len() as u64);
    for &(i, d) in &exc {
        out.push(i as u8);
        put_uvarint(out, d);
    }
    let kept = items.iter().map(|v| v.wrapping_sub(min) as u64).map(|d| if d > limit { 0 } else { d });
    match packing {
        Packing::Width(w) => pack(out, kept, w),
        Packing::Radix(r) => {
            let g = radix_group(r);
            let kept: Vec<u64> = kept.collect();
            let mut bits = BitWriter::new(out);
            for group in kept.chunks(g) {
                let mut v: u128 = 0;
                for &digit in group.iter().rev() {
                    v = v * u128::from(r) + u128::from(digit);
                }
                bits.put128(v, radix_group_bits(r, group.len()));
            }
            bits.finish();
        }
    }
}

/// Appends bits LSB first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, bits: 0 }
    }
    fn put64(&mut self, v: u64, width: u32) {
        let v = if width >= 64 { v } else { v & ((1u64 << width) - 1) };
        self.acc |= u128::from(v) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    fn put128(&mut self, v: u128, width: u32) {
        self.put64(v as u64, width.min(64));
        if width > 64 {
            self.put64((v >> 64) as u64, width - 64);
        }
    }
    fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Reads bits LSB first.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    bits: u32,
}

impl<'a> BitReader<'a> {
    fn get64(&mut self, width: u32) -> Result<u64, CodecError> {
        while self.bits < width {
            let b = *self.data.get(self.pos).ok_or(CodecError::Truncated)?;
            self.pos += 1;
            self.acc |= u128::from(b) << self.bits;
            self.bits += 8;
        }
        let v = if width >= 64 { self.acc as u64 } else { (self.acc as u64) & ((1u64 << width) - 1) };
        self.acc >>= width;
        self.bits -= width;
        Ok(v)
    }
    fn get128(&mut self, width: u32) -> Result<u128, CodecError> {
        let lo = self.get64(width.min(64))?;
        let hi = if width > 64 { self.get64(width - 64)? } else { 0 };
        Ok(u128::from(lo) | u128::from(hi) << 64)
    }
}

/// Unpacks `n` base-`radix` digits from the start of `data`; returns the bytes used.
fn radix_unpack(data: &[u8], n: usize, radix: u64, out: &mut Vec<u64>) -> Result<usize, CodecError> {
    let g = radix_group(radix);
    let r = u128::from(radix);
    let mut rd = BitReader { data, pos: 0, acc: 0, bits: 0 };
    let mut left = n;
    while left > 0 {
        let len = left.min(g);
        let mut v = rd.get128(radix_group_bits(radix, len))?;
        for _ in 0..len {
            out.push((v % r) as u64);
            v /= r;
        }
        if v != 0 {
            return Err(CodecError::Invalid("radix group above its digits"));
        }
        left -= len;
    }
    Ok(rd.pos)
}

fn body_size(items: &[i64]) -> usize {
    items.chunks(BLOCK).map(|b| block_plan(b).0).sum()
}

/// The transform, gcd and size of the cheapest encoding of `vals`.
fn plan(vals: &[i64]) -> (Transform, u64, usize) {
    let mut best: Option<(Transform, u64, usize)> = None;
    for t in [Transform::Plain, Transform::Delta, Transform::DeltaOfDelta] {
        let header = 1 + match t {
            Transform::Plain => 0,
            Transform::Delta => vals.first().map_or(0, |&v| varint_len(v)),
            Transform::DeltaOfDelta => {
                vals.first().map_or(0, |&v| varint_len(v))
                    + vals.get(1).zip(vals.first()).map_or(0, |(b, a)| varint_len(b.wrapping_sub(*a)))
            }
        };
        let needed = match t {
            Transform::Plain => 0,
            Transform::Delta => 1,
            Transform::DeltaOfDelta => 2,
        };
        if vals.len() < needed {
            continue;
        }
        let items = transform(vals, t);
        let mut g = items_gcd(&items);
        let items = match divided(&items, g) {
            Some(d) => d,
            None => {
                g = 1;
                items
            }
        };
        let size = header + uvarint_len(g) + body_size(&items);
        if best.is_none_or(|b| size < b.2) {
            best = Some((t, g, size));
        }
    }
    best.unwrap_or((Transform::Plain, 1, 2))
}

/// Exact encoded size of `vals` (what [`encode`] appends).
pub fn estimate(vals: &[i64]) -> usize {
    plan(vals).2
}

/// Appends the encoding of `vals`. The decoder must be told `vals.len()`.
pub fn encode(out: &mut Vec<u8>, vals: &[i64]) {
    let (t, g, _) = plan(vals);
    out.push(t as u8);
    if t != Transform::Plain {
        put_varint(out, vals.first().copied().unwrap_or(0));
    }
    if t == Transform::DeltaOfDelta {
        let d = vals.get(1).zip(vals.first()).map_or(0, |(b, a)| b.wrapping_sub(*a));
        put_varint(out, d);
    }
    put_uvarint(out, g);
    let items = transform(vals, t);
    let items = if g > 1 { divided(&items, g).unwrap_or(items) } else { items };
    for b in items.chunks(BLOCK) {
        encode_block(out, b);
    }
}

/// Decodes `n` integers.
pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<i64>, CodecError> {
    let t = match d.u8()? {
        0 => Transform::Plain,
        1 => Transform::Delta,
        2 => Transform::DeltaOfDelta,
        _ => return Err(CodecError::Invalid("integer transform")),
    };
    let (first, first_delta) = match t {
        Transform::Plain => (None, None),
        Transform::Delta => (Some(d.varint()?), None),
        Transform::DeltaOfDelta => (Some(d.varint()?), Some(d.varint()?)),
    };
    let needed = match t {
        Transform::Plain => 0,
        Transform::Delta => 1,
        Transform::DeltaOfDelta => 2,
    };
    if n < needed {
        return Err(CodecError::Invalid("integer transform longer than the sequence"));
    }
    let g = d.uvarint()?;
    let g = i64::try_from(g).ok().filter(|&g| g >= 1).ok_or(CodecError::Invalid("integer gcd"))?;
    let k = n - needed;
    let mut items = Vec::with_capacity(k);
    let mut raw = Vec::with_capacity(BLOCK);
    while items.len() < k {
        let count = (k - items.len()).min(BLOCK);
        let packing = match d.u8()? {
            RADIX_MARK => {
                let r = d.uvarint()?;
                if !(3..=MAX_RADIX).contains(&r) {
                    return Err(CodecError::Invalid("radix"));
                }
                Packing::Radix(r)
            }
            w if w <= 64 => Packing::Width(u32::from(w)),
            _ => return Err(CodecError::Invalid("bit width above 64")),
        };
        let min = d.varint()?;
        let exc_n = d.len(count, "exception count")?;
        let mut exc = Vec::with_capacity(exc_n);
        for _ in 0..exc_n {
            let i = usize::from(d.u8()?);
            if i >= count {
                return Err(CodecError::Invalid("exception index"));
            }
            exc.push((i, d.uvarint()?));
        }
        raw.clear();
        let used = match packing {
            Packing::Width(w) => unpack(d.rest(), count, w, &mut raw)?,
            Packing::Radix(r) => radix_unpack(d.rest(), count, r, &mut raw)?,
        };
        d.bytes(used)?;
        for (i, v) in exc {
            if let Some(slot) = raw.get_mut(i) {
                *slot = v;
            }
        }
        items.extend(raw.iter().map(|&r| min.wrapping_add(r as i64).wrapping_mul(g)));
    }
    let mut out = Vec::with_capacity(n);
    match t {
        Transform::Plain => out = items,
        Transform::Delta => {
            let mut v = first.unwrap_or(0);
            out.push(v);
            for dv in items {
                v = v.wrapping_add(dv);
                out.push(v);
            }
        }
        Transform::DeltaOfDelta => {
            let mut v = first.unwrap_or(0);
            let mut delta = first_delta.unwrap_or(0);
            out.push(v);
            v = v.wrapping_add(delta);
            out.push(v);
            for dd in items {
                delta = delta.wrapping_add(dd);
                v = v.wrapping_add(delta);
                out.push(v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(vals: &[i64]) {
        let mut out = Vec::new();
        encode(&mut out, vals);
        assert_eq!(out.len(), estimate(vals), "estimate is exact");
        let mut d = Dec::new(&out);
        assert_eq!(decode(&mut d, vals.len()).unwrap(), vals);
        assert_eq!(d.remaining(), 0);
    }

    proptest! {
        #[test]
        fn any_integers_round_trip(vals in proptest::collection::vec(any::<i64>(), 0..400)) {
            round_trip(&vals);
        }

        #[test]
        fn counters_round_trip(start in any::<i64>(), steps in proptest::collection::vec(0i64..5_000_000, 0..700)) {
            let mut v = start;
            let vals: Vec<i64> = steps.iter().map(|s| { v = v.wrapping_add(*s); v }).collect();
            round_trip(&vals);
        }
    }

    proptest! {
        #[test]
        fn small_ranges_round_trip_in_radix_blocks(
            radix in 3u64..300,
            base in any::<i64>(),
            raw in proptest::collection::vec(any::<u64>(), 0..600),
            outliers in proptest::collection::vec((0usize..600, any::<i64>()), 0..20),
        ) {
            let mut vals: Vec<i64> = raw.iter().map(|r| base.wrapping_add((r % radix) as i64)).collect();
            for (i, v) in outliers {
                if let Some(slot) = vals.get_mut(i) {
                    *slot = v;
                }
            }
            round_trip(&vals);
        }

        #[test]
        fn wide_radices_round_trip(raw in proptest::collection::vec(0u64..(MAX_RADIX + 5), 0..300)) {
            let vals: Vec<i64> = raw.iter().map(|&r| r as i64).collect();
            round_trip(&vals);
        }
    }

    #[test]
    fn a_radix_block_takes_log2_of_the_radix_bits_per_item() {
        // Digits 0..=4: 2.32 bits each in base 5, not the 3 bits of plain packing.
        let vals: Vec<i64> = (0..128u64).map(|i| ((i * 7919 + i * i) % 5) as i64).collect();
        let mut out = Vec::new();
        encode(&mut out, &vals);
        assert_eq!(out.get(2), Some(&RADIX_MARK), "{out:?}");
        assert!(out.len() <= 8 + (128 * 233usize).div_ceil(800), "{} bytes", out.len());
        round_trip(&vals);
    }

    #[test]
    fn radix_groups_fit_in_128_bits() {
        for r in [3, 5, 1000, 1 << 20, MAX_RADIX] {
            let g = radix_group(r);
            assert!(radix_group_bits(r, g) <= 128, "{r}");
            assert!(u128::from(r).checked_pow(g as u32).is_some(), "{r}");
            assert!(u128::from(r).checked_pow(g as u32 + 1).is_none(), "{r}");
        }
    }

    #[test]
    fn a_radix_group_above_its_digits_is_an_error() {
        // Base 3, one digit: 2 bits can say 3, which no digit is.
        let mut bytes = vec![0u8, 1, RADIX_MARK, 3, 0, 0, 0b11];
        let mut d = Dec::new(&bytes);
        assert!(decode(&mut d, 1).is_err());
        bytes[6] = 0b10;
        let mut d = Dec::new(&bytes);
        assert_eq!(decode(&mut d, 1).unwrap(), vec![2]);
    }

    #[test]
    fn extremes_round_trip() {
        round_trip(&[i64::MIN, i64::MAX, 0, i64::MIN, -1, 1, i64::MAX]);
        round_trip(&[i64::MIN, i64::MIN]);
        round_trip(&[0; 300]);
        round_trip(&[7]);
        round_trip(&[]);
    }

    #[test]
    fn a_rarely_moving_counter_costs_a_few_bytes_per_block() {
        let vals: Vec<i64> = (0..480).map(|i| 1000 + i / 200).collect();
        assert!(estimate(&vals) < 40, "{}", estimate(&vals));
    }

    #[test]
    fn page_multiples_are_divided_by_their_gcd() {
        let vals: Vec<i64> = (0..480).map(|i| 4096 * (100_000 + (i * 7919) % 13)).collect();
        // 13 distinct page counts: 4 bits each, not 16.
        assert!(estimate(&vals) < 480 * 5 / 8 + 40, "{}", estimate(&vals));
    }
}
