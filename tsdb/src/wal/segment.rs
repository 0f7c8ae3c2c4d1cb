//! WAL framing: segment files of CRC-protected frames, one frame per commit. Frames are opaque
//! payloads here; [`super::record`] gives them meaning. Format: `docs/format/wal.md`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"KWAL";
/// Current segment format version.
pub const FORMAT_VERSION: u8 = 1;
/// Oldest segment format version this code reads.
pub const OLDEST_SUPPORTED_VERSION: u8 = 1;
/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Bytes of a frame header: type, length, CRC.
pub const FRAME_HEADER_LEN: usize = 9;
/// Frame type of a commit.
pub const FRAME_COMMIT: u8 = 1;
/// Largest frame payload.
pub const MAX_FRAME_LEN: usize = 1 << 30;

/// How the WAL is fsynced (`--storage.wal.fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before every commit returns.
    Always,
    /// `fdatasync` in the background every interval.
    Interval(Duration),
    /// Never; the kernel writes back when it wants to.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// A WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Creating, writing or syncing a segment failed.
    #[error("{op} WAL segment {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An earlier fsync or write failed; the WAL accepts no more writes until kahu restarts.
    #[error("WAL is unusable after an earlier write or fsync failure; restart kahu")]
    Poisoned,
    /// A commit is larger than a frame may be.
    #[error("commit of {len} bytes exceeds the WAL frame limit of {MAX_FRAME_LEN} bytes")]
    TooLarge {
        /// Payload size.
        len: usize,
    },
}

/// The file name of segment `index`.
pub fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

/// Segments (index, path) in a directory, sorted, and the newest checkpoint directory, if any.
#[derive(Debug, Default)]
pub struct Listing {
    /// `checkpoint.N` with the largest N.
    pub checkpoint: Option<(u64, PathBuf)>,
    /// Segment files, by index.
    pub segments: Vec<(u64, PathBuf)>,
}

/// Lists `dir`. A missing directory lists as empty.
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix("checkpoint.") {
            if let Ok(n) = n.parse::<u64>()
                && e.file_type()?.is_dir()
                && out.checkpoint.as_ref().is_none_or(|(c, _)| n > *c)
            {
                out.checkpoint = Some((n, e.path()));
            }
        } else if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse::<u64>()
        {
            out.segments.push((n, e.path()));
        }
    }
    out.segments.sort();
    Ok(out)
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The header is missing, has the wrong magic or an unsupported version.
    BadHeader,
    /// The bytes end inside a frame header or payload (a torn write).
    Torn,
    /// A zero where a frame type should be, followed only by zeros.
    ZeroTail,
    /// A frame with an unknown type, or non-zero bytes after a zero type byte.
    BadType(u8),
    /// A length larger than the frame limit.
    BadLength(u64),
    /// The CRC does not match.
    BadCrc,
    /// The payload's records do not decode.
    BadRecord(String),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::BadHeader => f.write_str("bad segment header"),
            Damage::Torn => f.write_str("torn frame"),
            Damage::ZeroTail => f.write_str("zero-filled tail"),
            Damage::BadType(t) => write!(f, "unknown frame type {t}"),
            Damage::BadLength(l) => write!(f, "bad frame length {l}"),
            Damage::BadCrc => f.write_str("CRC mismatch"),
            Damage::BadRecord(e) => write!(f, "bad record: {e}"),
        }
    }
}

/// Iterates over the frames of one segment's bytes. After `None`, [`FrameIter::damage`] says
/// whether the end was clean, and [`FrameIter::good_end`] is the offset after the last good frame.
pub struct FrameIter<'a> {
    bytes: &'a [u8],
    off: usize,
    damage: Option<Damage>,
    done: bool,
}

impl<'a> FrameIter<'a> {
    /// Starts at the segment header. An empty or header-less-but-short segment has no frames.
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut it = FrameIter { bytes, off: SEGMENT_HEADER_LEN, damage: None, done: false };
        if bytes.len() < SEGMENT_HEADER_LEN {
            // Created and never written: empty, not damaged, unless it holds junk.
            it.off = 0;
            it.done = true;
            if bytes.iter().any(|&b| b != 0)
                && !SEGMENT_MAGIC.starts_with(bytes.get(..4.min(bytes.len())).unwrap_or(&[]))
            {
                it.damage = Some(Damage::BadHeader);
            }
            return it;
        }
        let magic_ok = bytes.get(..4) == Some(&SEGMENT_MAGIC[..]);
        let version = bytes.get(4).copied().unwrap_or(0);
        if !magic_ok || !(OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&version) {
            it.off = 0;
            it.done = true;
            it.damage = Some(Damage::BadHeader);
        }
        it
    }

    /// Offset after the last good frame (the header length for a segment without frames).
    pub fn good_end(&self) -> usize {
        self.off
    }

    /// Why iteration stopped early, if it did.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Marks the frame just returned as bad (its records did not decode); iteration ends and
    /// `good_end` moves back to that frame's start.
    pub fn reject_last(&mut self, frame_start: usize, damage: Damage) {
        self.off = frame_start;
        self.damage = Some(damage);
        self.done = true;
    }

    fn fail(&mut self, d: Damage) -> Option<(usize, &'a [u8])> {
        self.damage = Some(d);
        self.done = true;
        None
    }
}

impl<'a> Iterator for FrameIter<'a> {
    /// Frame start offset and payload.
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.bytes.get(self.off..).unwrap_or(&[]);
        let Some(&ftype) = rest.first() else {
            self.done = true;
            return None;
        };
        if ftype == 0 {
            return if rest.iter().all(|&b| b == 0) {
                self.fail(Damage::ZeroTail)
            } else {
                self.fail(Damage::BadType(0))
            };
        }
        let Some(hdr) = rest.get(..FRAME_HEADER_LEN) else { return self.fail(Damage::Torn) };
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(hdr.get(1..5).unwrap_or(&[0; 4]));
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(hdr.get(5..9).unwrap_or(&[0; 4]));
        let len = u32::from_le_bytes(len4) as usize;
        if ftype != FRAME_COMMIT {
            return self.fail(Damage::BadType(ftype));
        }
        if len > MAX_FRAME_LEN {
            return self.fail(Damage::BadLength(len as u64));
        }
        let Some(payload) = rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            return self.fail(Damage::Torn);
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c(hdr.get(..5).unwrap_or(&[])), payload);
        if crc != u32::from_le_bytes(crc4) {
            return self.fail(Damage::BadCrc);
        }
        let start = self.off;
        self.off += FRAME_HEADER_LEN + len;
        Some((start, payload))
    }
}

/// Reserves a frame header at the start of `buf` (cleared first); append the payload after it
/// and hand the buffer to [`Wal::log`].
pub fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
}

/// Fills in the frame header of a buffer started with [`begin_frame`].
pub fn seal_frame(buf: &mut [u8]) -> Result<(), WalError> {
    let len = buf.len().saturating_sub(FRAME_HEADER_LEN);
    if len > MAX_FRAME_LEN {
        return Err(WalError::TooLarge { len });
    }
    let (hdr, payload) = buf.split_at_mut(FRAME_HEADER_LEN.min(buf.len()));
    if let [t, l0, l1, l2, l3, c0, c1, c2, c3] = hdr {
        *t = FRAME_COMMIT;
        [*l0, *l1, *l2, *l3] = (len as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[*t, *l0, *l1, *l2, *l3]), payload);
        [*c0, *c1, *c2, *c3] = crc.to_le_bytes();
    }
    Ok(())
}

/// WAL counters, read by [`crate::Db::stats`].
#[derive(Debug, Default)]
pub struct WalCounters {
    /// Segment files in the directory (as of open, plus the ones created since).
    pub segments: AtomicU64,
    /// Bytes in segment files.
    pub bytes: AtomicU64,
    /// Corrupt or torn frames found by replay.
    pub corruptions: AtomicU64,
    /// Frames written.
    pub frames_written: AtomicU64,
    /// Failed writes and fsyncs.
    pub write_failures: AtomicU64,
    /// Successful fsyncs.
    pub fsyncs: AtomicU64,
}

struct Writer {
    file: File,
    path: PathBuf,
    index: u64,
    size: u64,
    dirty: bool,
}

struct Shared {
    dir: PathBuf,
    writer: Mutex<Writer>,
    poisoned: AtomicBool,
    counters: Arc<WalCounters>,
    segment_size: u64,
    policy: FsyncPolicy,
}

/// The WAL writer: appends commit frames to the current segment and rolls over to new ones.
/// `Sync`: commits from many threads are serialized by an internal lock.
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io { op, path: path.to_path_buf(), source }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_segment(dir: &Path, index: u64, policy: FsyncPolicy) -> Result<Writer, WalError> {
    let path = dir.join(segment_name(index));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    let mut hdr = [0u8; SEGMENT_HEADER_LEN];
    hdr[..4].copy_from_slice(&SEGMENT_MAGIC);
    hdr[4] = FORMAT_VERSION;
    if let Err(e) = file.write_all(&hdr) {
        // A full disk: leave no headerless segment behind.
        let _ = std::fs::remove_file(&path);
        return Err(io_err("write header of", &path)(e));
    }
    if policy != FsyncPolicy::Never {
        file.sync_all().map_err(io_err("sync", &path))?;
        sync_dir(dir).map_err(io_err("sync directory of", &path))?;
    }
    Ok(Writer { file, path, index, size: SEGMENT_HEADER_LEN as u64, dirty: false })
}

impl Wal {
    /// Starts writing segment `index` in `dir` (created if missing). `counters` carries the
    /// figures replay found.
    pub fn create(
        dir: &Path,
        index: u64,
        segment_size: u64,
        policy: FsyncPolicy,
        counters: Arc<WalCounters>,
    ) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(io_err("create directory for", dir))?;
        let writer = create_segment(dir, index, policy)?;
        counters.segments.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            writer: Mutex::new(writer),
            poisoned: AtomicBool::new(false),
            counters,
            segment_size: segment_size.max(SEGMENT_HEADER_LEN as u64 + 1),
            policy,
        });
        let syncer = match policy {
            FsyncPolicy::Interval(every) => {
                let (tx, rx) = mpsc::channel::<()>();
                let s = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name("kahu-wal-sync".into())
                    .spawn(move || {
                        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                            s.sync_if_dirty();
                        }
                    })
                    .map_err(io_err("start fsync thread for", dir))?;
                Some((tx, handle))
            }
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        };
        Ok(Wal { shared, syncer })
    }

    /// Writes one frame built with [`begin_frame`]; returns when it is in the kernel (and on
    /// disk under [`FsyncPolicy::Always`]).
    pub fn log(&self, frame: &mut [u8]) -> Result<(), WalError> {
        seal_frame(frame)?;
        let s = &self.shared;
        if s.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        let mut w = s.writer.lock();
        let len = frame.len() as u64;
        if w.size > SEGMENT_HEADER_LEN as u64 && w.size + len > s.segment_size {
            self.roll(&mut w)?;
        }
        if let Err(e) = w.file.write_all_at(frame, w.size) {
            s.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            // Cut the partial frame off so that later frames follow good data.
            if w.file.set_len(w.size).is_err() {
                s.poisoned.store(true, Ordering::Release);
            }
            return Err(io_err("write", &w.path)(e));
        }
        w.size += len;
        w.dirty = true;
        s.counters.bytes.fetch_add(len, Ordering::Relaxed);
        s.counters.frames_written.fetch_add(1, Ordering::Relaxed);
        if s.policy == FsyncPolicy::Always {
            if let Err(e) = w.file.sync_data() {
                s.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                s.poisoned.store(true, Ordering::Release);
                return Err(io_err("sync", &w.path)(e));
            }
            s.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            w.dirty = false;
        }
        Ok(())
    }

    fn roll(&self, w: &mut Writer) -> Result<(), WalError> {
        let s = &self.shared;
        if s.policy != FsyncPolicy::Never && w.dirty {
            if let Err(e) = w.file.sync_data() {
                s.poisoned.store(true, Ordering::Release);
                return Err(io_err("sync", &w.path)(e));
            }
            s.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        *w = create_segment(&s.dir, w.index + 1, s.policy)?;
        s.counters.segments.fetch_add(1, Ordering::Relaxed);
        s.counters.bytes.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the current segment and starts the next one; returns the index of the closed
    /// segment. Checkpointing calls this so that everything up to the returned index is
    /// immutable.
    pub fn cut_segment(&self) -> Result<u64, WalError> {
        let mut w = self.shared.writer.lock();
        let closed = w.index;
        self.roll(&mut w)?;
        Ok(closed)
    }

    /// Index of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.shared.writer.lock().index
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether an earlier failure stopped the WAL.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    /// Fsyncs what was written (no-op under [`FsyncPolicy::Never`]).
    pub fn sync(&self) {
        self.shared.sync_if_dirty();
    }
}

impl Shared {
    fn sync_if_dirty(&self) {
        if self.policy == FsyncPolicy::Never {
            return;
        }
        let (file, path) = {
            let mut w = self.writer.lock();
            if !w.dirty {
                return;
            }
            w.dirty = false;
            match w.file.try_clone() {
                Ok(f) => (f, w.path.clone()),
                Err(e) => {
                    tracing::error!(path = %w.path.display(), error = %e, "duplicate WAL file handle for fsync");
                    w.dirty = true;
                    return;
                }
            }
        };
        // Synced outside the lock so that commits are not stalled by the disk.
        match file.sync_data() {
            Ok(()) => {
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                self.poisoned.store(true, Ordering::Release);
                tracing::error!(path = %path.display(), error = %e, "fsync WAL segment failed; WAL stops accepting writes");
            }
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.syncer.take() {
            drop(tx);
            let _ = handle.join();
        }
        self.shared.sync_if_dirty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        begin_frame(&mut b);
        b.extend_from_slice(payload);
        seal_frame(&mut b).unwrap();
        b
    }

    #[test]
    fn frames_written_are_read_back_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(WalCounters::default());
        let wal = Wal::create(dir.path(), 3, 64, FsyncPolicy::Always, counters).unwrap();
        for i in 0..10u8 {
            let mut f = frame(&[i; 20]);
            wal.log(&mut f).unwrap();
        }
        drop(wal);
        let l = list(dir.path()).unwrap();
        assert!(l.segments.len() >= 3, "{:?}", l.segments);
        assert_eq!(l.segments[0].0, 3);
        let mut seen = Vec::new();
        for (_, p) in &l.segments {
            let bytes = fs::read(p).unwrap();
            let mut it = FrameIter::new(&bytes);
            for (_, payload) in it.by_ref() {
                seen.push(payload[0]);
            }
            assert_eq!(it.damage(), None);
        }
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    }
}
