//! The blocks of a [`Db`](super::Db): loading them at open (quarantining damaged ones), the
//! block list that queriers snapshot, and the reader registry that lets head truncation wait
//! for queriers that may not see a newly published block.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::block::meta::is_ulid;
use crate::block::{Block, FrameCache, MergeQuerier, TMP_CREATION, TMP_DELETION};
use crate::model::{Labels, Matcher};
use crate::querier::{Querier, QueryError, SeriesSet};

/// The name of the directory damaged blocks are moved into.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Counters of the block side of the store, read by [`super::Db::stats`].
#[derive(Debug, Default)]
pub(crate) struct BlockCounters {
    pub(crate) persisted: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) compactions_failed: AtomicU64,
    pub(crate) persist_failed: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    pub(crate) retention_deleted: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) samples_compacted: AtomicU64,
    pub(crate) compaction_micros: AtomicU64,
}

/// The current block list, swapped whole: a querier clones the `Arc` of the list it starts
/// with, and a block's mappings are released when the last list holding it goes.
#[derive(Debug)]
pub(crate) struct BlockSet {
    list: RwLock<Arc<Vec<Arc<Block>>>>,
    pub(crate) cache: Arc<FrameCache>,
    pub(crate) readers: Arc<Readers>,
    pub(crate) counters: BlockCounters,
}

impl BlockSet {
    pub(crate) fn new(blocks: Vec<Arc<Block>>, cache: Arc<FrameCache>) -> Self {
        let mut blocks = blocks;
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        BlockSet {
            list: RwLock::new(Arc::new(blocks)),
            cache,
            readers: Arc::new(Readers::default()),
            counters: BlockCounters::default(),
        }
    }

    /// The blocks now, oldest first.
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Block>>> {
        Arc::clone(&self.list.read())
    }

    /// Replaces the blocks named in `remove` by `add`, atomically for queriers.
    pub(crate) fn swap(&self, add: Option<Arc<Block>>, remove: &HashSet<String>) {
        let mut list = self.list.write();
        let mut next: Vec<Arc<Block>> =
            list.iter().filter(|b| !remove.contains(&b.meta().ulid)).cloned().collect();
        next.extend(add);
        next.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        *list = Arc::new(next);
    }
}

/// Open queriers by the block-list epoch they started at.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    state: Mutex<ReadersState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ReadersState {
    epoch: u64,
    open: BTreeMap<u64, usize>,
}

/// Keeps a querier registered until dropped.
#[derive(Debug)]
pub(crate) struct ReaderGuard {
    readers: Arc<Readers>,
    epoch: u64,
}

impl Readers {
    /// Registers a querier (before it snapshots the block list).
    pub(crate) fn register(self: &Arc<Self>) -> ReaderGuard {
        let mut st = self.state.lock();
        let epoch = st.epoch;
        *st.open.entry(epoch).or_insert(0) += 1;
        ReaderGuard { readers: Arc::clone(self), epoch }
    }

    /// Starts a new epoch (after publishing a block list) and waits until every querier of an
    /// earlier epoch is gone, or `timeout` passed; returns whether they all went.
    pub(crate) fn advance_and_wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        st.epoch += 1;
        let current = st.epoch;
        loop {
            if st.open.first_key_value().is_none_or(|(&e, _)| e >= current) {
                return true;
            }
            if self.changed.wait_until(&mut st, deadline).timed_out() {
                return false;
            }
        }
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut st = self.readers.state.lock();
        if let Some(n) = st.open.get_mut(&self.epoch) {
            *n -= 1;
            if *n == 0 {
                st.open.remove(&self.epoch);
            }
        }
        drop(st);
        self.readers.changed.notify_all();
    }
}

/// The querier of a [`super::Db`]: the head first, then the blocks, merged.
pub(crate) struct DbQuerier {
    pub(crate) inner: MergeQuerier,
    pub(crate) _guard: ReaderGuard,
}

impl Querier for DbQuerier {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>, QueryError> {
        self.inner.select(matchers, mint, maxt)
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, QueryError> {
        self.inner.label_names(matchers, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        self.inner.label_values(name, matchers, mint, maxt)
    }

    fn list_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, QueryError> {
        self.inner.list_series(matchers, mint, maxt)
    }
}

/// Renames `dir` to `<dir>-tmp-for-deletion`, then deletes it. A crash in between leaves a
/// directory that the next open removes. Readers that still map its files keep reading them.
pub(crate) fn delete_block_dir(dir: &Path) -> std::io::Result<()> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_DELETION);
    let doomed = dir.with_file_name(name);
    crate::fs::rename_synced(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) quarantined: u64,
}

/// Opens the blocks of `dir`. When `writable`: removes leftover temporary directories, moves
/// damaged blocks into `quarantine/`, and deletes blocks that a compacted block replaced (a
/// crash after the compacted block was written and before its sources were deleted).
pub(crate) fn load(dir: &Path, cache: &Arc<FrameCache>, writable: bool) -> std::io::Result<Loaded> {
    let mut out = Loaded::default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !e.file_type()?.is_dir() {
            continue;
        }
        if name.ends_with(TMP_CREATION) || name.ends_with(TMP_DELETION) {
            if writable {
                tracing::info!(dir = %e.path().display(), "removing leftover temporary block directory");
                std::fs::remove_dir_all(e.path())?;
            }
            continue;
        }
        if is_ulid(name) {
            candidates.push(e.path());
        }
    }
    candidates.sort();
    for path in candidates {
        match Block::open(&path, Arc::clone(cache)) {
            Ok(b) => out.blocks.push(Arc::new(b)),
            Err(e) if writable => {
                let file = e.file();
                let target = dir.join(QUARANTINE_DIR).join(path.file_name().unwrap_or_default());
                let moved = std::fs::create_dir_all(dir.join(QUARANTINE_DIR))
                    .and_then(|()| crate::fs::rename_synced(&path, &target));
                tracing::error!(
                    block = %path.display(), file = %file, error = %crate::block::DisplayChain(&e),
                    quarantine = %target.display(), moved = moved.is_ok(),
                    "block is damaged; moved aside, the rest of the store keeps serving"
                );
                out.quarantined += 1;
            }
            Err(e) => {
                // A read-only view of a directory another process writes: the block may have
                // been deleted by compaction since it was listed.
                tracing::warn!(block = %path.display(), error = %crate::block::DisplayChain(&e), "skipping block");
            }
        }
    }
    if writable {
        let replaced: HashSet<String> = out
            .blocks
            .iter()
            .flat_map(|b| b.meta().compaction.parents.iter().map(|p| p.ulid.clone()))
            .collect();
        let (gone, kept): (Vec<_>, Vec<_>) =
            out.blocks.into_iter().partition(|b| replaced.contains(&b.meta().ulid));
        for b in gone {
            tracing::info!(block = %b.dir().display(), "deleting block that a compacted block replaced");
            delete_block_dir(b.dir())?;
        }
        out.blocks = kept;
    }
    Ok(out)
}
