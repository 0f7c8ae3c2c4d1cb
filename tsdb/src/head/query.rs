//! Reading the head: a querier fixed at the commits that finished before it was created.

use std::sync::Arc;

use super::Head;
use super::series::{MemSeries, SeriesInner};
use crate::chunk::adaptive::{ChunkKind, HeadChunkIter};
use crate::model::{Labels, Matcher, Sample};
use crate::querier::{Querier, QueryError, SampleIter, Series, SeriesSet};

/// Chunk bytes a series snapshot holds: shared closed chunks, a copy of the open one.
#[derive(Debug, Clone)]
enum ChunkData {
    Shared(Arc<[u8]>),
    Owned(Box<[u8]>),
}

#[derive(Debug, Clone)]
struct SnapChunk {
    kind: ChunkKind,
    data: ChunkData,
    /// Samples of the chunk this snapshot may read.
    limit: usize,
    min_t: i64,
    max_t: i64,
}

impl SnapChunk {
    fn bytes(&self) -> &[u8] {
        match &self.data {
            ChunkData::Shared(a) => a,
            ChunkData::Owned(b) => b,
        }
    }
}

/// The visible chunks of one series overlapping `[mint, maxt]`.
fn snapshot(inner: &SeriesInner, watermark: u64, mint: i64, maxt: i64) -> Vec<SnapChunk> {
    let visible = inner.visible(watermark);
    let mut out = Vec::new();
    let mut seen: u64 = 0;
    for c in inner.closed.iter() {
        if seen >= visible {
            return out;
        }
        let n = SeriesInner::closed_len(c);
        if c.min_t <= maxt && c.max_t >= mint {
            let limit = (visible - seen).min(n) as usize;
            out.push(SnapChunk {
                kind: c.kind,
                data: ChunkData::Shared(Arc::clone(&c.data)),
                limit,
                min_t: c.min_t,
                max_t: c.max_t,
            });
        }
        seen += n;
    }
    if seen < visible && !inner.head.is_empty() && inner.head.last_t() >= mint && inner.head.first_t() <= maxt
    {
        let n = inner.head.len() as u64;
        out.push(SnapChunk {
            kind: inner.head.kind(),
            data: ChunkData::Owned(Box::from(inner.head.bytes())),
            limit: (visible - seen).min(n) as usize,
            min_t: inner.head.first_t(),
            max_t: inner.head.last_t(),
        });
    }
    out
}

/// A querier over the head. Holds the head alive; deregisters its watermark on drop.
pub struct HeadQuerier {
    head: Arc<Head>,
    watermark: u64,
}

impl HeadQuerier {
    /// A querier that sees the commits finished now.
    pub fn new(head: Arc<Head>) -> Self {
        let watermark = head.register_querier();
        HeadQuerier { head, watermark }
    }

    fn matching(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let refs = self.head.index.read().postings_for(matchers);
        self.resolve(refs)
    }

    /// The series of `refs` that are still in the head.
    fn resolve(&self, refs: Vec<u64>) -> Vec<Arc<MemSeries>> {
        refs.into_iter().filter_map(|r| self.head.series_by_ref(r)).collect()
    }

    /// Chunks of `s` with at least one visible sample in `[mint, maxt]`.
    fn chunks_in_range(&self, s: &MemSeries, mint: i64, maxt: i64) -> Option<Vec<SnapChunk>> {
        let chunks = snapshot(&s.inner.lock(), self.watermark, mint, maxt);
        let fully_inside = chunks.iter().any(|c| {
            c.min_t >= mint
                && c.max_t <= maxt
                && c.limit > 0
                && c.limit == crate::chunk::xor::num_samples(c.bytes())
        });
        if fully_inside {
            return Some(chunks);
        }
        let mut it = ChunkSampleIter::from_snap(&chunks, mint, maxt);
        it.next().is_some().then_some(chunks)
    }

    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let st = self.head.stats_range();
        matches!(st, Some((lo, hi)) if lo <= maxt && hi >= mint)
    }
}

impl Drop for HeadQuerier {
    fn drop(&mut self) {
        self.head.deregister_querier(self.watermark);
    }
}

struct HeadSeries {
    labels: Labels,
    chunks: Vec<SnapChunk>,
    mint: i64,
    maxt: i64,
}

impl Series for HeadSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIter + '_> {
        Box::new(ChunkSampleIter::from_snap(&self.chunks, self.mint, self.maxt))
    }
}

impl Querier for HeadQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        let mut found: Vec<(Arc<MemSeries>, Vec<SnapChunk>)> = Vec::new();
        for s in self.matching(matchers) {
            if let Some(chunks) = self.chunks_in_range(&s, mint, maxt) {
                found.push((s, chunks));
            }
        }
        let mut out: Vec<HeadSeries> = {
            let syms = self.head.symbols.read();
            found
                .into_iter()
                .map(|(s, chunks)| HeadSeries { labels: self.head.labels_of(&s, &syms), chunks, mint, maxt })
                .collect()
        };
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Box::new(out.into_iter().map(|s| Box::new(s) as Box<dyn Series>)))
    }

    // With or without matchers, the head answers from its index when its time range overlaps
    // `[mint, maxt]`, as Prometheus' head index reader does (2.42 checked side by side,
    // `tests/it/admin_api.rs`): series without a sample in the range, whose samples were
    // deleted, or whose appends were rolled back are listed until they leave the head.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        if !self.overlaps(mint, maxt) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self.head.index.read().label_names());
        }
        // The series stay held until their ids are resolved: head truncation frees the ids of
        // series that nothing holds any more.
        let series = self.matching(matchers);
        let mut ids: Vec<u32> = Vec::new();
        for s in &series {
            ids.extend(s.labels.iter().map(|(n, _)| n));
        }
        ids.sort_unstable();
        ids.dedup();
        let syms = self.head.symbols.read();
        let mut names: Vec<String> = ids.into_iter().map(|id| syms.get(id).to_string()).collect();
        names.sort();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        if !self.overlaps(mint, maxt) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self.head.index.read().label_values(name));
        }
        let refs = {
            let index = self.head.index.read();
            let refs = index.postings_for(matchers);
            // Few values (`namespace` for a metric name): intersect each value's postings with
            // the matching series instead of reading every one of them.
            if let Some(values) = index.values_among(name, &refs) {
                return Ok(values);
            }
            refs
        };
        let name_id = self.head.symbols.read().lookup(name);
        let Some(name_id) = name_id else { return Ok(Vec::new()) };
        // Held until the ids are resolved (see `label_names`).
        let series = self.resolve(refs);
        let mut ids: Vec<u32> = Vec::new();
        for s in &series {
            if let Some(v) = s.labels.iter().find_map(|(n, v)| (n == name_id).then_some(v)) {
                ids.push(v);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let syms = self.head.symbols.read();
        let mut values: Vec<String> = ids.into_iter().map(|id| syms.get(id).to_string()).collect();
        values.sort();
        Ok(values)
    }
}

/// One chunk as [`ChunkSampleIter`] reads it.
#[derive(Debug, Clone, Copy)]
struct ChunkView<'a> {
    kind: ChunkKind,
    bytes: &'a [u8],
    limit: usize,
    max_t: i64,
}

/// Iterates the samples of a series' chunks within `[mint, maxt]`, with `seek`.
#[derive(Debug)]
pub struct ChunkSampleIter<'a> {
    chunks: Vec<ChunkView<'a>>,
    next_chunk: usize,
    cur: Option<HeadChunkIter<'a>>,
    mint: i64,
    maxt: i64,
    last: Option<Sample>,
    done: bool,
    err: Option<QueryError>,
}

impl<'a> ChunkSampleIter<'a> {
    fn from_snap(chunks: &'a [SnapChunk], mint: i64, maxt: i64) -> Self {
        let views = chunks
            .iter()
            .map(|c| ChunkView { kind: c.kind, bytes: c.bytes(), limit: c.limit, max_t: c.max_t })
            .collect();
        Self::from_views(views, mint, maxt)
    }

    fn from_views(chunks: Vec<ChunkView<'a>>, mint: i64, maxt: i64) -> Self {
        ChunkSampleIter { chunks, next_chunk: 0, cur: None, mint, maxt, last: None, done: false, err: None }
    }

    /// An iterator over one encoded XOR chunk (all its samples), limited to `[mint, maxt]`.
    pub fn single(bytes: &'a [u8], mint: i64, maxt: i64) -> Self {
        Self::single_of(ChunkKind::Xor, bytes, mint, maxt)
    }

    /// An iterator over one encoded head chunk of `kind` (all its samples), limited to
    /// `[mint, maxt]`.
    pub fn single_of(kind: ChunkKind, bytes: &'a [u8], mint: i64, maxt: i64) -> Self {
        Self::from_views(vec![ChunkView { kind, bytes, limit: usize::MAX, max_t: i64::MAX }], mint, maxt)
    }

    fn raw_next(&mut self) -> Option<Sample> {
        loop {
            if self.cur.is_none() {
                let c = self.chunks.get(self.next_chunk)?;
                self.next_chunk += 1;
                self.cur = Some(HeadChunkIter::with_limit(c.kind, c.bytes, c.limit));
            }
            let it = self.cur.as_mut()?;
            match it.next() {
                Some(s) => return Some(s),
                None => {
                    if it.is_corrupt() && self.err.is_none() {
                        self.err = Some(QueryError::Corruption {
                            location: format!("head chunk {}", self.next_chunk.saturating_sub(1)),
                            reason: "chunk bytes end before its sample count".to_string(),
                        });
                    }
                    self.cur = None;
                }
            }
        }
    }
}

impl SampleIter for ChunkSampleIter<'_> {
    fn next(&mut self) -> Option<Sample> {
        if self.done {
            return None;
        }
        while let Some(s) = self.raw_next() {
            if s.t < self.mint {
                continue;
            }
            if s.t > self.maxt {
                break;
            }
            self.last = Some(s);
            return Some(s);
        }
        self.done = true;
        self.last = None;
        None
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        if let Some(last) = self.last
            && last.t >= t
        {
            return Some(last);
        }
        if self.done {
            return None;
        }
        // Skip whole chunks that end before t.
        if self.cur.is_none() {
            while self.chunks.get(self.next_chunk).is_some_and(|c| c.max_t < t) {
                self.next_chunk += 1;
            }
        }
        loop {
            let s = self.next()?;
            if s.t >= t {
                return Some(s);
            }
            if let Some(cur_max) =
                self.next_chunk.checked_sub(1).and_then(|i| self.chunks.get(i)).map(|c| c.max_t)
                && cur_max < t
            {
                self.cur = None;
                while self.chunks.get(self.next_chunk).is_some_and(|c| c.max_t < t) {
                    self.next_chunk += 1;
                }
            }
        }
    }

    fn err(&self) -> Option<&QueryError> {
        self.err.as_ref()
    }
}
