//! The write-ahead log: [`segment`] frames commits into CRC-protected frames in segment files,
//! [`record`] encodes what a commit holds (series, samples), and [`replay`] reads everything back
//! on open, truncating a torn tail. Format and durability rules: `docs/format/wal.md`.

pub mod checkpoint;
pub mod record;
pub mod segment;

use std::path::Path;
use std::sync::atomic::Ordering;

pub use record::{Record, RecordError, RefSample};
use segment::{Damage, FrameIter};
pub use segment::{FsyncPolicy, Wal, WalCounters, WalError};

/// What [`replay`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Index for the next segment to write (one past the last one found).
    pub next_segment: u64,
    /// Frames applied.
    pub frames: u64,
    /// Damaged places found (torn tails, bad CRCs, garbage).
    pub corruptions: u64,
}

/// Replays the checkpoint and segments of `dir`, calling `apply` with the records of each good
/// frame in order. Damage in the last segment is truncated away unless `read_only`; damage in an
/// earlier segment skips the rest of that segment; a gap in the segment numbering (a segment that
/// went missing) is counted and logged as damage too. Only failing to list or read a file is an
/// error.
pub fn replay(
    dir: &Path,
    read_only: bool,
    counters: &WalCounters,
    mut apply: impl FnMut(Vec<Record>),
) -> std::io::Result<ReplaySummary> {
    let listing = segment::list(dir)?;
    let mut summary = ReplaySummary::default();
    let mut files: Vec<(u64, std::path::PathBuf, bool)> = Vec::new();
    let mut after = None;
    if let Some((n, cp)) = &listing.checkpoint {
        after = Some(*n);
        for (i, p) in segment::list(cp)?.segments {
            files.push((i, p, true));
        }
        summary.next_segment = n + 1;
    }
    let segments: Vec<_> =
        listing.segments.into_iter().filter(|(i, _)| after.is_none_or(|a| *i > a)).collect();
    let last = segments.last().map(|(i, _)| *i);
    files.extend(segments.into_iter().map(|(i, p)| (i, p, false)));
    // The segment expected next: a gap in the numbering is a segment that went missing.
    let mut expected = after.map(|a| a + 1);
    for (index, path, in_checkpoint) in files {
        if !in_checkpoint {
            if let Some(e) = expected
                && index > e
            {
                summary.corruptions += 1;
                counters.corruptions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    missing_from = %segment::segment_name(e), missing_to = %segment::segment_name(index - 1),
                    "WAL segments are missing; their samples, and later samples of series they created, are lost"
                );
            }
            expected = Some(index + 1);
        }
        let bytes = std::fs::read(&path)?;
        if !in_checkpoint {
            counters.segments.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            summary.next_segment = summary.next_segment.max(index + 1);
        }
        let mut it = FrameIter::new(&bytes);
        while let Some((start, payload)) = it.next() {
            match record::decode_payload(payload) {
                Ok(recs) => {
                    summary.frames += 1;
                    apply(recs);
                }
                Err(e) => it.reject_last(start, Damage::BadRecord(e.to_string())),
            }
        }
        let Some(damage) = it.damage() else { continue };
        summary.corruptions += 1;
        counters.corruptions.fetch_add(1, Ordering::Relaxed);
        let good = it.good_end();
        let is_last = !in_checkpoint && Some(index) == last;
        if is_last && !read_only {
            tracing::warn!(
                segment = %path.display(), offset = good, damage = %damage,
                lost_bytes = bytes.len() - good, "WAL tail is damaged; truncating it at the last good frame"
            );
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(good as u64)?;
            f.sync_all()?;
            counters.bytes.fetch_sub((bytes.len() - good) as u64, Ordering::Relaxed);
        } else if is_last {
            tracing::debug!(segment = %path.display(), offset = good, damage = %damage, "WAL tail ends in an incomplete frame; reading up to it");
        } else {
            tracing::warn!(
                segment = %path.display(), offset = good, damage = %damage,
                lost_bytes = bytes.len() - good, "WAL segment is damaged; skipping the rest of it"
            );
        }
    }
    Ok(summary)
}
