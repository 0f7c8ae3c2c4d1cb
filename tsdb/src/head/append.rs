//! The head's appender: validates each sample at once, writes the batch to the WAL on commit,
//! then applies it.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::series::MemSeries;
use super::{Head, IdMap};
use crate::appender::{AppendError, Appender, CommitError, CommitSummary, SeriesHint};
use crate::model::{Labels, ProtoLabels, proto_labels_hash};
use crate::wal::RefSample;
use crate::wal::record::{SeriesEncoder, encode_samples};
use crate::wal::segment::begin_frame;

/// A label set as the head reads it: `num` pairs, sorted by name.
pub(crate) trait LabelSource {
    fn num(&self) -> usize;
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;

    /// The pairs as bytes, for comparing.
    fn byte_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
    }

    /// Whether the names are known to be strictly increasing and non-empty, so that validation
    /// only has to check the limits.
    fn checked_sorted(&self) -> bool {
        false
    }

    /// The hash the head files the series under ([`proto_labels_hash`]). Equal label sets
    /// hash equally whatever their representation.
    fn label_hash(&self) -> u64 {
        proto_labels_hash(self.pairs())
    }
}

impl LabelSource for Labels {
    fn num(&self) -> usize {
        self.len()
    }
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.as_slice().iter().map(|l| (l.name.as_ref(), l.value.as_ref()))
    }
}

impl LabelSource for [(&str, &str)] {
    fn num(&self) -> usize {
        self.len()
    }
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().copied()
    }
}

/// [`ProtoLabels`] whose names were checked to be sorted ([`ProtoLabels::is_sorted`]).
struct SortedProto<'p, 'a>(&'p ProtoLabels<'a>);

impl LabelSource for SortedProto<'_, '_> {
    fn num(&self) -> usize {
        self.0.len()
    }
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.pairs()
    }
    fn byte_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.byte_pairs()
    }
    fn label_hash(&self) -> u64 {
        self.0.hash()
    }
    fn checked_sorted(&self) -> bool {
        true
    }
}

/// Why a label set cannot be stored, or `None`.
fn label_problem<L: LabelSource + ?Sized>(l: &L, limits: &super::LabelLimits) -> Option<String> {
    let n = l.num();
    if n == 0 {
        return Some("empty label set".to_string());
    }
    if limits.max_label_names > 0 && n > limits.max_label_names {
        return Some(format!("{n} labels exceed the limit of {}", limits.max_label_names));
    }
    let check_names = !l.checked_sorted();
    let mut prev: Option<&str> = None;
    for (name, value) in l.pairs() {
        if check_names {
            if name.is_empty() {
                return Some("empty label name".to_string());
            }
            if prev == Some(name) {
                return Some(format!("label name {name:?} repeats"));
            }
        }
        if limits.max_name_length > 0 && name.len() > limits.max_name_length {
            return Some(format!(
                "label name of {} bytes exceeds the limit of {}",
                name.len(),
                limits.max_name_length
            ));
        }
        if limits.max_value_length > 0 && value.len() > limits.max_value_length {
            return Some(format!(
                "value of label {name:?} has {} bytes, more than the limit of {}",
                value.len(),
                limits.max_value_length
            ));
        }
        prev = Some(name);
    }
    None
}

struct Pending {
    series: Arc<MemSeries>,
    t: i64,
    v: u64,
    /// Set by the commit: the sample goes in (the series took no newer sample meanwhile).
    ok: bool,
}

/// The buffers of a [`HeadAppender`], empty between appenders.
#[derive(Default)]
pub(crate) struct AppendBufs {
    pending: Vec<Pending>,
    /// Newest sample of each series in the batch.
    batch_last: IdMap<(i64, u64)>,
}

/// Buffers the head keeps for reuse, and the most samples a kept buffer may have room for: a
/// batch of 4,096 samples (twice a remote-write request) keeps about 330 KiB; a bigger batch
/// frees its buffers.
const KEPT_BUFS: usize = 2;
const KEPT_BUF_SAMPLES: usize = 4096;

/// A batch of appends to the [`Head`]. See [`Appender`] for the contract.
pub struct HeadAppender<'a> {
    head: &'a Head,
    pending: Vec<Pending>,
    /// Newest sample of each series in this batch.
    batch_last: IdMap<(i64, u64)>,
    new_series: u64,
}

impl<'a> HeadAppender<'a> {
    pub(crate) fn new(head: &'a Head) -> Self {
        let AppendBufs { pending, batch_last } = head.append_bufs.lock().pop().unwrap_or_default();
        HeadAppender { head, pending, batch_last, new_series: 0 }
    }

    fn append_source<L: LabelSource + ?Sized>(
        &mut self,
        labels: &L,
        t: i64,
        v: f64,
        display: impl Fn() -> String,
    ) -> Result<(), AppendError> {
        let head = self.head;
        let c = &head.counters;
        if let Some(reason) = label_problem(labels, &head.opts.limits) {
            c.invalid_labels.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::InvalidLabels { series: display(), reason });
        }
        let min_valid = head.min_valid_append();
        if t < min_valid {
            c.out_of_bounds.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::OutOfBounds { t, min_valid });
        }
        let (series, created) = head.get_or_create(labels);
        if created {
            self.new_series += 1;
        }
        self.append_to(series, t, v, display)
    }

    /// Appends to a series found or created for a sample within bounds.
    fn append_to(
        &mut self,
        series: Arc<MemSeries>,
        t: i64,
        v: f64,
        display: impl Fn() -> String,
    ) -> Result<(), AppendError> {
        let c = &self.head.counters;
        let v_bits = v.to_bits();
        let entry = self.batch_last.entry(series.sref);
        let last = match &entry {
            Entry::Occupied(e) => Some(*e.get()),
            Entry::Vacant(_) => series.inner.lock().last(),
        };
        if let Some((lt, lv)) = last {
            if t < lt {
                c.out_of_order.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::OutOfOrder { series: display(), t, last: lt });
            }
            if t == lt {
                if lv == v_bits {
                    return Ok(());
                }
                c.duplicate.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::DuplicateTimestamp { series: display(), t });
            }
        }
        entry.insert_entry((t, v_bits));
        self.pending.push(Pending { series, t, v: v_bits, ok: false });
        Ok(())
    }

    fn commit_inner(mut self) -> Result<CommitSummary, CommitError> {
        let head = self.head;
        let c = &head.counters;
        if self.pending.is_empty() {
            c.commits.fetch_add(1, Ordering::Relaxed);
            return Ok(CommitSummary { samples: 0, new_series: self.new_series });
        }
        if head.read_only {
            return Err(CommitError::ReadOnly);
        }
        let mut state = head.commit.lock();
        let seq = state.seq + 1;
        // Head truncation (which holds the commit lock too) may have removed a series since
        // `append` found it, or raised the floor: append to a fresh series, drop what is too old.
        let floor = head.min_valid_time.load(Ordering::Acquire);
        let before = self.pending.len();
        self.pending.retain(|p| p.t >= floor);
        c.out_of_bounds.fetch_add((before - self.pending.len()) as u64, Ordering::Relaxed);
        // Another appender may have committed newer samples since `append` checked. One lock of
        // each series: `None` when it was removed; else whether the sample goes in and whether
        // the series needs its WAL record.
        let admit = |p: &Pending| {
            let mut inner = p.series.inner.lock();
            if inner.removed {
                return None;
            }
            if let Some((lt, lv)) = inner.last()
                && p.t <= lt
            {
                if p.t < lt {
                    c.out_of_order.fetch_add(1, Ordering::Relaxed);
                } else if lv != p.v {
                    c.duplicate.fetch_add(1, Ordering::Relaxed);
                }
                return Some((false, false));
            }
            let first_log = !inner.logged;
            inner.logged = true;
            Some((true, first_log))
        };
        let mut to_log: Vec<usize> = Vec::new();
        let mut accepted = 0usize;
        for (i, p) in self.pending.iter_mut().enumerate() {
            let (ok, first_log) = match admit(p) {
                Some(r) => r,
                None => {
                    let labels = head.labels_of(&p.series, &head.symbols.read());
                    let (fresh, created) = head.get_or_create(&labels);
                    if created {
                        self.new_series += 1;
                    }
                    p.series = fresh;
                    // Truncation waits for the commit lock: the fresh series stays.
                    admit(p).unwrap_or((false, false))
                }
            };
            p.ok = ok;
            accepted += usize::from(ok);
            if first_log {
                to_log.push(i);
            }
        }
        let accepted_iter = || self.pending.iter().filter(|p| p.ok);
        if let Some(wal) = head.wal.get() {
            let buf = &mut state.buf;
            begin_frame(buf);
            if !to_log.is_empty() {
                let syms = head.symbols.read();
                let mut enc = SeriesEncoder::new(buf);
                for s in to_log.iter().filter_map(|&i| self.pending.get(i)).map(|p| &p.series) {
                    enc.add(
                        s.sref,
                        s.labels.iter().map(|(n, v)| (syms.get(n).as_ref(), syms.get(v).as_ref())),
                    );
                }
                enc.finish();
            }
            let samples: Vec<RefSample> =
                accepted_iter().map(|p| RefSample { sref: p.series.sref, t: p.t, v: p.v }).collect();
            encode_samples(buf, &samples);
            if let Err(e) = wal.log(buf) {
                for p in to_log.iter().filter_map(|&i| self.pending.get(i)) {
                    p.series.inner.lock().logged = false;
                }
                return Err(CommitError::Wal(std::io::Error::other(e)));
            }
            if buf.capacity() > 8 << 20 {
                *buf = Vec::new();
            }
        }
        let low = head.low_watermark.load(Ordering::Acquire);
        let (per_chunk, range) = (head.opts.samples_per_chunk, head.opts.chunk_range_ms);
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for p in accepted_iter() {
            let eff = {
                let mut inner = p.series.inner.lock();
                inner.begin_commit(seq, low);
                inner.append(p.t, f64::from_bits(p.v), per_chunk, range)
            };
            head.account(&eff);
            min_t = min_t.min(p.t);
            max_t = max_t.max(p.t);
        }
        if accepted > 0 {
            head.note_time(min_t);
            head.note_time(max_t);
        }
        let n = accepted as u64;
        c.samples_appended.fetch_add(n, Ordering::Relaxed);
        c.commits.fetch_add(1, Ordering::Relaxed);
        state.seq = seq;
        head.publish(seq);
        Ok(CommitSummary { samples: n, new_series: self.new_series })
    }
}

impl Drop for HeadAppender<'_> {
    /// Gives the emptied buffers back to the head (the series they held are released now: head
    /// truncation waits for them).
    fn drop(&mut self) {
        if self.pending.capacity() > KEPT_BUF_SAMPLES || self.batch_last.capacity() > KEPT_BUF_SAMPLES {
            return;
        }
        self.pending.clear();
        self.batch_last.clear();
        let mut kept = self.head.append_bufs.lock();
        if kept.len() < KEPT_BUFS {
            kept.push(AppendBufs {
                pending: std::mem::take(&mut self.pending),
                batch_last: std::mem::take(&mut self.batch_last),
            });
        }
    }
}

impl Appender for HeadAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        self.append_source(labels, t, v, || labels.to_string())
    }

    fn append_pairs(&mut self, labels: &[(&str, &str)], t: i64, v: f64) -> Result<(), AppendError> {
        // The borrowed fast path needs what `Labels` guarantees: sorted names, no empty values.
        let canonical = labels.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0))
            && labels.iter().all(|(_, v)| !v.is_empty());
        if canonical {
            self.append_source(labels, t, v, || Labels::from_pairs(labels.iter().copied()).to_string())
        } else {
            let owned = Labels::from_pairs(labels.iter().copied());
            self.append(&owned, t, v)
        }
    }

    fn append_proto(&mut self, labels: &ProtoLabels<'_>, t: i64, v: f64) -> Result<(), AppendError> {
        self.append_proto_hinted(None, labels, t, v).1
    }

    fn append_proto_hinted(
        &mut self,
        hint: Option<SeriesHint>,
        labels: &ProtoLabels<'_>,
        t: i64,
        v: f64,
    ) -> (Option<SeriesHint>, Result<(), AppendError>) {
        let display = || Labels::from_pairs(labels.pairs()).to_string();
        let head = self.head;
        let hint_of = |s: &MemSeries| Some(SeriesHint { store: head.id, sref: s.sref });
        // A hint names the series these exact bytes were filed under before (refs are never
        // reused); a series the head holds with exactly these labels proves them sorted, so the
        // common case only checks the limits, from the figures the parse took (a series
        // replayed from the WAL may predate them).
        let known = match hint {
            Some(h) if h.store == head.id => head.series_by_ref(h.sref),
            _ => None,
        };
        if let Some(series) = known.or_else(|| head.find(labels.hash(), &SortedProto(labels))) {
            let hint = hint_of(&series);
            let lim = &head.opts.limits;
            let over = |n: usize, limit: usize| limit > 0 && n > limit;
            if (over(labels.len(), lim.max_label_names)
                || over(labels.max_name_len(), lim.max_name_length)
                || over(labels.max_value_len(), lim.max_value_length))
                && let Some(reason) = label_problem(&SortedProto(labels), lim)
            {
                head.counters.invalid_labels.fetch_add(1, Ordering::Relaxed);
                return (None, Err(AppendError::InvalidLabels { series: display(), reason }));
            }
            let min_valid = head.min_valid_append();
            if t < min_valid {
                head.counters.out_of_bounds.fetch_add(1, Ordering::Relaxed);
                return (hint, Err(AppendError::OutOfBounds { t, min_valid }));
            }
            return (hint, self.append_to(series, t, v, display));
        }
        if !labels.is_sorted() {
            let pairs: Vec<(&str, &str)> = labels.pairs().collect();
            return (None, self.append_pairs(&pairs, t, v));
        }
        let source = SortedProto(labels);
        if let Some(reason) = label_problem(&source, &head.opts.limits) {
            head.counters.invalid_labels.fetch_add(1, Ordering::Relaxed);
            return (None, Err(AppendError::InvalidLabels { series: display(), reason }));
        }
        let min_valid = head.min_valid_append();
        if t < min_valid {
            head.counters.out_of_bounds.fetch_add(1, Ordering::Relaxed);
            return (None, Err(AppendError::OutOfBounds { t, min_valid }));
        }
        let (series, created) = head.get_or_create(&source);
        if created {
            self.new_series += 1;
        }
        let hint = hint_of(&series);
        (hint, self.append_to(series, t, v, display))
    }

    fn commit(self: Box<Self>) -> Result<CommitSummary, CommitError> {
        self.commit_inner()
    }

    fn rollback(self: Box<Self>) {
        self.head.counters.rollbacks.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadOptions;

    fn series(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
    }

    /// Appenders reuse the buffers of finished ones: nothing a rolled-back or committed batch
    /// held reaches the next batch, and a batch too big to keep frees its buffers.
    #[test]
    fn reused_buffers_start_empty() {
        let head = Head::new(HeadOptions::default(), false);
        let mut a = Box::new(head.appender());
        for i in 0..10 {
            a.append(&series(i), 1000, 1.0).unwrap();
        }
        a.rollback();
        assert_eq!(head.append_bufs.lock().len(), 1);
        let mut b = Box::new(head.appender());
        assert!(head.append_bufs.lock().is_empty(), "the buffers are taken");
        // Older than the rolled-back sample: only the forgotten batch could refuse it.
        b.append(&series(0), 500, 2.0).unwrap();
        assert_eq!(b.commit().unwrap().samples, 1);
        let mut c = Box::new(head.appender());
        c.append(&series(1), 600, 3.0).unwrap();
        assert_eq!(c.commit().unwrap().samples, 1, "the committed batch's sample is not applied again");
        assert_eq!(head.stats().samples_appended, 2);
        let mut big = Box::new(head.appender());
        for i in 0..=KEPT_BUF_SAMPLES {
            big.append(&series(i), 700, 1.0).unwrap();
        }
        big.commit().unwrap();
        assert!(head.append_bufs.lock().is_empty(), "the big batch freed its buffers");
    }
}
