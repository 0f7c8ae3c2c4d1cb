//! Dropping from the head what a block now holds: chunks older than a time, and the series
//! left without samples (storage part 2 calls this after persisting a block range).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::append::LabelSource;
use super::{Head, stripe};

/// What [`Head::truncate_before`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncated {
    /// Samples dropped.
    pub samples: u64,
    /// Series removed because they had no samples left.
    pub series: u64,
}

impl Head {
    /// Drops every sample older than `t` (callers first persist them into a block) and removes
    /// the series left empty; appends older than `t` are out of bounds from now on. Holds the
    /// commit lock while it runs, so commits wait and see a consistent head.
    pub fn truncate_before(&self, t: i64) -> Truncated {
        self.set_min_valid_time(t);
        let _commits = self.commit.lock();
        let all: Vec<_> =
            self.by_ref.iter().flat_map(|s| s.read().values().cloned().collect::<Vec<_>>()).collect();
        let mut out = Truncated::default();
        let mut removed = Vec::new();
        let mut freed = 0usize;
        for s in all {
            let mut inner = s.inner.lock();
            let (samples, bytes, empty) = inner.drop_before(t);
            out.samples += samples;
            freed += bytes;
            if empty {
                inner.removed = true;
                drop(inner);
                removed.push(s);
            }
        }
        if !removed.is_empty() {
            let syms = self.symbols.read();
            let mut unindex = Vec::with_capacity(removed.len());
            for s in &removed {
                let labels = self.labels_of(s, &syms);
                let hash = labels.label_hash();
                if let Some(shard) = self.by_hash.get(stripe(hash)) {
                    let mut shard = shard.write();
                    if let Some(list) = shard.get_mut(&hash) {
                        list.retain(|x| !Arc::ptr_eq(x, s));
                        if list.is_empty() {
                            shard.remove(&hash);
                        }
                    }
                }
                if let Some(shard) = self.by_ref.get(stripe(s.sref)) {
                    shard.write().remove(&s.sref);
                }
                freed += super::series_heap_bytes(s);
                unindex.push((
                    s.sref,
                    labels.iter().map(|l| (Arc::clone(&l.name), Arc::clone(&l.value))).collect(),
                ));
            }
            drop(syms);
            self.index.write().remove(&unindex);
            let mut alias = self.replay_alias.lock();
            alias.retain(|_, target| self.series_by_ref(*target).is_some());
        }
        out.series = removed.len() as u64;
        self.counters.heap_bytes.fetch_sub(freed as i64, Ordering::Relaxed);
        self.min_time.fetch_max(t, Ordering::AcqRel);
        out
    }

    /// Makes appends older than `t` out of bounds and waits for a commit in progress (which
    /// may have checked its samples against the earlier bound) to finish.
    pub fn seal_before(&self, t: i64) {
        self.set_min_valid_time(t);
        drop(self.commit.lock());
    }

    /// Whether WAL series ref `sref` (or the series replay mapped it onto) is still in the head.
    pub fn has_series_ref(&self, sref: u64) -> bool {
        let target = self.replay_alias.lock().get(&sref).copied().unwrap_or(sref);
        self.series_by_ref(target).is_some()
    }
}
