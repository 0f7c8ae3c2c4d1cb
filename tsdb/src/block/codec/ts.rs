//! Timestamp codecs: `delta` (any timestamps) and `grid` (scrape timestamps). See
//! `docs/format/chunks.md`, "Timestamp codecs".

use super::CodecError;
use super::bitpack::{pack, packed_len, unpack};
use super::buf::{Dec, put_uvarint, put_varint, unzigzag, uvarint_len, varint_len, zigzag};

/// `delta`: the first timestamp, then delta-of-deltas.
pub mod delta {
    use super::*;

    fn items(ts: &[i64]) -> impl Iterator<Item = i64> + '_ {
        let mut prev_t = 0i64;
        let mut prev_d = 0i64;
        ts.iter().enumerate().map(move |(i, &t)| {
            let out = match i {
                0 => t,
                1 => t.wrapping_sub(prev_t),
                _ => t.wrapping_sub(prev_t).wrapping_sub(prev_d),
            };
            if i > 0 {
                prev_d = t.wrapping_sub(prev_t);
            }
            prev_t = t;
            out
        })
    }

    /// Exact encoded size.
    pub fn estimate(ts: &[i64]) -> usize {
        items(ts).map(varint_len).sum()
    }

    /// Appends the encoding.
    pub fn encode(out: &mut Vec<u8>, ts: &[i64]) {
        for v in items(ts) {
            put_varint(out, v);
        }
    }

    /// Decodes `n` timestamps.
    pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<i64>, CodecError> {
        let mut out = Vec::with_capacity(n);
        let mut t = 0i64;
        let mut delta = 0i64;
        for i in 0..n {
            let v = d.varint()?;
            match i {
                0 => t = v,
                1 => {
                    delta = v;
                    t = t.wrapping_add(delta);
                }
                _ => {
                    delta = delta.wrapping_add(v);
                    t = t.wrapping_add(delta);
                }
            }
            out.push(t);
        }
        Ok(out)
    }
}

/// `grid`: `base + i·interval` plus packed deviations, with anchors where the grid breaks.
pub mod grid {
    use super::*;

    /// Widths tried for the deviations; wider deviations become anchors.
    const MAX_WIDTH: u32 = 20;

    /// A grid encoding of a timestamp run.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Plan {
        base: i64,
        interval: i64,
        width: u32,
        /// `(index, absolute base)` of every anchor after the implicit one at 0.
        anchors: Vec<(usize, i64)>,
        devs: Vec<u64>,
        size: usize,
    }

    fn median(mut v: Vec<i64>) -> Option<i64> {
        if v.is_empty() {
            return None;
        }
        let mid = v.len() / 2;
        let (_, m, _) = v.select_nth_unstable(mid);
        Some(*m)
    }

    /// The best grid encoding of `ts`, or `None` if the timestamps are not a grid at all
    /// (fewer than two, or not increasing).
    pub fn plan(ts: &[i64]) -> Option<Plan> {
        if ts.len() < 2 {
            return None;
        }
        let deltas: Vec<i64> = ts
            .windows(2)
            .map(|w| match w {
                [a, b] => b.wrapping_sub(*a),
                _ => 0,
            })
            .collect();
        if deltas.iter().any(|&d| d <= 0) {
            return None;
        }
        let median_delta = median(deltas.clone())?;
        // Segments: a new one wherever the grid breaks (a missed scrape, a restart).
        let mut seg_starts = vec![0usize];
        for (i, d) in deltas.iter().enumerate() {
            if (d - median_delta).abs() > median_delta / 2 {
                seg_starts.push(i + 1);
            }
        }
        // Candidate intervals: the median delta is thrown off by jitter; the mean slope over
        // the segments is not, and a scrape interval is usually a round number of seconds.
        let mut span = 0i64;
        let mut steps = 0i64;
        for (k, &a) in seg_starts.iter().enumerate() {
            let end = seg_starts.get(k + 1).copied().unwrap_or(ts.len());
            if let (Some(ta), Some(tb)) = (ts.get(a), ts.get(end - 1)) {
                span = span.saturating_add(tb.wrapping_sub(*ta));
                steps += (end - 1 - a) as i64;
            }
        }
        let mut candidates = vec![median_delta];
        if steps > 0 {
            let slope = (span as f64 / steps as f64).round() as i64;
            candidates.push(slope);
            // Saturating: a slope near i64::MAX (timestamps at the extremes) must not overflow.
            let round_s = ((slope as f64 / 1000.0).round() as i64).saturating_mul(1000);
            if round_s > 0 && round_s.abs_diff(slope).saturating_mul(200) <= round_s.unsigned_abs() {
                candidates.push(round_s);
            }
        }
        candidates.retain(|&c| c > 0);
        candidates.sort_unstable();
        candidates.dedup();
        let mut best: Option<Plan> = None;
        for interval in candidates {
            // Per segment, the base that centres its deviations.
            let mut seg_bases = Vec::with_capacity(seg_starts.len());
            for (k, &a) in seg_starts.iter().enumerate() {
                let end = seg_starts.get(k + 1).copied().unwrap_or(ts.len());
                let ta = *ts.get(a)?;
                let raw: Vec<i64> = (a..end)
                    .map(|i| {
                        ts.get(i).map_or(0, |t| {
                            t.wrapping_sub(ta.wrapping_add(((i - a) as i64).wrapping_mul(interval)))
                        })
                    })
                    .collect();
                seg_bases.push(ta.wrapping_add(median(raw).unwrap_or(0)));
            }
            for width in 0..=MAX_WIDTH {
                let p = plan_with_width(ts, interval, width, &seg_starts, &seg_bases);
                if best.as_ref().is_none_or(|b| p.size < b.size) {
                    best = Some(p);
                }
            }
        }
        best
    }

    fn plan_with_width(
        ts: &[i64],
        interval: i64,
        width: u32,
        seg_starts: &[usize],
        seg_bases: &[i64],
    ) -> Plan {
        let limit = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        let mut base0 = seg_bases.first().copied().unwrap_or(0);
        let mut anchors: Vec<(usize, i64)> = Vec::new();
        let mut devs = Vec::with_capacity(ts.len());
        // Current segment: anchor index and base.
        let (mut a, mut b) = (0usize, base0);
        // The grid to return to after an outlier anchor.
        let mut grid = (0usize, base0);
        let mut next_seg = 1;
        let mut restore_at: Option<usize> = None;
        for (i, &t) in ts.iter().enumerate() {
            if seg_starts.get(next_seg) == Some(&i) {
                let nb = seg_bases.get(next_seg).copied().unwrap_or(t);
                next_seg += 1;
                anchors.push((i, nb));
                (a, b) = (i, nb);
                grid = (i, nb);
                restore_at = None;
            } else if restore_at == Some(i) {
                let nb = grid.1.wrapping_add(((i - grid.0) as i64).wrapping_mul(interval));
                anchors.push((i, nb));
                (a, b) = (i, nb);
                restore_at = None;
            }
            let expected = b.wrapping_add(((i - a) as i64).wrapping_mul(interval));
            let dev = zigzag(t.wrapping_sub(expected));
            if dev > limit {
                // An outlier: anchor exactly on it, and return to the grid after it. An anchor
                // already at this index (or the implicit one at 0) is moved rather than doubled.
                if i == 0 {
                    base0 = t;
                } else if anchors.last().is_some_and(|&(ai, _)| ai == i) {
                    anchors.pop();
                    anchors.push((i, t));
                } else {
                    anchors.push((i, t));
                }
                (a, b) = (i, t);
                devs.push(0);
                restore_at = Some(i + 1);
            } else {
                devs.push(dev);
            }
        }
        let mut size =
            varint_len(base0) + uvarint_len(interval as u64) + 1 + uvarint_len(anchors.len() as u64);
        let (mut pa, mut pb) = (0usize, base0);
        for &(i, nb) in &anchors {
            let expected = pb.wrapping_add(((i - pa) as i64).wrapping_mul(interval));
            size += uvarint_len((i - pa) as u64) + varint_len(nb.wrapping_sub(expected));
            (pa, pb) = (i, nb);
        }
        size += packed_len(ts.len(), width);
        Plan { base: base0, interval, width, anchors, devs, size }
    }

    impl Plan {
        /// Exact encoded size.
        pub fn size(&self) -> usize {
            self.size
        }

        /// Appends the encoding.
        pub fn encode(&self, out: &mut Vec<u8>) {
            put_varint(out, self.base);
            put_uvarint(out, self.interval as u64);
            out.push(self.width as u8);
            put_uvarint(out, self.anchors.len() as u64);
            let (mut pa, mut pb) = (0usize, self.base);
            for &(i, nb) in &self.anchors {
                let expected = pb.wrapping_add(((i - pa) as i64).wrapping_mul(self.interval));
                put_uvarint(out, (i - pa) as u64);
                put_varint(out, nb.wrapping_sub(expected));
                (pa, pb) = (i, nb);
            }
            pack(out, self.devs.iter().copied(), self.width);
        }
    }

    /// Decodes `n` timestamps.
    pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<i64>, CodecError> {
        let base = d.varint()?;
        let interval = i64::try_from(d.uvarint()?)
            .ok()
            .filter(|&i| i > 0)
            .ok_or(CodecError::Invalid("grid interval"))?;
        let width = u32::from(d.u8()?);
        if width > 64 {
            return Err(CodecError::Invalid("bit width above 64"));
        }
        let anchor_n = d.len(n, "grid anchor count")?;
        let mut anchors = Vec::with_capacity(anchor_n);
        let (mut pa, mut pb) = (0usize, base);
        for _ in 0..anchor_n {
            let di = d.len(n, "grid anchor index")?;
            if di == 0 {
                return Err(CodecError::Invalid("grid anchor index"));
            }
            let i = pa + di;
            if i >= n {
                return Err(CodecError::Invalid("grid anchor index"));
            }
            let expected = pb.wrapping_add(((i - pa) as i64).wrapping_mul(interval));
            let nb = expected.wrapping_add(d.varint()?);
            anchors.push((i, nb));
            (pa, pb) = (i, nb);
        }
        let mut devs = Vec::with_capacity(n);
        let used = unpack(d.rest(), n, width, &mut devs)?;
        d.bytes(used)?;
        let mut out = Vec::with_capacity(n);
        let (mut a, mut b) = (0usize, base);
        let mut next = anchors.iter().peekable();
        for (i, dev) in devs.into_iter().enumerate() {
            if let Some(&&(ai, ab)) = next.peek()
                && ai == i
            {
                (a, b) = (ai, ab);
                next.next();
            }
            out.push(b.wrapping_add(((i - a) as i64).wrapping_mul(interval)).wrapping_add(unzigzag(dev)));
        }
        Ok(out)
    }
}
