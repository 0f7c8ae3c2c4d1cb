//! Appenders on several threads and queriers at the same time; each querier's view is checked:
//! whole commits only, a consistent snapshot, never going backwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kahu_tsdb::model::{Labels, MatchOp, Matcher};
use kahu_tsdb::{Appendable, Db, Queryable};

use crate::common::{dump_matching, opts};

const WRITERS: usize = 4;
const SERIES_PER_WRITER: usize = 25;
const BATCHES: i64 = 400;

fn labels(w: usize, s: usize) -> Labels {
    Labels::from_pairs([("__name__", "c".to_string()), ("w", w.to_string()), ("s", s.to_string())])
}

#[test]
fn queries_running_with_appends_see_whole_commits_and_consistent_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), opts()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let mut app = db.appender();
                    for s in 0..SERIES_PER_WRITER {
                        app.append(&labels(w, s), b, (b * 1000 + s as i64) as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = Arc::clone(&db);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let m = [Matcher::new(MatchOp::Equal, "__name__", "c").unwrap()];
                let mut last_counts = [0usize; WRITERS];
                let mut checks = 0;
                while !done.load(Ordering::Acquire) || checks < 3 {
                    let q = db.querier().unwrap();
                    let first = dump_matching(q.as_ref(), &m);
                    let mut counts = [None::<usize>; WRITERS];
                    for (l, samples) in &first {
                        let w: usize = l.get("w").unwrap().parse().unwrap();
                        let s: i64 = l.get("s").unwrap().parse().unwrap();
                        // Contiguous, in order, right values: no sample lost, none twice.
                        for (i, x) in samples.iter().enumerate() {
                            assert_eq!(x.t, i as i64, "{l}");
                            assert_eq!(x.v, (x.t * 1000 + s) as f64, "{l}");
                        }
                        // Every series of one writer is in the same commits.
                        match counts[w] {
                            None => counts[w] = Some(samples.len()),
                            Some(c) => assert_eq!(c, samples.len(), "half a commit visible for writer {w}"),
                        }
                    }
                    for (w, c) in counts.iter().enumerate() {
                        let c = c.unwrap_or(0);
                        if c > 0 {
                            let n = first.keys().filter(|l| l.get("w") == Some(&*w.to_string())).count();
                            assert_eq!(n, SERIES_PER_WRITER, "writer {w}: some series of a commit missing");
                        }
                        assert!(c >= last_counts[w], "a later querier saw less");
                        last_counts[w] = c;
                    }
                    // The same querier gives the same answer later, whatever was committed since.
                    std::thread::yield_now();
                    assert_eq!(dump_matching(q.as_ref(), &m), first, "querier snapshot changed");
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() >= 3);
    }
    let all = dump_matching(
        db.querier().unwrap().as_ref(),
        &[Matcher::new(MatchOp::Equal, "__name__", "c").unwrap()],
    );
    assert_eq!(all.len(), WRITERS * SERIES_PER_WRITER);
    assert!(all.values().all(|s| s.len() == BATCHES as usize));
}
