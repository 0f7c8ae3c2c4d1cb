//! File-system primitives for blocks: read-only memory maps (the crate's only `unsafe`), fsync of
//! files and directories, and atomic directory replacement.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// A read-only view of a whole file, memory-mapped, shared by every reader of a block; the
/// mapping is released when the last clone is dropped.
#[derive(Clone)]
pub struct MappedFile {
    map: Arc<Map>,
}

enum Map {
    Mapped(memmap2::Mmap),
    // mmap(2) rejects zero-length mappings; an empty file is just empty.
    Empty,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile").field("len", &self.len()).finish()
    }
}

impl MappedFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(MappedFile { map: Arc::new(Map::Empty) });
        }
        // SAFETY: memmap2 requires that the file is not modified or truncated while mapped, or
        // reads through the map are undefined behaviour. Block files are written once into a
        // temporary directory, fsynced and renamed into place; kahu never opens them for writing
        // again, and deletes them only by unlinking (the inode and its pages stay valid while
        // mapped). The data directory is locked against a second kahu. What remains is another
        // program rewriting files under a running kahu, which no database can defend against;
        // every read still goes through checksums and bounds checks.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        #[cfg(unix)]
        {
            // Queries read a few frames at random; the kernel's default read-ahead would pull in
            // megabytes around each. Advice is only a hint: a failure changes nothing.
            let _ = map.advise(memmap2::Advice::Random);
        }
        Ok(MappedFile { map: Arc::new(Map::Mapped(map)) })
    }
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self.map.as_ref() {
            Map::Mapped(m) => m,
            Map::Empty => &[],
        }
    }
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs a directory, so that the names created or renamed in it survive a power loss.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Renames `from` to `to` (same file system) and fsyncs the parent of `to`.
pub fn rename_synced(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_reads_its_bytes_and_an_empty_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_synced(&p, b"hello").unwrap();
        assert_eq!(&*MappedFile::open(&p).unwrap(), b"hello");
        let e = dir.path().join("e");
        write_synced(&e, b"").unwrap();
        assert!(MappedFile::open(&e).unwrap().is_empty());
        assert!(MappedFile::open(&dir.path().join("missing")).is_err());
    }
}
