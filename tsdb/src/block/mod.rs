//! Persistent blocks: immutable, mmap-backed directories of compressed chunks and an index. The
//! byte layouts are in `docs/format/`.

pub mod chunks;
pub mod codec;
pub mod section;
