//! `meta.json` (`docs/format/meta.md`) and block ids.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The block format version written.
pub const FORMAT_VERSION: u32 = 1;
/// The oldest block format version this code reads.
pub const OLDEST_SUPPORTED_FORMAT: u32 = 1;
/// The `format` field: `meta.json`'s magic.
pub const FORMAT_NAME: &str = "kahu-block";
const PLACEHOLDER: &str = "00000000";

/// Counts recorded when the block was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples, staleness markers included.
    pub num_samples: u64,
    /// Series.
    pub num_series: u64,
    /// Chunks.
    pub num_chunks: u64,
    /// zstd frames.
    pub num_frames: u64,
}

/// A block merged into this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Its id.
    pub ulid: String,
    /// Its `minTime`.
    pub min_time: i64,
    /// Its `maxTime`.
    pub max_time: i64,
}

/// Where the block came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 when persisted from the head.
    pub level: u32,
    /// The level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
    /// The blocks merged into this one.
    pub parents: Vec<ParentRef>,
}

/// A data file and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the block directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// The contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Block format version.
    pub version: u32,
    /// The block's id (its directory name).
    pub ulid: String,
    /// First millisecond covered (inclusive).
    pub min_time: i64,
    /// End of the range (exclusive).
    pub max_time: i64,
    /// Counts.
    pub stats: BlockStats,
    /// Lineage.
    pub compaction: Compaction,
    /// Data files with their sizes.
    pub files: Vec<FileEntry>,
    /// CRC-32C of the file with this field's value zeroed, 8 hex digits.
    pub checksum: String,
}

/// `meta.json` is missing, damaged or of an unknown version.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// It could not be read.
    #[error("read {path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid JSON of the expected shape (truncated, for example).
    #[error("parse {path}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The checksum does not match.
    #[error("{path}: checksum mismatch (stored {stored}, computed {computed:08x})")]
    Checksum {
        /// The file.
        path: std::path::PathBuf,
        /// What the file says.
        stored: String,
        /// What its bytes give.
        computed: u32,
    },
    /// Not a kahu block, or a version this code does not read.
    #[error(
        "{path}: format {format:?} version {version} is not supported (this kahu reads {FORMAT_NAME:?} versions {OLDEST_SUPPORTED_FORMAT} to {FORMAT_VERSION})"
    )]
    Version {
        /// The file.
        path: std::path::PathBuf,
        /// The `format` field.
        format: String,
        /// The `version` field.
        version: u32,
    },
}

impl BlockMeta {
    /// The file's bytes, with the checksum filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.checksum = PLACEHOLDER.to_string();
        let text = serde_json::to_string_pretty(&m).unwrap_or_default() + "\n";
        let crc = crc32c::crc32c(text.as_bytes());
        text.replacen(&format!("\"checksum\": \"{PLACEHOLDER}\""), &format!("\"checksum\": \"{crc:08x}\""), 1)
            .into_bytes()
    }

    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<BlockMeta, MetaError> {
        let bytes =
            std::fs::read(path).map_err(|source| MetaError::Io { path: path.to_path_buf(), source })?;
        let meta: BlockMeta = serde_json::from_slice(&bytes)
            .map_err(|source| MetaError::Json { path: path.to_path_buf(), source })?;
        if meta.format != FORMAT_NAME || !(OLDEST_SUPPORTED_FORMAT..=FORMAT_VERSION).contains(&meta.version) {
            return Err(MetaError::Version {
                path: path.to_path_buf(),
                format: meta.format,
                version: meta.version,
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        let zeroed = text.replacen(
            &format!("\"checksum\": \"{}\"", meta.checksum),
            &format!("\"checksum\": \"{PLACEHOLDER}\""),
            1,
        );
        let computed = crc32c::crc32c(zeroed.as_bytes());
        if format!("{computed:08x}") != meta.checksum {
            return Err(MetaError::Checksum { path: path.to_path_buf(), stored: meta.checksum, computed });
        }
        Ok(meta)
    }
}

/// A new ULID: 48 bits of milliseconds since the epoch, then 80 random bits, in Crockford's
/// base32 (26 characters). Ids sort by creation time.
pub fn new_ulid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // RandomState is seeded from the OS; hashing a counter through it gives independent bits.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u64(ms);
    let r1 = h.finish();
    h.write_u64(r1);
    let r2 = h.finish();
    let v: u128 =
        (u128::from(ms & 0xffff_ffff_ffff) << 80) | (u128::from(r1) << 16) | u128::from(r2 & 0xffff);
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| char::from(ALPHABET.get(((v >> (i * 5)) & 31) as usize).copied().unwrap_or(b'0')))
        .collect()
}

/// Whether `name` looks like a ULID (a block directory).
pub fn is_ulid(name: &str) -> bool {
    name.len() == 26 && name.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlockMeta {
        BlockMeta {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            ulid: new_ulid(),
            min_time: 0,
            max_time: 7_200_000,
            stats: BlockStats { num_samples: 10, num_series: 2, num_chunks: 2, num_frames: 1 },
            compaction: Compaction { level: 1, sources: vec![], parents: vec![] },
            files: vec![FileEntry { name: "index".into(), size: 100 }],
            checksum: String::new(),
        }
    }

    #[test]
    fn meta_round_trips_and_any_edit_breaks_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        let mut m = sample();
        std::fs::write(&p, m.to_bytes()).unwrap();
        let back = BlockMeta::read(&p).unwrap();
        m.checksum = back.checksum.clone();
        assert_eq!(back, m);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("7200000", "7200001")).unwrap();
        assert!(matches!(BlockMeta::read(&p), Err(MetaError::Checksum { .. })));
        std::fs::write(&p, &text[..text.len() / 2]).unwrap();
        assert!(matches!(BlockMeta::read(&p), Err(MetaError::Json { .. })));
        std::fs::write(&p, text.replace("\"version\": 1", "\"version\": 99")).unwrap();
        assert!(matches!(BlockMeta::read(&p), Err(MetaError::Version { .. })));
    }

    #[test]
    fn ulids_are_26_crockford_characters_and_distinct() {
        let a = new_ulid();
        let b = new_ulid();
        assert!(is_ulid(&a), "{a}");
        assert_ne!(a, b);
    }
}
