//! Writing an index file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ChunkMeta, MAGIC, PAGE_SERIES, PAGE_TABLE, POSTINGS, POSTINGS_TABLE, SERIES, SYMBOLS, VERSION};
use crate::block::codec::buf::{put_uvarint, put_varint};
use crate::block::section;
use crate::model::Labels;

/// Writing an index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexWriteError {
    /// Series were not in strictly increasing label order.
    #[error("series {0} is not after the previous series in label order")]
    Unsorted(String),
    /// A series had no chunks.
    #[error("series {0} has no chunks")]
    NoChunks(String),
    /// Writing the file failed.
    #[error("write index {path}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the index of `series` (sorted by labels, each with its chunks in time order) to
/// `path`, fsynced; zstd `level` for the compressed sections. Returns the file size.
pub fn write(path: &Path, series: &[(Labels, Vec<ChunkMeta>)], level: i32) -> Result<u64, IndexWriteError> {
    for w in series.windows(2) {
        if let [a, b] = w
            && a.0 >= b.0
        {
            return Err(IndexWriteError::Unsorted(b.0.to_string()));
        }
    }
    if let Some((l, _)) = series.iter().find(|(_, c)| c.is_empty()) {
        return Err(IndexWriteError::NoChunks(l.to_string()));
    }
    // Symbols.
    let mut syms: Vec<Arc<str>> =
        series.iter().flat_map(|(l, _)| l.iter().flat_map(|l| [l.name.clone(), l.value.clone()])).collect();
    syms.sort_unstable();
    syms.dedup();
    let sym_ref: std::collections::HashMap<&str, u64> =
        syms.iter().enumerate().map(|(i, s)| (s.as_ref(), i as u64)).collect();
    let sref = |s: &str| sym_ref.get(s).copied().unwrap_or(0);

    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);

    let sym_off = out.len() as u64;
    let mut p = Vec::new();
    put_uvarint(&mut p, syms.len() as u64);
    for s in &syms {
        put_uvarint(&mut p, s.len() as u64);
        p.extend_from_slice(s.as_bytes());
    }
    section::write(&mut out, SYMBOLS, VERSION, &p, Some(level));

    // Series pages, and postings gathered on the way.
    let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    let mut page_offsets = Vec::new();
    for (pi, page) in series.chunks(PAGE_SERIES).enumerate() {
        page_offsets.push(out.len() as u64);
        p.clear();
        put_uvarint(&mut p, page.len() as u64);
        for (si, (labels, chunks)) in page.iter().enumerate() {
            let id = (pi * PAGE_SERIES + si) as u32;
            put_uvarint(&mut p, labels.len() as u64);
            for l in labels {
                put_uvarint(&mut p, sref(&l.name));
                put_uvarint(&mut p, sref(&l.value));
                postings.entry((l.name.as_ref(), l.value.as_ref())).or_default().push(id);
            }
            put_uvarint(&mut p, chunks.len() as u64);
            let mut prev_maxt = None;
            for c in chunks {
                match prev_maxt {
                    None => put_varint(&mut p, c.mint),
                    Some(pm) => put_varint(&mut p, c.mint.wrapping_sub(pm)),
                }
                put_uvarint(&mut p, c.maxt.wrapping_sub(c.mint) as u64);
                put_uvarint(&mut p, u64::from(c.samples));
                p.extend_from_slice(&c.chunk.0.to_le_bytes());
                prev_maxt = Some(c.maxt);
            }
        }
        section::write(&mut out, SERIES, VERSION, &p, Some(level));
    }

    let table_off = out.len() as u64;
    p.clear();
    put_uvarint(&mut p, page_offsets.len() as u64);
    let mut prev = 0;
    for o in &page_offsets {
        put_uvarint(&mut p, o - prev);
        prev = *o;
    }
    section::write(&mut out, PAGE_TABLE, VERSION, &p, None);

    // Postings lists, in (name, value) order, then the table pointing at them.
    let postings_off = out.len() as u64;
    p.clear();
    let mut entries: Vec<(&str, &str, u64, u64)> = Vec::with_capacity(postings.len());
    for ((n, v), ids) in &postings {
        let start = p.len() as u64;
        put_uvarint(&mut p, ids.len() as u64);
        let mut prev = None;
        for &id in ids {
            match prev {
                None => put_uvarint(&mut p, u64::from(id)),
                Some(pr) => put_uvarint(&mut p, u64::from(id - pr)),
            }
            prev = Some(id);
        }
        entries.push((n, v, start, p.len() as u64 - start));
    }
    section::write(&mut out, POSTINGS, VERSION, &p, None);

    let ptable_off = out.len() as u64;
    p.clear();
    type Values<'a> = Vec<(&'a str, u64, u64)>;
    let mut names: Vec<(&str, Values<'_>)> = Vec::new();
    for (n, v, off, len) in entries {
        match names.last_mut() {
            Some((ln, vals)) if *ln == n => vals.push((v, off, len)),
            _ => names.push((n, vec![(v, off, len)])),
        }
    }
    put_uvarint(&mut p, names.len() as u64);
    let mut prev_off = 0u64;
    for (n, vals) in &names {
        put_uvarint(&mut p, sref(n));
        put_uvarint(&mut p, vals.len() as u64);
        for (v, off, len) in vals {
            put_uvarint(&mut p, sref(v));
            put_uvarint(&mut p, off - prev_off);
            put_uvarint(&mut p, *len);
            prev_off = *off;
        }
    }
    section::write(&mut out, POSTINGS_TABLE, VERSION, &p, Some(level));

    let toc_start = out.len();
    for o in [sym_off, table_off, postings_off, ptable_off] {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32c::crc32c(out.get(toc_start..).unwrap_or(&[]));
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&MAGIC);
    crate::fs::write_synced(path, &out)
        .map_err(|source| IndexWriteError::Io { path: path.to_path_buf(), source })?;
    Ok(out.len() as u64)
}
