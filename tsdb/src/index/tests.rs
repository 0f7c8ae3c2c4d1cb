use super::reader::{Narrow, narrow};
use super::*;
use crate::model::{Labels, MatchOp, Matcher};
use crate::querier::matches_all;
use proptest::prelude::*;

fn write_and_open(series: &[(Labels, Vec<ChunkMeta>)]) -> (tempfile::TempDir, IndexReader) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index");
    write(&p, series, 3).unwrap();
    let r = IndexReader::open(&p).unwrap();
    (dir, r)
}

fn meta(i: u64) -> Vec<ChunkMeta> {
    vec![
        ChunkMeta { mint: -5 + i as i64, maxt: 100, samples: 7, chunk: ChunkRef(i) },
        ChunkMeta { mint: 200, maxt: 300 + i as i64, samples: 9, chunk: ChunkRef(i << 20) },
    ]
}

fn random_series() -> impl Strategy<Value = Vec<Labels>> {
    proptest::collection::btree_set(
        (0u8..4, 0u8..6, proptest::option::of(0u8..3), 0u16..700).prop_map(|(n, p, c, x)| {
            let mut pairs = vec![
                ("__name__".to_string(), format!("metric_{n}")),
                ("pod".to_string(), format!("pod-{p}")),
                ("x".to_string(), x.to_string()),
            ];
            if let Some(c) = c {
                pairs.push(("container".to_string(), format!("c{c}")));
            }
            Labels::from_pairs(pairs)
        }),
        1..900,
    )
    .prop_map(|s| s.into_iter().collect())
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let names = prop_oneof![Just("__name__"), Just("pod"), Just("container"), Just("missing"), Just("x")];
    let values = prop_oneof![
        Just("metric_1".to_string()),
        Just("pod-2".to_string()),
        Just("c1".to_string()),
        Just("".to_string()),
        Just("pod-.*".to_string()),
        Just("pod-[1-3]".to_string()),
        Just("metric_1|metric_3".to_string()),
        Just("c.?".to_string()),
        Just("1.*".to_string()),
        Just(".+".to_string()),
        Just("1?2".to_string()),
    ];
    let ops = prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::Regex),
        Just(MatchOp::NotRegex)
    ];
    (names, ops, values).prop_map(|(n, o, v)| Matcher::new(o, n, v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn select_agrees_with_testing_every_series(series in random_series(), ms in proptest::collection::vec(matcher(), 0..4)) {
        let input: Vec<(Labels, Vec<ChunkMeta>)> = series.iter().enumerate().map(|(i, l)| (l.clone(), meta(i as u64))).collect();
        let (_d, r) = write_and_open(&input);
        prop_assert_eq!(r.num_series(), series.len());
        let got = r.select(&ms).unwrap();
        let want: Vec<u32> = series.iter().enumerate().filter(|(_, l)| matches_all(l, &ms)).map(|(i, _)| i as u32).collect();
        prop_assert_eq!(&got, &want, "matchers {:?}", ms);
        let back = r.series(&got).unwrap();
        for (id, labels, chunks) in back {
            prop_assert_eq!(&labels, &series[id.0 as usize]);
            prop_assert_eq!(chunks, meta(u64::from(id.0)));
        }
    }
}

#[test]
fn label_names_and_values_come_back_sorted() {
    let input: Vec<(Labels, Vec<ChunkMeta>)> = ["b", "a", "c"]
        .iter()
        .map(|v| Labels::from_pairs([("__name__", "up"), ("job", *v)]))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, meta(i as u64)))
        .collect();
    let (_d, r) = write_and_open(&input);
    assert_eq!(r.label_names().collect::<Vec<_>>(), ["__name__", "job"]);
    assert_eq!(r.label_values("job").collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(r.postings("job", "b").unwrap(), [1]);
    assert_eq!(r.postings("job", "zz").unwrap(), Vec::<u32>::new());
}

#[test]
fn unsorted_series_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Labels::from_pairs([("a", "2")]);
    let b = Labels::from_pairs([("a", "1")]);
    assert!(matches!(
        write(&dir.path().join("i"), &[(a, meta(0)), (b, meta(1))], 3),
        Err(IndexWriteError::Unsorted(_))
    ));
}

#[test]
fn every_flipped_bit_of_an_index_is_detected_at_open() {
    let input: Vec<(Labels, Vec<ChunkMeta>)> = (0..300)
        .map(|i| (Labels::from_pairs([("__name__", "m"), ("i", &*format!("{i:04}"))]), meta(i)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index");
    write(&p, &input, 3).unwrap();
    let good = std::fs::read(&p).unwrap();
    // Every byte is covered by a checksum; sample every 7th byte to keep the test quick.
    for byte in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[byte] ^= 0x10;
        std::fs::write(&p, &bad).unwrap();
        assert!(IndexReader::open(&p).is_err(), "flip at byte {byte} of {}", good.len());
    }
    std::fs::write(&p, &good[..good.len() - 1]).unwrap();
    assert!(IndexReader::open(&p).is_err(), "truncated");
}

#[test]
fn regexes_narrow_only_to_values_that_can_match() {
    assert_eq!(narrow("a|b"), Narrow::Set(vec!["a".into(), "b".into()]));
    assert_eq!(narrow("abc"), Narrow::Set(vec!["abc".into()]));
    assert_eq!(narrow("pod-.*"), Narrow::Prefix("pod-".into()));
    assert_eq!(narrow("pod?x"), Narrow::Prefix("po".into()));
    assert_eq!(narrow("pod*"), Narrow::Prefix("po".into()));
    assert_eq!(narrow("ab+"), Narrow::Prefix("ab".into()));
    assert_eq!(narrow("a.*|b"), Narrow::None);
    assert_eq!(narrow("(?i)abc"), Narrow::None);
    assert_eq!(narrow(".*"), Narrow::None);
    assert_eq!(narrow("a\\.b"), Narrow::Prefix("a".into()));
}
