//! `Db`: a data directory and the store inside it: the head and its WAL, and the blocks the
//! head's older data is persisted into, compacted and expired by background maintenance.

mod admin;
mod blocks;
mod maintain;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parking_lot::Mutex;

pub use admin::AdminError;
use admin::DbTombstones;
use blocks::BlockSet;
pub use blocks::QUARANTINE_DIR;
pub use maintain::{MaintainError, MaintainSummary, MaintenanceHandle};

use crate::appender::{Appendable, Appender};
use crate::block::{FrameCache, WriteOptions};
use crate::compact::Retention;
use crate::head::{Head, HeadOptions, HeadStats};
use crate::metadata::MetadataStore;
use crate::querier::{Querier, QueryError, Queryable};
use crate::wal::{self, FsyncPolicy, Wal, WalCounters, WalError};

/// Opening the data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error("create data directory {path}")]
    CreateDir {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory exists but kahu cannot write into it.
    #[error("data directory {path} is not writable")]
    NotWritable {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the directory's lock file.
    #[error("data directory {path} is locked by another process (lock file {lock})")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A read-only open of a directory that does not exist.
    #[error("data directory {path} does not exist")]
    Missing {
        /// The data directory.
        path: PathBuf,
    },
    /// The WAL directory or a segment could not be read at all (not damage, which replay
    /// repairs, but e.g. permissions).
    #[error("read WAL in {path}")]
    ReadWal {
        /// The WAL directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A new WAL segment could not be started.
    #[error("start WAL")]
    Wal(#[source] WalError),
    /// The block directories could not be listed, cleaned up or moved aside.
    #[error("load blocks in {path}")]
    Blocks {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Options for [`Db::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// When the WAL is fsynced (`--storage.wal.fsync`).
    pub wal_fsync: FsyncPolicy,
    /// Size at which a WAL segment is closed (`--storage.tsdb.wal-segment-size`).
    pub wal_segment_size: u64,
    /// Head options: chunk range (also the block range), samples per chunk, label limits.
    pub head: HeadOptions,
    /// Retention (`--storage.retention.time`, default 15d; `--storage.retention.size`).
    pub retention: Retention,
    /// Whether background maintenance compacts blocks.
    pub compaction: bool,
    /// How blocks are written.
    pub block_write: WriteOptions,
    /// Bytes of decompressed chunk frames kept in memory for queries.
    pub frame_cache_bytes: usize,
}

/// The default retention time: 15 days.
pub const DEFAULT_RETENTION_MS: i64 = 15 * 24 * 3_600_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            wal_fsync: FsyncPolicy::default(),
            wal_segment_size: 32 << 20,
            head: HeadOptions::default(),
            retention: Retention { time: Some(DEFAULT_RETENTION_MS), size: None },
            compaction: true,
            block_write: WriteOptions::default(),
            frame_cache_bytes: 64 << 20,
        }
    }
}

/// Block figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlocksStats {
    /// Blocks loaded now.
    pub loaded: u64,
    /// Bytes of the loaded blocks on disk.
    pub bytes: u64,
    /// Samples in the loaded blocks.
    pub samples: u64,
    /// Oldest block time (ms), `None` without blocks.
    pub min_time: Option<i64>,
    /// Head ranges persisted into blocks since start.
    pub persisted: u64,
    /// Failed attempts to persist the head since start.
    pub persist_failed: u64,
    /// Compactions done since start.
    pub compactions: u64,
    /// Failed compactions since start.
    pub compactions_failed: u64,
    /// Samples written by compactions since start.
    pub samples_compacted: u64,
    /// Time spent compacting since start, from the plan to the new block in place.
    pub compaction_seconds: f64,
    /// Blocks moved to `quarantine/` since start.
    pub quarantined: u64,
    /// Blocks deleted by retention since start.
    pub retention_deleted: u64,
    /// WAL checkpoints since start.
    pub checkpoints: u64,
}

/// WAL figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalStats {
    /// Segment files.
    pub segments: u64,
    /// Bytes in segment files.
    pub bytes: u64,
    /// Damaged places found by replay (torn tails, bad CRCs, garbage), since start.
    pub corruptions: u64,
    /// Commit frames written since start.
    pub frames_written: u64,
    /// Failed writes and fsyncs since start.
    pub write_failures: u64,
    /// Fsyncs since start.
    pub fsyncs: u64,
    /// Whether the WAL stopped accepting writes after a failure.
    pub poisoned: bool,
    /// Seconds the replay at open took.
    pub replay_seconds: f64,
}

/// Everything [`Db::stats`] reports: for `/api/v1/status/tsdb` and `kahu_tsdb_*` self-metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStats {
    /// The head.
    pub head: HeadStats,
    /// The WAL.
    pub wal: WalStats,
    /// The blocks.
    pub blocks: BlocksStats,
}

/// A kahu data directory: an exclusive lock, the head and its WAL.
///
/// `Db` is `Sync`: share it behind an `Arc`; appenders and queriers may be used from any thread.
/// See the crate documentation for the durability contract.
#[derive(Debug)]
pub struct Db {
    dir: PathBuf,
    head: Arc<Head>,
    wal_counters: Arc<WalCounters>,
    replay_seconds: f64,
    metadata: Arc<MetadataStore>,
    blocks: BlockSet,
    opts: Options,
    /// Deleted ranges of the head's and the blocks' series.
    stones: DbTombstones,
    /// Serializes maintenance passes and admin operations. Holds the end of the last head range
    /// persisted whose WAL checkpoint has not been done yet (it failed), retried by the next pass.
    maintenance: Mutex<Option<i64>>,
    // Held for the lifetime of the Db; the OS releases the lock when the file is closed.
    _lock: Option<File>,
}

fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let lock_path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| OpenError::NotWritable { path: dir.to_path_buf(), source })?;
    // A few short retries: a process that just closed the directory may still share the lock
    // with a child it forked and that has not exec'd yet.
    for attempt in 0..10 {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if attempt < 9 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(OpenError::NotWritable { path: dir.to_path_buf(), source });
            }
        }
    }
    Err(OpenError::Locked { path: dir.to_path_buf(), lock: lock_path })
}

impl Db {
    /// Creates `dir` if needed, locks it, replays the WAL into the head (truncating a damaged
    /// tail) and starts a new WAL segment.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir { path: dir.clone(), source })?;
        let lock = lock_dir(&dir)?;
        let cache = FrameCache::new(opts.frame_cache_bytes);
        let loaded = blocks::load(&dir, &cache, true)
            .map_err(|source| OpenError::Blocks { path: dir.clone(), source })?;
        let with_stones = admin::load_block_tombstones(&dir, loaded.blocks, true);
        let loaded = blocks::Loaded {
            blocks: with_stones.blocks,
            quarantined: loaded.quarantined + with_stones.quarantined,
        };
        let stones = DbTombstones::default();
        *stones.blocks.write() = with_stones.stones;
        let head = Arc::new(Head::new(opts.head.clone(), false));
        // What the blocks hold is not replayed into the head again.
        if let Some(t) = loaded.blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(t);
        }
        let block_set = BlockSet::new(loaded.blocks, cache);
        block_set.counters.quarantined.store(loaded.quarantined, Ordering::Relaxed);
        let counters = Arc::new(WalCounters::default());
        let wal_dir = dir.join("wal");
        let started = Instant::now();
        let mut head_stones = crate::tombstones::Tombstones::default();
        let summary = wal::replay(&wal_dir, false, &counters, |recs| {
            head.apply_replayed(admin::take_replayed_tombstones(recs, &mut head_stones));
        })
        .map_err(|source| OpenError::ReadWal { path: wal_dir.clone(), source })?;
        *stones.head.write() = Arc::new(head_stones);
        let replay_seconds = started.elapsed().as_secs_f64();
        let st = head.stats();
        tracing::info!(
            frames = summary.frames,
            series = st.series,
            samples = st.samples_replayed,
            dropped = st.samples_replay_dropped,
            corruptions = summary.corruptions,
            seconds = replay_seconds,
            "WAL replayed"
        );
        let wal = Wal::create(
            &wal_dir,
            summary.next_segment,
            opts.wal_segment_size,
            opts.wal_fsync,
            Arc::clone(&counters),
        )
        .map_err(OpenError::Wal)?;
        head.set_wal(wal);
        Ok(Db {
            dir,
            head,
            wal_counters: counters,
            replay_seconds,
            metadata: Default::default(),
            blocks: block_set,
            opts,
            stones,
            maintenance: Mutex::new(None),
            _lock: Some(lock),
        })
    }

    /// Opens `dir` for reading only, while another process may be writing it: takes no lock,
    /// writes, truncates or creates nothing, and replays the WAL into a private in-memory head.
    /// The view is fixed at open: it holds what was committed (and written) when `open_read_only`
    /// read each segment; a frame being written at that moment is left out. Appenders of a
    /// read-only `Db` fail at commit with [`crate::CommitError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Db, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(OpenError::Missing { path: dir });
        }
        // The writer may checkpoint the WAL or compact blocks while this reads: a file that
        // vanished between listing and reading means "try again".
        let mut attempt = 0;
        loop {
            match Self::read_only_view(&dir) {
                Err(OpenError::ReadWal { source, .. } | OpenError::Blocks { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn read_only_view(dir: &Path) -> Result<Db, OpenError> {
        let opts = Options::default();
        let cache = FrameCache::new(opts.frame_cache_bytes);
        let loaded = blocks::load(dir, &cache, false)
            .map_err(|source| OpenError::Blocks { path: dir.to_path_buf(), source })?;
        let with_stones = admin::load_block_tombstones(dir, loaded.blocks, false);
        let loaded = blocks::Loaded { blocks: with_stones.blocks, quarantined: 0 };
        let stones = DbTombstones::default();
        *stones.blocks.write() = with_stones.stones;
        let head = Arc::new(Head::new(HeadOptions::default(), true));
        if let Some(t) = loaded.blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(t);
        }
        let counters = Arc::new(WalCounters::default());
        let wal_dir = dir.join("wal");
        let started = Instant::now();
        let mut head_stones = crate::tombstones::Tombstones::default();
        wal::replay(&wal_dir, true, &counters, |recs| {
            head.apply_replayed(admin::take_replayed_tombstones(recs, &mut head_stones));
        })
        .map_err(|source| OpenError::ReadWal { path: wal_dir.clone(), source })?;
        *stones.head.write() = Arc::new(head_stones);
        let replay_seconds = started.elapsed().as_secs_f64();
        Ok(Db {
            dir: dir.to_path_buf(),
            head,
            wal_counters: counters,
            replay_seconds,
            metadata: Default::default(),
            blocks: BlockSet::new(loaded.blocks, cache),
            opts,
            stones,
            maintenance: Mutex::new(None),
            _lock: None,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Metric metadata (TYPE/HELP/UNIT) that writers report and `/api/v1/metadata` serves.
    pub fn metadata(&self) -> &std::sync::Arc<MetadataStore> {
        &self.metadata
    }

    /// Number of series in the head.
    pub fn head_series(&self) -> usize {
        self.head.num_series()
    }

    /// The head (for compaction into blocks and for tools).
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Whether this `Db` was opened with [`Db::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self._lock.is_none()
    }

    /// Current figures of the head and the WAL.
    pub fn stats(&self) -> TsdbStats {
        let c = &self.wal_counters;
        TsdbStats {
            head: self.head.stats(),
            wal: WalStats {
                segments: c.segments.load(Ordering::Relaxed),
                bytes: c.bytes.load(Ordering::Relaxed),
                corruptions: c.corruptions.load(Ordering::Relaxed),
                frames_written: c.frames_written.load(Ordering::Relaxed),
                write_failures: c.write_failures.load(Ordering::Relaxed),
                fsyncs: c.fsyncs.load(Ordering::Relaxed),
                poisoned: self.head.wal().is_some_and(Wal::is_poisoned),
                replay_seconds: self.replay_seconds,
            },
            blocks: self.blocks_stats(),
        }
    }

    fn blocks_stats(&self) -> BlocksStats {
        let list = self.blocks.snapshot();
        let c = &self.blocks.counters;
        BlocksStats {
            loaded: list.len() as u64,
            bytes: list.iter().map(|b| b.size()).sum(),
            samples: list.iter().map(|b| b.meta().stats.num_samples).sum(),
            min_time: list.iter().map(|b| b.meta().min_time).min(),
            persisted: c.persisted.load(Ordering::Relaxed),
            persist_failed: c.persist_failed.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            compactions_failed: c.compactions_failed.load(Ordering::Relaxed),
            samples_compacted: c.samples_compacted.load(Ordering::Relaxed),
            compaction_seconds: c.compaction_micros.load(Ordering::Relaxed) as f64 / 1e6,
            quarantined: c.quarantined.load(Ordering::Relaxed),
            retention_deleted: c.retention_deleted.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// The blocks loaded now, oldest first.
    pub fn blocks(&self) -> Vec<Arc<crate::block::Block>> {
        self.blocks.snapshot().to_vec()
    }
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(self.head.appender())
    }
}

impl Queryable for Db {
    fn querier(&self) -> Result<Box<dyn Querier>, QueryError> {
        Ok(Box::new(self.db_querier()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let _db = Db::open(dir.path(), Options::default())?;
        assert!(matches!(Db::open(dir.path(), Options::default()), Err(OpenError::Locked { .. })));
        Ok(())
    }

    #[test]
    fn a_directory_under_a_file_cannot_be_created() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("f");
        std::fs::write(&file, b"x")?;
        assert!(matches!(Db::open(file.join("data"), Options::default()), Err(OpenError::CreateDir { .. })));
        Ok(())
    }

    #[test]
    fn read_only_open_of_a_missing_directory_is_an_error() {
        assert!(matches!(Db::open_read_only("/nonexistent/kahu"), Err(OpenError::Missing { .. })));
    }
}
