//! The read boundary: the query engine and the HTTP API read samples only through a [`Querier`].

use crate::model::{Labels, Matcher, Sample};

/// A read failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Stored data could not be decoded.
    #[error("corrupt data in {location}: {reason}")]
    Corruption {
        /// Which file, block or chunk.
        location: String,
        /// What was wrong.
        reason: String,
    },
    /// An I/O error while reading.
    #[error("read {path}")]
    Io {
        /// The file being read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Iterates over the samples of one series in increasing timestamp order.
pub trait SampleIter: Send {
    /// The next sample, or `None` at the end.
    fn next(&mut self) -> Option<Sample>;

    /// Moves to the first sample with timestamp `>= t` and returns it; `next` then returns the
    /// sample after it. Never moves backwards: if the sample found by the previous `next` or `seek`
    /// is already at or after `t`, that sample is returned again.
    fn seek(&mut self, t: i64) -> Option<Sample>;

    /// The error that ended iteration early, if any (corrupt chunk, failed read).
    fn err(&self) -> Option<&QueryError> {
        None
    }
}

/// One selected series: its labels and a way to iterate its samples in the selected range.
pub trait Series: Send + Sync {
    /// The series' labels.
    fn labels(&self) -> &Labels;

    /// A fresh iterator over the series' samples within the `select`ed `[mint, maxt]`.
    fn iter(&self) -> Box<dyn SampleIter + '_>;
}

/// The series a `select` returns, in label order.
pub type SeriesSet<'a> = Box<dyn Iterator<Item = Box<dyn Series + 'a>> + 'a>;

/// A consistent read view of the store.
///
/// Contract:
/// - **Snapshot.** A querier sees exactly what was committed before it was created, and nothing
///   committed later; concurrent appends never show half a batch.
/// - **Concurrency.** `Querier` is `Sync`: one querier may serve several threads. Creating one is
///   cheap; hold it only for the duration of one query, since it can keep data alive.
/// - **Ranges** are inclusive milliseconds: `[mint, maxt]`.
pub trait Querier: Send + Sync {
    /// Series that satisfy every matcher and have samples in `[mint, maxt]`, sorted by labels.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError>;

    /// Sorted label names of the series that satisfy every matcher and have samples in
    /// `[mint, maxt]`.
    ///
    /// When the head's time range overlaps `[mint, maxt]`, it answers from its inverted index,
    /// with or without matchers, as Prometheus' head does: the answer then also holds names of
    /// head series that have no sample in the range, whose samples were deleted, or whose
    /// appends are not committed yet or were rolled back (until the head drops those series).
    /// `label_values` does the same.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError>;

    /// Sorted values of label `name` on the series that satisfy every matcher and have samples in
    /// `[mint, maxt]` (see `label_names` for the case without matchers).
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError>;

    /// The labels, sorted, of the series `/api/v1/series` lists for these matchers and range
    /// (Prometheus' `Select` with its "series" hint, which reads no sample). By default those
    /// `select` returns; a querier filtering the head through tombstones lists a head series
    /// whose samples in the range were all deleted, as Prometheus' head does until the series
    /// leaves the head (its open chunk is never covered by a tombstone).
    fn list_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        Ok(self.select(matchers, mint, maxt)?.map(|s| s.labels().clone()).collect())
    }
}

/// Something that hands out queriers (the head, a database).
pub trait Queryable: Send + Sync {
    /// A querier over what is committed now.
    fn querier(&self) -> Result<Box<dyn Querier>, QueryError>;
}

/// Whether `labels` satisfies every matcher (a missing label matches as the empty string).
pub fn matches_all(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

/// A [`SampleIter`] over a slice of samples in memory.
#[derive(Debug, Clone)]
pub struct SliceIter<'a> {
    samples: &'a [Sample],
    pos: usize,
}

impl<'a> SliceIter<'a> {
    /// Iterates over `samples`, which must be sorted by timestamp.
    pub fn new(samples: &'a [Sample]) -> Self {
        SliceIter { samples, pos: 0 }
    }
}

impl SampleIter for SliceIter<'_> {
    fn next(&mut self) -> Option<Sample> {
        slice_next(self.samples, &mut self.pos)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        slice_seek(self.samples, &mut self.pos, t)
    }
}

/// `next` over sorted `samples` where `pos` is the index of the sample `next` returns.
pub(crate) fn slice_next(samples: &[Sample], pos: &mut usize) -> Option<Sample> {
    let s = samples.get(*pos).copied();
    if s.is_some() {
        *pos += 1;
    }
    s
}

/// `seek` over sorted `samples`; never moves backwards from the sample `next` returned last.
pub(crate) fn slice_seek(samples: &[Sample], pos: &mut usize, t: i64) -> Option<Sample> {
    // The current sample is the one `next` returned last (at pos - 1).
    let start = pos.saturating_sub(1);
    let rest = samples.get(start..).unwrap_or(&[]);
    let i = start + rest.partition_point(|s| s.t < t);
    let s = samples.get(i).copied();
    *pos = if s.is_some() { i + 1 } else { samples.len() };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_iter_seek_never_moves_backwards() {
        let s: Vec<Sample> = (0..5).map(|i| Sample::new(i * 10, i as f64)).collect();
        let mut it = SliceIter::new(&s);
        assert_eq!(it.seek(15), Some(Sample::new(20, 2.0)));
        assert_eq!(it.seek(5), Some(Sample::new(20, 2.0)));
        assert_eq!(it.next(), Some(Sample::new(30, 3.0)));
        assert_eq!(it.seek(41), None);
        assert_eq!(it.next(), None);
    }
}
