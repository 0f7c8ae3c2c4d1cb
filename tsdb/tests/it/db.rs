//! Restart, replay and read-only views.

use kahu_tsdb::model::{Labels, Matcher, Sample, stale_nan};
use kahu_tsdb::{AppendError, Appendable, CommitError, Db, Queryable};

use crate::common::{dump_db, opts, series};

#[test]
fn committed_samples_survive_a_reopen_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let values =
        [1.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, stale_nan(), f64::from_bits(0x7ff8_dead_beef_0001)];
    let before = {
        let db = Db::open(dir.path(), opts()).unwrap();
        for round in 0..300i64 {
            let mut app = db.appender();
            for i in 0..20 {
                app.append(&series(i), round * 1000, values[(round as usize + i) % values.len()]).unwrap();
            }
            app.commit().unwrap();
        }
        // Rolled back: must not come back after the reopen.
        let mut app = db.appender();
        app.append(&series(0), 10_000_000, 1.0).unwrap();
        app.rollback();
        dump_db(&db)
    };
    assert_eq!(before.len(), 20);
    assert!(before.values().all(|s| s.len() == 300));
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump_db(&db), before);
    assert_eq!(db.stats().head.samples_replayed, 6000);
    // Appends continue after the replayed data, with the same series refs.
    let mut app = db.appender();
    assert!(matches!(app.append(&series(3), 5, 1.0), Err(AppendError::OutOfOrder { .. })));
    app.append(&series(3), 300_000, 1.0).unwrap();
    app.commit().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump_db(&db).get(&series(3)).map(Vec::len), Some(301));
}

#[test]
fn read_only_view_sees_what_a_running_db_committed_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut app = db.appender();
    app.append(&series(1), 1000, 42.0).unwrap();
    app.commit().unwrap();
    let ro = Db::open_read_only(dir.path()).unwrap();
    assert_eq!(dump_db(&ro), dump_db(&db));
    let mut app = ro.appender();
    app.append(&series(1), 2000, 1.0).unwrap();
    assert!(matches!(app.commit(), Err(CommitError::ReadOnly)));
    // The writer still works: the read-only open took no lock.
    let mut app = db.appender();
    app.append(&series(1), 2000, 43.0).unwrap();
    app.commit().unwrap();
}

#[test]
fn rejections_are_typed_and_counted_and_do_not_poison_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut app = db.appender();
    app.append(&series(1), 10_000_000, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = db.appender();
    assert!(matches!(app.append(&series(1), 9_999_999, 1.0), Err(AppendError::OutOfOrder { .. })));
    assert!(matches!(app.append(&series(1), 10_000_000, 2.0), Err(AppendError::DuplicateTimestamp { .. })));
    app.append(&series(1), 10_000_000, 1.0).unwrap(); // same value: a no-op
    // Half a block range (1h) behind the newest sample is out of bounds.
    assert!(matches!(
        app.append(&series(2), 10_000_000 - 3_600_001, 1.0),
        Err(AppendError::OutOfBounds { .. })
    ));
    let dup = Labels::from_vec(vec![
        kahu_tsdb::model::Label::new("a", "1"),
        kahu_tsdb::model::Label::new("a", "2"),
    ]);
    assert!(matches!(app.append(&dup, 10_000_000, 1.0), Err(AppendError::InvalidLabels { .. })));
    let long = Labels::from_pairs([("__name__", "x"), ("v", &*"y".repeat(5000))]);
    assert!(matches!(app.append(&long, 10_000_000, 1.0), Err(AppendError::InvalidLabels { .. })));
    app.append(&series(1), 10_000_001, 5.0).unwrap();
    let summary = app.commit().unwrap();
    assert_eq!(summary.samples, 1);
    let r = db.stats().head.rejected;
    assert_eq!((r.out_of_order, r.duplicate, r.out_of_bounds, r.invalid_labels), (1, 1, 1, 2));
}

#[test]
fn borrowed_pairs_find_the_same_series_as_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut app = db.appender();
    app.append(&Labels::from_pairs([("__name__", "up"), ("job", "a")]), 1, 1.0).unwrap();
    app.append_pairs(&[("__name__", "up"), ("job", "a")], 2, 2.0).unwrap();
    // Unsorted and with an empty value: normalized like Labels::from_pairs.
    app.append_pairs(&[("job", "a"), ("x", ""), ("__name__", "up")], 3, 3.0).unwrap();
    app.commit().unwrap();
    let d = dump_db(&db);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.values().next().unwrap(),
        &vec![Sample::new(1, 1.0), Sample::new(2, 2.0), Sample::new(3, 3.0)]
    );
}

#[test]
fn select_respects_matchers_ranges_and_label_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut app = db.appender();
    for (i, job) in ["a", "b", "c"].iter().enumerate() {
        for t in 0..500i64 {
            app.append(
                &Labels::from_pairs([("__name__", "up"), ("job", job), ("i", &*i.to_string())]),
                t * 10,
                t as f64,
            )
            .unwrap();
        }
    }
    app.commit().unwrap();
    let q = db.querier().unwrap();
    let m = [Matcher::new(kahu_tsdb::model::MatchOp::Regex, "job", "a|c").unwrap()];
    let got: Vec<_> = q.select(&m, 100, 205).unwrap().collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels().get("job"), Some("a"));
    let mut it = got[1].iter();
    assert_eq!(it.next(), Some(Sample::new(100, 10.0)));
    assert_eq!(it.seek(150), Some(Sample::new(150, 15.0)));
    assert_eq!(it.seek(120), Some(Sample::new(150, 15.0)));
    assert_eq!(it.seek(201), None);
    assert_eq!(q.label_values("job", &[], i64::MIN, i64::MAX).unwrap(), ["a", "b", "c"]);
    let neg = [Matcher::new(kahu_tsdb::model::MatchOp::NotEqual, "job", "b").unwrap()];
    assert_eq!(q.label_values("job", &neg, 0, 10_000).unwrap(), ["a", "c"]);
    assert_eq!(q.label_names(&neg, 0, 10_000).unwrap(), ["__name__", "i", "job"]);
    assert!(q.select(&m, 5000, 6000).unwrap().next().is_none());
}
