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

/// Size and best width of one patched frame-of-reference block.
fn block_plan(items: &[i64]) -> (usize, u32, i64) {
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
    let mut best = (usize::MAX, 64u32);
    // Exceptions above width w: count and cost, accumulated from the top bucket down.
    let mut exc_count = 0usize;
    let mut exc_cost = 0usize;
    for w in (0..=64u32).rev() {
        let size = header + uvarint_len(exc_count as u64) + exc_cost + packed_len(items.len(), w);
        if size <= best.0 {
            best = (size, w);
        }
        let c = hist.get(w as usize).copied().unwrap_or(0);
        exc_count += c;
        exc_cost += c * (1 + (w as usize).div_ceil(7).max(1));
    }
    (best.0, best.1, min)
}

fn encode_block(out: &mut Vec<u8>, items: &[i64]) {
    let (_, w, min) = block_plan(items);
    out.push(w as u8);
    put_varint(out, min);
    let limit = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
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
    pack(out, items.iter().map(|v| v.wrapping_sub(min) as u64).map(|d| if d > limit { 0 } else { d }), w);
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
        let w = u32::from(d.u8()?);
        if w > 64 {
            return Err(CodecError::Invalid("bit width above 64"));
        }
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
        let used = unpack(d.rest(), count, w, &mut raw)?;
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
