//! The head's open chunk: a [decimal chunk](super::dec) while every value is an integer or a
//! short decimal, re-encoded as an [XOR chunk](super::xor) at the first value that is not (and
//! XOR from then on), so that the common exporter values take a few bits each and every other
//! value still round-trips bit-exact.

use super::dec::{DecAppend, DecChunk, DecIter};
use super::xor::{XorChunk, XorIter};
use crate::model::Sample;

/// How a head chunk's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// Gorilla XOR ([`super::xor`]), byte-compatible with Prometheus.
    Xor,
    /// Scaled decimals ([`super::dec`]), kahu's head only.
    Dec,
}

/// An open head chunk.
#[derive(Debug, Clone)]
pub enum HeadChunk {
    /// All values so far are decimals.
    Dec(DecChunk),
    /// Some value was not.
    Xor(XorChunk),
}

impl Default for HeadChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::with_capacity(16)
    }

    /// An empty chunk with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        HeadChunk::Dec(DecChunk::with_capacity(capacity))
    }

    /// The encoding of [`HeadChunk::bytes`].
    pub fn kind(&self) -> ChunkKind {
        match self {
            HeadChunk::Dec(_) => ChunkKind::Dec,
            HeadChunk::Xor(_) => ChunkKind::Xor,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            HeadChunk::Dec(c) => c.len(),
            HeadChunk::Xor(c) => c.len(),
        }
    }

    /// Whether the chunk has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded chunk.
    pub fn bytes(&self) -> &[u8] {
        match self {
            HeadChunk::Dec(c) => c.bytes(),
            HeadChunk::Xor(c) => c.bytes(),
        }
    }

    /// Heap bytes held (including spare capacity).
    pub fn heap_bytes(&self) -> usize {
        match self {
            HeadChunk::Dec(c) => c.heap_bytes(),
            HeadChunk::Xor(c) => c.heap_bytes(),
        }
    }

    /// Timestamp of the last sample (meaningless when empty).
    pub fn last_t(&self) -> i64 {
        match self {
            HeadChunk::Dec(c) => c.last_t(),
            HeadChunk::Xor(c) => c.last_t(),
        }
    }

    /// Timestamp of the first sample, decoded from the bytes (the series keeps no copy of
    /// it); meaningless when empty.
    pub fn first_t(&self) -> i64 {
        HeadChunkIter::with_limit(self.kind(), self.bytes(), 1).next().map_or(self.last_t(), |s| s.t)
    }

    /// Value bits of the last sample (meaningless when empty).
    pub fn last_v_bits(&self) -> u64 {
        match self {
            HeadChunk::Dec(c) => c.last_v_bits(),
            HeadChunk::Xor(c) => c.last_v_bits(),
        }
    }

    /// Gives back spare capacity.
    pub fn shrink(&mut self) {
        match self {
            HeadChunk::Dec(c) => c.shrink(),
            HeadChunk::Xor(c) => c.shrink(),
        }
    }

    /// Appends a sample. Returns `false` (and appends nothing) when the chunk is full; the caller
    /// guarantees that `t` is greater than the last timestamp.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        match self {
            HeadChunk::Xor(c) => c.append(t, v),
            HeadChunk::Dec(c) => match c.append(t, v) {
                DecAppend::Appended => true,
                DecAppend::Full => false,
                DecAppend::Unfit => {
                    // XOR takes more room per value: reserve about twice the decimal bytes.
                    let mut x = XorChunk::with_capacity(c.bytes().len() * 2 + 16);
                    for s in DecIter::new(c.bytes()) {
                        x.append(s.t, s.v);
                    }
                    let ok = x.append(t, v);
                    *self = HeadChunk::Xor(x);
                    ok
                }
            },
        }
    }
}

/// Decodes a head chunk of either kind.
#[derive(Debug, Clone)]
pub enum HeadChunkIter<'a> {
    /// An XOR chunk.
    Xor(XorIter<'a>),
    /// A decimal chunk.
    Dec(DecIter<'a>),
}

impl<'a> HeadChunkIter<'a> {
    /// Iterates over at most `limit` samples of `bytes`, encoded as `kind`.
    pub fn with_limit(kind: ChunkKind, bytes: &'a [u8], limit: usize) -> Self {
        match kind {
            ChunkKind::Xor => HeadChunkIter::Xor(XorIter::with_limit(bytes, limit)),
            ChunkKind::Dec => HeadChunkIter::Dec(DecIter::with_limit(bytes, limit)),
        }
    }

    /// Whether decoding stopped because the bytes were malformed.
    pub fn is_corrupt(&self) -> bool {
        match self {
            HeadChunkIter::Xor(it) => it.is_corrupt(),
            HeadChunkIter::Dec(it) => it.is_corrupt(),
        }
    }
}

impl Iterator for HeadChunkIter<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        match self {
            HeadChunkIter::Xor(it) => it.next(),
            HeadChunkIter::Dec(it) => it.next(),
        }
    }
}
