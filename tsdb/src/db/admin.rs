//! The admin operations of a [`Db`] (Prometheus' `/api/v1/admin/tsdb/*`): deleting series
//! ranges with tombstones, rewriting blocks without their deleted data, and snapshots.
//!
//! Tombstones are kept here, outside the head and the blocks: the head's in memory (logged in
//! the WAL as record type 3), each block's in its `tombstones` file
//! (`docs/format/tombstones.md`). Queriers apply them through
//! [`TombstoneQuerier`]; persisting the head and compaction read through the same filter, so the
//! blocks they write hold no deleted sample.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use parking_lot::{MutexGuard, RwLock};

use super::Db;
use super::blocks::{QUARANTINE_DIR, delete_block_dir};
use super::maintain::write_drained;
use crate::block::meta::{Compaction, ParentRef};
use crate::block::{
    Block, BlockError, BlockSpec, BlockWriteError, BlocksQuerier, IoStepError, MergeQuerier, io_step,
};
use crate::head::HeadQuerier;
use crate::model::{Labels, Matcher};
use crate::querier::{Querier, QueryError, SeriesSet};
use crate::tombstones::{Interval, TombstoneError, TombstoneQuerier, Tombstones};
use crate::wal::{Record, WalError, record, segment::begin_frame};

/// An admin operation failed. What was done before the failure stays done (each block's
/// tombstones and each rewritten block are replaced atomically); nothing is half-written.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The `Db` is read-only.
    #[error("the data directory is open read-only")]
    ReadOnly,
    /// Reading the data failed.
    #[error("read data")]
    Read(#[source] QueryError),
    /// A tombstones file could not be written.
    #[error(transparent)]
    Tombstones(#[from] TombstoneError),
    /// The WAL refused the tombstones record.
    #[error("log tombstones in the WAL")]
    Wal(#[from] WalError),
    /// Writing a block failed.
    #[error("write block")]
    Write(#[from] BlockWriteError),
    /// The block just written does not open.
    #[error("open new block")]
    Open(#[from] BlockError),
    /// A file system step failed.
    #[error(transparent)]
    Io(#[from] IoStepError),
}

/// An admin write in progress: the maintenance lock held, and the block list it started with.
type AdminWrite<'a> = (MutexGuard<'a, Option<i64>>, Arc<Vec<Arc<Block>>>);

/// The tombstones of the head and of each block (by ULID). Each set is replaced whole, so a
/// querier keeps the set it started with.
#[derive(Debug, Default)]
pub(crate) struct DbTombstones {
    pub(super) head: RwLock<Arc<Tombstones>>,
    pub(super) blocks: RwLock<HashMap<String, Arc<Tombstones>>>,
}

impl DbTombstones {
    fn block(&self, ulid: &str) -> Option<Arc<Tombstones>> {
        self.blocks.read().get(ulid).filter(|t| !t.is_empty()).cloned()
    }

    /// Forgets the tombstones of blocks that are gone.
    pub(crate) fn forget_blocks(&self, ulids: &HashSet<String>) {
        self.blocks.write().retain(|u, _| !ulids.contains(u));
    }

    /// Drops the head's intervals that end before `t` (persisted into a block, without the
    /// deleted samples).
    pub(crate) fn truncate_head_before(&self, t: i64) {
        let mut h = self.head.write();
        if h.is_empty() {
            return;
        }
        let mut next = (**h).clone();
        next.truncate_before(t);
        *h = Arc::new(next);
    }

    /// Number of series with tombstones in the head, and in all blocks.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.head.read().len(), self.blocks.read().values().map(|t| t.len()).sum())
    }
}

/// Splits the tombstones records out of a replayed frame: adds them to `into`, returns the rest.
pub(crate) fn take_replayed_tombstones(records: Vec<Record>, into: &mut Tombstones) -> Vec<Record> {
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Tombstones(stones) => {
                for (labels, iv) in stones {
                    into.add(labels, iv);
                }
                None
            }
            other => Some(other),
        })
        .collect()
}

/// What [`load_block_tombstones`] kept.
pub(crate) struct LoadedTombstones {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) stones: HashMap<String, Arc<Tombstones>>,
    pub(crate) quarantined: u64,
}

/// Reads the `tombstones` file of each block. A block whose file is damaged is moved to
/// `quarantine/` when `writable` (serving its deleted data again would be wrong) and skipped
/// otherwise.
pub(crate) fn load_block_tombstones(dir: &Path, blocks: Vec<Arc<Block>>, writable: bool) -> LoadedTombstones {
    let mut out =
        LoadedTombstones { blocks: Vec::with_capacity(blocks.len()), stones: HashMap::new(), quarantined: 0 };
    for b in blocks {
        match Tombstones::read(b.dir()) {
            Ok(t) => {
                if !t.is_empty() {
                    out.stones.insert(b.meta().ulid.clone(), Arc::new(t));
                }
                out.blocks.push(b);
            }
            Err(e) if writable => {
                let target = dir.join(QUARANTINE_DIR).join(&b.meta().ulid);
                let moved = std::fs::create_dir_all(dir.join(QUARANTINE_DIR))
                    .and_then(|()| crate::fs::rename_synced(b.dir(), &target));
                tracing::error!(
                    block = %b.dir().display(), error = %crate::block::DisplayChain(&e),
                    quarantine = %target.display(), moved = moved.is_ok(),
                    "block tombstones are damaged; block moved aside, the rest of the store keeps serving"
                );
                out.quarantined += 1;
            }
            Err(e) => {
                tracing::warn!(block = %b.dir().display(), error = %crate::block::DisplayChain(&e), "skipping block with unreadable tombstones");
            }
        }
    }
    out
}

/// For each selected series, the interval `[first sample, last sample]` of its samples in the
/// selected range: a deletion clamped to the data present, as Prometheus does.
fn clamped(set: SeriesSet<'_>) -> Result<Vec<(Labels, Interval)>, AdminError> {
    let mut out = Vec::new();
    for s in set {
        let mut it = s.iter();
        let mut first = None;
        let mut last = None;
        while let Some(x) = it.next() {
            first.get_or_insert(x.t);
            last = Some(x.t);
        }
        if let Some(e) = it.err() {
            return Err(AdminError::Read(QueryError::Corruption {
                location: format!("series {}", s.labels()),
                reason: crate::block::DisplayChain(e).to_string(),
            }));
        }
        if let (Some(mint), Some(maxt)) = (first, last) {
            out.push((s.labels().clone(), Interval { mint, maxt }));
        }
    }
    Ok(out)
}

/// Hard-links every file under `from` into `to` (created), recreating directories.
fn link_tree(from: &Path, to: &Path) -> Result<(), AdminError> {
    std::fs::create_dir_all(to).map_err(io_step("create", to))?;
    for e in std::fs::read_dir(from).map_err(io_step("list", from))? {
        let e = e.map_err(io_step("list", from))?;
        let src = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().map_err(io_step("stat", &src))?.is_dir() {
            link_tree(&src, &dst)?;
        } else if e.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
            continue;
        } else {
            std::fs::hard_link(&src, &dst).map_err(io_step("hard-link", &dst))?;
        }
    }
    Ok(crate::fs::sync_dir(to).map_err(io_step("sync", to))?)
}

impl Db {
    /// The head's querier, filtered through the head's tombstones.
    pub(crate) fn head_querier_filtered(&self) -> Box<dyn Querier> {
        let q: Box<dyn Querier> = Box::new(HeadQuerier::new(Arc::clone(&self.head)));
        let stones = Arc::clone(&self.stones.head.read());
        if stones.is_empty() { q } else { Box::new(TombstoneQuerier::over_head(q, stones)) }
    }

    /// A querier over `blocks`, each filtered through its tombstones; the blocks without
    /// tombstones are read by one [`BlocksQuerier`] as before. `None` without blocks.
    pub(crate) fn blocks_querier_filtered(&self, blocks: &[Arc<Block>]) -> Option<Box<dyn Querier>> {
        let mut plain = Vec::new();
        let mut parts: Vec<Box<dyn Querier>> = Vec::new();
        for b in blocks {
            match self.stones.block(&b.meta().ulid) {
                Some(t) => parts.push(Box::new(TombstoneQuerier::new(
                    Box::new(BlocksQuerier::new(vec![Arc::clone(b)])),
                    t,
                ))),
                None => plain.push(Arc::clone(b)),
            }
        }
        if !plain.is_empty() {
            parts.insert(0, Box::new(BlocksQuerier::new(plain)));
        }
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Box::new(MergeQuerier::new(parts))),
        }
    }

    /// Refuses a read-only store, then takes the maintenance lock and the block list: an admin
    /// write is serialized with persisting and compaction, so a deletion never lands in a block
    /// that is being replaced, nor in the head range being persisted.
    fn begin_admin_write(&self) -> Result<AdminWrite<'_>, AdminError> {
        if self.is_read_only() {
            return Err(AdminError::ReadOnly);
        }
        let one = self.maintenance.lock();
        Ok((one, self.blocks.snapshot()))
    }

    /// Number of series with deletions recorded in the head and in the blocks.
    pub fn tombstone_counts(&self) -> (usize, usize) {
        self.stones.counts()
    }

    /// Deletes the samples of the series matching every matcher in `[mint, maxt]` (inclusive
    /// ms), as Prometheus' `DB.Delete`: for each matching series of each block overlapping the
    /// range and of the head, the range clamped to the series' data is recorded as a tombstone
    /// (in the block's `tombstones` file, in the WAL for the head). Queries started afterwards
    /// no longer see those samples, persisting and compaction leave them out, and a restart keeps
    /// the deletion. Samples appended later, after the series' last sample, are not deleted.
    pub fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<(), AdminError> {
        let (_one, blocks) = self.begin_admin_write()?;
        for b in blocks.iter() {
            let m = b.meta();
            if m.min_time > maxt || m.max_time <= mint {
                continue;
            }
            let q = BlocksQuerier::new(vec![Arc::clone(b)]);
            let found = clamped(q.select(matchers, mint, maxt).map_err(AdminError::Read)?)?;
            if found.is_empty() {
                continue;
            }
            let mut t = self.stones.block(&m.ulid).map(|t| (*t).clone()).unwrap_or_default();
            for (labels, iv) in found {
                t.add(labels, iv);
            }
            t.write(b.dir())?;
            tracing::info!(block = %m.ulid, series = t.len(), "block tombstones written");
            self.stones.blocks.write().insert(m.ulid.clone(), Arc::new(t));
        }
        let q = HeadQuerier::new(Arc::clone(&self.head));
        let found = clamped(q.select(matchers, mint, maxt).map_err(AdminError::Read)?)?;
        drop(q);
        if !found.is_empty() {
            if let Some(wal) = self.head.wal() {
                let mut buf = Vec::new();
                begin_frame(&mut buf);
                record::encode_tombstones(&mut buf, &found);
                wal.log(&mut buf)?;
                // A deletion is rare and explicit: on disk before it is acknowledged.
                wal.sync();
            }
            let mut h = self.stones.head.write();
            let mut next = (**h).clone();
            for (labels, iv) in found {
                next.add(labels, iv);
            }
            *h = Arc::new(next);
        }
        Ok(())
    }

    /// Rewrites every block that has tombstones without its deleted samples (a block left
    /// empty is deleted), as Prometheus' `DB.CleanTombstones`. The new block keeps the old one's
    /// range, level and sources and names it as its parent, so a crash between writing the new
    /// block and deleting the old one is resolved at the next open. The head's tombstones stay
    /// until its data is persisted.
    pub fn clean_tombstones(&self) -> Result<(), AdminError> {
        let (_one, blocks) = self.begin_admin_write()?;
        for b in blocks.iter() {
            let m = b.meta();
            let Some(stones) = self.stones.block(&m.ulid) else { continue };
            let spec = BlockSpec {
                min_time: m.min_time,
                max_time: m.max_time,
                compaction: Compaction {
                    level: m.compaction.level,
                    sources: m.compaction.sources.clone(),
                    parents: vec![ParentRef {
                        ulid: m.ulid.clone(),
                        min_time: m.min_time,
                        max_time: m.max_time,
                    }],
                },
            };
            let q = TombstoneQuerier::new(Box::new(BlocksQuerier::new(vec![Arc::clone(b)])), stones);
            let set = q.select(&[], m.min_time, m.max_time - 1).map_err(AdminError::Read)?;
            let meta = write_drained(&self.dir, set, &spec, &self.opts.block_write, false)?
                .map_err(AdminError::Read)?;
            let new_block = match &meta {
                Some(nm) => {
                    Some(Arc::new(Block::open(&self.dir.join(&nm.ulid), Arc::clone(&self.blocks.cache))?))
                }
                None => None,
            };
            tracing::info!(
                old = %m.ulid, new = meta.as_ref().map_or("(empty, deleted)", |nm| nm.ulid.as_str()),
                samples_before = m.stats.num_samples, samples_after = meta.as_ref().map_or(0, |nm| nm.stats.num_samples),
                "block rewritten without its tombstones"
            );
            let gone: HashSet<String> = [m.ulid.clone()].into_iter().collect();
            self.blocks.swap(new_block, &gone);
            self.stones.forget_blocks(&gone);
            delete_block_dir(b.dir()).map_err(io_step("delete block", b.dir()))?;
        }
        Ok(())
    }

    /// Writes a snapshot of the store into `dir` (created if needed), as Prometheus'
    /// `DB.Snapshot`: a hard link of every file of every block (its tombstones included), and,
    /// when `with_head`, the head's committed data (without its deleted samples) written as one
    /// more block. `dir` is then a data directory of its own: `Db::open` or
    /// `Db::open_read_only` of it reads the same data.
    pub fn snapshot(&self, dir: &Path, with_head: bool) -> Result<(), AdminError> {
        // No block is deleted or replaced while it is being linked.
        let _one = self.maintenance.lock();
        std::fs::create_dir_all(dir).map_err(io_step("create", dir))?;
        for b in self.blocks.snapshot().iter() {
            link_tree(b.dir(), &dir.join(&b.meta().ulid))?;
        }
        if with_head && let Some((min, max)) = self.head.stats_range() {
            let q = self.head_querier_filtered();
            let set = q.select(&[], min, max).map_err(AdminError::Read)?;
            let spec = BlockSpec {
                min_time: min,
                max_time: max.saturating_add(1),
                compaction: Compaction::default(),
            };
            write_drained(dir, set, &spec, &self.opts.block_write, false)?.map_err(AdminError::Read)?;
        }
        Ok(crate::fs::sync_dir(dir).map_err(io_step("sync", dir))?)
    }
}
