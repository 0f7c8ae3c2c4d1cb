//! The head: the in-memory part of the store that takes every append.
//!
//! - Series live in two sharded tables, by label hash (to find a series on append) and by
//!   `HeadSeriesRef` (`docs/refs.md`) (to read one from the index or the WAL). Both hold only
//!   the series' `Arc` (8 bytes a slot): the keys are read from the series.
//! - An inverted index (`index`) maps label pairs to series refs, so `select` never scans every series.
//! - Each series appends into one open Gorilla chunk, cut at 120 samples or at a block-range
//!   boundary; closed chunks stay in memory, compact and shared with readers through `Arc`s.
//! - Commits are serialized: a commit writes its frame to the WAL, then applies its samples and
//!   publishes a commit sequence number. A querier records the sequence it started at, and each
//!   series keeps the sample count at the commits an open querier may still need, so a querier
//!   sees exactly the commits that finished before it was created (`series`).

mod append;
mod index;
mod postings;
mod query;
mod series;
mod symbols;
mod truncate;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};

pub use append::HeadAppender;
pub(crate) use append::LabelSource;
pub use query::{ChunkSampleIter, HeadQuerier};
use series::{MemSeries, SeriesInner, SymbolLabels};
use symbols::Symbols;
pub use truncate::Truncated;

use crate::model::{Label, Labels};
use crate::wal::{Record, Wal};

/// Number of lock stripes of the series maps (a power of two).
const STRIPES: usize = 256;

/// Limits on the label sets the head accepts; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// Most labels (including `__name__`) a series may have.
    pub max_label_names: usize,
    /// Longest label name, in bytes.
    pub max_name_length: usize,
    /// Longest label value, in bytes.
    pub max_value_length: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_label_names: 64, max_name_length: 1024, max_value_length: 4096 }
    }
}

/// Options of the head.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// Block range in ms (2h). Chunks are cut at its multiples, and appends older than half a
    /// range before the newest sample are out of bounds (as in Prometheus).
    pub chunk_range_ms: i64,
    /// Samples after which a chunk is cut (120, as Prometheus).
    pub samples_per_chunk: usize,
    /// Label limits.
    pub limits: LabelLimits,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions { chunk_range_ms: 2 * 3_600_000, samples_per_chunk: 120, limits: LabelLimits::default() }
    }
}

/// A hasher for keys that are already hashes or dense ids.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Mixed so that sequential refs spread over hashbrown's control bytes.
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// One stripe of a series table: series keyed by label hash or by ref (see [`slot_hash`]).
type Stripe = RwLock<HashTable<Arc<MemSeries>>>;

/// The stripe of a key (its low bits).
fn stripe(key: u64) -> usize {
    (key as usize) & (STRIPES - 1)
}

/// The hash a series table files `key` under within its stripe. The stripe's bits are dropped
/// (every key in a stripe shares them, and hashbrown takes a slot's position from the low bits)
/// and the rest mixed, so that both sequential refs and label hashes spread over the whole
/// table and over the control bytes (the top 7 bits).
#[inline]
fn slot_hash(key: u64) -> u64 {
    let x = (key >> STRIPES.trailing_zeros()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) samples_appended: AtomicU64,
    pub(crate) series_created: AtomicU64,
    pub(crate) out_of_order: AtomicU64,
    pub(crate) duplicate: AtomicU64,
    pub(crate) out_of_bounds: AtomicU64,
    pub(crate) invalid_labels: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) rollbacks: AtomicU64,
    pub(crate) chunks_created: AtomicU64,
    pub(crate) heap_bytes: AtomicI64,
    pub(crate) replayed_samples: AtomicU64,
    pub(crate) replay_dropped: AtomicU64,
}

/// Figures about the head, for `/api/v1/status/tsdb` and the `kahu_tsdb_head_*` self-metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    /// Series in the head.
    pub series: u64,
    /// Series created since start (replay included).
    pub series_created: u64,
    /// Samples committed since start (replayed samples not included).
    pub samples_appended: u64,
    /// Samples replayed from the WAL at start.
    pub samples_replayed: u64,
    /// Samples the WAL held that replay could not apply (unknown series, out of order).
    pub samples_replay_dropped: u64,
    /// Rejected appends, by reason.
    pub rejected: RejectedStats,
    /// Commits and rollbacks since start.
    pub commits: u64,
    /// Rollbacks since start.
    pub rollbacks: u64,
    /// Chunks cut since start.
    pub chunks_created: u64,
    /// Oldest sample timestamp (ms), `None` when empty.
    pub min_time: Option<i64>,
    /// Newest sample timestamp (ms), `None` when empty.
    pub max_time: Option<i64>,
    /// Distinct label strings.
    pub symbols: u64,
    /// Estimated heap bytes of series, chunks, index and symbols.
    pub heap_bytes: u64,
    /// `heap_bytes / series`.
    pub bytes_per_series: u64,
}

/// Rejected samples by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedStats {
    /// Older than the series' newest sample.
    pub out_of_order: u64,
    /// Same timestamp as the newest sample, different value.
    pub duplicate: u64,
    /// Older than the head accepts.
    pub out_of_bounds: u64,
    /// Invalid label sets (empty or repeated names, limits).
    pub invalid_labels: u64,
}

struct CommitState {
    seq: u64,
    buf: Vec<u8>,
}

/// The head. Shared behind an `Arc`; appenders borrow it, queriers hold a clone of the `Arc`.
pub struct Head {
    /// Process-unique, so that a [`crate::SeriesHint`] is only taken by the head that made it.
    id: u64,
    opts: HeadOptions,
    by_hash: Box<[Stripe]>,
    by_ref: Box<[Stripe]>,
    index: RwLock<index::Index>,
    symbols: RwLock<Symbols>,
    next_ref: AtomicU64,
    commit: Mutex<CommitState>,
    wal: OnceLock<Wal>,
    /// Watermarks of open queriers and how many share each.
    open_queriers: Mutex<BTreeMap<u64, usize>>,
    committed_seq: AtomicU64,
    low_watermark: AtomicU64,
    /// Appends older than this are out of bounds (raised when the head is truncated).
    min_valid_time: AtomicI64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    read_only: bool,
    pub(crate) counters: Counters,
    /// WAL refs that replay mapped onto another series with the same labels.
    replay_alias: Mutex<IdMap<u64>>,
    /// Series that head truncation removed while something (an appender, a querier) still
    /// held them: their symbols are released once nothing does (`truncate`).
    removed: Mutex<Vec<Arc<MemSeries>>>,
    /// Emptied buffers of finished appenders, reused by the next ones (as Prometheus pools its
    /// appenders' sample and series slices) so that a scrape's batch does not regrow them.
    append_bufs: Mutex<Vec<append::AppendBufs>>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head").field("series", &self.num_series()).finish_non_exhaustive()
    }
}

/// Estimated heap bytes of a series without its chunks: the series (behind its `Arc`), its
/// labels, and its slots in the two series tables (an `Arc` and a control byte each, tables
/// between 7/16 and 7/8 full).
pub(crate) fn series_heap_bytes(s: &MemSeries) -> usize {
    16 + std::mem::size_of::<MemSeries>() + s.labels.heap_bytes() + 2 * (8 + 1) * 3 / 2
}

/// `a == b`, inline for short strings: most label strings are short, and a `memcmp` call per
/// string costs more than the comparison; long ones (container ids, cgroup paths) go to `memcmp`,
/// which compares them a vector at a time. A short string is compared a word at a time, its
/// tail as one last word that overlaps the one before (no byte loop).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > 32 {
        return a == b;
    }
    if n >= 8 {
        let word = |s: &[u8], at: usize| {
            s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_ne_bytes)
        };
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        let word = |s: &[u8], at: usize| {
            s.get(at..at + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map(u32::from_ne_bytes)
        };
        return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

impl Head {
    /// An empty head. `read_only` heads refuse commits.
    pub fn new(opts: HeadOptions, read_only: bool) -> Head {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Head {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            opts,
            by_hash: (0..STRIPES).map(|_| RwLock::new(HashTable::new())).collect(),
            by_ref: (0..STRIPES).map(|_| RwLock::new(HashTable::new())).collect(),
            index: RwLock::new(index::Index::default()),
            symbols: RwLock::new(Symbols::default()),
            next_ref: AtomicU64::new(1),
            commit: Mutex::new(CommitState { seq: 0, buf: Vec::new() }),
            wal: OnceLock::new(),
            open_queriers: Mutex::new(BTreeMap::new()),
            committed_seq: AtomicU64::new(0),
            low_watermark: AtomicU64::new(0),
            min_valid_time: AtomicI64::new(i64::MIN),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            read_only,
            counters: Counters::default(),
            replay_alias: Mutex::new(IdMap::default()),
            removed: Mutex::new(Vec::new()),
            append_bufs: Mutex::new(Vec::new()),
        }
    }

    /// Attaches the WAL that commits are written to (after replay).
    pub fn set_wal(&self, wal: Wal) {
        let _ = self.wal.set(wal);
    }

    /// The WAL, if one is attached.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.get()
    }

    /// The options.
    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.index.read().num_series()
    }

    /// A new appender.
    pub fn appender(&self) -> HeadAppender<'_> {
        HeadAppender::new(self)
    }

    /// Appends older than `t` are rejected as out of bounds from now on (never lowered).
    pub fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    /// The oldest timestamp an append may have now.
    pub(crate) fn min_valid_append(&self) -> i64 {
        let floor = self.min_valid_time.load(Ordering::Acquire);
        let max = self.max_time.load(Ordering::Acquire);
        if max == i64::MIN { floor } else { floor.max(max.saturating_sub(self.opts.chunk_range_ms / 2)) }
    }

    fn find<L: LabelSource + ?Sized>(&self, hash: u64, labels: &L) -> Option<Arc<MemSeries>> {
        let shard = self.by_hash.get(stripe(hash))?.read();
        // Hash collisions are rare; compare the labels anyway.
        shard.find(slot_hash(hash), |s| s.hash == hash && self.same_labels(s, labels)).cloned()
    }

    fn same_labels<L: LabelSource + ?Sized>(&self, s: &MemSeries, labels: &L) -> bool {
        if s.labels.len() != labels.num() {
            return false;
        }
        let syms = self.symbols.read();
        s.labels.iter().zip(labels.byte_pairs()).all(|((a, b), (n, v))| {
            same_bytes(syms.get(a).as_bytes(), n) && same_bytes(syms.get(b).as_bytes(), v)
        })
    }

    /// The series with these (valid, sorted) labels, created if new; `true` when created.
    pub(crate) fn get_or_create<L: LabelSource + ?Sized>(&self, labels: &L) -> (Arc<MemSeries>, bool) {
        let hash = labels.label_hash();
        if let Some(s) = self.find(hash, labels) {
            return (s, false);
        }
        self.create(hash, labels, None)
    }

    fn create<L: LabelSource + ?Sized>(
        &self,
        hash: u64,
        labels: &L,
        sref: Option<u64>,
    ) -> (Arc<MemSeries>, bool) {
        // The index lock serializes creation, so refs enter the postings in increasing order.
        let mut index = self.index.write();
        if let Some(s) = self.find(hash, labels) {
            return (s, false);
        }
        let mut ids = Vec::with_capacity(labels.num());
        let mut pairs = Vec::with_capacity(labels.num());
        {
            let mut syms = self.symbols.write();
            for (n, v) in labels.pairs() {
                // 2^32 distinct strings cannot be held in memory anyway; map the impossible
                // overflow to the empty string rather than panic.
                let ni = syms.intern(n).unwrap_or(0);
                let vi = syms.intern(v).unwrap_or(0);
                ids.push((ni, vi));
                pairs.push((Arc::clone(syms.get(ni)), Arc::clone(syms.get(vi))));
            }
        }
        let sref = match sref {
            Some(r) => {
                self.next_ref.fetch_max(r.saturating_add(1), Ordering::AcqRel);
                r
            }
            None => self.next_ref.fetch_add(1, Ordering::AcqRel),
        };
        let series = Arc::new(MemSeries {
            sref,
            hash,
            labels: SymbolLabels::new(&ids),
            inner: Mutex::new(SeriesInner::new(false)),
        });
        index.add(sref, &pairs);
        if let Some(shard) = self.by_hash.get(stripe(hash)) {
            shard.write().insert_unique(slot_hash(hash), Arc::clone(&series), |s| slot_hash(s.hash));
        }
        if let Some(shard) = self.by_ref.get(stripe(sref)) {
            let mut shard = shard.write();
            // A WAL ref that replay reuses is new to the table (`find` would have found it).
            match shard.find_entry(slot_hash(sref), |s| s.sref == sref) {
                Ok(mut e) => *e.get_mut() = Arc::clone(&series),
                Err(_) => {
                    shard.insert_unique(slot_hash(sref), Arc::clone(&series), |s| slot_hash(s.sref));
                }
            }
        }
        self.counters.series_created.fetch_add(1, Ordering::Relaxed);
        let estimate = series_heap_bytes(&series);
        self.counters.heap_bytes.fetch_add(estimate as i64, Ordering::Relaxed);
        (series, true)
    }

    pub(crate) fn series_by_ref(&self, sref: u64) -> Option<Arc<MemSeries>> {
        self.by_ref.get(stripe(sref))?.read().find(slot_hash(sref), |s| s.sref == sref).cloned()
    }

    /// The labels of a series, resolved from the symbol table.
    pub(crate) fn labels_of(&self, s: &MemSeries, syms: &Symbols) -> Labels {
        Labels::from_sorted_unchecked(
            s.labels
                .iter()
                .map(|(n, v)| Label { name: Arc::clone(syms.get(n)), value: Arc::clone(syms.get(v)) })
                .collect(),
        )
    }

    fn note_time(&self, t: i64) {
        if t < self.min_time.load(Ordering::Relaxed) {
            self.min_time.fetch_min(t, Ordering::AcqRel);
        }
        if t > self.max_time.load(Ordering::Relaxed) {
            self.max_time.fetch_max(t, Ordering::AcqRel);
        }
    }

    /// Applies the records of one replayed WAL frame.
    pub(crate) fn apply_replayed(&self, records: Vec<Record>) {
        for rec in records {
            match rec {
                Record::Series(series) => {
                    for (sref, labels) in series {
                        let hash = labels.label_hash();
                        let (s, created) = match self.find(hash, &labels) {
                            Some(s) => (s, false),
                            None => self.create(hash, &labels, Some(sref)),
                        };
                        if !created && s.sref != sref {
                            self.replay_alias.lock().insert(sref, s.sref);
                        }
                        s.inner.lock().logged = true;
                    }
                }
                Record::Samples(samples) => {
                    let floor = self.min_valid_time.load(Ordering::Acquire);
                    let alias = self.replay_alias.lock();
                    for rs in samples {
                        let sref = alias.get(&rs.sref).copied().unwrap_or(rs.sref);
                        let Some(s) = self.series_by_ref(sref) else {
                            self.counters.replay_dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let mut inner = s.inner.lock();
                        let ok = rs.t >= floor && inner.last().is_none_or(|(lt, _)| rs.t > lt);
                        if !ok {
                            if inner.last() != Some((rs.t, rs.v)) {
                                self.counters.replay_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        let eff = inner.append(
                            rs.t,
                            f64::from_bits(rs.v),
                            self.opts.samples_per_chunk,
                            self.opts.chunk_range_ms,
                        );
                        drop(inner);
                        self.account(&eff);
                        self.note_time(rs.t);
                        self.counters.replayed_samples.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Kept by the Db (see `tombstones.rs`), not by the head.
                Record::Tombstones(_) => {}
            }
        }
    }

    fn account(&self, eff: &series::AppendEffect) {
        if eff.heap_delta != 0 {
            self.counters.heap_bytes.fetch_add(eff.heap_delta as i64, Ordering::Relaxed);
        }
        if eff.cut {
            self.counters.chunks_created.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Registers a querier at the current commit; returns its watermark.
    fn register_querier(&self) -> u64 {
        let mut open = self.open_queriers.lock();
        let w = self.committed_seq.load(Ordering::Acquire);
        *open.entry(w).or_insert(0) += 1;
        if let Some((&low, _)) = open.first_key_value() {
            self.low_watermark.store(low, Ordering::Release);
        }
        w
    }

    fn deregister_querier(&self, w: u64) {
        let mut open = self.open_queriers.lock();
        if let Some(n) = open.get_mut(&w) {
            *n -= 1;
            if *n == 0 {
                open.remove(&w);
            }
        }
        let low =
            open.first_key_value().map_or_else(|| self.committed_seq.load(Ordering::Acquire), |(&l, _)| l);
        self.low_watermark.store(low, Ordering::Release);
    }

    fn publish(&self, seq: u64) {
        let open = self.open_queriers.lock();
        self.committed_seq.store(seq, Ordering::Release);
        if open.is_empty() {
            self.low_watermark.store(seq, Ordering::Release);
        }
    }

    /// Oldest and newest timestamps held, `None` when empty.
    pub(crate) fn stats_range(&self) -> Option<(i64, i64)> {
        let (min, max) = (self.min_time.load(Ordering::Acquire), self.max_time.load(Ordering::Acquire));
        (min <= max).then_some((min, max))
    }

    /// Current figures.
    pub fn stats(&self) -> HeadStats {
        let c = &self.counters;
        let series = self.num_series() as u64;
        let (min, max) = (self.min_time.load(Ordering::Acquire), self.max_time.load(Ordering::Acquire));
        let index_bytes = self.index.read().heap_bytes() as i64;
        let (symbols, sym_bytes) = {
            let s = self.symbols.read();
            (s.len() as u64, s.heap_bytes() as i64)
        };
        let heap = (c.heap_bytes.load(Ordering::Relaxed) + index_bytes + sym_bytes).max(0) as u64;
        HeadStats {
            series,
            series_created: c.series_created.load(Ordering::Relaxed),
            samples_appended: c.samples_appended.load(Ordering::Relaxed),
            samples_replayed: c.replayed_samples.load(Ordering::Relaxed),
            samples_replay_dropped: c.replay_dropped.load(Ordering::Relaxed),
            rejected: RejectedStats {
                out_of_order: c.out_of_order.load(Ordering::Relaxed),
                duplicate: c.duplicate.load(Ordering::Relaxed),
                out_of_bounds: c.out_of_bounds.load(Ordering::Relaxed),
                invalid_labels: c.invalid_labels.load(Ordering::Relaxed),
            },
            commits: c.commits.load(Ordering::Relaxed),
            rollbacks: c.rollbacks.load(Ordering::Relaxed),
            chunks_created: c.chunks_created.load(Ordering::Relaxed),
            min_time: (min != i64::MAX).then_some(min),
            max_time: (max != i64::MIN).then_some(max),
            symbols,
            heap_bytes: heap,
            bytes_per_series: heap.checked_div(series).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length through each path (bytes, two half-words, words, `memcmp`), with a
    /// difference at every position.
    #[test]
    fn same_bytes_is_slice_equality() {
        for n in 0..=40u8 {
            let a: Vec<u8> = (1..=n).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for i in 0..usize::from(n) {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!same_bytes(&a, &b), "{n} bytes, differing at {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!same_bytes(&a, &longer), "{n}");
        }
    }
}
