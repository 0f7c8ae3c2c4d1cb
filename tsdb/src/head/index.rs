//! The head's inverted index: label name → label value → sorted series refs ("postings"), so that
//! `select` reads only the series its matchers can match.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3Builder;

use super::postings::Postings;
use crate::model::{MatchOp, Matcher};

/// A series ref and the label pairs it was indexed with.
pub(crate) type Indexed = (u64, Vec<(Arc<str>, Arc<str>)>);

#[derive(Debug, Default)]
pub(crate) struct Index {
    names: HashMap<Arc<str>, BTreeMap<Arc<str>, Postings>, Xxh3Builder>,
    /// Every series; `None` when there is none.
    all: Option<Postings>,
}

impl Index {
    /// Adds series `r` with these labels.
    pub(crate) fn add(&mut self, r: u64, labels: &[(Arc<str>, Arc<str>)]) {
        for (n, v) in labels {
            let values = match self.names.get_mut(n.as_ref()) {
                Some(v) => v,
                None => self.names.entry(Arc::clone(n)).or_default(),
            };
            match values.get_mut(v.as_ref()) {
                Some(p) => p.insert(r),
                None => {
                    values.insert(Arc::clone(v), Postings::new(r));
                }
            }
        }
        match &mut self.all {
            Some(all) => all.insert(r),
            None => self.all = Some(Postings::new(r)),
        }
    }

    /// Removes these series (ref and the labels they were indexed with), in one pass over each
    /// touched postings list; empty postings, values and names go too.
    pub(crate) fn remove(&mut self, series: &[Indexed]) {
        let mut by_pair: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
        for (r, labels) in series {
            for (n, v) in labels {
                by_pair.entry((n.as_ref(), v.as_ref())).or_default().push(*r);
            }
        }
        for ((n, v), mut refs) in by_pair {
            refs.sort_unstable();
            let Some(values) = self.names.get_mut(n) else { continue };
            if let Some(p) = values.get_mut(v)
                && !p.remove_sorted(&refs)
            {
                values.remove(v);
            }
            if values.is_empty() {
                self.names.remove(n);
            }
        }
        let mut refs: Vec<u64> = series.iter().map(|(r, _)| *r).collect();
        refs.sort_unstable();
        if let Some(all) = &mut self.all
            && !all.remove_sorted(&refs)
        {
            self.all = None;
        }
    }

    /// Number of series indexed.
    pub(crate) fn num_series(&self) -> usize {
        self.all.as_ref().map_or(0, Postings::len)
    }

    /// Every label name, sorted.
    pub(crate) fn label_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.names.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// Every value of `name`, sorted.
    pub(crate) fn label_values(&self, name: &str) -> Vec<String> {
        self.names.get(name).map(|vals| vals.keys().map(|k| k.to_string()).collect()).unwrap_or_default()
    }

    /// The values of `name` carried by at least one series of `refs` (sorted, distinct), found
    /// by intersecting each value's postings with `refs`, as Prometheus'
    /// `FindIntersectingPostings` does; `None` when that would read more postings entries than
    /// reading the labels of every series in `refs` costs (a label with about as many values as
    /// there are series, like `pod`), so the caller does that instead.
    pub(crate) fn values_among(&self, name: &str, refs: &[u64]) -> Option<Vec<String>> {
        let Some(values) = self.names.get(name) else { return Some(Vec::new()) };
        // A series lookup and label scan costs about as much as decoding a few dozen postings
        // entries; each value's scan stops at its first common ref, so this bound is pessimistic.
        let entries: usize = values.values().map(Postings::len).sum();
        if entries > refs.len().saturating_mul(VALUES_AMONG_ENTRIES_PER_SERIES) {
            return None;
        }
        Some(values.iter().filter(|(_, p)| intersects(p.iter(), refs)).map(|(v, _)| v.to_string()).collect())
    }

    /// Union of the postings of the values of `m.name` that `m` accepts (or rejects, when
    /// `accepted` is false).
    fn postings_where(&self, m: &Matcher, accepted: bool) -> Vec<u64> {
        let Some(values) = self.names.get(m.name.as_str()) else { return Vec::new() };
        let mut lists: Vec<&Postings> = Vec::new();
        if accepted {
            match (m.op, m.literal_values(), m.literal_prefix()) {
                (MatchOp::Equal | MatchOp::Regex, Some(set), _) => {
                    lists.extend(set.iter().filter_map(|v| values.get(v.as_str())));
                }
                (MatchOp::Regex, None, Some(prefix)) => {
                    lists.extend(
                        values
                            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
                            .take_while(|(v, _)| v.starts_with(prefix))
                            .filter(|(v, _)| m.matches(v))
                            .map(|(_, p)| p),
                    );
                }
                _ => lists.extend(values.iter().filter(|(v, _)| m.matches(v)).map(|(_, p)| p)),
            }
        } else {
            lists.extend(values.iter().filter(|(v, _)| !m.matches(v)).map(|(_, p)| p));
        }
        union(&lists)
    }

    /// The refs of the series that satisfy every matcher, sorted.
    pub(crate) fn postings_for(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut positive: Option<Vec<u64>> = None;
        let mut negative: Vec<Vec<u64>> = Vec::new();
        // Cheapest first: equality matchers narrow the set before regexes run.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| match m.op {
            MatchOp::Equal => 0,
            MatchOp::Regex => 1,
            MatchOp::NotEqual => 2,
            MatchOp::NotRegex => 3,
        });
        for m in ordered {
            if m.matches_empty() {
                // Series without the label match; remove those whose value `m` rejects.
                negative.push(self.postings_where(m, false));
            } else {
                let p = self.postings_where(m, true);
                positive = Some(match positive {
                    None => p,
                    Some(prev) => intersect(&prev, &p),
                });
                if positive.as_ref().is_some_and(Vec::is_empty) {
                    return Vec::new();
                }
            }
        }
        let mut out = positive.unwrap_or_else(|| self.all.as_ref().map(Postings::to_vec).unwrap_or_default());
        for n in &negative {
            if !n.is_empty() {
                out = difference(&out, n);
            }
        }
        out
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        // A BTreeMap entry (key, list) is 32 bytes in nodes of 11 that are half to fully used.
        let mut b = self.all.as_ref().map_or(0, Postings::heap_bytes);
        for values in self.names.values() {
            b += 48;
            for p in values.values() {
                b += 48 + p.heap_bytes();
            }
        }
        b
    }
}

/// Sorted, deduplicated union.
pub(crate) fn union(lists: &[&Postings]) -> Vec<u64> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut v: Vec<u64> = lists.iter().flat_map(|p| p.iter()).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

/// Sorted intersection of two sorted lists.
pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (a.iter().peekable(), b.iter().peekable());
    while let (Some(&&x), Some(&&y)) = (i.peek(), j.peek()) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => {
                i.next();
            }
            std::cmp::Ordering::Greater => {
                j.next();
            }
            std::cmp::Ordering::Equal => {
                out.push(x);
                i.next();
                j.next();
            }
        }
    }
    out
}

/// How many postings entries [`Index::values_among`] may read per series it would otherwise
/// resolve.
const VALUES_AMONG_ENTRIES_PER_SERIES: usize = 16;

/// Whether increasing `a` and sorted `b` share a ref; stops at the first one.
fn intersects(a: impl Iterator<Item = u64>, mut b: &[u64]) -> bool {
    for x in a {
        // Skip what is below `x` in `b`; a long gap costs a binary search, not a walk.
        let skip = b.partition_point(|&y| y < x);
        b = b.get(skip..).unwrap_or(&[]);
        match b.first() {
            None => return false,
            Some(&y) if y == x => return true,
            Some(_) => {}
        }
    }
    false
}

/// Sorted `a` minus sorted `b`.
pub(crate) fn difference(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = b.iter().peekable();
    for &x in a {
        while j.peek().is_some_and(|&&y| y < x) {
            j.next();
        }
        if j.peek() != Some(&&x) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn set_operations_match_btreeset(a in proptest::collection::btree_set(0u64..100, 0..40), b in proptest::collection::btree_set(0u64..100, 0..40)) {
            let av: Vec<u64> = a.iter().copied().collect();
            let bv: Vec<u64> = b.iter().copied().collect();
            prop_assert_eq!(intersect(&av, &bv), a.intersection(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(difference(&av, &bv), a.difference(&b).copied().collect::<Vec<_>>());
            let (ap, bp) = (Postings::from_sorted(&av), Postings::from_sorted(&bv));
            let lists: Vec<&Postings> = [&ap, &bp].into_iter().flatten().collect();
            prop_assert_eq!(union(&lists), a.union(&b).copied().collect::<Vec<_>>());
        }

        /// Values found by postings intersection are exactly the values the series carry.
        #[test]
        fn values_among_agrees_with_reading_the_series(
            series in proptest::collection::vec(proptest::collection::btree_map("[ab]", "[xyz]{0,2}", 0..3), 1..40),
            picked in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut idx = Index::default();
            let mut all = Vec::new();
            for (r, l) in series.iter().enumerate() {
                let labels: Vec<(Arc<str>, Arc<str>)> = l.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str()))).collect();
                idx.add(r as u64 * 3, &labels);
                all.push(labels);
            }
            let refs: Vec<u64> = (0..all.len()).filter(|&i| picked.get(i) == Some(&true)).map(|i| i as u64 * 3).collect();
            for name in ["a", "b", "c"] {
                let want: BTreeSet<String> = refs.iter().filter_map(|r| all.get(*r as usize / 3)).filter_map(|l| l.iter().find(|(n, _)| n.as_ref() == name)).map(|(_, v)| v.to_string()).collect();
                if let Some(got) = idx.values_among(name, &refs) {
                    prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
                } else {
                    // Declined only when the postings outnumber what reading the series costs.
                    prop_assert!(all.len() > refs.len() * VALUES_AMONG_ENTRIES_PER_SERIES);
                }
            }
        }

        /// The index must select exactly what a scan with `Matcher::matches` selects.
        #[test]
        fn postings_agree_with_a_scan(
            series in proptest::collection::vec(proptest::collection::btree_map("[ab]", "(x|y|xy|yx|)", 0..3), 1..20),
            ms in proptest::collection::vec(("[ab]", 0..4usize, proptest::sample::select(vec!["x", "y", "xy", "", "x.*", ".*y", "x|y", "x|", ".+", ".*", "y\\.*"])), 0..3),
        ) {
            let mut idx = Index::default();
            let mut all = Vec::new();
            for (r, l) in series.iter().enumerate() {
                let labels: Vec<(Arc<str>, Arc<str>)> = l.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str()))).collect();
                idx.add(r as u64, &labels);
                all.push(labels);
            }
            let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];
            let matchers: Vec<Matcher> = ms.iter().map(|(n, op, v)| Matcher::new(ops[*op], n.as_str(), *v).unwrap()).collect();
            let want: BTreeSet<u64> = all.iter().enumerate().filter(|(_, l)| matchers.iter().all(|m| {
                let v = l.iter().find(|(n, _)| n.as_ref() == m.name).map(|(_, v)| v.as_ref()).unwrap_or("");
                m.matches(v)
            })).map(|(r, _)| r as u64).collect();
            prop_assert_eq!(idx.postings_for(&matchers), want.into_iter().collect::<Vec<_>>());
        }
    }
}
