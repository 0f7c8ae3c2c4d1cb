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
    // With their remote-write encoding (hashed from the bytes), sorted or not; and a new series
    // created from an encoding is found again from `Labels`.
    let proto = |pairs: &[(&str, &str)], t: i64, app: &mut Box<dyn kahu_tsdb::Appender + '_>| {
        let mut enc = Vec::new();
        kahu_tsdb::model::encode_proto_labels(pairs.iter().copied(), &mut enc);
        app.append_proto(&kahu_tsdb::model::ProtoLabels::parse(&enc).unwrap(), t, t as f64).unwrap();
    };
    proto(&[("__name__", "up"), ("job", "a")], 4, &mut app);
    proto(&[("job", "a"), ("__name__", "up")], 5, &mut app);
    proto(&[("__name__", "up"), ("job", "b")], 6, &mut app);
    app.append(&Labels::from_pairs([("__name__", "up"), ("job", "b")]), 7, 7.0).unwrap();
    app.commit().unwrap();
    let d = dump_db(&db);
    assert_eq!(d.len(), 2);
    assert_eq!(
        d.values().next().unwrap(),
        &vec![
            Sample::new(1, 1.0),
            Sample::new(2, 2.0),
            Sample::new(3, 3.0),
            Sample::new(4, 4.0),
            Sample::new(5, 5.0)
        ]
    );
    assert_eq!(d.values().nth(1).unwrap(), &vec![Sample::new(6, 6.0), Sample::new(7, 7.0)]);
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

#[test]
fn label_sets_are_validated_against_the_configured_limits() {
    use kahu_tsdb::head::LabelLimits;
    use kahu_tsdb::model::Label;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.head.limits = LabelLimits { max_label_names: 4, max_name_length: 10, max_value_length: 8 };
    let db = Db::open(dir.path(), o).unwrap();
    let pairs = |p: &[(&str, &str)]| Labels::from_pairs(p.iter().copied());
    // (case, labels, the reason's words when invalid)
    let cases: Vec<(&str, Labels, Option<&str>)> = vec![
        ("no labels", Labels::from_vec(vec![]), Some("empty label set")),
        ("only empty values", pairs(&[("a", "")]), Some("empty label set")),
        (
            "an empty name",
            Labels::from_vec(vec![Label::new("", "v"), Label::new("a", "1")]),
            Some("empty label name"),
        ),
        (
            "a name twice",
            Labels::from_vec(vec![Label::new("a", "1"), Label::new("a", "2")]),
            Some("label name \"a\" repeats"),
        ),
        ("four labels", pairs(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]), None),
        (
            "five labels",
            pairs(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")]),
            Some("5 labels exceed the limit of 4"),
        ),
        ("a name of 10 bytes", pairs(&[("abcdefghij", "1")]), None),
        (
            "a name of 11 bytes",
            pairs(&[("abcdefghijk", "1")]),
            Some("label name of 11 bytes exceeds the limit of 10"),
        ),
        ("a value of 8 bytes", pairs(&[("a", "12345678")]), None),
        ("a value of 9 bytes", pairs(&[("a", "123456789")]), Some("value of label \"a\" has 9 bytes")),
        // Bytes, not characters: "ä" is two bytes.
        ("a value of 5 characters, 10 bytes", pairs(&[("a", "äääää")]), Some("has 10 bytes")),
        ("UTF-8 names", pairs(&[("ünïcode", "1")]), None),
    ];
    let mut app = db.appender();
    let mut invalid = 0;
    for (i, (case, labels, want)) in cases.iter().enumerate() {
        let got = app.append(labels, 1000 + i as i64, 1.0);
        match (want, &got) {
            (None, Ok(())) => {}
            (Some(words), Err(AppendError::InvalidLabels { reason, .. })) => {
                assert!(reason.contains(words), "{case}: reason {reason:?} does not say {words:?}");
                invalid += 1;
            }
            _ => panic!("{case}: want {want:?}, got {got:?}"),
        }
        // The borrowed path used by remote write agrees.
        let borrowed: Vec<(&str, &str)> =
            labels.iter().map(|l| (l.name.as_ref(), l.value.as_ref())).collect();
        let got_borrowed = app.append_pairs(&borrowed, 1000 + i as i64, 1.0);
        assert_eq!(got_borrowed.is_ok(), want.is_none(), "{case} (borrowed pairs): {got_borrowed:?}");
        // And the remote-write path, which passes the encoding when it is canonical.
        let mut enc = Vec::new();
        kahu_tsdb::model::encode_proto_labels(borrowed.iter().copied(), &mut enc);
        let got_proto = match kahu_tsdb::model::ProtoLabels::parse(&enc) {
            Some(p) => app.append_proto(&p, 1000 + i as i64, 1.0),
            None => app.append_pairs(&borrowed, 1000 + i as i64, 1.0),
        };
        assert_eq!(got_proto.is_ok(), want.is_none(), "{case} (encoded): {got_proto:?}");
        if want.is_some() {
            invalid += 2;
        }
    }
    let summary = app.commit().unwrap();
    assert_eq!(
        (summary.samples, summary.new_series),
        (4, 4),
        "the valid label sets are stored, whatever the others"
    );
    assert_eq!(db.stats().head.rejected.invalid_labels, invalid);
}

#[test]
fn head_chunks_are_cut_at_the_sample_count_and_at_block_range_boundaries() {
    use kahu_tsdb::head::{Head, HeadOptions, HeadQuerier};
    use kahu_tsdb::{Appender, Querier};
    let head = std::sync::Arc::new(Head::new(
        HeadOptions { chunk_range_ms: 1000, samples_per_chunk: 120, ..HeadOptions::default() },
        false,
    ));
    let l = series(1);
    // (timestamps appended, cuts expected after them)
    let steps: [(Vec<i64>, u64); 4] = [
        // 600 samples in [0, 1000): a new chunk every 120 samples.
        ((0..600).collect(), 4),
        // The next range starts a new chunk after 10 samples only.
        ((990..1000).map(|t| t + 10).collect(), 5),
        // Jumping over two ranges cuts once.
        (vec![3500, 3501], 6),
        // Exactly on a boundary.
        (vec![3999, 4000], 7),
    ];
    let mut want = Vec::new();
    for (ts, cuts) in steps {
        let mut app = Box::new(head.appender());
        for &t in &ts {
            app.append(&l, t, t as f64).unwrap();
            want.push(Sample::new(t, t as f64));
        }
        app.commit().unwrap();
        assert_eq!(head.stats().chunks_created, cuts, "after {ts:?}");
    }
    // Every sample reads back across the chunk boundaries, and `seek` crosses them.
    let q = HeadQuerier::new(std::sync::Arc::clone(&head));
    let got = crate::common::dump(&q);
    assert_eq!(got.get(&l), Some(&want));
    let s = q.select(&[Matcher::equal("i", "1")], i64::MIN, i64::MAX).unwrap().next().unwrap();
    let mut it = s.iter();
    assert_eq!(it.seek(119), Some(Sample::new(119, 119.0)));
    assert_eq!(it.next(), Some(Sample::new(120, 120.0)));
    assert_eq!(it.seek(1005), Some(Sample::new(1005, 1005.0)));
    assert_eq!(it.seek(1010), Some(Sample::new(3500, 3500.0)));
}
