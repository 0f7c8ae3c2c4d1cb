//! The block index (`docs/format/index.md`): symbols, series pages, postings and the postings
//! table. [`write()`] builds one from sorted series; [`IndexReader`] answers matchers from it
//! without touching chunk data.

mod reader;
mod writer;

pub use reader::{IndexError, IndexReader};
pub use writer::{IndexWriteError, write};

use crate::block::chunks::ChunkRef;

/// File magic of an index.
pub const MAGIC: [u8; 4] = *b"KHIX";
/// Index format version written.
pub const VERSION: u8 = 1;
/// Series per series page.
pub const PAGE_SERIES: usize = 256;
/// Length of the TOC at the end of the file.
pub const TOC_LEN: usize = 40;

const SYMBOLS: [u8; 4] = *b"KSYM";
const SERIES: [u8; 4] = *b"KSER";
const PAGE_TABLE: [u8; 4] = *b"KSPT";
const POSTINGS: [u8; 4] = *b"KPST";
const POSTINGS_TABLE: [u8; 4] = *b"KPOT";

/// A series' ordinal in its block (see `docs/refs.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockSeriesRef(pub u32);

/// Where one chunk of a series is, and what time it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample's timestamp.
    pub mint: i64,
    /// Last sample's timestamp (inclusive).
    pub maxt: i64,
    /// Number of samples.
    pub samples: u32,
    /// The chunk.
    pub chunk: ChunkRef,
}

/// A series as the index stores it: labels and chunks.
pub type SeriesEntry = (crate::model::Labels, Vec<ChunkMeta>);

#[cfg(test)]
mod tests;
