//! Blocks against the in-memory head: the same data must read back identically, from one
//! block, from several consecutive blocks and from overlapping ones; damage must be detected.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::model::{Labels, MatchOp, Matcher, STALE_NAN_BITS, Sample};
use crate::querier::Querier;
use crate::{Appendable, MemHead, Queryable};
use proptest::prelude::*;

type Data = BTreeMap<Labels, Vec<Sample>>;

fn data() -> impl Strategy<Value = Data> {
    let series = (0u8..3, 0u8..5).prop_map(|(m, p)| {
        Labels::from_pairs([
            ("__name__", format!("m{m}")),
            ("pod", format!("p{p}")),
            ("job", "node".to_string()),
        ])
    });
    let value = prop_oneof![
        3 => (0i64..1_000_000).prop_map(|v| v as f64 / 1000.0),
        1 => any::<f64>(),
        1 => Just(f64::from_bits(STALE_NAN_BITS)),
        1 => Just(f64::NAN),
    ];
    proptest::collection::btree_map(
        series,
        proptest::collection::vec((1i64..40_000, value), 1..300).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(d, v)| {
                    t += d;
                    Sample::new(t, v)
                })
                .collect::<Vec<_>>()
        }),
        1..12,
    )
}

fn collect(q: &dyn Querier, ms: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<Sample>)> {
    q.select(ms, mint, maxt)
        .unwrap()
        .map(|s| {
            let mut it = s.iter();
            let mut v = Vec::new();
            while let Some(x) = it.next() {
                v.push(x);
            }
            assert!(it.err().is_none());
            (s.labels().clone(), v)
        })
        .collect()
}

fn head_of(d: &Data) -> MemHead {
    let h = MemHead::new();
    let mut app = h.appender();
    for (l, s) in d {
        for x in s {
            app.append(l, x.t, x.v).unwrap();
        }
    }
    app.commit().unwrap();
    h
}

/// Writes `d` cut at `cuts` into consecutive blocks.
fn blocks_of(dir: &std::path::Path, d: &Data, cuts: &[i64]) -> Vec<Arc<Block>> {
    let cache = FrameCache::new(1 << 20);
    let mut bounds = vec![i64::MIN / 2];
    bounds.extend_from_slice(cuts);
    bounds.push(i64::MAX / 2);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let series =
            d.iter().map(|(l, s)| (l.clone(), s.iter().copied().filter(|x| x.t >= lo && x.t < hi).collect()));
        let spec = BlockSpec { min_time: lo, max_time: hi, ..Default::default() };
        if let Some(meta) = write_block(dir, series, &spec, &WriteOptions::default()).unwrap() {
            out.push(Arc::new(Block::open(&dir.join(&meta.ulid), cache.clone()).unwrap()));
        }
    }
    out
}

fn matchers() -> Vec<Vec<Matcher>> {
    vec![
        vec![],
        vec![Matcher::equal("__name__", "m1")],
        vec![Matcher::new(MatchOp::Regex, "pod", "p[0-2]").unwrap(), Matcher::equal("job", "node")],
        vec![Matcher::new(MatchOp::NotEqual, "pod", "p3").unwrap()],
        vec![Matcher::equal("missing", "")],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn blocks_answer_exactly_as_the_head_does(d in data(), cut in 0i64..3_000_000, lo in -10i64..2_000_000, len in 0i64..8_000_000) {
        let dir = tempfile::tempdir().unwrap();
        let head = head_of(&d);
        let hq = head.querier().unwrap();
        let one = BlocksQuerier::new(blocks_of(&dir.path().join("one"), &d, &[]));
        let two = BlocksQuerier::new(blocks_of(&dir.path().join("two"), &d, &[cut]));
        // Overlapping: the same data in two blocks twice over, as after a backfill.
        let mut both = blocks_of(&dir.path().join("o1"), &d, &[]);
        both.extend(blocks_of(&dir.path().join("o2"), &d, &[cut]));
        let overlap = BlocksQuerier::new(both);
        // Head and blocks together: data before `cut` in blocks, from `cut` on in a head.
        let recent: Data = d.iter().map(|(l, s)| (l.clone(), s.iter().copied().filter(|x| x.t >= cut).collect::<Vec<_>>())).filter(|(_, s): &(Labels, Vec<Sample>)| !s.is_empty()).collect();
        let older: Data = d.iter().map(|(l, s)| (l.clone(), s.iter().copied().filter(|x| x.t < cut).collect::<Vec<_>>())).filter(|(_, s): &(Labels, Vec<Sample>)| !s.is_empty()).collect();
        let recent_head = head_of(&recent);
        let merged = MergeQuerier::new(vec![
            recent_head.querier().unwrap(),
            Box::new(BlocksQuerier::new(blocks_of(&dir.path().join("m"), &older, &[]))),
        ]);
        for ms in matchers() {
            for (mint, maxt) in [(i64::MIN, i64::MAX), (lo, lo + len)] {
                let want = collect(hq.as_ref(), &ms, mint, maxt);
                prop_assert_eq!(&collect(&one, &ms, mint, maxt), &want);
                prop_assert_eq!(&collect(&two, &ms, mint, maxt), &want);
                prop_assert_eq!(&collect(&overlap, &ms, mint, maxt), &want);
                prop_assert_eq!(&collect(&merged, &ms, mint, maxt), &want);
                // Blocks answer label names and values from their index, as Prometheus does:
                // every matching series of a block that overlaps the range counts, with or
                // without a sample in it. So they list at least what has samples in the range
                // (the MemHead's answer) and at most every matching series.
                let subset = |small: &[String], big: &[String]| small.iter().all(|x| big.contains(x));
                let (within, every) = (hq.label_values("pod", &ms, mint, maxt).unwrap(), hq.label_values("pod", &ms, i64::MIN, i64::MAX).unwrap());
                for q in [&merged as &dyn Querier, &one] {
                    let got = q.label_values("pod", &ms, mint, maxt).unwrap();
                    prop_assert!(subset(&within, &got) && subset(&got, &every), "{:?} not between {:?} and {:?}", got, within, every);
                }
                let (names_within, names_every) = (hq.label_names(&ms, mint, maxt).unwrap(), hq.label_names(&ms, i64::MIN, i64::MAX).unwrap());
                let got = one.label_names(&ms, mint, maxt).unwrap();
                prop_assert!(subset(&names_within, &got) && subset(&got, &names_every), "{:?} not between {:?} and {:?}", got, names_within, names_every);
                if (mint, maxt) == (i64::MIN, i64::MAX) {
                    prop_assert_eq!(&one.label_values("pod", &ms, mint, maxt).unwrap(), &every);
                    prop_assert_eq!(&merged.label_values("pod", &ms, mint, maxt).unwrap(), &every);
                    prop_assert_eq!(&one.label_names(&ms, mint, maxt).unwrap(), &names_every);
                }
            }
        }
    }
}

/// Collects a series set (labels and samples).
fn collect_set(set: crate::querier::SeriesSet<'_>) -> Vec<(Labels, Vec<Sample>)> {
    set.map(|s| {
        let mut it = s.iter();
        let mut v = Vec::new();
        while let Some(x) = it.next() {
            v.push(x);
        }
        assert!(it.err().is_none());
        (s.labels().clone(), v)
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// The merges by sorted streams (several blocks, head and blocks, single sources passed
    /// through) answer exactly as the map of every series did.
    #[test]
    fn merged_selects_answer_as_the_naive_merge(
        d in data(), e in data(), cuts in proptest::collection::btree_set(0i64..3_000_000, 0..4),
        lo in -10i64..3_000_000, len in 0i64..4_000_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cuts: Vec<i64> = cuts.into_iter().collect();
        // Consecutive blocks of `d`, plus `e` in blocks overlapping them (a backfill).
        let mut blocks = blocks_of(&dir.path().join("d"), &d, &cuts);
        blocks.extend(blocks_of(&dir.path().join("e"), &e, &cuts[..cuts.len().min(1)]));
        let bq = BlocksQuerier::new(blocks.clone());
        let empty = MemHead::new();
        let head = head_of(&e);
        let merged = MergeQuerier::new(vec![
            empty.querier().unwrap(),
            head.querier().unwrap(),
            Box::new(BlocksQuerier::new(blocks.iter().take(2).cloned().collect())),
            Box::new(BlocksQuerier::new(blocks.iter().skip(2).cloned().collect())),
        ]);
        let single = MergeQuerier::new(vec![empty.querier().unwrap(), Box::new(bq.clone())]);
        let mut ms = matchers();
        ms.push(vec![Matcher::equal("__name__", "m2"), Matcher::new(MatchOp::Regex, "pod", "p[34]").unwrap()]);
        for m in ms {
            for (mint, maxt) in [(i64::MIN, i64::MAX), (lo, lo + len)] {
                let want = collect_set(bq.select_naive(&m, mint, maxt).unwrap());
                prop_assert_eq!(&collect_set(bq.select(&m, mint, maxt).unwrap()), &want);
                prop_assert_eq!(&collect_set(single.select(&m, mint, maxt).unwrap()), &want);
                let want = collect_set(merged.select_naive(&m, mint, maxt).unwrap());
                prop_assert_eq!(&collect_set(merged.select(&m, mint, maxt).unwrap()), &want);
            }
        }
    }
}

/// Label names and values come from the index of every block that overlaps the range, as in
/// Prometheus: a series without a sample in the range is listed, and a label with few values is
/// answered by intersecting postings (`values_among`) exactly as by reading every series.
#[test]
fn label_values_answer_from_the_index_of_overlapping_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // 400 series of 4 namespaces; even ones have samples in the first hour only, odd ones in
    // the second; metric `m1` only in namespaces ns-0 and ns-2.
    let mut series: Vec<(Labels, Vec<Sample>)> = (0..400)
        .map(|i: i64| {
            let l = Labels::from_pairs([
                ("__name__", format!("m{}", i % 2)),
                ("i", format!("{i:04}")),
                ("ns", format!("ns-{}", i % 4)),
            ]);
            let start = (i % 2) * 3_600_000;
            let s: Vec<Sample> = (0..240).map(|k| Sample::new(start + k * 15_000, k as f64)).collect();
            (l, s)
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let spec = BlockSpec { min_time: 0, max_time: 7_200_000, ..Default::default() };
    let meta = write_block(dir.path(), series, &spec, &WriteOptions::default()).unwrap().unwrap();
    let block = Arc::new(Block::open(&dir.path().join(&meta.ulid), FrameCache::new(1 << 20)).unwrap());
    let q = BlocksQuerier::new(vec![Arc::clone(&block)]);
    let second_hour = (3_600_000, 7_199_999);
    let m0 = [Matcher::equal("__name__", "m0")];
    // `m0` has no sample in the second hour; its series are listed all the same.
    assert_eq!(q.label_values("ns", &m0, second_hour.0, second_hour.1).unwrap(), ["ns-0", "ns-2"]);
    assert_eq!(q.label_values("__name__", &[], second_hour.0, second_hour.1).unwrap(), ["m0", "m1"]);
    assert_eq!(q.label_names(&m0, second_hour.0, second_hour.1).unwrap(), ["__name__", "i", "ns"]);
    // Outside the block: nothing.
    assert!(q.label_values("ns", &m0, 7_200_000, 9_000_000).unwrap().is_empty());
    // The postings intersection is taken for `ns` (4 values) and not for `i` (one per series);
    // both agree with reading the series.
    let index = block.index();
    let ids = index.select(&m0).unwrap();
    assert_eq!(index.values_among("ns", &ids).unwrap(), Some(vec!["ns-0", "ns-2"]));
    assert_eq!(index.values_among("i", &ids[..1]).unwrap(), None);
    let i_values = q.label_values("i", &m0, 0, 7_199_999).unwrap();
    assert_eq!(i_values.len(), 200);
    assert!(i_values.iter().all(|v| v.parse::<i64>().is_ok_and(|i| i % 2 == 0)));
}

fn one_block() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let series = (0..400).map(|i| {
        let l = Labels::from_pairs([("__name__", "m".to_string()), ("i", format!("{i:04}"))]);
        let s: Vec<Sample> = (0..480).map(|k| Sample::new(k * 15_000, ((i * k) % 1000) as f64)).collect();
        (l, s)
    });
    let spec = BlockSpec { min_time: 0, max_time: 7_200_000, ..Default::default() };
    let meta = write_block(dir.path(), series, &spec, &WriteOptions::default()).unwrap().unwrap();
    let p = dir.path().join(&meta.ulid);
    (dir, p)
}

fn flip(path: &std::path::Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x04;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_flipped_bit_in_chunk_data_is_detected_at_open() {
    let (_d, p) = one_block();
    assert!(Block::open(&p, FrameCache::new(1 << 20)).is_ok());
    let seg = p.join("chunks/000001");
    let len = std::fs::metadata(&seg).unwrap().len() as usize;
    flip(&seg, len / 2);
    let err = Block::open(&p, FrameCache::new(1 << 20)).unwrap_err();
    assert!(matches!(err, BlockError::Chunks { .. }), "{err:?}");
    assert_eq!(err.file(), "chunks/000001");
}

#[test]
fn a_flipped_bit_in_the_index_is_detected_at_open() {
    let (_d, p) = one_block();
    let len = std::fs::metadata(p.join("index")).unwrap().len() as usize;
    flip(&p.join("index"), len / 3);
    let err = Block::open(&p, FrameCache::new(1 << 20)).unwrap_err();
    assert!(matches!(err, BlockError::Index { .. }), "{err:?}");
    assert_eq!(err.file(), "index");
}

#[test]
fn a_flipped_bit_in_meta_json_is_detected_at_open() {
    let (_d, p) = one_block();
    let text = std::fs::read_to_string(p.join("meta.json")).unwrap();
    let at = text.find("numSeries").unwrap() + 13;
    flip(&p.join("meta.json"), at);
    let err = Block::open(&p, FrameCache::new(1 << 20)).unwrap_err();
    assert!(matches!(err, BlockError::Meta { .. }), "{err:?}");
    assert_eq!(err.file(), "meta.json");
}

#[test]
fn a_truncated_or_missing_file_is_named() {
    let (_d, p) = one_block();
    let seg = p.join("chunks/000001");
    let b = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &b[..b.len() - 10]).unwrap();
    let err = Block::open(&p, FrameCache::new(1 << 20)).unwrap_err();
    assert!(err.to_string().contains("chunks/000001"), "{err}");
    std::fs::remove_file(p.join("meta.json")).unwrap();
    assert!(matches!(Block::open(&p, FrameCache::new(1 << 20)), Err(BlockError::Meta { .. })));
}

#[test]
fn a_failed_write_leaves_no_temporary_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bad = vec![(Labels::from_pairs([("a", "b")]), vec![Sample::new(10, 1.0), Sample::new(5, 2.0)])];
    let spec = BlockSpec { min_time: 0, max_time: 100, ..Default::default() };
    assert!(matches!(
        write_block(dir.path(), bad, &spec, &WriteOptions::default()),
        Err(BlockWriteError::Unordered(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let out = vec![(Labels::from_pairs([("a", "b")]), vec![Sample::new(100, 1.0)])];
    assert!(matches!(
        write_block(dir.path(), out, &spec, &WriteOptions::default()),
        Err(BlockWriteError::OutOfRange { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn verify_decodes_every_chunk() {
    let (_d, p) = one_block();
    let b = Block::open(&p, FrameCache::new(1 << 20)).unwrap();
    assert_eq!(b.verify_chunks().unwrap(), 400 * 480);
    assert_eq!(b.meta().stats.num_samples, 400 * 480);
}
