//! The write boundary: everything that stores samples goes through an [`Appender`].

use crate::model::{Labels, ProtoLabels};

/// Why one sample was not appended. The rest of the batch is unaffected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    /// The sample is older than the newest sample already stored for its series.
    #[error("out of order sample for series {series}: timestamp {t} is before the last sample at {last}")]
    OutOfOrder {
        /// The series, formatted as Prometheus does.
        series: String,
        /// Timestamp of the rejected sample.
        t: i64,
        /// Timestamp of the newest stored sample.
        last: i64,
    },
    /// Same timestamp as the newest sample of its series but a different value.
    #[error("duplicate sample for timestamp {t} with a different value for series {series}")]
    DuplicateTimestamp {
        /// The series, formatted as Prometheus does.
        series: String,
        /// Timestamp of the rejected sample.
        t: i64,
    },
    /// Older than anything the head still accepts.
    #[error("out of bounds: timestamp {t} is before the oldest accepted timestamp {min_valid}")]
    OutOfBounds {
        /// Timestamp of the rejected sample.
        t: i64,
        /// The oldest timestamp the head accepts now.
        min_valid: i64,
    },
    /// The label set is not valid.
    #[error("invalid labels {series}: {reason}")]
    InvalidLabels {
        /// The series, formatted as Prometheus does.
        series: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A commit could not be made durable. Nothing of the batch is visible to queries.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Writing the batch to the write-ahead log failed.
    #[error("write WAL")]
    Wal(#[source] std::io::Error),
    /// The store was opened read-only (`Db::open_read_only`).
    #[error("the store is open read-only")]
    ReadOnly,
}

/// What a commit stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitSummary {
    /// Samples made visible and durable.
    pub samples: u64,
    /// Series created by this batch.
    pub new_series: u64,
}

/// Where a store keeps a series, handed out by [`Appender::append_proto_hinted`] so that a
/// caller that sees the same label bytes again skips the label lookup (as Prometheus' scrape
/// cache keeps series refs by the exposition line). Opaque; only meaningful to the store that
/// made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesHint {
    /// Which store made the hint (a process-unique id).
    pub(crate) store: u64,
    /// The series' ref in that store.
    pub(crate) sref: u64,
}

/// A batch of appends that becomes visible and durable at once on [`Appender::commit`].
///
/// Contract:
/// - **Single use.** `commit` and `rollback` consume the appender; it cannot be reused.
/// - **Not shared.** An appender is used by one thread; open one per writer. Many appenders may be
///   open at the same time.
/// - **Per-sample errors.** [`Appender::append`] validates each sample at once and returns why it
///   was rejected; a rejected sample is not part of the batch and the rest of the batch is
///   unaffected. A caller that wants all-or-nothing calls `rollback` on the first error.
/// - **Order.** Within one series, samples must be appended in increasing timestamp order.
/// - **Durability.** When `commit` returns `Ok`, the batch is in the write-ahead log: a `kill -9`
///   of the process after that loses none of it. What a power loss can lose is bounded by the
///   WAL's fsync policy. Queries created after `commit` returns see the whole batch; queries never
///   see part of an uncommitted batch.
pub trait Appender: Send {
    /// Adds one sample to the batch, or says why it cannot be stored.
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError>;

    /// Same as [`Appender::append`] for labels borrowed from a request buffer, as `(name, value)`
    /// pairs. Pairs sorted by name without empty values (what remote write requires) let the head
    /// find an existing series without allocating; anything else is normalized as
    /// [`Labels::from_pairs`] does (sorted, empty values dropped) and then validated.
    fn append_pairs(&mut self, labels: &[(&str, &str)], t: i64, v: f64) -> Result<(), AppendError> {
        self.append(&Labels::from_pairs(labels.iter().copied()), t, v)
    }

    /// Same as [`Appender::append_pairs`] for labels that come with their remote-write encoding
    /// (checked canonical by [`ProtoLabels::parse`]): the head hashes the encoded bytes at once
    /// and compares an existing series' labels with the strings in place.
    fn append_proto(&mut self, labels: &ProtoLabels<'_>, t: i64, v: f64) -> Result<(), AppendError> {
        let pairs: Vec<(&str, &str)> = labels.pairs().collect();
        self.append_pairs(&pairs, t, v)
    }

    /// Same as [`Appender::append_proto`], with a [`SeriesHint`] an earlier call returned for
    /// byte-identical `labels.encoded()` (the caller checks that, e.g. in a cache keyed by the
    /// encoded bytes): a store finds the series from the hint without comparing labels, and
    /// looks the labels up as usual when the hint is not its own or the series is gone. Returns
    /// the hint for the series the sample was filed under (`None` when the labels were rejected
    /// or the store has no hints), whether or not the sample itself was accepted.
    fn append_proto_hinted(
        &mut self,
        hint: Option<SeriesHint>,
        labels: &ProtoLabels<'_>,
        t: i64,
        v: f64,
    ) -> (Option<SeriesHint>, Result<(), AppendError>) {
        let _ = hint;
        (None, self.append_proto(labels, t, v))
    }

    /// Makes the batch durable and visible.
    fn commit(self: Box<Self>) -> Result<CommitSummary, CommitError>;

    /// Discards the batch.
    fn rollback(self: Box<Self>);
}

/// Something that hands out appenders (the head, a database).
pub trait Appendable: Send + Sync {
    /// A new, empty batch.
    fn appender(&self) -> Box<dyn Appender + '_>;
}
