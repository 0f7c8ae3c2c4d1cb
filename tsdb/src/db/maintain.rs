//! The background work of a [`Db`]: persisting the head's oldest block range into a block,
//! compacting blocks, and deleting blocks beyond retention.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Db;
use super::blocks::{DbQuerier, delete_block_dir};
use crate::block::meta::{Compaction, ParentRef};
use crate::block::{
    Block, BlockError, BlockMeta, BlockSpec, BlockWriteError, MergeQuerier, WriteOptions, write_block,
};
use crate::compact::{self, BlockInfo};
use crate::model::{Labels, Sample};
use crate::querier::{QueryError, SeriesSet};
use crate::wal::WalError;
use crate::wal::checkpoint::checkpoint;

/// How long head truncation waits for queriers that started before a block was published.
const READER_WAIT: Duration = Duration::from_secs(120);

/// Background work failed; the store stays consistent and the work is retried later.
#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    /// The `Db` is read-only.
    #[error("the data directory is open read-only")]
    ReadOnly,
    /// Writing a block failed.
    #[error("write block")]
    Write(#[from] BlockWriteError),
    /// The block just written does not open.
    #[error("open new block")]
    Open(#[from] BlockError),
    /// Reading the data to write failed.
    #[error("read data for block [{min_time}, {max_time})")]
    Read {
        /// Range start.
        min_time: i64,
        /// Range end.
        max_time: i64,
        /// Why.
        #[source]
        source: QueryError,
    },
    /// Checkpointing the WAL failed.
    #[error("checkpoint WAL")]
    Wal(#[from] WalError),
    /// Deleting a block failed.
    #[error("delete block {ulid}")]
    Delete {
        /// The block.
        ulid: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What one [`Db::maintain`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainSummary {
    /// Blocks written from the head.
    pub persisted: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Blocks deleted by retention.
    pub retention_deleted: u64,
}

/// Runs [`Db::maintain`] in a background thread until dropped.
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A test hook: `KAHU_TEST_CRASH_IN_COMPACTION=after-write` aborts the process right after a
/// compacted block is in place and before its sources are deleted; `=during-write` aborts
/// while the compacted block's temporary directory is being written.
fn crash_hook(point: &str) {
    if std::env::var("KAHU_TEST_CRASH_IN_COMPACTION").is_ok_and(|v| v == point) {
        tracing::warn!(point, "KAHU_TEST_CRASH_IN_COMPACTION: aborting");
        std::process::abort();
    }
}

/// Writes the series of `set` as a block under `dir` (see [`write_block`]; `compacting` arms
/// the crash hook). The outer error is the write's; the inner one a read error met while
/// draining `set`, after which the block written so far (if any) is deleted again.
pub(super) fn write_drained(
    dir: &Path,
    set: SeriesSet<'_>,
    spec: &BlockSpec,
    opts: &WriteOptions,
    compacting: bool,
) -> Result<Result<Option<BlockMeta>, QueryError>, BlockWriteError> {
    let mut err = None;
    let meta = write_block(dir, drain(set, &mut err, compacting), spec, opts)?;
    Ok(match err {
        Some(source) => {
            if let Some(m) = &meta {
                let _ = delete_block_dir(&dir.join(&m.ulid));
            }
            Err(source)
        }
        None => Ok(meta),
    })
}

/// Collects each series' samples, remembering the first read error (which stops the write).
fn drain<'s, 'e>(
    set: SeriesSet<'s>,
    err: &'e mut Option<QueryError>,
    compacting: bool,
) -> impl Iterator<Item = (Labels, Vec<Sample>)> {
    let mut n = 0u64;
    set.map_while(move |s| {
        if err.is_some() {
            return None;
        }
        let mut it = s.iter();
        let mut samples = Vec::new();
        while let Some(x) = it.next() {
            samples.push(x);
        }
        if let Some(e) = it.err() {
            *err = Some(QueryError::Corruption {
                location: format!("series {}", s.labels()),
                reason: crate::block::DisplayChain(e).to_string(),
            });
            return None;
        }
        n += 1;
        if compacting && n == 2 {
            crash_hook("during-write");
        }
        Some((s.labels().clone(), samples))
    })
}

impl Db {
    /// A querier over the head and the blocks, registered so that head truncation waits for it.
    pub(crate) fn db_querier(&self) -> DbQuerier {
        let guard = self.blocks.readers.register();
        let blocks = self.blocks.snapshot();
        let mut parts = vec![self.head_querier_filtered()];
        parts.extend(self.blocks_querier_filtered(&blocks));
        DbQuerier { inner: MergeQuerier::new(parts), _guard: guard }
    }

    /// One pass of background work: persists the head while it spans more than 1.5 block
    /// ranges, then compacts blocks while the planner finds work, then applies retention.
    /// Appends and queries go on meanwhile. Passes are serialized.
    pub fn maintain(&self) -> Result<MaintainSummary, MaintainError> {
        if self.is_read_only() {
            return Err(MaintainError::ReadOnly);
        }
        let mut pending_checkpoint = self.maintenance.lock();
        let mut summary = MaintainSummary::default();
        let c = &self.blocks.counters;
        loop {
            match self.persist_once() {
                Ok(Some((written, maxt))) => {
                    summary.persisted += u64::from(written);
                    *pending_checkpoint = Some(maxt);
                }
                Ok(None) => break,
                Err(e) => {
                    c.persist_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        // One checkpoint for every range persisted in this pass (or in an earlier pass whose
        // checkpoint failed, a full disk for instance): until it is done the WAL keeps samples
        // that are in blocks too (replay skips them, but they take disk space).
        if let Some(t) = *pending_checkpoint {
            self.checkpoint_wal(t).inspect_err(|_| {
                c.persist_failed.fetch_add(1, Ordering::Relaxed);
            })?;
            *pending_checkpoint = None;
        }
        if self.opts.compaction {
            while self.compact_once().inspect_err(|_| {
                c.compactions_failed.fetch_add(1, Ordering::Relaxed);
            })? {
                summary.compactions += 1;
            }
        }
        summary.retention_deleted = self.apply_retention()?;
        Ok(summary)
    }

    /// Starts a thread that runs [`Db::maintain`] now and every `every`, logging failures,
    /// until the handle is dropped (or the `Db` is).
    pub fn start_maintenance(self: &Arc<Self>, every: Duration) -> std::io::Result<MaintenanceHandle> {
        let (tx, rx) = mpsc::channel::<()>();
        let db: Weak<Db> = Arc::downgrade(self);
        let thread = std::thread::Builder::new().name("kahu-tsdb-maintain".into()).spawn(move || {
            loop {
                let Some(db) = db.upgrade() else { return };
                match db.maintain() {
                    Ok(s) if s != MaintainSummary::default() => {
                        tracing::debug!(?s, "storage maintenance pass");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %crate::block::DisplayChain(&e), "storage maintenance failed; retrying later");
                    }
                }
                drop(db);
                if !matches!(rx.recv_timeout(every), Err(mpsc::RecvTimeoutError::Timeout)) {
                    return;
                }
            }
        })?;
        Ok(MaintenanceHandle { stop: Some(tx), thread: Some(thread) })
    }

    /// Persists the head's oldest block range if the head spans more than 1.5 ranges: writes
    /// it as a block, publishes the block, waits for queriers that may not see it, and drops
    /// the range from the head. `None` when there was nothing to do; otherwise whether a block
    /// was written (the range may hold no sample) and the range's end.
    fn persist_once(&self) -> Result<Option<(bool, i64)>, MaintainError> {
        let range = self.opts.head.chunk_range_ms;
        let Some((min, max)) = self.head.stats_range() else { return Ok(None) };
        if max.saturating_sub(min) <= range / 2 * 3 {
            return Ok(None);
        }
        let mint = min.div_euclid(range) * range;
        let maxt = mint + range;
        // Nothing may be committed below `maxt` from now on.
        self.head.seal_before(maxt);
        let written = {
            // Through the tombstones: deleted samples are not persisted.
            let q = self.head_querier_filtered();
            let read_err = |source| MaintainError::Read { min_time: mint, max_time: maxt, source };
            let set = q.select(&[], mint, maxt - 1).map_err(read_err)?;
            let spec = BlockSpec { min_time: mint, max_time: maxt, compaction: Compaction::default() };
            write_drained(&self.dir, set, &spec, &self.opts.block_write, false)?.map_err(read_err)?
        };
        let persisted = written.is_some();
        if let Some(meta) = written {
            let block = Arc::new(Block::open(&self.dir.join(&meta.ulid), Arc::clone(&self.blocks.cache))?);
            tracing::info!(
                ulid = %meta.ulid, min_time = mint, max_time = maxt, series = meta.stats.num_series,
                samples = meta.stats.num_samples, "head range persisted into a block"
            );
            self.blocks.swap(Some(block), &HashSet::new());
            self.blocks.counters.persisted.fetch_add(1, Ordering::Relaxed);
        }
        if !self.blocks.readers.advance_and_wait(READER_WAIT) {
            tracing::warn!(
                "queriers opened before the new block was published are still open after {}s; truncating the head anyway",
                READER_WAIT.as_secs()
            );
        }
        let t = self.head.truncate_before(maxt);
        self.stones.truncate_head_before(maxt);
        tracing::debug!(samples = t.samples, series = t.series, before = maxt, "head truncated");
        Ok(Some((persisted, maxt)))
    }

    /// Closes the current WAL segment and folds everything up to it into a checkpoint that
    /// keeps the series still in the head and the samples from `min_time` on.
    fn checkpoint_wal(&self, min_time: i64) -> Result<(), MaintainError> {
        let Some(wal) = self.head.wal() else { return Ok(()) };
        let upto = wal.cut_segment()?;
        let head = Arc::clone(&self.head);
        let cp = checkpoint(wal.dir(), upto, |r| head.has_series_ref(r), min_time)?;
        self.wal_counters.segments.fetch_sub(cp.segments_deleted, Ordering::Relaxed);
        self.wal_counters.bytes.fetch_sub(cp.bytes_deleted, Ordering::Relaxed);
        self.blocks.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(?cp, "WAL checkpointed");
        Ok(())
    }

    fn infos(blocks: &[Arc<Block>]) -> Vec<BlockInfo> {
        blocks
            .iter()
            .map(|b| BlockInfo {
                ulid: b.meta().ulid.clone(),
                min_time: b.meta().min_time,
                max_time: b.meta().max_time,
                size: b.size(),
            })
            .collect()
    }

    /// Compacts the blocks the planner picks into one; `false` when there was nothing to do.
    /// The sources are deleted only once the new block is in place and published.
    fn compact_once(&self) -> Result<bool, MaintainError> {
        let blocks = self.blocks.snapshot();
        let ranges = compact::ranges(self.opts.head.chunk_range_ms, self.opts.retention.time);
        let plan = compact::plan(&Self::infos(&blocks), &ranges);
        if plan.len() < 2 {
            return Ok(false);
        }
        // Timed as Prometheus times its "compact blocks": from the plan to the new block in
        // place (written, fsynced, renamed, opened), before the sources are deleted.
        let started = Instant::now();
        let chosen: HashSet<String> = plan.into_iter().collect();
        let sources: Vec<Arc<Block>> =
            blocks.iter().filter(|b| chosen.contains(&b.meta().ulid)).cloned().collect();
        let (Some(min), Some(max)) = (
            sources.iter().map(|b| b.meta().min_time).min(),
            sources.iter().map(|b| b.meta().max_time).max(),
        ) else {
            return Ok(false);
        };
        let mut lineage: Vec<String> =
            sources.iter().flat_map(|b| b.meta().compaction.sources.clone()).collect();
        lineage.sort();
        lineage.dedup();
        let spec = BlockSpec {
            min_time: min,
            max_time: max,
            compaction: Compaction {
                level: sources.iter().map(|b| b.meta().compaction.level).max().unwrap_or(1) + 1,
                sources: lineage,
                parents: sources
                    .iter()
                    .map(|b| ParentRef {
                        ulid: b.meta().ulid.clone(),
                        min_time: b.meta().min_time,
                        max_time: b.meta().max_time,
                    })
                    .collect(),
            },
        };
        // Through the sources' tombstones: deleted samples are left out of the new block.
        let Some(q) = self.blocks_querier_filtered(&sources) else { return Ok(false) };
        let read_err = |source| MaintainError::Read { min_time: min, max_time: max, source };
        let set = q.select(&[], min, max - 1).map_err(read_err)?;
        let meta = write_drained(&self.dir, set, &spec, &self.opts.block_write, true)?.map_err(read_err)?;
        let new_block = match &meta {
            Some(m) => Some(Arc::new(Block::open(&self.dir.join(&m.ulid), Arc::clone(&self.blocks.cache))?)),
            None => None,
        };
        let elapsed = started.elapsed();
        crash_hook("after-write");
        let samples = meta.as_ref().map_or(0, |m| m.stats.num_samples);
        tracing::info!(
            ulid = meta.as_ref().map_or("(empty)", |m| m.ulid.as_str()),
            sources = sources.len(),
            min_time = min,
            max_time = max,
            samples,
            duration = ?elapsed,
            "blocks compacted"
        );
        self.blocks.swap(new_block, &chosen);
        self.stones.forget_blocks(&chosen);
        for b in &sources {
            delete_block_dir(b.dir())
                .map_err(|source| MaintainError::Delete { ulid: b.meta().ulid.clone(), source })?;
        }
        self.blocks.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.blocks.counters.samples_compacted.fetch_add(samples, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.blocks.counters.compaction_micros.fetch_add(micros, Ordering::Relaxed);
        Ok(true)
    }

    /// Deletes the blocks beyond the retention limits; returns how many.
    fn apply_retention(&self) -> Result<u64, MaintainError> {
        let limits = self.opts.retention;
        if limits.time.is_none() && limits.size.is_none() {
            return Ok(0);
        }
        let blocks = self.blocks.snapshot();
        let other = self.wal_counters.bytes.load(Ordering::Relaxed);
        let doomed: HashSet<String> =
            compact::retention_plan(&Self::infos(&blocks), limits, other).into_iter().collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        self.blocks.swap(None, &doomed);
        self.stones.forget_blocks(&doomed);
        for b in blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)) {
            tracing::info!(ulid = %b.meta().ulid, min_time = b.meta().min_time, max_time = b.meta().max_time, "deleting block beyond retention");
            delete_block_dir(b.dir())
                .map_err(|source| MaintainError::Delete { ulid: b.meta().ulid.clone(), source })?;
        }
        self.blocks.counters.retention_deleted.fetch_add(doomed.len() as u64, Ordering::Relaxed);
        Ok(doomed.len() as u64)
    }
}
