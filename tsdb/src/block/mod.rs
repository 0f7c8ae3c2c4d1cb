//! Persistent blocks: immutable, mmap-backed directories of compressed chunks and an index. The
//! byte layouts are in `docs/format/`.
//!
//! - [`write_block`] writes sorted series into a new block (temporary directory, fsync, rename).
//! - [`Block`] opens one, checking every checksum, and reads series and samples from it.
//! - [`BlocksQuerier`] answers the [`Querier`](crate::Querier) contract over a set of blocks;
//!   [`MergeQuerier`] merges it with the head's querier.

pub mod chunks;
pub mod codec;
mod merge;
pub mod meta;
mod querier;
mod reader;
pub mod section;
mod writer;

pub use chunks::FrameCache;
pub use merge::MergeQuerier;
pub use meta::BlockMeta;
pub(crate) use querier::DisplayChain;
pub use querier::{BlocksQuerier, VecIter};
pub use reader::{Block, BlockError};
pub(crate) use writer::io_step;
pub use writer::{
    BlockSpec, BlockWriteError, IoStepError, TMP_CREATION, TMP_DELETION, WriteOptions, write_block,
};

#[cfg(test)]
mod tests;
