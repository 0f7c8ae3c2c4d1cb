//! One [`Querier`] over several: the head and the blocks (or several block sets). Series with
//! the same labels are merged by time; a timestamp present in more than one source is returned
//! once, from the first source that has it (list the head first: it holds the newest data).

use std::collections::BTreeMap;

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

struct Merged<'a> {
    labels: Labels,
    parts: Vec<Box<dyn Series + 'a>>,
}

impl Series for Merged<'_> {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIter + '_> {
        if let [only] = self.parts.as_slice() {
            return only.iter();
        }
        let mut all: Vec<(i64, usize, Sample)> = Vec::new();
        for (k, p) in self.parts.iter().enumerate() {
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

impl Querier for MergeQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        let mut by: BTreeMap<Labels, Vec<Box<dyn Series + '_>>> = BTreeMap::new();
        for q in &self.parts {
            for s in q.select(matchers, mint, maxt)? {
                by.entry(s.labels().clone()).or_default().push(s);
            }
        }
        Ok(Box::new(
            by.into_iter().map(|(labels, parts)| Box::new(Merged { labels, parts }) as Box<dyn Series + '_>),
        ))
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
}
