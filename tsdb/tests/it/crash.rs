//! Crash safety with real processes: a child process appends and commits batches and reports
//! each committed batch on stdout; the parent kills it with SIGKILL at random moments, reopens
//! the directory, and checks that every reported batch is there, that no sample is there twice,
//! and that nothing of a batch that was rolled back, or only half committed, is there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kahu_tsdb::model::Labels;
use kahu_tsdb::{Appendable, Db};

use crate::common::{dump_db, opts};

const STEP: i64 = 10;

/// Series of batch `b`: a pseudo-random subset of a slowly growing population, so that batches
/// create series as they go (series records in the WAL) and differ in size.
fn batch_series(b: i64) -> Vec<usize> {
    let population = 8 + (b / 4) as usize;
    (0..population).filter(|&i| !splitmix(b as u64 * 1_000_003 + i as u64).is_multiple_of(3)).collect()
}

fn value(b: i64, i: usize) -> f64 {
    (b * 1000) as f64 + i as f64 + 0.5
}

/// Batches the child rolls back instead of committing.
fn rolled_back(b: i64) -> bool {
    b % 7 == 3
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "crash_test".to_string()),
        ("series", format!("s{i:04}")),
        ("pad", "x".repeat(40)),
    ])
}

/// The child: runs only when the parent starts this test binary with KAHU_CRASH_DIR set.
#[test]
#[ignore = "helper process of crash::sigkill_never_loses_a_committed_batch, which runs it"]
fn crash_child() {
    let Ok(dir) = std::env::var("KAHU_CRASH_DIR") else { return };
    let db = Db::open(Path::new(&dir), opts()).unwrap();
    let next = dump_db(&db).values().flat_map(|s| s.last().map(|x| x.t / STEP + 1)).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {next}").unwrap();
    out.flush().unwrap();
    for b in next.. {
        let mut app = db.appender();
        for i in batch_series(b) {
            app.append(&labels(i), b * STEP, value(b, i)).unwrap();
        }
        if rolled_back(b) {
            app.rollback();
            continue;
        }
        app.commit().unwrap();
        writeln!(out, "committed {b}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_never_loses_a_committed_batch() {
    let cycles: u64 = std::env::var("KAHU_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed: BTreeSet<i64> = BTreeSet::new();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KAHU_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child replayed the WAL, then let it run for a random while.
        // The test harness prints its own lines first, and "test … ... " before ours.
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("child did not start");
            if line.contains("ready ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20 + splitmix(cycle) % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut reported = 0;
        for line in rx.try_iter() {
            if let Some(b) = line.strip_prefix("committed ") {
                committed.insert(b.parse().unwrap());
                reported += 1;
            }
        }
        assert!(reported > 0 || cycle > 0, "child committed nothing in its first run");
        // A batch committed but not reported before the kill is allowed (whole), and from now
        // on it must stay: count it as committed for the next cycles.
        let present = verify(dir.path(), &committed, cycle);
        committed.extend(present);
    }
    assert!(committed.len() > 40, "only {} batches committed over {cycles} cycles", committed.len());
}

fn verify(dir: &Path, committed: &BTreeSet<i64>, cycle: u64) -> Vec<i64> {
    let db = Db::open(dir, opts()).unwrap();
    let data = dump_db(&db);
    drop(db);
    // Which samples of which batch are present.
    let mut present: std::collections::BTreeMap<i64, BTreeSet<usize>> = Default::default();
    for (l, samples) in &data {
        let i: usize = l.get("series").unwrap()[1..].parse().unwrap();
        let mut prev = i64::MIN;
        for s in samples {
            assert!(s.t > prev, "cycle {cycle}: {l} has a sample twice or out of order at {}", s.t);
            prev = s.t;
            assert_eq!(s.t % STEP, 0);
            let b = s.t / STEP;
            assert_eq!(s.v, value(b, i), "cycle {cycle}: wrong value in batch {b} of {l}");
            assert!(present.entry(b).or_default().insert(i));
        }
    }
    for b in committed {
        let want: BTreeSet<usize> = batch_series(*b).into_iter().collect();
        assert_eq!(present.get(b), Some(&want), "cycle {cycle}: committed batch {b} incomplete");
    }
    for (b, got) in &present {
        assert!(!rolled_back(*b), "cycle {cycle}: rolled-back batch {b} is present");
        if !committed.contains(b) {
            // Committed but killed before it reported: allowed, but only as a whole.
            let want: BTreeSet<usize> = batch_series(*b).into_iter().collect();
            assert_eq!(got, &want, "cycle {cycle}: half of batch {b} is present");
            assert_eq!(
                Some(b),
                present.keys().next_back(),
                "cycle {cycle}: unreported batch {b} is not the last"
            );
        }
    }
    present.into_keys().collect()
}
