//! kahu-tsdb: kahu's time-series storage engine. It knows nothing of PromQL or HTTP.
//!
//! # Overview
//!
//! - [`model`]: [`Labels`](model::Labels) (sorted by name, `__name__` included),
//!   [`Matcher`](model::Matcher) (`=`, `!=`, `=~`, `!~` with Prometheus semantics) and
//!   [`Sample`](model::Sample) (`i64` milliseconds, `f64`, the stale marker kept bit-exactly).
//! - [`Appender`]: the write boundary. Append samples, then `commit` (durable and visible at once)
//!   or `rollback`. Handed out by an [`Appendable`].
//! - [`Querier`]: the read boundary. `select(matchers, mint, maxt)` returns series in label order,
//!   each with a [`SampleIter`] (`next`, `seek`). Handed out by a [`Queryable`].
//! - [`Db`]: a data directory; implements both. It holds the [`head`] (series, postings index,
//!   Gorilla [`chunk`]s in memory) and its write-ahead log ([`wal`]). [`Db::open`] replays the WAL;
//!   [`Db::open_read_only`] gives a private read view of a directory another process writes.
//! - [`MemHead`]: a small in-memory store for tests and test scripts.
//! - [`block`]: persistent, compressed, mmap-backed blocks ([`block::write_block`],
//!   [`block::Block`], [`block::BlocksQuerier`]) and their [`index`].
//! - [`MetadataStore`](metadata::MetadataStore): TYPE/HELP/UNIT per metric family, in memory.
//! - [`Db::stats`] returns [`TsdbStats`]: series, samples, rejections by reason, WAL figures.
//!
//! # Durability contract
//!
//! - When [`Appender::commit`] returns `Ok`, the batch is in the WAL (written to the kernel with
//!   one `write`), and queriers created from then on see all of it. A `kill -9` of the process
//!   at any moment after that loses none of it: the next [`Db::open`] replays it.
//! - A batch whose `commit` did not return is replayed entirely or not at all (one commit is one
//!   CRC-checked WAL frame); never half of it.
//! - What a power loss or kernel crash can lose is bounded by the fsync policy
//!   ([`FsyncPolicy`], `--storage.wal.fsync`): nothing committed with `always`, the last interval
//!   (1s by default) with `interval`, whatever the kernel had not written back with `never`.
//! - Damage to the WAL (a torn tail after a crash, a bad CRC, garbage) never stops `Db::open`:
//!   a damaged tail is truncated at the last good frame, a damaged earlier segment loses the rest
//!   of that segment only; each case logs a warning and counts in [`WalStats::corruptions`].
//!
//! The on-disk format is in `docs/format/wal.md`; the kinds of ids in `docs/refs.md`.
//!
//! # Example
//!
//! ```
//! use kahu_tsdb::{Appendable, Queryable, MemHead, model::{Labels, Matcher}};
//!
//! let head = MemHead::new();
//! let mut app = head.appender();
//! app.append(&Labels::from_pairs([("__name__", "up"), ("job", "node")]), 1_000, 1.0)?;
//! app.commit()?;
//!
//! let q = head.querier()?;
//! let series: Vec<_> = q.select(&[Matcher::equal("job", "node")], 0, 2_000)?.collect();
//! assert_eq!(series.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod appender;
pub mod block;
pub mod chunk;
pub mod compact;
mod db;
pub mod fs;
pub mod head;
pub mod index;
mod mem;
pub mod metadata;
pub mod model;
pub mod querier;
pub mod tombstones;
mod validate;
pub mod wal;

pub use appender::{AppendError, Appendable, Appender, CommitError, CommitSummary, SeriesHint};
pub use db::{
    AdminError, BlocksStats, DEFAULT_RETENTION_MS, Db, MaintainError, MaintainSummary, MaintenanceHandle,
    OpenError, Options, QUARANTINE_DIR, TsdbStats, WalStats,
};
pub use head::{HeadOptions, HeadStats, LabelLimits, RejectedStats};
pub use mem::MemHead;
pub use querier::{Querier, QueryError, Queryable, SampleIter, Series, SeriesSet, SliceIter};
pub use wal::FsyncPolicy;
