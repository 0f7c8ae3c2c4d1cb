//! Checkpointing (`docs/format/wal.md`, "Checkpoints"): after the head dropped everything older
//! than a time, the segments up to a closed one are folded into `checkpoint.N/`, keeping only the
//! series records of series still in the head and the samples at or after that time; then those
//! segments and older checkpoints are deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Record, RefSample, SeriesEncoder};
use super::segment::{self, FrameIter, FsyncPolicy, Wal, WalCounters, WalError, begin_frame};

/// What [`checkpoint`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// The `N` of the new `checkpoint.N`.
    pub upto: u64,
    /// Series records kept.
    pub series: u64,
    /// Samples kept.
    pub samples: u64,
    /// Segment files deleted.
    pub segments_deleted: u64,
    /// Bytes of the segment files deleted.
    pub bytes_deleted: u64,
}

/// The directory name of checkpoint `n`.
pub fn checkpoint_name(n: u64) -> String {
    format!("checkpoint.{n:08}")
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io { op, path: path.to_path_buf(), source }
}

/// Folds the newest checkpoint and the segments `..= upto` of `dir` (which must all be closed:
/// see [`Wal::cut_segment`]) into `checkpoint.upto`, keeping the series whose ref `keep` accepts
/// and the samples of those series at or after `min_time`; then deletes the folded segments and
/// older checkpoints. A crash at any point leaves a WAL that replays to the same head: the new
/// checkpoint becomes visible by a rename, and replay ignores segments it covers.
pub fn checkpoint(
    dir: &Path,
    upto: u64,
    keep: impl Fn(u64) -> bool,
    min_time: i64,
) -> Result<CheckpointSummary, WalError> {
    let listing = segment::list(dir).map_err(io("list", dir))?;
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut after = None;
    if let Some((n, cp)) = &listing.checkpoint {
        if *n >= upto {
            return Ok(CheckpointSummary { upto: *n, ..Default::default() });
        }
        after = Some(*n);
        sources.extend(segment::list(cp).map_err(io("list", cp))?.segments.into_iter().map(|(_, p)| p));
    }
    let folded: Vec<(u64, PathBuf)> = listing
        .segments
        .iter()
        .filter(|(i, _)| *i <= upto && after.is_none_or(|a| *i > a))
        .cloned()
        .collect();
    sources.extend(folded.iter().map(|(_, p)| p.clone()));

    let final_dir = dir.join(checkpoint_name(upto));
    let tmp = dir.join(format!("{}.tmp", checkpoint_name(upto)));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io("remove leftover", &tmp))?;
    }
    // A failed write (a full disk) leaves no partial checkpoint taking space.
    let mut summary = write_tmp(&tmp, &sources, &keep, min_time, upto).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io("remove stale", &final_dir))?;
    }
    crate::fs::rename_synced(&tmp, &final_dir).map_err(io("rename into place", &final_dir))?;
    for (_, p) in &folded {
        let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(p).map_err(io("delete", p))?;
        summary.segments_deleted += 1;
        summary.bytes_deleted += len;
    }
    for e in std::fs::read_dir(dir).map_err(io("list", dir))?.flatten() {
        let name = e.file_name();
        let older = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint."))
            .and_then(|n| n.strip_suffix(".tmp").unwrap_or(n).parse::<u64>().ok())
            .is_some_and(|n| n < upto);
        if older {
            let p = e.path();
            std::fs::remove_dir_all(&p).map_err(io("delete", &p))?;
        }
    }
    Ok(summary)
}

/// Writes the kept records of `sources` into the new checkpoint directory `tmp`, fsynced.
fn write_tmp(
    tmp: &Path,
    sources: &[PathBuf],
    keep: &impl Fn(u64) -> bool,
    min_time: i64,
    upto: u64,
) -> Result<CheckpointSummary, WalError> {
    let mut summary = CheckpointSummary { upto, ..Default::default() };
    {
        let out = Wal::create(tmp, 0, 128 << 20, FsyncPolicy::Never, Arc::new(WalCounters::default()))?;
        let mut buf = Vec::new();
        for path in sources {
            let bytes = std::fs::read(path).map_err(io("read", path))?;
            let mut it = FrameIter::new(&bytes);
            for (_, payload) in it.by_ref() {
                // Damage was reported (and counted) by the replay at open; skip it here.
                let Ok(records) = record::decode_payload(payload) else { continue };
                begin_frame(&mut buf);
                let mut samples: Vec<RefSample> = Vec::new();
                let mut stones = Vec::new();
                let mut enc = SeriesEncoder::new(&mut buf);
                let mut any_series = false;
                for rec in records {
                    match rec {
                        Record::Series(series) => {
                            for (sref, labels) in series.iter().filter(|(r, _)| keep(*r)) {
                                enc.add(*sref, labels.iter().map(|l| (l.name.as_ref(), l.value.as_ref())));
                                summary.series += 1;
                                any_series = true;
                            }
                        }
                        Record::Samples(s) => {
                            samples.extend(s.into_iter().filter(|s| s.t >= min_time && keep(s.sref)));
                        }
                        Record::Tombstones(t) => {
                            // Older deletions are already applied to the blocks persisted.
                            stones.extend(t.into_iter().filter(|(_, iv)| iv.maxt >= min_time));
                        }
                    }
                }
                enc.finish();
                summary.samples += samples.len() as u64;
                record::encode_samples(&mut buf, &samples);
                record::encode_tombstones(&mut buf, &stones);
                if any_series || !samples.is_empty() || !stones.is_empty() {
                    out.log(&mut buf)?;
                }
            }
        }
    }
    for e in std::fs::read_dir(tmp).map_err(io("list", tmp))? {
        let p = e.map_err(io("list", tmp))?.path();
        std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(io("sync", &p))?;
    }
    crate::fs::sync_dir(tmp).map_err(io("sync", tmp))?;
    Ok(summary)
}
