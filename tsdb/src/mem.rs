//! `MemHead`: a small in-memory store, kept for tests and tools that need a [`Queryable`] without a
//! data directory (PromQL test scripts, unit tests of the query engine).
//!
//! Not for production data: it has no WAL, no chunks and no index; `select` scans every series.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::appender::{AppendError, Appendable, Appender, CommitError, CommitSummary};
use crate::model::{Labels, Matcher, Sample};
use crate::querier::{Querier, QueryError, Queryable, SampleIter, Series, SeriesSet, SliceIter, matches_all};

type Map = BTreeMap<Labels, Arc<Vec<Sample>>>;

/// An in-memory store without durability. See the module documentation.
#[derive(Debug, Default)]
pub struct MemHead {
    series: RwLock<Arc<Map>>,
}

impl MemHead {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every series.
    pub fn clear(&self) {
        *self.series.write() = Arc::new(Map::new());
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.series.read().len()
    }
}

impl Appendable for MemHead {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender { head: self, batch: Vec::new() })
    }
}

impl Queryable for MemHead {
    fn querier(&self) -> Result<Box<dyn Querier>, QueryError> {
        Ok(Box::new(MemQuerier { snapshot: Arc::clone(&self.series.read()) }))
    }
}

struct MemAppender<'a> {
    head: &'a MemHead,
    batch: Vec<(Labels, Sample)>,
}

fn last_in(series: &Map, batch: &[(Labels, Sample)], labels: &Labels) -> Option<Sample> {
    batch
        .iter()
        .rev()
        .find(|(l, _)| l == labels)
        .map(|(_, s)| *s)
        .or_else(|| series.get(labels).and_then(|s| s.last().copied()))
}

impl Appender for MemAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        if let Some(reason) = crate::validate::label_problem(labels) {
            return Err(AppendError::InvalidLabels { series: labels.to_string(), reason });
        }
        let last = last_in(&self.head.series.read(), &self.batch, labels);
        if let Some(last) = last {
            if t < last.t {
                return Err(AppendError::OutOfOrder { series: labels.to_string(), t, last: last.t });
            }
            if t == last.t {
                if last.v.to_bits() == v.to_bits() {
                    return Ok(());
                }
                return Err(AppendError::DuplicateTimestamp { series: labels.to_string(), t });
            }
        }
        self.batch.push((labels.clone(), Sample::new(t, v)));
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<CommitSummary, CommitError> {
        let mut guard = self.head.series.write();
        let map = Arc::make_mut(&mut guard);
        let mut summary = CommitSummary::default();
        for (labels, sample) in self.batch {
            let samples = map.entry(labels).or_insert_with(|| {
                summary.new_series += 1;
                Arc::new(Vec::new())
            });
            let samples = Arc::make_mut(samples);
            // Re-check order: another appender may have committed newer samples since `append`.
            if samples.last().is_none_or(|last| last.t < sample.t) {
                samples.push(sample);
                summary.samples += 1;
            }
        }
        Ok(summary)
    }

    fn rollback(self: Box<Self>) {}
}

struct MemQuerier {
    snapshot: Arc<Map>,
}

struct MemSeries {
    labels: Labels,
    samples: Vec<Sample>,
}

impl Series for MemSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn iter(&self) -> Box<dyn SampleIter + '_> {
        Box::new(SliceIter::new(&self.samples))
    }
}

impl MemQuerier {
    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        mint: i64,
        maxt: i64,
    ) -> impl Iterator<Item = (&'a Labels, &'a [Sample])> + 'a {
        self.snapshot.iter().filter(move |(l, _)| matches_all(l, matchers)).filter_map(move |(l, s)| {
            let lo = s.partition_point(|x| x.t < mint);
            let hi = s.partition_point(|x| x.t <= maxt);
            let window = s.get(lo..hi).unwrap_or(&[]);
            (!window.is_empty()).then_some((l, window))
        })
    }
}

impl Querier for MemQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        let out: Vec<Box<dyn Series>> = self
            .matching(matchers, mint, maxt)
            .map(|(l, s)| Box::new(MemSeries { labels: l.clone(), samples: s.to_vec() }) as Box<dyn Series>)
            .collect();
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        let mut names: Vec<String> = self
            .matching(matchers, mint, maxt)
            .flat_map(|(l, _)| l.iter().map(|l| l.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values: Vec<String> = self
            .matching(matchers, mint, maxt)
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    fn collect(q: &dyn Querier, m: &[Matcher]) -> Vec<(String, Vec<Sample>)> {
        let mut out = Vec::new();
        for s in q.select(m, i64::MIN, i64::MAX).into_iter().flatten() {
            let mut it = s.iter();
            let mut v = Vec::new();
            while let Some(x) = it.next() {
                v.push(x);
            }
            out.push((s.labels().to_string(), v));
        }
        out
    }

    #[test]
    fn committed_samples_are_visible_and_rolled_back_ones_are_not() -> Result<(), Box<dyn std::error::Error>>
    {
        let head = MemHead::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        let mut app = head.appender();
        app.append(&a, 1, 1.0)?;
        app.commit()?;
        let before = head.querier()?;
        let mut app = head.appender();
        app.append(&a, 2, 2.0)?;
        app.rollback();
        let mut app = head.appender();
        assert!(matches!(app.append(&a, 0, 0.0), Err(AppendError::OutOfOrder { .. })));
        app.append(&a, 3, 3.0)?;
        app.commit()?;
        let m = [Matcher::new(MatchOp::Equal, "__name__", "a")?];
        assert_eq!(collect(before.as_ref(), &m), vec![("a{}".to_string(), vec![Sample::new(1, 1.0)])]);
        assert_eq!(
            collect(head.querier()?.as_ref(), &m),
            vec![("a{}".to_string(), vec![Sample::new(1, 1.0), Sample::new(3, 3.0)])]
        );
        Ok(())
    }
}
