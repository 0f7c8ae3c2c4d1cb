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
//! - [`Db`]: a data directory; implements both.
//! - [`MemHead`]: an in-memory store for tests and test scripts.
//! - [`block`]: persistent, compressed, mmap-backed blocks ([`block::write_block`],
//!   [`block::Block`], [`block::BlocksQuerier`]) and their [`index`].
//! - [`MetadataStore`](metadata::MetadataStore): TYPE/HELP/UNIT per metric family, in memory.
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
mod db;
pub mod fs;
pub mod index;
mod mem;
pub mod metadata;
pub mod model;
pub mod querier;
mod validate;

pub use appender::{AppendError, Appendable, Appender, CommitError, CommitSummary};
pub use db::{Db, OpenError, Options};
pub use mem::MemHead;
pub use querier::{Querier, QueryError, Queryable, SampleIter, Series, SeriesSet, SliceIter};
