//! One [`Querier`] over several: the head and the blocks (or several block sets). Series with
//! the same labels are merged by time; a timestamp present in more than one source is returned
//! once, from the first source that has it (list the head first: it holds the newest data).

use super::querier::VecIter;
use crate::model::{Labels, Matcher, Sample};
use crate::querier::{Querier, QueryError, SampleIter, Series, SeriesSet};

/// Merges the answers of several queriers.
pub struct MergeQuerier {
    parts: Vec<Box<dyn Querier>>,
}

impl std::fmt::Debug for MergeQuerier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeQuerier").field("parts", &self.parts.len()).finish()
    }
}

impl MergeQuerier {
    /// A querier over `parts`, in priority order.
    pub fn new(parts: Vec<Box<dyn Querier>>) -> Self {
        MergeQuerier { parts }
    }
}

/// The same series from several parts (at least two), in priority order.
struct Merged<'a> {
    first: Box<dyn Series + 'a>,
    rest: Vec<Box<dyn Series + 'a>>,
}

impl Series for Merged<'_> {
    fn labels(&self) -> &Labels {
        self.first.labels()
    }

    fn iter(&self) -> Box<dyn SampleIter + '_> {
        let mut all: Vec<(i64, usize, Sample)> = Vec::new();
        for (k, p) in std::iter::once(&self.first).chain(&self.rest).enumerate() {
            let mut it = p.iter();
            while let Some(s) = it.next() {
                all.push((s.t, k, s));
            }
            if let Some(e) = it.err() {
                let err = QueryError::Corruption { location: "merged series".into(), reason: e.to_string() };
                return Box::new(VecIter::with_error(Vec::new(), Some(err)));
            }
        }
        all.sort_by_key(|x| (x.0, x.1));
        all.dedup_by_key(|x| x.0);
        Box::new(VecIter::with_error(all.into_iter().map(|x| x.2).collect(), None))
    }
}

#[cfg(test)]
impl MergeQuerier {
    /// The straightforward merge the optimised `select` is checked against: every series of
    /// every part into one map by labels.
    pub(crate) fn select_naive(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<SeriesSet<'_>, QueryError> {
        let mut by: std::collections::BTreeMap<Labels, Vec<Box<dyn Series + '_>>> = Default::default();
        for q in &self.parts {
            for s in q.select(matchers, mint, maxt)? {
                by.entry(s.labels().clone()).or_default().push(s);
            }
        }
        Ok(Box::new(by.into_values().filter_map(|parts| {
            let mut parts = parts.into_iter();
            let first = parts.next()?;
            Some(Box::new(Merged { first, rest: parts.collect() }) as Box<dyn Series + '_>)
        })))
    }
}

#[expect(clippy::borrowed_box, reason = "the key of the items MergeSorted holds, which are boxes")]
fn labels_of<'a>(s: &'a Box<dyn Series + '_>) -> &'a Labels {
    s.labels()
}

impl Querier for MergeQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        // Each part answers in label order; parts without a matching series drop out, and when
        // only one part is left its answer passes through untouched.
        let mut started: Vec<(Option<Box<dyn Series + '_>>, SeriesSet<'_>)> = Vec::new();
        for q in &self.parts {
            let mut set = q.select(matchers, mint, maxt)?;
            if let Some(first) = set.next() {
                started.push((Some(first), set));
            }
        }
        if started.len() <= 1 {
            let Some((first, rest)) = started.pop() else { return Ok(Box::new(std::iter::empty())) };
            return Ok(Box::new(first.into_iter().chain(rest)));
        }
        Ok(Box::new(MergeSorted::new(started, labels_of).filter_map(
            |mut parts: Vec<Box<dyn Series + '_>>| {
                if parts.len() == 1 {
                    return parts.pop();
                }
                let mut parts = parts.into_iter();
                let first = parts.next()?;
                Some(Box::new(Merged { first, rest: parts.collect() }) as Box<dyn Series + '_>)
            },
        )))
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        let mut out = std::collections::BTreeSet::new();
        for q in &self.parts {
            out.extend(q.label_names(matchers, mint, maxt)?);
        }
        Ok(out.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut out = std::collections::BTreeSet::new();
        for q in &self.parts {
            out.extend(q.label_values(name, matchers, mint, maxt)?);
        }
        Ok(out.into_iter().collect())
    }

    fn list_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        let mut lists: Vec<Vec<Labels>> = Vec::new();
        for q in &self.parts {
            let l = q.list_series(matchers, mint, maxt)?;
            if !l.is_empty() {
                lists.push(l);
            }
        }
        if lists.len() <= 1 {
            return Ok(lists.pop().unwrap_or_default());
        }
        let mut all: Vec<Labels> = lists.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

/// Groups the items of several streams, each in strictly increasing label order, by labels:
/// yields the groups in label order, each holding the items with those labels in stream order.
/// Costs one label comparison per stream per group; nothing is allocated to compare.
pub(crate) struct MergeSorted<T, I: Iterator<Item = T>> {
    heads: Vec<Option<T>>,
    rest: Vec<I>,
    labels: fn(&T) -> &Labels,
}

impl<T, I: Iterator<Item = T>> MergeSorted<T, I> {
    /// Merges `streams` (already started: each with its first item, if any, and the rest).
    pub(crate) fn new(streams: Vec<(Option<T>, I)>, labels: fn(&T) -> &Labels) -> Self {
        let (heads, rest) = streams.into_iter().unzip();
        MergeSorted { heads, rest, labels }
    }
}

impl<T, I: Iterator<Item = T>> Iterator for MergeSorted<T, I> {
    type Item = Vec<T>;

    fn next(&mut self) -> Option<Vec<T>> {
        // The streams whose head has the smallest labels.
        let mut lowest: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
        let mut min: Option<&T> = None;
        for (k, h) in self.heads.iter().enumerate() {
            let Some(x) = h else { continue };
            match min.map(|m| (self.labels)(x).cmp((self.labels)(m))) {
                Some(std::cmp::Ordering::Greater) => {}
                Some(std::cmp::Ordering::Equal) => lowest.push(k),
                _ => {
                    lowest.clear();
                    lowest.push(k);
                    min = Some(x);
                }
            }
        }
        if lowest.is_empty() {
            return None;
        }
        let mut group = Vec::with_capacity(lowest.len());
        for k in lowest {
            if let (Some(h), Some(r)) = (self.heads.get_mut(k), self.rest.get_mut(k)) {
                group.extend(std::mem::replace(h, r.next()));
            }
        }
        Some(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(i: u8) -> Labels {
        Labels::from_pairs([("__name__", "m".to_string()), ("i", format!("{i:03}"))])
    }

    proptest! {
        /// Against a map of all items: the same groups, in the same order.
        #[test]
        fn groups_like_a_map(streams in proptest::collection::vec(proptest::collection::btree_set(0u8..40, 0..20), 0..6)) {
            let mut want: std::collections::BTreeMap<Labels, Vec<usize>> = Default::default();
            for (k, s) in streams.iter().enumerate() {
                for &i in s {
                    want.entry(l(i)).or_default().push(k);
                }
            }
            let started = streams
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let mut it = s.iter().map(move |&i| (l(i), k)).collect::<Vec<_>>().into_iter();
                    (it.next(), it)
                })
                .collect();
            let got: Vec<(Labels, Vec<usize>)> = MergeSorted::new(started, |x: &(Labels, usize)| &x.0)
                .map(|g| (g[0].0.clone(), g.iter().map(|x| x.1).collect()))
                .collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }
}
