//! An open block: its meta, its memory-mapped index and chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::chunks::{ChunkReadError, ChunkReader, FrameCache};
use super::meta::{BlockMeta, MetaError};
use crate::fs::MappedFile;
use crate::index::{ChunkMeta, IndexError, IndexReader};
use crate::model::Sample;

/// A block failed to open or a read from it failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// `meta.json` is missing, damaged or of an unknown version.
    #[error("block {dir}")]
    Meta {
        /// The block directory.
        dir: PathBuf,
        /// What was wrong.
        #[source]
        source: MetaError,
    },
    /// A data file is missing or has another size than `meta.json` says.
    #[error("block {dir}: {file} {problem}")]
    File {
        /// The block directory.
        dir: PathBuf,
        /// The file, relative to the block.
        file: String,
        /// "is missing", "is truncated (… of … bytes)".
        problem: String,
    },
    /// The index failed its checks.
    #[error("block {dir}")]
    Index {
        /// The block directory.
        dir: PathBuf,
        /// What was wrong.
        #[source]
        source: IndexError,
    },
    /// Chunk data failed its checks.
    #[error("block {dir}")]
    Chunks {
        /// The block directory.
        dir: PathBuf,
        /// What was wrong.
        #[source]
        source: ChunkReadError,
    },
}

impl BlockError {
    /// The file the error is about, relative to the block directory, for `kahu tsdb verify`.
    pub fn file(&self) -> String {
        match self {
            BlockError::Meta { .. } => "meta.json".into(),
            BlockError::File { file, .. } => file.clone(),
            BlockError::Index { .. } => "index".into(),
            BlockError::Chunks {
                source: ChunkReadError::Frame { segment, .. } | ChunkReadError::Chunk { segment, .. },
                ..
            } => {
                format!("chunks/{segment}")
            }
            BlockError::Chunks { .. } => "chunks".into(),
        }
    }
}

/// An open, immutable block. Shared behind an `Arc`; its files stay mapped until the last
/// reader drops it, even after the block was deleted.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    size: u64,
}

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

impl Block {
    /// Opens `dir`, checking `meta.json`, file sizes, and every checksum of the index and the
    /// chunk frames (CRC only: a few milliseconds per hundred megabytes).
    pub fn open(dir: &Path, cache: Arc<FrameCache>) -> Result<Block, BlockError> {
        let meta = BlockMeta::read(&dir.join("meta.json"))
            .map_err(|source| BlockError::Meta { dir: dir.to_path_buf(), source })?;
        let mut size = 0;
        let mut segments = Vec::new();
        for f in &meta.files {
            let path = dir.join(&f.name);
            let file_err =
                |problem: String| BlockError::File { dir: dir.to_path_buf(), file: f.name.clone(), problem };
            let actual = std::fs::metadata(&path).map_err(|_| file_err("is missing".into()))?.len();
            if actual != f.size {
                return Err(file_err(format!("has {actual} bytes, meta.json says {}", f.size)));
            }
            size += actual;
            if let Some(seg) = f.name.strip_prefix("chunks/") {
                let map = MappedFile::open(&path).map_err(|e| file_err(format!("cannot be mapped: {e}")))?;
                segments.push((seg.to_string(), map));
            }
        }
        segments.sort_by(|a, b| a.0.cmp(&b.0));
        let index = IndexReader::open(&dir.join("index"))
            .map_err(|source| BlockError::Index { dir: dir.to_path_buf(), source })?;
        let chunks = ChunkReader::new(NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed), segments, cache);
        chunks.verify().map_err(|source| BlockError::Chunks { dir: dir.to_path_buf(), source })?;
        size += std::fs::metadata(dir.join("meta.json")).map(|m| m.len()).unwrap_or(0);
        Ok(Block { dir: dir.to_path_buf(), meta, index, chunks, size })
    }

    /// Decodes every chunk, for `kahu tsdb verify`: a chunk that does not decode is an error.
    pub fn verify_chunks(&self) -> Result<u64, BlockError> {
        let mut samples = 0;
        let all: Vec<u32> = (0..self.index.num_series() as u32).collect();
        let series =
            self.index.series(&all).map_err(|source| BlockError::Index { dir: self.dir.clone(), source })?;
        for (_, _, metas) in series {
            for m in metas {
                let s = self
                    .chunks
                    .chunk(m.chunk)
                    .map_err(|source| BlockError::Chunks { dir: self.dir.clone(), source })?;
                samples += s.len() as u64;
            }
        }
        Ok(samples)
    }

    /// The block directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Bytes on disk (all files).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The index.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// Samples of `chunks` within `[mint, maxt]`, in time order.
    pub fn samples(&self, chunks: &[ChunkMeta], mint: i64, maxt: i64) -> Result<Vec<Sample>, BlockError> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| c.maxt >= mint && c.mint <= maxt) {
            let s = self
                .chunks
                .chunk(c.chunk)
                .map_err(|source| BlockError::Chunks { dir: self.dir.clone(), source })?;
            out.extend(s.into_iter().filter(|s| s.t >= mint && s.t <= maxt));
        }
        Ok(out)
    }
}
