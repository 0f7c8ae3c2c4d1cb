//! The [`Querier`] contract over a set of blocks: series with the same labels in several blocks
//! (consecutive ranges, or overlapping ones from backfill) are merged, and a timestamp present
//! in more than one block is returned once.

use std::sync::Arc;

use super::merge::MergeSorted;
use super::reader::{Block, BlockError};
use crate::index::ChunkMeta;
use crate::model::{Labels, Matcher, Sample};
use crate::querier::{Querier, QueryError, SampleIter, Series, SeriesSet};

fn query_err(e: BlockError) -> QueryError {
    QueryError::Corruption { location: e.file(), reason: format!("{:#}", DisplayChain(&e)) }
}

/// Formats an error with its sources, `a: b: c`.
pub(crate) struct DisplayChain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

/// A querier over a snapshot of blocks. Holding it keeps the blocks (and their mappings) alive.
#[derive(Debug, Clone)]
pub struct BlocksQuerier {
    blocks: Vec<Arc<Block>>,
}

impl BlocksQuerier {
    /// A querier over `blocks` (any order; overlaps allowed).
    pub fn new(blocks: Vec<Arc<Block>>) -> Self {
        BlocksQuerier { blocks }
    }

    fn overlapping(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Arc<Block>> {
        self.blocks.iter().filter(move |b| b.meta().min_time <= maxt && b.meta().max_time > mint)
    }

    /// Matching series with their chunks in every overlapping block, in label order, each
    /// with its parts in block order (by start time). Blocks outside `[mint, maxt]` are not
    /// read; each block lists its series in label order, so the lists are merged by comparing
    /// their heads, and a single list passes through.
    fn matching(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<Part>)>, QueryError> {
        let mut blocks: Vec<&Arc<Block>> = self.overlapping(mint, maxt).collect();
        blocks.sort_by_key(|b| b.meta().min_time);
        let mut lists = Vec::with_capacity(blocks.len());
        for b in blocks {
            let list = block_matching(b, matchers, mint, maxt)?;
            if !list.is_empty() {
                lists.push(list);
            }
        }
        if lists.len() <= 1 {
            let list = lists.pop().unwrap_or_default();
            return Ok(list.into_iter().map(|(labels, part)| (labels, vec![part])).collect());
        }
        let started = lists
            .into_iter()
            .map(|l| {
                let mut it = l.into_iter();
                (it.next(), it)
            })
            .collect();
        Ok(MergeSorted::new(started, |x: &(Labels, Part)| &x.0)
            .filter_map(|group| {
                let mut group = group.into_iter();
                let (labels, first) = group.next()?;
                let mut parts = Vec::with_capacity(1 + group.len());
                parts.push(first);
                parts.extend(group.map(|(_, p)| p));
                Some((labels, parts))
            })
            .collect())
    }

    /// The series map the optimised [`BlocksQuerier::matching`] is checked against.
    #[cfg(test)]
    fn matching_naive(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<Part>)>, QueryError> {
        let mut out: std::collections::BTreeMap<Labels, Vec<Part>> = Default::default();
        for b in self.overlapping(mint, maxt) {
            for (labels, part) in block_matching(b, matchers, mint, maxt)? {
                out.entry(labels).or_default().push(part);
            }
        }
        for parts in out.values_mut() {
            parts.sort_by_key(|p| p.block.meta().min_time);
        }
        Ok(out.into_iter().collect())
    }

    /// [`Querier::select`] through [`BlocksQuerier::matching_naive`].
    #[cfg(test)]
    pub(crate) fn select_naive(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<SeriesSet<'_>, QueryError> {
        Ok(series_set(self.matching_naive(matchers, mint, maxt)?, mint, maxt))
    }
}

/// One block's matching series with their chunks in `[mint, maxt]`, in label order (the
/// index's order).
fn block_matching(
    b: &Arc<Block>,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, Part)>, QueryError> {
    let to_err = |source| query_err(BlockError::Index { dir: b.dir().to_path_buf(), source });
    let ids = b.index().select(matchers).map_err(to_err)?;
    let mut out = Vec::with_capacity(ids.len());
    for (_, labels, chunks) in b.index().series(&ids).map_err(to_err)? {
        let chunks: Vec<ChunkMeta> =
            chunks.into_iter().filter(|c| c.maxt >= mint && c.mint <= maxt).collect();
        if !chunks.is_empty() {
            out.push((labels, Part { block: Arc::clone(b), chunks }));
        }
    }
    Ok(out)
}

fn series_set<'a>(matching: Vec<(Labels, Vec<Part>)>, mint: i64, maxt: i64) -> SeriesSet<'a> {
    Box::new(
        matching
            .into_iter()
            .map(move |(labels, parts)| BlockSeries { labels, parts, mint, maxt })
            .filter(|s| s.has_samples())
            .map(|s| Box::new(s) as Box<dyn Series>),
    )
}

#[derive(Debug, Clone)]
struct Part {
    block: Arc<Block>,
    chunks: Vec<ChunkMeta>,
}

struct BlockSeries {
    labels: Labels,
    parts: Vec<Part>,
    mint: i64,
    maxt: i64,
}

impl BlockSeries {
    /// Whether any sample falls in the range: a chunk entirely inside it says so without
    /// decoding; one that only straddles it may have a gap there.
    fn has_samples(&self) -> bool {
        let inside =
            self.parts.iter().flat_map(|p| &p.chunks).any(|c| c.mint >= self.mint && c.maxt <= self.maxt);
        if inside {
            return true;
        }
        let mut it = self.iter();
        it.next().is_some() || it.err().is_some()
    }
}

impl Series for BlockSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIter + '_> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut err = None;
        let sorted = self.parts.len() <= 1
            || self
                .parts
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.block.meta().max_time <= b.block.meta().min_time));
        for p in &self.parts {
            match p.block.samples(&p.chunks, self.mint, self.maxt) {
                Ok(s) => samples.extend(s),
                Err(e) => {
                    err = Some(query_err(e));
                    break;
                }
            }
        }
        if !sorted {
            // Overlapping blocks: merge by time; a timestamp in several blocks counts once.
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
        }
        Box::new(VecIter { samples, pos: 0, err })
    }
}

/// A [`SampleIter`] that owns its samples.
#[derive(Debug)]
pub struct VecIter {
    samples: Vec<Sample>,
    pos: usize,
    err: Option<QueryError>,
}

impl VecIter {
    /// An iterator over `samples` (sorted by time) that reports `err` once exhausted.
    pub fn with_error(samples: Vec<Sample>, err: Option<QueryError>) -> Self {
        VecIter { samples, pos: 0, err }
    }
}

impl SampleIter for VecIter {
    fn next(&mut self) -> Option<Sample> {
        crate::querier::slice_next(&self.samples, &mut self.pos)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        crate::querier::slice_seek(&self.samples, &mut self.pos, t)
    }

    fn err(&self) -> Option<&QueryError> {
        self.err.as_ref()
    }
}

impl Querier for BlocksQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        Ok(series_set(self.matching(matchers, mint, maxt)?, mint, maxt))
    }

    // From each overlapping block's index, as Prometheus' block index reader answers: a series
    // counts when its block overlaps `[mint, maxt]`, whether or not it has a sample in the range
    // (the head answers the same way), and no chunk is read.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        let mut names = std::collections::BTreeSet::new();
        for b in self.overlapping(mint, maxt) {
            let index = b.index();
            if matchers.is_empty() {
                names.extend(index.label_names().map(str::to_string));
                continue;
            }
            let to_err = |source| query_err(BlockError::Index { dir: b.dir().to_path_buf(), source });
            let ids = index.select(matchers).map_err(to_err)?;
            for (_, labels, _) in index.series(&ids).map_err(to_err)? {
                for l in labels.iter() {
                    if !names.contains(&*l.name) {
                        names.insert(l.name.to_string());
                    }
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values = std::collections::BTreeSet::new();
        for b in self.overlapping(mint, maxt) {
            let index = b.index();
            if matchers.is_empty() {
                values.extend(index.label_values(name).map(str::to_string));
                continue;
            }
            let to_err = |source| query_err(BlockError::Index { dir: b.dir().to_path_buf(), source });
            let ids = index.select(matchers).map_err(to_err)?;
            match index.values_among(name, &ids).map_err(to_err)? {
                Some(found) => values.extend(found.into_iter().map(str::to_string)),
                None => {
                    for (_, labels, _) in index.series(&ids).map_err(to_err)? {
                        values.extend(labels.get(name).map(str::to_string));
                    }
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}
