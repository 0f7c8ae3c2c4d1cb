//! The section framing shared by the index and chunk files (`docs/format/block.md`, "Section"):
//! magic, version, compression, lengths, payload, CRC-32C.

use std::borrow::Cow;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 14;
/// Bytes after the payload.
pub const TRAILER_LEN: usize = 4;
/// Largest raw payload a reader accepts; a reader never allocates more on a file's word.
pub const MAX_RAW_LEN: usize = 256 << 20;

const NONE: u8 = 0;
const ZSTD: u8 = 1;

/// A section failed a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    /// The file ends inside the section.
    #[error("section at offset {offset} is truncated")]
    Truncated {
        /// Offset of the section's magic.
        offset: usize,
    },
    /// Not the magic expected here.
    #[error("section at offset {offset}: magic {found:?}, expected {expected:?}")]
    Magic {
        /// Offset of the section's magic.
        offset: usize,
        /// What was found.
        found: [u8; 4],
        /// What was expected.
        expected: [u8; 4],
    },
    /// A version this reader does not know.
    #[error("section at offset {offset}: format version {version} is newer than {supported}")]
    Version {
        /// Offset of the section's magic.
        offset: usize,
        /// The version found.
        version: u8,
        /// The newest this reader supports.
        supported: u8,
    },
    /// The checksum does not match.
    #[error("section at offset {offset}: checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// Offset of the section's magic.
        offset: usize,
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Lengths or compression are impossible, or the payload does not decompress.
    #[error("section at offset {offset}: {reason}")]
    Invalid {
        /// Offset of the section's magic.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Appends a section holding `payload`, zstd-compressed at `level` when that makes it smaller.
pub fn write(out: &mut Vec<u8>, magic: [u8; 4], version: u8, payload: &[u8], level: Option<i32>) {
    let compressed =
        level.and_then(|l| zstd::bulk::compress(payload, l).ok()).filter(|c| c.len() < payload.len());
    let (kind, stored): (u8, &[u8]) = match &compressed {
        Some(c) => (ZSTD, c),
        None => (NONE, payload),
    };
    let start = out.len();
    out.extend_from_slice(&magic);
    out.push(version);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    out.extend_from_slice(stored);
    let crc = crc32c::crc32c(out.get(start..).unwrap_or(&[]));
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Where a section's parts are, after its header and checksum were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Offset of the magic.
    pub offset: usize,
    /// Format version of the section.
    pub version: u8,
    /// Whether the payload is zstd-compressed.
    pub zstd: bool,
    /// Decompressed payload length.
    pub raw_len: usize,
    /// Range of the stored payload in the file.
    pub payload: std::ops::Range<usize>,
    /// Offset just past the section.
    pub end: usize,
}

fn le32(b: &[u8], at: usize, offset: usize) -> Result<u32, SectionError> {
    let end = at.checked_add(4).ok_or(SectionError::Truncated { offset })?;
    let s = b.get(at..end).ok_or(SectionError::Truncated { offset })?;
    Ok(u32::from_le_bytes(s.try_into().map_err(|_| SectionError::Truncated { offset })?))
}

/// Checks the section at `offset` of `file` (magic, version, lengths, CRC) without
/// decompressing it.
pub fn locate(file: &[u8], offset: usize, magic: [u8; 4], max_version: u8) -> Result<Located, SectionError> {
    let trunc = SectionError::Truncated { offset };
    let head_end = offset.checked_add(HEADER_LEN).ok_or(trunc.clone())?;
    let head = file.get(offset..head_end).ok_or(trunc.clone())?;
    let found: [u8; 4] =
        head.get(..4).and_then(|m| m.try_into().ok()).ok_or(SectionError::Truncated { offset })?;
    if found != magic {
        return Err(SectionError::Magic { offset, found, expected: magic });
    }
    let version = head.get(4).copied().unwrap_or(0);
    if version == 0 || version > max_version {
        return Err(SectionError::Version { offset, version, supported: max_version });
    }
    let kind = head.get(5).copied().unwrap_or(u8::MAX);
    let raw_len = le32(head, 6, offset)? as usize;
    let stored_len = le32(head, 10, offset)? as usize;
    if raw_len > MAX_RAW_LEN {
        return Err(SectionError::Invalid { offset, reason: "raw length above 256 MiB" });
    }
    let zstd = match kind {
        NONE if stored_len == raw_len => false,
        NONE => {
            return Err(SectionError::Invalid { offset, reason: "stored length differs from raw length" });
        }
        ZSTD => true,
        _ => return Err(SectionError::Invalid { offset, reason: "unknown compression" }),
    };
    let payload = head_end..head_end.checked_add(stored_len).ok_or(trunc)?;
    let stored = le32(file, payload.end, offset)?;
    let covered = file.get(offset..payload.end).ok_or(SectionError::Truncated { offset })?;
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(SectionError::Checksum { offset, stored, computed });
    }
    Ok(Located { offset, version, zstd, raw_len, end: payload.end + TRAILER_LEN, payload })
}

/// The payload of a located section, decompressed if needed.
pub fn payload<'a>(file: &'a [u8], loc: &Located) -> Result<Cow<'a, [u8]>, SectionError> {
    let stored = file.get(loc.payload.clone()).ok_or(SectionError::Truncated { offset: loc.offset })?;
    if !loc.zstd {
        return Ok(Cow::Borrowed(stored));
    }
    let raw = zstd::bulk::decompress(stored, loc.raw_len).map_err(|_| SectionError::Invalid {
        offset: loc.offset,
        reason: "zstd payload does not decompress",
    })?;
    if raw.len() != loc.raw_len {
        return Err(SectionError::Invalid {
            offset: loc.offset,
            reason: "payload decompresses to another length",
        });
    }
    Ok(Cow::Owned(raw))
}

/// [`locate`] then [`payload`].
pub fn read<'a>(
    file: &'a [u8],
    offset: usize,
    magic: [u8; 4],
    max_version: u8,
) -> Result<(Cow<'a, [u8]>, Located), SectionError> {
    let loc = locate(file, offset, magic, max_version)?;
    Ok((payload(file, &loc)?, loc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_compressed_or_not() {
        for (payload, level) in [(vec![7u8; 1000], Some(3)), (vec![1, 2, 3], Some(3)), (vec![], None)] {
            let mut f = vec![0xAA];
            write(&mut f, *b"TEST", 1, &payload, level);
            let (p, loc) = read(&f, 1, *b"TEST", 1).unwrap();
            assert_eq!(&*p, &payload[..]);
            assert_eq!(loc.end, f.len());
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut f = Vec::new();
        write(&mut f, *b"TEST", 1, &[9u8; 300], Some(3));
        for byte in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[byte] ^= 1 << bit;
                assert!(read(&g, 0, *b"TEST", 1).is_err(), "flip at {byte}:{bit}");
            }
        }
        assert!(matches!(read(&f[..f.len() - 1], 0, *b"TEST", 1), Err(SectionError::Truncated { .. })));
        assert!(matches!(read(&f, 0, *b"TEST", 0), Err(SectionError::Version { .. })));
        assert!(matches!(read(&f, 0, *b"NOPE", 1), Err(SectionError::Magic { .. })));
    }
}
