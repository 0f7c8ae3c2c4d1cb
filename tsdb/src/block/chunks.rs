//! Chunk segment files: writing chunks into zstd frames, and reading them back through a
//! bounded cache of decompressed frames (`docs/format/chunks.md`).

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::codec::buf::{Dec, put_uvarint};
use super::codec::{self, CodecError, MAX_CHUNK_SAMPLES};
use super::section::{self, SectionError};
use crate::fs::MappedFile;
use crate::model::Sample;

/// Magic at the start of every chunk segment file.
pub const FILE_MAGIC: [u8; 4] = *b"KHCK";
/// Magic of a frame section.
pub const FRAME_MAGIC: [u8; 4] = *b"KFRM";
/// Chunk file format version written.
pub const VERSION: u8 = 1;
/// Bytes of the segment file header.
pub const FILE_HEADER_LEN: usize = 8;
/// A frame is closed once its raw payload passes this.
pub const FRAME_TARGET: usize = 256 << 10;
/// A segment is closed once it passes this.
pub const SEGMENT_TARGET: u64 = 512 << 20;

/// Where a chunk is (see `docs/refs.md`): segment, frame offset, index in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    /// Packs the three parts.
    pub fn new(segment: u16, frame_offset: u32, index: u16) -> Self {
        ChunkRef(u64::from(segment) << 48 | u64::from(frame_offset) << 16 | u64::from(index))
    }
    /// Segment number (file `chunks/{segment+1:06}`).
    pub fn segment(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// Byte offset of the frame in its segment.
    pub fn frame_offset(self) -> u32 {
        (self.0 >> 16) as u32
    }
    /// Index of the chunk in its frame.
    pub fn index(self) -> u16 {
        self.0 as u16
    }
}

/// File name of segment `seg` (0-based).
pub fn segment_name(seg: u16) -> String {
    format!("{:06}", u32::from(seg) + 1)
}

/// Writing chunk data failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkWriteError {
    /// An I/O error on a segment file.
    #[error("write chunk segment {path}")]
    Io {
        /// The segment file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// More chunks than a frame or segments than a block can address.
    #[error("block too large: {0}")]
    TooLarge(&'static str),
}

/// Writes chunks into `chunks/` of a block being created.
pub struct ChunkWriter {
    dir: PathBuf,
    level: i32,
    seg: u16,
    file: Option<(PathBuf, BufWriter<std::fs::File>)>,
    seg_len: u64,
    frame: Vec<Vec<u8>>,
    /// Per chunk of `frame`: its smallest encoding without entropy-coded value codecs, when
    /// `frame` holds an entropy-coded one (see [`ChunkWriter::flush_frame`]).
    classic: Vec<Option<Vec<u8>>>,
    frame_raw: usize,
    /// (segment name, size) of every closed segment.
    done: Vec<(String, u64)>,
    frames: u64,
}

impl std::fmt::Debug for ChunkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter").field("dir", &self.dir).field("seg", &self.seg).finish()
    }
}

impl ChunkWriter {
    /// A writer into `dir` (created), compressing frames at zstd `level`.
    pub fn new(dir: &Path, level: i32) -> Result<Self, ChunkWriteError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| ChunkWriteError::Io { path: dir.to_path_buf(), source })?;
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            level,
            seg: 0,
            file: None,
            seg_len: 0,
            frame: Vec::new(),
            classic: Vec::new(),
            frame_raw: 0,
            done: Vec::new(),
            frames: 0,
        })
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChunkWriteError + '_ {
        move |source| ChunkWriteError::Io { path: path.to_path_buf(), source }
    }

    fn ensure_segment(&mut self) -> Result<(), ChunkWriteError> {
        if self.file.is_some() && self.seg_len < SEGMENT_TARGET {
            return Ok(());
        }
        if self.file.is_some() {
            self.close_segment()?;
            self.seg =
                self.seg.checked_add(1).ok_or(ChunkWriteError::TooLarge("more than 65,536 segments"))?;
        }
        let path = self.dir.join(segment_name(self.seg));
        let f = std::fs::File::create(&path).map_err(Self::io(&path))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&FILE_MAGIC).map_err(Self::io(&path))?;
        w.write_all(&[VERSION, 0, 0, 0]).map_err(Self::io(&path))?;
        self.seg_len = FILE_HEADER_LEN as u64;
        self.file = Some((path, w));
        Ok(())
    }

    fn close_segment(&mut self) -> Result<(), ChunkWriteError> {
        if let Some((path, w)) = self.file.take() {
            let f = w
                .into_inner()
                .map_err(|e| ChunkWriteError::Io { path: path.clone(), source: e.into_error() })?;
            f.sync_all().map_err(Self::io(&path))?;
            self.done.push((segment_name(self.seg), self.seg_len));
        }
        Ok(())
    }

    /// Encodes `samples` (at most [`MAX_CHUNK_SAMPLES`], increasing timestamps) as one chunk.
    pub fn add(&mut self, samples: &[Sample]) -> Result<ChunkRef, ChunkWriteError> {
        if samples.len() > MAX_CHUNK_SAMPLES {
            return Err(ChunkWriteError::TooLarge("chunk above 8,192 samples"));
        }
        if self.frame.is_empty() {
            self.ensure_segment()?;
        }
        let offset =
            u32::try_from(self.seg_len).map_err(|_| ChunkWriteError::TooLarge("segment above 4 GiB"))?;
        let index = u16::try_from(self.frame.len())
            .map_err(|_| ChunkWriteError::TooLarge("frame above 65,536 chunks"))?;
        let mut bytes = Vec::with_capacity(samples.len() + 16);
        let (_, classic) = codec::encode_chunk_with_classic(&mut bytes, samples);
        self.frame_raw += bytes.len();
        self.frame.push(bytes);
        self.classic.push(classic);
        let r = ChunkRef::new(self.seg, offset, index);
        if self.frame_raw >= FRAME_TARGET || self.frame.len() == usize::from(u16::MAX) {
            self.flush_frame()?;
        }
        Ok(r)
    }

    /// Writes the frame. When some of its chunks are range-coded (which zstd cannot shrink,
    /// while it does shrink bit-packed chunks by matching across series), the frame is also
    /// compressed with those chunks in their best classic encoding, and the smaller frame is
    /// written: codecs are chosen by the size that lands on disk.
    fn flush_frame(&mut self) -> Result<(), ChunkWriteError> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let frame_section = |chunks: &mut dyn Iterator<Item = &Vec<u8>>, level: i32, raw_len: usize| {
            let chunks: Vec<&Vec<u8>> = chunks.collect();
            let mut raw = Vec::with_capacity(raw_len + 4 * chunks.len() + 8);
            put_uvarint(&mut raw, chunks.len() as u64);
            for c in &chunks {
                put_uvarint(&mut raw, c.len() as u64);
            }
            for c in &chunks {
                raw.extend_from_slice(c);
            }
            let mut out = Vec::with_capacity(raw.len() / 2 + 32);
            section::write(&mut out, FRAME_MAGIC, VERSION, &raw, Some(level));
            out
        };
        let mut out = frame_section(&mut self.frame.iter(), self.level, self.frame_raw);
        if self.classic.iter().any(Option::is_some) {
            let mut classic = self.frame.iter().zip(&self.classic).map(|(c, alt)| alt.as_ref().unwrap_or(c));
            let alt = frame_section(&mut classic, self.level, self.frame_raw);
            if alt.len() < out.len() {
                out = alt;
            }
        }
        let Some((path, w)) = self.file.as_mut() else { return Err(ChunkWriteError::TooLarge("no segment")) };
        w.write_all(&out).map_err(|source| ChunkWriteError::Io { path: path.clone(), source })?;
        self.seg_len += out.len() as u64;
        self.frame.clear();
        self.classic.clear();
        self.frame_raw = 0;
        self.frames += 1;
        Ok(())
    }

    /// Flushes and fsyncs everything; returns `(file name, size)` of each segment and the
    /// number of frames.
    pub fn finish(mut self) -> Result<(Vec<(String, u64)>, u64), ChunkWriteError> {
        self.flush_frame()?;
        self.close_segment()?;
        crate::fs::sync_dir(&self.dir).map_err(Self::io(&self.dir))?;
        Ok((std::mem::take(&mut self.done), self.frames))
    }
}

/// Reading a chunk failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkReadError {
    /// The chunk ref names a segment the block does not have.
    #[error("chunk ref {0:#x}: no such segment")]
    NoSegment(u64),
    /// The frame failed its checks.
    #[error("chunk segment {segment}")]
    Frame {
        /// Segment file name.
        segment: String,
        /// What was wrong.
        #[source]
        source: SectionError,
    },
    /// The frame's payload or the chunk does not decode.
    #[error("chunk segment {segment}, frame at {offset}, chunk {index}")]
    Chunk {
        /// Segment file name.
        segment: String,
        /// Frame offset.
        offset: u32,
        /// Chunk index in the frame.
        index: u16,
        /// What was wrong.
        #[source]
        source: CodecError,
    },
}

/// A decompressed frame: its payload and where each chunk is in it.
#[derive(Debug)]
pub struct Frame {
    raw: Vec<u8>,
    chunks: Vec<std::ops::Range<usize>>,
}

impl Frame {
    fn parse(raw: Vec<u8>) -> Result<Frame, CodecError> {
        let mut d = Dec::new(&raw);
        let n = d.len(usize::from(u16::MAX), "frame chunk count")?;
        let mut lens = Vec::with_capacity(n);
        for _ in 0..n {
            lens.push(d.len(raw.len(), "chunk length")?);
        }
        let mut at = d.pos();
        let mut chunks = Vec::with_capacity(n);
        for l in lens {
            let end = at.checked_add(l).filter(|&e| e <= raw.len()).ok_or(CodecError::Truncated)?;
            chunks.push(at..end);
            at = end;
        }
        if at != raw.len() {
            return Err(CodecError::Trailing(raw.len() - at));
        }
        Ok(Frame { raw, chunks })
    }

    /// Bytes of chunk `i`.
    pub fn chunk(&self, i: u16) -> Option<&[u8]> {
        self.chunks.get(usize::from(i)).and_then(|r| self.raw.get(r.clone()))
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether the frame has no chunks.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// A bounded cache of decompressed frames, shared by every block of a database, so that a
/// query touching several chunks of one frame decompresses it once and memory stays bounded.
#[derive(Debug)]
pub struct FrameCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<(u64, u16, u32), (Arc<Frame>, u64)>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

impl FrameCache {
    /// A cache holding at most `capacity` bytes of decompressed frames.
    pub fn new(capacity: usize) -> Arc<FrameCache> {
        Arc::new(FrameCache { capacity, inner: Mutex::new(CacheInner::default()) })
    }

    fn get(&self, key: (u64, u16, u32)) -> Option<Arc<Frame>> {
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let found = g.map.get_mut(&key).map(|e| {
            e.1 = tick;
            e.0.clone()
        });
        if found.is_some() {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        found
    }

    fn put(&self, key: (u64, u16, u32), frame: Arc<Frame>) {
        let size = frame.raw.len() + 16 * frame.chunks.len() + 64;
        if size > self.capacity {
            return;
        }
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, _)) = g.map.insert(key, (frame, tick)) {
            g.bytes -= old.raw.len() + 16 * old.chunks.len() + 64;
        }
        g.bytes += size;
        while g.bytes > self.capacity {
            let Some((&k, _)) = g.map.iter().min_by_key(|(_, v)| v.1) else { break };
            if let Some((old, _)) = g.map.remove(&k) {
                g.bytes -= old.raw.len() + 16 * old.chunks.len() + 64;
            }
        }
    }

    /// `(hits, misses, bytes held)`.
    pub fn stats(&self) -> (u64, u64, usize) {
        let g = self.inner.lock();
        (g.hits, g.misses, g.bytes)
    }
}

/// Reads the chunks of one block.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    /// A number unique to the open block, keying its frames in the cache.
    cache_id: u64,
    segments: Vec<(String, MappedFile)>,
    cache: Arc<FrameCache>,
}

impl ChunkReader {
    /// Maps the given segment files.
    pub fn new(cache_id: u64, segments: Vec<(String, MappedFile)>, cache: Arc<FrameCache>) -> Self {
        ChunkReader { cache_id, segments, cache }
    }

    /// Checks every segment's header and every frame's checksum, without decompressing.
    /// Returns the number of frames.
    pub fn verify(&self) -> Result<u64, ChunkReadError> {
        let mut frames = 0;
        for (name, file) in &self.segments {
            let err = |source| ChunkReadError::Frame { segment: name.clone(), source };
            let head = file.get(..FILE_HEADER_LEN).ok_or(err(SectionError::Truncated { offset: 0 }))?;
            if head.get(..4) != Some(&FILE_MAGIC[..]) {
                let found = head.get(..4).and_then(|m| m.try_into().ok()).unwrap_or([0; 4]);
                return Err(err(SectionError::Magic { offset: 0, found, expected: FILE_MAGIC }));
            }
            let version = head.get(4).copied().unwrap_or(0);
            if version == 0 || version > VERSION {
                return Err(err(SectionError::Version { offset: 0, version, supported: VERSION }));
            }
            if head.get(5..8) != Some(&[0u8, 0, 0][..]) {
                return Err(err(SectionError::Invalid {
                    offset: 0,
                    reason: "reserved header bytes are not zero",
                }));
            }
            let mut at = FILE_HEADER_LEN;
            while at < file.len() {
                at = section::locate(file, at, FRAME_MAGIC, VERSION).map_err(err)?.end;
                frames += 1;
            }
        }
        Ok(frames)
    }

    /// The decompressed frame holding `r`.
    pub fn frame(&self, r: ChunkRef) -> Result<Arc<Frame>, ChunkReadError> {
        let key = (self.cache_id, r.segment(), r.frame_offset());
        if let Some(f) = self.cache.get(key) {
            return Ok(f);
        }
        let (name, file) =
            self.segments.get(usize::from(r.segment())).ok_or(ChunkReadError::NoSegment(r.0))?;
        let (raw, _) = section::read(file, r.frame_offset() as usize, FRAME_MAGIC, VERSION)
            .map_err(|source| ChunkReadError::Frame { segment: name.clone(), source })?;
        let frame = Frame::parse(raw.into_owned()).map_err(|source| ChunkReadError::Chunk {
            segment: name.clone(),
            offset: r.frame_offset(),
            index: r.index(),
            source,
        })?;
        let frame = Arc::new(frame);
        self.cache.put(key, frame.clone());
        Ok(frame)
    }

    /// Decodes the chunk at `r`.
    pub fn chunk(&self, r: ChunkRef) -> Result<Vec<Sample>, ChunkReadError> {
        let frame = self.frame(r)?;
        let name = || self.segments.get(usize::from(r.segment())).map(|s| s.0.clone()).unwrap_or_default();
        let err = |source| ChunkReadError::Chunk {
            segment: name(),
            offset: r.frame_offset(),
            index: r.index(),
            source,
        };
        let bytes =
            frame.chunk(r.index()).ok_or_else(|| err(CodecError::Invalid("chunk index beyond the frame")))?;
        codec::decode_chunk(bytes).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_written_read_back_through_frames_and_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::new(&dir.path().join("chunks"), 3).unwrap();
        let mut refs = Vec::new();
        let mut all = Vec::new();
        for s in 0..2000i64 {
            let samples: Vec<Sample> = (0..100)
                .map(|i| {
                    Sample::new(
                        i * 15_000,
                        f64::from_bits(((s * 7919 + i) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 2),
                    )
                })
                .collect();
            refs.push(w.add(&samples).unwrap());
            all.push(samples);
        }
        let (segs, frames) = w.finish().unwrap();
        assert_eq!(segs.len(), 1);
        assert!(frames > 1, "several frames");
        let files: Vec<(String, MappedFile)> = segs
            .iter()
            .map(|(n, _)| (n.clone(), MappedFile::open(&dir.path().join("chunks").join(n)).unwrap()))
            .collect();
        let cache = FrameCache::new(1 << 20);
        let r = ChunkReader::new(1, files, cache.clone());
        assert_eq!(r.verify().unwrap(), frames);
        for (cr, samples) in refs.iter().zip(&all) {
            assert_eq!(&r.chunk(*cr).unwrap(), samples);
        }
        let (hits, misses, bytes) = cache.stats();
        assert!(hits > misses, "{hits} hits, {misses} misses");
        assert!(bytes <= 1 << 20);
    }

    #[test]
    fn chunk_refs_pack_their_parts() {
        let r = ChunkRef::new(3, 0xdead_beef, 77);
        assert_eq!((r.segment(), r.frame_offset(), r.index()), (3, 0xdead_beef, 77));
        assert_eq!(segment_name(0), "000001");
    }
}
