//! One series of the head: its labels (as symbol ids), its open chunk, its closed chunks, and the
//! little bookkeeping that lets queries see whole commits only.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::chunk::adaptive::{ChunkKind, HeadChunk};
use crate::chunk::xor::num_samples;

/// A chunk that no longer takes samples.
#[derive(Debug, Clone)]
pub(crate) struct ClosedChunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) kind: ChunkKind,
    pub(crate) data: Arc<[u8]>,
}

/// A series' labels as symbol ids, sorted by name: the number of pairs, then name id and value
/// id of each pair, as LEB128 varints. Names and shared values are interned first and get small
/// ids, so most ids take one or two bytes instead of four.
#[derive(Debug)]
pub(crate) struct SymbolLabels(Box<[u8]>);

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint written by `put_uvarint` (0 past the end, which `SymbolLabels::new` never
/// leaves).
#[inline]
fn get_uvarint(bytes: &mut std::slice::Iter<'_, u8>) -> u32 {
    let mut v = 0u32;
    let mut shift = 0u32;
    for &b in bytes.by_ref() {
        v |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

impl SymbolLabels {
    /// Encodes `(name id, value id)` pairs.
    pub(crate) fn new(pairs: &[(u32, u32)]) -> Self {
        let mut out = Vec::with_capacity(5 + pairs.len() * 10);
        put_uvarint(&mut out, u32::try_from(pairs.len()).unwrap_or(u32::MAX));
        for &(n, v) in pairs {
            put_uvarint(&mut out, n);
            put_uvarint(&mut out, v);
        }
        SymbolLabels(out.into_boxed_slice())
    }

    /// Number of label pairs.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        get_uvarint(&mut self.0.iter()) as usize
    }

    /// The `(name id, value id)` pairs, in name order.
    #[inline]
    pub(crate) fn iter(&self) -> SymbolPairs<'_> {
        let mut bytes = self.0.iter();
        let left = get_uvarint(&mut bytes);
        SymbolPairs { bytes, left }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// Iterator over the pairs of [`SymbolLabels`].
#[derive(Debug, Clone)]
pub(crate) struct SymbolPairs<'a> {
    bytes: std::slice::Iter<'a, u8>,
    left: u32,
}

impl Iterator for SymbolPairs<'_> {
    type Item = (u32, u32);

    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = get_uvarint(&mut self.bytes);
        let v = get_uvarint(&mut self.bytes);
        Some((n, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for SymbolPairs<'_> {}

/// A series in the head.
#[derive(Debug)]
pub(crate) struct MemSeries {
    pub(crate) sref: u64,
    /// The label hash the series is filed under (`LabelSource::label_hash`).
    pub(crate) hash: u64,
    pub(crate) labels: SymbolLabels,
    pub(crate) inner: Mutex<SeriesInner>,
}

/// The mutable part of a series, behind its lock.
#[derive(Debug)]
pub(crate) struct SeriesInner {
    pub(crate) head: HeadChunk,
    /// Oldest first. A boxed slice (16 bytes, not a `Vec`'s 24): it changes once a chunk cut.
    pub(crate) closed: Box<[ClosedChunk]>,
    /// Samples in `closed` and `head`.
    pub(crate) total: u64,
    /// The latest commit that added samples, and how many it added (the series had
    /// `total - iso_added` before it).
    iso_seq: u64,
    iso_added: u32,
    /// Earlier (commit, count before it) pairs that an open querier may still need. Boxed
    /// (8 bytes instead of a 24-byte `Vec`) because it is almost always empty.
    #[expect(clippy::box_collection, reason = "keeps the common empty case at one word per series")]
    iso_older: Option<Box<Vec<(u64, u64)>>>,
    /// Whether a series record for this series is in the WAL.
    pub(crate) logged: bool,
    /// Set when head truncation removed the series from the head's maps: a commit that still
    /// holds it appends to a fresh series with the same labels instead.
    pub(crate) removed: bool,
}

/// How an append to a series' chunks changed its memory.
pub(crate) struct AppendEffect {
    pub(crate) heap_delta: isize,
    pub(crate) cut: bool,
}

impl SeriesInner {
    pub(crate) fn new(logged: bool) -> Self {
        SeriesInner {
            head: HeadChunk::new(),
            closed: Box::default(),
            total: 0,
            iso_seq: 0,
            iso_added: 0,
            iso_older: None,
            logged,
            removed: false,
        }
    }

    /// The newest sample: timestamp and value bits.
    #[inline]
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        (!self.head.is_empty()).then(|| (self.head.last_t(), self.head.last_v_bits()))
    }

    /// Appends a sample that is newer than [`SeriesInner::last`]. Cuts the open chunk first when
    /// it holds `max_samples` or `t` crosses a multiple of `range` (a block boundary, so that a
    /// chunk never spans two blocks).
    pub(crate) fn append(&mut self, t: i64, v: f64, max_samples: usize, range: i64) -> AppendEffect {
        let before = self.head.heap_bytes();
        let mut cut = false;
        if !self.head.is_empty() {
            // The chunk's samples all lie in one range (that is the rule), so its last sample
            // tells the boundary as well as its first.
            let boundary = self.head.last_t().div_euclid(range).saturating_add(1).saturating_mul(range);
            if self.head.len() >= max_samples || t >= boundary {
                self.close_head();
                cut = true;
            }
        }
        let mut closed_bytes = 0isize;
        if cut && let Some(c) = self.closed.last() {
            closed_bytes = c.data.len() as isize + 32;
        }
        if !self.head.append(t, v) {
            // Full at u16::MAX samples (unreachable with max_samples ≤ 65535): close and retry.
            self.close_head();
            self.head.append(t, v);
        }
        self.total += 1;
        self.iso_added = self.iso_added.saturating_add(1);
        AppendEffect { heap_delta: self.head.heap_bytes() as isize - before as isize + closed_bytes, cut }
    }

    fn close_head(&mut self) {
        // The next chunk of a series is usually about as big as the last one: reserve that,
        // plus a little, so that it rarely reallocates or holds much spare.
        let len = self.head.bytes().len();
        let old = std::mem::replace(&mut self.head, HeadChunk::with_capacity(len + len / 16));
        let mut closed = std::mem::take(&mut self.closed).into_vec();
        closed.push(ClosedChunk {
            min_t: old.first_t(),
            max_t: old.last_t(),
            kind: old.kind(),
            data: Arc::from(old.bytes()),
        });
        self.closed = closed.into_boxed_slice();
    }

    /// Records that commit `seq` is about to add samples, dropping what no querier needs any more
    /// (commits at or below `low_watermark`).
    pub(crate) fn begin_commit(&mut self, seq: u64, low_watermark: u64) {
        if self.iso_seq == seq {
            return;
        }
        if self.iso_seq > low_watermark {
            let count = self.iso_count();
            self.iso_older.get_or_insert_with(Default::default).push((self.iso_seq, count));
        }
        if let Some(older) = &mut self.iso_older {
            older.retain(|(s, _)| *s > low_watermark);
            if older.is_empty() {
                self.iso_older = None;
            }
        }
        self.iso_seq = seq;
        self.iso_added = 0;
    }

    /// How many samples a querier that saw commits up to `watermark` may read.
    pub(crate) fn visible(&self, watermark: u64) -> u64 {
        if let Some(older) = &self.iso_older
            && let Some((_, count)) = older.iter().find(|(s, _)| *s > watermark)
        {
            return *count;
        }
        if self.iso_seq > watermark { self.iso_count() } else { self.total }
    }

    /// Drops the chunks whose samples are all older than `t` (they are in a block now) and
    /// shifts the isolation counts by the samples dropped. Returns the samples and chunk bytes
    /// dropped, and whether the series is now empty.
    pub(crate) fn drop_before(&mut self, t: i64) -> (u64, usize, bool) {
        let keep_from = self.closed.iter().position(|c| c.max_t >= t).unwrap_or(self.closed.len());
        let mut samples = 0u64;
        let mut bytes = 0usize;
        if keep_from > 0 {
            let mut closed = std::mem::take(&mut self.closed).into_vec();
            for c in closed.drain(..keep_from) {
                samples += Self::closed_len(&c);
                bytes += c.data.len() + 32;
            }
            self.closed = closed.into_boxed_slice();
        }
        let mut empty = self.closed.is_empty();
        if empty && !self.head.is_empty() {
            if self.head.last_t() < t {
                samples += self.head.len() as u64;
                bytes += self.head.heap_bytes();
                self.head = HeadChunk::new();
            } else {
                empty = false;
            }
        }
        // The samples the latest commit added that were dropped are no longer in `total`.
        let count = self.iso_count().saturating_sub(samples);
        self.total = self.total.saturating_sub(samples);
        self.iso_added = u32::try_from(self.total - count.min(self.total)).unwrap_or(u32::MAX);
        if let Some(older) = &mut self.iso_older {
            for (_, count) in older.iter_mut() {
                *count = count.saturating_sub(samples);
            }
        }
        (samples, bytes, empty)
    }

    /// Samples the series had before commit `iso_seq`.
    fn iso_count(&self) -> u64 {
        self.total.saturating_sub(u64::from(self.iso_added))
    }

    /// Samples in a closed chunk.
    pub(crate) fn closed_len(c: &ClosedChunk) -> u64 {
        num_samples(&c.data) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The per-series struct is a headline memory figure (with its `Arc` header, 16 bytes more
    /// per series): catch a field that makes it grow.
    #[test]
    fn series_struct_stays_small() {
        assert_eq!(std::mem::size_of::<HeadChunk>(), 64);
        assert_eq!(std::mem::size_of::<MemSeries>(), 152);
    }

    proptest! {
        /// Ids of every size (one varint byte to five) come back as they went in.
        #[test]
        fn symbol_labels_round_trip(pairs in proptest::collection::vec((prop_oneof![0u32..200, any::<u32>()], prop_oneof![0u32..20_000, any::<u32>()]), 0..70)) {
            let l = SymbolLabels::new(&pairs);
            prop_assert_eq!(l.len(), pairs.len());
            prop_assert_eq!(l.iter().collect::<Vec<_>>(), pairs);
        }
    }
}
