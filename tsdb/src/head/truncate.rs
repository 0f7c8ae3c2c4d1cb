//! Dropping from the head what a block now holds: chunks older than a time, and the series
//! left without samples (storage part 2 calls this after persisting a block range).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::series::MemSeries;
use super::{Head, slot_hash, stripe};

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
            self.by_ref.iter().flat_map(|s| s.read().iter().cloned().collect::<Vec<_>>()).collect();
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
            for s in &removed {
                for (table, key) in [(&self.by_hash, s.hash), (&self.by_ref, s.sref)] {
                    if let Some(shard) = table.get(stripe(key))
                        && let Ok(e) = shard.write().find_entry(slot_hash(key), |x| Arc::ptr_eq(x, s))
                    {
                        e.remove();
                    }
                }
                freed += super::series_heap_bytes(s);
            }
            let unindex: Vec<_> = {
                let syms = self.symbols.read();
                removed
                    .iter()
                    .map(|s| {
                        (
                            s.sref,
                            s.labels
                                .iter()
                                .map(|(n, v)| (Arc::clone(syms.get(n)), Arc::clone(syms.get(v))))
                                .collect(),
                        )
                    })
                    .collect()
            };
            self.index.write().remove(&unindex);
            let mut alias = self.replay_alias.lock();
            alias.retain(|_, target| self.series_by_ref(*target).is_some());
        }
        out.series = removed.len() as u64;
        self.release_symbols(removed);
        self.counters.heap_bytes.fetch_sub(freed as i64, Ordering::Relaxed);
        self.min_time.fetch_max(t, Ordering::AcqRel);
        out
    }

    /// Releases the symbols of removed series that nothing holds any more (a commit or a
    /// querier that still holds one may resolve its label ids; it waits for the next truncation).
    fn release_symbols(&self, removed: Vec<Arc<MemSeries>>) {
        let mut held = self.removed.lock();
        held.extend(removed);
        if held.is_empty() {
            return;
        }
        let mut syms = self.symbols.write();
        // Only this list holds a series whose count is 1: nothing can clone it any more (it
        // is in no table and in no index).
        held.retain(|s| {
            if Arc::strong_count(s) > 1 {
                return true;
            }
            for (n, v) in s.labels.iter() {
                syms.release(n);
                syms.release(v);
            }
            false
        });
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::appender::Appender;
    use crate::head::{Head, HeadOptions, HeadQuerier};
    use crate::model::{Labels, Matcher};
    use crate::querier::Querier;

    /// Generation `g` of a node: one node series that lives on, and pods with new names and
    /// container ids.
    fn generation(g: i64) -> Vec<Labels> {
        let mut out = vec![Labels::from_pairs([("__name__", "up"), ("job", "node")])];
        for i in 0..20 {
            out.push(Labels::from_pairs([
                ("__name__", "container_cpu_usage_seconds_total".to_string()),
                ("id", format!("/kubepods/pod-{g}-{i}/cri-containerd-{:x}.scope", g * 1000 + i)),
                ("pod", format!("web-{g}-{i}")),
            ]));
        }
        out
    }

    fn strings(sets: &[Labels]) -> BTreeSet<String> {
        sets.iter().flat_map(|l| l.iter().flat_map(|x| [x.name.to_string(), x.value.to_string()])).collect()
    }

    fn all_labels(head: &Arc<Head>) -> Vec<Labels> {
        let q = HeadQuerier::new(Arc::clone(head));
        let m = [Matcher::new(crate::model::MatchOp::Regex, "__name__", ".+").unwrap()];
        q.select(&m, i64::MIN, i64::MAX).unwrap().map(|s| s.labels().clone()).collect()
    }

    /// Under pod churn the symbol table holds the strings of the series in the head and no
    /// others, and the series that arrive after their ids were reused read back their own labels.
    #[test]
    fn symbols_of_removed_series_are_released() {
        let head = Arc::new(Head::new(HeadOptions::default(), false));
        for g in 0..6i64 {
            let sets = generation(g);
            let mut app = Box::new(head.appender());
            for l in &sets {
                for k in 0..3 {
                    app.append(l, g * 10_000 + k, k as f64).unwrap();
                }
            }
            app.commit().unwrap();
            head.truncate_before(g * 10_000);
            let mut want = sets.clone();
            want.sort();
            assert_eq!(all_labels(&head), want, "generation {g}");
            assert_eq!(head.stats().symbols, strings(&sets).len() as u64, "generation {g}");
        }
    }

    /// A series that a commit still holds when truncation removes it keeps its symbols until a
    /// later truncation finds it unheld: the commit resolves its labels and appends to a fresh
    /// series with the same labels.
    #[test]
    fn a_held_removed_series_keeps_its_symbols_until_released() {
        let head = Arc::new(Head::new(HeadOptions::default(), false));
        let old = generation(0);
        let mut app = Box::new(head.appender());
        for l in &old {
            app.append(l, 0, 1.0).unwrap();
        }
        app.commit().unwrap();
        let pod = old[1].clone();
        let mut pending = Box::new(head.appender());
        pending.append(&pod, 20_000, 2.0).unwrap();
        let new = generation(1);
        let mut app = Box::new(head.appender());
        for l in &new {
            app.append(l, 10_000, 1.0).unwrap();
        }
        app.commit().unwrap();
        assert_eq!(head.truncate_before(10_000).series, 20);
        let mut held = new.clone();
        held.push(pod.clone());
        assert_eq!(head.stats().symbols, strings(&held).len() as u64, "the held series' strings stay");
        pending.commit().unwrap();
        let mut want = held.clone();
        want.sort();
        assert_eq!(all_labels(&head), want);
        assert_eq!(head.truncate_before(15_000).series, 21, "gen 1 and the node series");
        assert_eq!(all_labels(&head), vec![pod.clone()]);
        assert_eq!(head.stats().symbols, strings(&[pod]).len() as u64);
    }
}
