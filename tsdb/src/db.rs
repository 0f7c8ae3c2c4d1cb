//! `Db`: a data directory and the store inside it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::appender::{Appendable, Appender};
use crate::mem::MemHead;
use crate::metadata::MetadataStore;
use crate::querier::{Querier, QueryError, Queryable};

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
}

/// Options for [`Db::open`].
#[derive(Debug, Clone, Default)]
pub struct Options {}

/// A kahu data directory: an exclusive lock and the store.
///
/// `Db` is `Sync`: share it behind an `Arc`; appenders and queriers may be used from any thread.
#[derive(Debug)]
pub struct Db {
    dir: PathBuf,
    head: MemHead,
    metadata: std::sync::Arc<MetadataStore>,
    // Held for the lifetime of the Db; the OS releases the lock when the file is closed.
    _lock: File,
}

impl Db {
    /// Creates `dir` if needed, checks that it is writable and locks it.
    pub fn open(dir: impl AsRef<Path>, _opts: Options) -> Result<Db, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir { path: dir.clone(), source })?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| OpenError::NotWritable { path: dir.clone(), source })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked { path: dir, lock: lock_path });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(OpenError::NotWritable { path: dir, source });
            }
        }
        Ok(Db { dir, head: MemHead::new(), metadata: Default::default(), _lock: lock })
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
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        self.head.appender()
    }
}

impl Queryable for Db {
    fn querier(&self) -> Result<Box<dyn Querier>, QueryError> {
        self.head.querier()
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
}
