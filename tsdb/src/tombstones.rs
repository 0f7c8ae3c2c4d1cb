//! Tombstones: time ranges of series deleted by [`Db::delete_series`](crate::Db::delete_series).
//! Queries hide the samples inside them ([`TombstoneQuerier`]); persisting the head and compaction
//! leave them out of the blocks they write. A block's tombstones live in its `tombstones` file
//! (`docs/format/tombstones.md`), the head's in the WAL (`docs/format/wal.md`, record type 3).

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{Label, Labels, Matcher, Sample};
use crate::querier::{Querier, QueryError, SampleIter, Series, SeriesSet};
use crate::wal::record::{put_uvarint, put_varint};

/// The name of a block's tombstones file.
pub const TOMBSTONES_FILE: &str = "tombstones";
const MAGIC: &[u8; 4] = b"KTMB";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;

/// A deleted range, inclusive milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// First deleted timestamp.
    pub mint: i64,
    /// Last deleted timestamp.
    pub maxt: i64,
}

impl Interval {
    /// Whether `t` is inside.
    pub fn contains(&self, t: i64) -> bool {
        self.mint <= t && t <= self.maxt
    }
}

/// Sorted, non-overlapping, non-adjacent intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    /// Adds `iv`, merging it with the intervals it overlaps or touches. An empty interval
    /// (`mint > maxt`) is ignored.
    pub fn add(&mut self, iv: Interval) {
        if iv.mint > iv.maxt {
            return;
        }
        let mut merged = iv;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &cur in &self.0 {
            if cur.maxt.saturating_add(1) < merged.mint {
                out.push(cur);
            } else if merged.maxt.saturating_add(1) < cur.mint {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(cur);
            } else {
                merged = Interval { mint: merged.mint.min(cur.mint), maxt: merged.maxt.max(cur.maxt) };
            }
        }
        if !placed {
            out.push(merged);
        }
        out.sort_by_key(|i| i.mint);
        self.0 = out;
    }

    /// Whether `t` is deleted.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.0.partition_point(|iv| iv.maxt < t);
        self.0.get(i).is_some_and(|iv| iv.contains(t))
    }

    /// Whether every timestamp of `[mint, maxt]` is deleted.
    pub fn covers(&self, mint: i64, maxt: i64) -> bool {
        self.0.iter().any(|iv| iv.mint <= mint && maxt <= iv.maxt)
    }

    /// Drops what lies before `t`; returns whether anything is left.
    pub fn truncate_before(&mut self, t: i64) -> bool {
        self.0.retain(|iv| iv.maxt >= t);
        !self.0.is_empty()
    }

    /// The intervals, sorted.
    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    /// Whether there is no interval.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Deleted intervals by series labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<Labels, Intervals>,
}

/// A tombstones file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TombstoneError {
    /// Reading or writing the file failed.
    #[error("{step} {path}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's bytes are not a valid tombstones file.
    #[error("corrupt tombstones file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

impl Tombstones {
    /// Adds a deleted interval of the series `labels`.
    pub fn add(&mut self, labels: Labels, iv: Interval) {
        if iv.mint > iv.maxt {
            return;
        }
        self.by_series.entry(labels).or_default().add(iv);
    }

    /// Adds every interval of `other`.
    pub fn merge(&mut self, other: &Tombstones) {
        for (l, ivs) in &other.by_series {
            for iv in ivs.as_slice() {
                self.add(l.clone(), *iv);
            }
        }
    }

    /// The deleted intervals of a series.
    pub fn get(&self, labels: &Labels) -> Option<&Intervals> {
        self.by_series.get(labels)
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of series with deletions.
    pub fn len(&self) -> usize {
        self.by_series.len()
    }

    /// Number of intervals over all series.
    pub fn num_intervals(&self) -> usize {
        self.by_series.values().map(|i| i.as_slice().len()).sum()
    }

    /// Every series with its intervals, in label order.
    pub fn iter(&self) -> impl Iterator<Item = (&Labels, &Intervals)> {
        self.by_series.iter()
    }

    /// Drops the intervals that end before `t`.
    pub fn truncate_before(&mut self, t: i64) {
        self.by_series.retain(|_, ivs| ivs.truncate_before(t));
    }

    /// The file's bytes (`docs/format/tombstones.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 16 + self.by_series.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        put_uvarint(&mut out, self.by_series.len() as u64);
        for (labels, ivs) in &self.by_series {
            put_labels(&mut out, labels);
            put_uvarint(&mut out, ivs.as_slice().len() as u64);
            for iv in ivs.as_slice() {
                put_varint(&mut out, iv.mint);
                put_uvarint(&mut out, iv.maxt.wrapping_sub(iv.mint) as u64);
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a file's bytes; `path` names the file in errors.
    pub fn decode(bytes: &[u8], path: &str) -> Result<Tombstones, TombstoneError> {
        let corrupt = |reason: String| TombstoneError::Corrupt { path: path.to_string(), reason };
        if bytes.len() < HEADER_LEN + 4 {
            return Err(corrupt(format!("{} bytes is shorter than header and checksum", bytes.len())));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if body.get(..4) != Some(MAGIC.as_slice()) {
            return Err(corrupt("bad magic (want \"KTMB\")".into()));
        }
        let version = body.get(4).copied().unwrap_or(0);
        if version == 0 || version > VERSION {
            return Err(corrupt(format!("unsupported version {version} (this kahu reads 1)")));
        }
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        let stored = u32::from_le_bytes(crc_bytes);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(corrupt(format!("checksum mismatch: stored {stored:08x}, computed {computed:08x}")));
        }
        let mut d = Dec { b: body, off: HEADER_LEN };
        let mut out = Tombstones::default();
        let n = d.count(3).map_err(&corrupt)?;
        for _ in 0..n {
            let nl = d.count(2).map_err(&corrupt)?;
            let mut labels = Vec::with_capacity(nl);
            for _ in 0..nl {
                let name = d.str().map_err(&corrupt)?;
                let value = d.str().map_err(&corrupt)?;
                labels.push(Label::new(name, value));
            }
            let labels = Labels::from_vec(labels);
            let ni = d.count(2).map_err(&corrupt)?;
            if ni == 0 {
                return Err(corrupt(format!("series {labels} has no interval at byte {}", d.off)));
            }
            for _ in 0..ni {
                let mint = d.varint().map_err(&corrupt)?;
                let delta = d.uvarint().map_err(&corrupt)?;
                out.add(labels.clone(), Interval { mint, maxt: mint.wrapping_add(delta as i64) });
            }
        }
        if d.off != body.len() {
            return Err(corrupt(format!("{} bytes left over at byte {}", body.len() - d.off, d.off)));
        }
        Ok(out)
    }

    /// Reads `<block_dir>/tombstones`; a block without the file has no tombstones.
    pub fn read(block_dir: &Path) -> Result<Tombstones, TombstoneError> {
        let path = block_dir.join(TOMBSTONES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Tombstones::decode(&bytes, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::default()),
            Err(source) => Err(TombstoneError::Io { step: "read", path: path.display().to_string(), source }),
        }
    }

    /// Replaces `<block_dir>/tombstones` atomically (temporary file, fsync, rename, fsync of the
    /// directory); removes it when there is nothing left.
    pub fn write(&self, block_dir: &Path) -> Result<(), TombstoneError> {
        let path = block_dir.join(TOMBSTONES_FILE);
        let io = |step: &'static str, p: &Path| {
            let path = p.display().to_string();
            move |source| TombstoneError::Io { step, path, source }
        };
        if self.is_empty() {
            return match std::fs::remove_file(&path) {
                Ok(()) => crate::fs::sync_dir(block_dir).map_err(io("sync", block_dir)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io("remove", &path)(e)),
            };
        }
        let tmp = block_dir.join(format!("{TOMBSTONES_FILE}.tmp"));
        crate::fs::write_synced(&tmp, &self.encode()).map_err(io("write", &tmp))?;
        crate::fs::rename_synced(&tmp, &path).map_err(io("rename", &path))
    }
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        for s in [l.name.as_ref(), l.value.as_ref()] {
            put_uvarint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Encodes a WAL tombstones record body's entries (`docs/format/wal.md`, record type 3).
pub(crate) fn encode_wal_body(out: &mut Vec<u8>, stones: &[(Labels, Interval)]) {
    put_uvarint(out, stones.len() as u64);
    for (labels, iv) in stones {
        put_labels(out, labels);
        put_varint(out, iv.mint);
        put_varint(out, iv.maxt);
    }
}

/// Decodes a WAL tombstones record body.
pub(crate) fn decode_wal_body(body: &[u8]) -> Result<Vec<(Labels, Interval)>, String> {
    let mut d = Dec { b: body, off: 0 };
    let n = d.count(3)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = d.count(2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = d.str()?;
            let value = d.str()?;
            labels.push(Label::new(name, value));
        }
        let mint = d.varint()?;
        let maxt = d.varint()?;
        out.push((Labels::from_vec(labels), Interval { mint, maxt }));
    }
    if d.off != body.len() {
        return Err(format!("{} bytes left over at byte {}", body.len() - d.off, d.off));
    }
    Ok(out)
}

struct Dec<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Dec<'a> {
    fn uvarint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.off) else {
                return Err(format!("truncated at byte {}", self.off));
            };
            self.off += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.off))
    }

    fn varint(&mut self) -> Result<i64, String> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count that cannot exceed the bytes left (each element takes at least `min` bytes).
    fn count(&mut self, min: usize) -> Result<usize, String> {
        let at = self.off;
        let n = self.uvarint()?;
        let left = self.b.len().saturating_sub(self.off);
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min) <= left => Ok(n),
            _ => Err(format!("count {n} at byte {at} exceeds the bytes left")),
        }
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let at = self.off;
        let n = self.count(1)?;
        let bytes = self.b.get(self.off..self.off + n).ok_or_else(|| format!("truncated at byte {at}"))?;
        self.off += n;
        std::str::from_utf8(bytes).map_err(|_| format!("label string is not UTF-8 at byte {at}"))
    }
}

/// A [`Querier`] that hides the samples its inner querier returns inside `stones`, and the
/// series left without a sample in the selected range.
pub struct TombstoneQuerier {
    inner: Box<dyn Querier>,
    stones: std::sync::Arc<Tombstones>,
    /// `inner` reads the head: [`Querier::list_series`] ignores the tombstones.
    head: bool,
}

impl std::fmt::Debug for TombstoneQuerier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TombstoneQuerier").field("series", &self.stones.len()).finish()
    }
}

impl TombstoneQuerier {
    /// Filters `inner` through `stones`. With no tombstone, wrapping is pointless: callers use
    /// `inner` directly.
    pub fn new(inner: Box<dyn Querier>, stones: std::sync::Arc<Tombstones>) -> Self {
        TombstoneQuerier { inner, stones, head: false }
    }

    /// Filters the head's querier `inner` through `stones`, except in
    /// [`Querier::list_series`]: a head series whose selected samples were all deleted stays
    /// listed there, as in Prometheus (2.42 checked side by side, `tests/it/admin_api.rs`),
    /// until persisting the head drops it.
    pub fn over_head(inner: Box<dyn Querier>, stones: std::sync::Arc<Tombstones>) -> Self {
        TombstoneQuerier { inner, stones, head: true }
    }
}

struct Filtered<'a> {
    inner: Box<dyn Series + 'a>,
    deleted: Intervals,
}

impl Series for Filtered<'_> {
    fn labels(&self) -> &Labels {
        self.inner.labels()
    }

    fn iter(&self) -> Box<dyn SampleIter + '_> {
        Box::new(FilteredIter { inner: self.inner.iter(), deleted: &self.deleted })
    }
}

struct FilteredIter<'a> {
    inner: Box<dyn SampleIter + 'a>,
    deleted: &'a Intervals,
}

impl FilteredIter<'_> {
    fn skip_deleted(&mut self, mut s: Option<Sample>) -> Option<Sample> {
        while let Some(x) = s {
            if !self.deleted.contains(x.t) {
                return Some(x);
            }
            s = self.inner.next();
        }
        None
    }
}

impl SampleIter for FilteredIter<'_> {
    fn next(&mut self) -> Option<Sample> {
        let s = self.inner.next();
        self.skip_deleted(s)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        let s = self.inner.seek(t);
        self.skip_deleted(s)
    }

    fn err(&self) -> Option<&QueryError> {
        self.inner.err()
    }
}

impl Querier for TombstoneQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        let set = self.inner.select(matchers, mint, maxt)?;
        let stones = &self.stones;
        Ok(Box::new(set.filter_map(move |s| {
            let Some(deleted) = stones.get(s.labels()) else { return Some(s) };
            if deleted.covers(mint, maxt) {
                return None;
            }
            let f = Filtered { inner: s, deleted: deleted.clone() };
            let keep = {
                let mut it = f.iter();
                it.next().is_some() || it.err().is_some()
            };
            keep.then(|| Box::new(f) as Box<dyn Series + '_>)
        })))
    }

    // Label names and values ignore tombstones, as in Prometheus (2.42 checked side by side:
    // `tests/it/admin_api.rs`): its head and block index readers answer from postings, so a
    // series whose samples were all deleted keeps its names and values listed until it leaves
    // the head (persisting drops it) or its block is rewritten (compaction, clean_tombstones).
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        self.inner.label_names(matchers, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        self.inner.label_values(name, matchers, mint, maxt)
    }

    fn list_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        if self.head {
            return self.inner.list_series(matchers, mint, maxt);
        }
        Ok(self.select(matchers, mint, maxt)?.map(|s| s.labels().clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(mint: i64, maxt: i64) -> Interval {
        Interval { mint, maxt }
    }

    #[test]
    fn intervals_merge_overlapping_and_adjacent_ones() {
        let mut i = Intervals::default();
        i.add(iv(10, 20));
        i.add(iv(30, 40));
        i.add(iv(21, 25));
        assert_eq!(i.as_slice(), &[iv(10, 25), iv(30, 40)]);
        i.add(iv(0, 5));
        i.add(iv(24, 31));
        assert_eq!(i.as_slice(), &[iv(0, 5), iv(10, 40)]);
        i.add(iv(7, 3));
        assert_eq!(i.as_slice().len(), 2);
        assert!(i.contains(5) && i.contains(10) && i.contains(40));
        assert!(!i.contains(6) && !i.contains(41) && !i.contains(-1));
        assert!(i.covers(12, 39) && !i.covers(4, 12));
        assert!(i.truncate_before(6));
        assert_eq!(i.as_slice(), &[iv(10, 40)]);
        assert!(!i.truncate_before(41));
    }

    #[test]
    fn the_file_round_trips_and_every_damage_is_reported() {
        let mut t = Tombstones::default();
        t.add(Labels::from_pairs([("__name__", "up"), ("job", "a")]), iv(-5, 100));
        t.add(Labels::from_pairs([("__name__", "up"), ("job", "a")]), iv(200, i64::MAX));
        t.add(Labels::from_pairs([("__name__", "x")]), iv(i64::MIN, 7));
        let bytes = t.encode();
        assert_eq!(Tombstones::decode(&bytes, "f").unwrap(), t);
        for cut in 0..bytes.len() {
            assert!(Tombstones::decode(&bytes[..cut], "f").is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Tombstones::decode(&b, "f").is_err(), "flipped byte {i}");
        }
        let mut newer = bytes.clone();
        newer[4] = 2;
        let err = Tombstones::decode(&newer, "f").unwrap_err().to_string();
        assert!(err.contains("unsupported version 2"), "{err}");
    }

    #[test]
    fn the_file_is_written_atomically_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Tombstones::read(dir.path()).unwrap(), Tombstones::default());
        let mut t = Tombstones::default();
        t.add(Labels::from_pairs([("a", "1")]), iv(1, 2));
        t.write(dir.path()).unwrap();
        assert_eq!(Tombstones::read(dir.path()).unwrap(), t);
        assert!(!dir.path().join("tombstones.tmp").exists());
        Tombstones::default().write(dir.path()).unwrap();
        assert!(!dir.path().join(TOMBSTONES_FILE).exists());
    }

    #[test]
    fn wal_bodies_round_trip() {
        let stones = vec![(Labels::from_pairs([("__name__", "m"), ("i", "1")]), iv(3, 9))];
        let mut out = Vec::new();
        encode_wal_body(&mut out, &stones);
        assert_eq!(decode_wal_body(&out).unwrap(), stones);
        assert!(decode_wal_body(&out[..out.len() - 1]).is_err());
    }

    #[test]
    fn the_querier_hides_deleted_samples_and_emptied_series() {
        use crate::{Appendable, MemHead, Queryable};
        let head = MemHead::new();
        let mut app = head.appender();
        let a = Labels::from_pairs([("__name__", "m"), ("s", "a")]);
        let b = Labels::from_pairs([("__name__", "m"), ("s", "b")]);
        for t in 0..10 {
            app.append(&a, t * 10, t as f64).unwrap();
            app.append(&b, t * 10, t as f64).unwrap();
        }
        app.commit().unwrap();
        let mut t = Tombstones::default();
        t.add(a.clone(), iv(20, 55));
        t.add(b.clone(), iv(0, 90));
        let q = TombstoneQuerier::new(head.querier().unwrap(), std::sync::Arc::new(t));
        let got: Vec<(Labels, Vec<i64>)> = q
            .select(&[Matcher::equal("__name__", "m")], 0, 1000)
            .unwrap()
            .map(|s| {
                let mut it = s.iter();
                let mut ts = Vec::new();
                while let Some(x) = it.next() {
                    ts.push(x.t);
                }
                (s.labels().clone(), ts)
            })
            .collect();
        assert_eq!(got, vec![(a.clone(), vec![0, 10, 60, 70, 80, 90])]);
        let s = q.select(&[], 0, 1000).unwrap().next().unwrap();
        let mut it = s.iter();
        assert_eq!(it.seek(25).map(|x| x.t), Some(60));
        // Label values ignore tombstones, as Prometheus' do: b is listed while it is in the head.
        assert_eq!(q.label_values("s", &[], 0, 1000).unwrap(), ["a", "b"]);
    }
}
