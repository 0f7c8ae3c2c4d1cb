//! Random sequences of append / commit / rollback / restart, checked against a `BTreeMap` model
//! through `select` after every step.

use std::collections::BTreeMap;

use kahu_tsdb::model::{Labels, Sample, stale_nan};
use kahu_tsdb::{AppendError, Appendable, Appender, Db, Queryable};
use proptest::prelude::*;

use crate::common::{dump_db, opts};

#[derive(Debug, Clone)]
enum Op {
    /// Append to series `s` at `last + dt - 1` (so 0 = older, 1 = same, ≥2 = newer).
    Append {
        s: usize,
        dt: i64,
        v: u8,
    },
    Commit,
    Rollback,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..5usize, 0..4i64, 0..4u8).prop_map(|(s, dt, v)| Op::Append { s, dt, v }),
        2 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Restart),
    ]
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs([("__name__", "model"), ("s", ["a", "b", "c", "d", "e"][s])])
}

fn val(v: u8) -> f64 {
    [1.0, -0.0, stale_nan(), f64::INFINITY][v as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48)
    ))]
    #[test]
    fn the_db_behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut committed: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut batch: Vec<(Labels, Sample)> = Vec::new();
        // Restarts split the sequence into sessions; an appender lives within one session.
        for session in ops.split(|o| matches!(o, Op::Restart)) {
            let db = Db::open(dir.path(), opts()).unwrap();
            prop_assert_eq!(&dump_db(&db), &committed, "after reopen");
            let mut app: Option<Box<dyn Appender + '_>> = None;
            for op in session {
                match *op {
                    Op::Append { s, dt, v } => {
                        let l = labels(s);
                        let last = batch.iter().rev().find(|(bl, _)| *bl == l).map(|(_, x)| *x)
                            .or_else(|| committed.get(&l).and_then(|v| v.last().copied()));
                        let t = last.map_or(1000, |x| x.t + dt - 1);
                        let value = val(v);
                        let want: Result<bool, &str> = match last {
                            Some(x) if t < x.t => Err("ooo"),
                            Some(x) if t == x.t && x.v.to_bits() == value.to_bits() => Ok(false),
                            Some(x) if t == x.t => Err("dup"),
                            _ => Ok(true),
                        };
                        let a = app.get_or_insert_with(|| db.appender());
                        let got = a.append(&l, t, value);
                        match (&want, &got) {
                            (Ok(_), Ok(())) => {}
                            (Err("ooo"), Err(AppendError::OutOfOrder { .. })) => {}
                            (Err("dup"), Err(AppendError::DuplicateTimestamp { .. })) => {}
                            _ => prop_assert!(false, "append {l} at {t}: model says {want:?}, db says {got:?}"),
                        }
                        if want == Ok(true) {
                            batch.push((l, Sample::new(t, value)));
                        }
                    }
                    Op::Commit => {
                        if let Some(a) = app.take() {
                            a.commit().unwrap();
                        }
                        for (l, s) in batch.drain(..) {
                            committed.entry(l).or_default().push(s);
                        }
                    }
                    Op::Rollback => {
                        if let Some(a) = app.take() {
                            a.rollback();
                        }
                        batch.clear();
                    }
                    Op::Restart => {}
                }
                // Uncommitted appends are never visible.
                prop_assert_eq!(&dump_db(&db), &committed);
            }
            // The session ends without committing: that batch is lost.
            drop(app);
            batch.clear();
        }
        let db = Db::open(dir.path(), opts()).unwrap();
        prop_assert_eq!(&dump_db(&db), &committed);
        prop_assert!(db.querier().is_ok());
    }
}
