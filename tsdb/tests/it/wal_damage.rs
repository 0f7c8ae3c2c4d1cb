//! The WAL damage table: each case damages the WAL in one way and names how many committed
//! samples must survive the next open. Opening must never fail, a damaged tail must be cut off
//! for good (the open after that finds nothing to repair), and appends must work afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use kahu_tsdb::wal::segment::FrameIter;
use kahu_tsdb::{Appendable, Db};

use crate::common::{dump_db, opts, series};

/// Opens `dir`, commits `n` batches of one sample each (new series each time), closes it.
/// Returns the segment file that session wrote.
fn session(dir: &Path, first: usize, n: usize) -> PathBuf {
    let db = Db::open(dir, opts()).unwrap();
    for i in first..first + n {
        let mut app = db.appender();
        app.append(&series(i), 1000 + i as i64, i as f64).unwrap();
        app.commit().unwrap();
    }
    drop(db);
    newest_segment(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("wal")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn newest_segment(dir: &Path) -> PathBuf {
    // The newest non-empty segment (each open starts a new, empty one).
    segments(dir).into_iter().rev().find(|p| fs::metadata(p).unwrap().len() > 8).unwrap()
}

/// The path of the segment after the newest one.
fn next_segment(dir: &Path) -> PathBuf {
    let last = segments(dir).last().and_then(|p| p.file_name()?.to_str()?.parse::<u64>().ok()).unwrap();
    dir.join("wal").join(format!("{:08}", last + 1))
}

/// Start offsets of the frames of a segment.
fn frame_offsets(seg: &Path) -> Vec<usize> {
    let bytes = fs::read(seg).unwrap();
    FrameIter::new(&bytes).map(|(off, _)| off).collect()
}

fn total_samples(db: &Db) -> usize {
    dump_db(db).values().map(Vec::len).sum()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = fs::read(path).unwrap();
    f(&mut b);
    fs::write(path, b).unwrap();
}

struct Case {
    name: &'static str,
    /// Builds the WAL and damages it.
    damage: fn(&Path),
    /// Committed samples that must be there after the open.
    survivors: usize,
    /// Whether the damage is in the last segment, so repair cuts it off for good.
    repaired_for_good: bool,
}

#[test]
fn damaged_wals_open_and_keep_every_good_frame() {
    let cases = [
        Case {
            name: "a torn last frame loses only that frame",
            damage: |d| {
                let seg = session(d, 0, 10);
                edit(&seg, |b| b.truncate(b.len() - 3));
            },
            survivors: 9,
            repaired_for_good: true,
        },
        Case {
            name: "a bad CRC in the last frame loses only that frame",
            damage: |d| {
                let seg = session(d, 0, 10);
                let last = *frame_offsets(&seg).last().unwrap();
                edit(&seg, |b| b[last + 12] ^= 0x40);
            },
            survivors: 9,
            repaired_for_good: true,
        },
        Case {
            name: "a bad CRC in the middle of the last segment loses that frame and the rest of the segment",
            damage: |d| {
                let seg = session(d, 0, 10);
                let fifth = frame_offsets(&seg)[4];
                edit(&seg, |b| b[fifth + 10] ^= 0x01);
            },
            survivors: 4,
            repaired_for_good: true,
        },
        Case {
            name: "a length past the frame limit loses the rest of the segment",
            damage: |d| {
                let seg = session(d, 0, 10);
                let seventh = frame_offsets(&seg)[6];
                edit(&seg, |b| b[seventh + 1..seventh + 5].copy_from_slice(&u32::MAX.to_le_bytes()));
            },
            survivors: 6,
            repaired_for_good: true,
        },
        Case {
            name: "a length a little too long reads as a CRC mismatch and loses the rest of the segment",
            damage: |d| {
                let seg = session(d, 0, 10);
                let seventh = frame_offsets(&seg)[6];
                edit(&seg, |b| {
                    let len = u32::from_le_bytes(b[seventh + 1..seventh + 5].try_into().unwrap());
                    b[seventh + 1..seventh + 5].copy_from_slice(&(len + 2).to_le_bytes());
                });
            },
            survivors: 6,
            repaired_for_good: true,
        },
        Case {
            name: "a zero-filled tail after the last frame loses nothing",
            damage: |d| {
                let seg = session(d, 0, 10);
                edit(&seg, |b| b.extend(std::iter::repeat_n(0u8, 4096)));
            },
            survivors: 10,
            repaired_for_good: true,
        },
        Case {
            name: "a zeroed frame followed by more frames loses the rest of the segment",
            damage: |d| {
                let seg = session(d, 0, 10);
                let offs = frame_offsets(&seg);
                edit(&seg, |b| b[offs[4]..offs[5]].fill(0));
            },
            survivors: 4,
            repaired_for_good: true,
        },
        Case {
            name: "a garbage last segment loses nothing committed before it",
            damage: |d| {
                session(d, 0, 10);
                let garbage: Vec<u8> =
                    (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1).collect();
                fs::write(next_segment(d), garbage).unwrap();
            },
            survivors: 10,
            repaired_for_good: true,
        },
        Case {
            name: "a garbage segment between good ones costs only itself",
            damage: |d| {
                session(d, 0, 10);
                let middle = session(d, 10, 10);
                session(d, 20, 10);
                let garbage: Vec<u8> =
                    (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1).collect();
                fs::write(middle, garbage).unwrap();
            },
            survivors: 20,
            repaired_for_good: false,
        },
        Case {
            name: "a bad CRC in an earlier segment costs the rest of that segment only",
            damage: |d| {
                let first = session(d, 0, 10);
                session(d, 10, 10);
                let third = frame_offsets(&first)[2];
                edit(&first, |b| b[third + 10] ^= 0xff);
            },
            survivors: 12,
            repaired_for_good: false,
        },
        Case {
            name: "a missing segment between good ones costs only its own samples",
            damage: |d| {
                session(d, 0, 10);
                let middle = session(d, 10, 10);
                session(d, 20, 10);
                fs::remove_file(middle).unwrap();
            },
            survivors: 20,
            repaired_for_good: false,
        },
        Case {
            name: "a missing first segment also costs the later samples of the series it created",
            damage: |d| {
                let first = session(d, 0, 10);
                // Series 0..10 again (their series records are in the first segment only), then
                // ten new series.
                let db = Db::open(d, opts()).unwrap();
                let mut app = db.appender();
                for i in 0..20 {
                    app.append(&series(i), 3000 + i as i64, i as f64).unwrap();
                }
                app.commit().unwrap();
                drop(db);
                session(d, 20, 10);
                fs::remove_file(first).unwrap();
            },
            survivors: 20,
            repaired_for_good: false,
        },
        Case {
            name: "a segment torn inside its header is empty",
            damage: |d| {
                session(d, 0, 10);
                fs::write(next_segment(d), b"KWA").unwrap();
            },
            survivors: 10,
            repaired_for_good: true,
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        (case.damage)(dir.path());
        let db = Db::open(dir.path(), opts()).unwrap_or_else(|e| panic!("{}: open failed: {e}", case.name));
        assert_eq!(total_samples(&db), case.survivors, "{}", case.name);
        let stats = db.stats();
        let damaged = stats.wal.corruptions + stats.head.samples_replay_dropped;
        assert!(
            damaged >= 1 || case.name.contains("zero-filled") || case.name.contains("header"),
            "{}: no corruption counted",
            case.name
        );
        // Appends still work and survive.
        let mut app = db.appender();
        app.append(&series(1000), 5000, 1.0).unwrap();
        app.commit().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(total_samples(&db), case.survivors + 1, "{}: after a second open", case.name);
        if case.repaired_for_good {
            assert_eq!(db.stats().wal.corruptions, 0, "{}: damage still there on the second open", case.name);
        }
    }
}
