//! The committed block in `tsdb/testdata/v1-block/` was written by format version 1 (with
//! `KAHU_WRITE_FIXTURE=1 cargo test -p kahu-tsdb --test it fixture -- --ignored`). Every later
//! version of kahu must keep opening it and reading back exactly these samples.

use std::path::{Path, PathBuf};

use kahu_tsdb::block::{Block, BlockSpec, BlocksQuerier, FrameCache, WriteOptions, write_block};
use kahu_tsdb::model::{Labels, Sample};

use crate::common::dump;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join("v1-block")
}

/// The data: counters (integers, float microseconds), a gauge in whole pages, a constant, a
/// series with a gap, irregular timestamps, and special values.
fn data() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for i in 0..6i64 {
        let l = Labels::from_pairs([
            ("__name__", "fixture_metric".to_string()),
            ("id", format!("/kubepods/pod{i}")),
            ("kind", ["counter", "cpu", "pages", "const", "gappy", "special"][i as usize].to_string()),
        ]);
        let samples: Vec<Sample> = (0..500i64)
            .filter(|k| i != 4 || !(100..200).contains(k))
            .map(|k| {
                let t = 1_700_000_000_000 + k * 15_000 + if i == 5 { (k * 7) % 13 } else { 0 };
                let v = match i {
                    0 => (k * k * 3) as f64,
                    1 => k as f64 * 0.015_625 + 1_234.567_891,
                    2 => (4096 * (1000 + (k * 37) % 101)) as f64,
                    3 => 2_147_483_648.0,
                    4 => k as f64 / 3.0,
                    _ => [f64::NAN, f64::INFINITY, -0.0, f64::MIN_POSITIVE][k as usize % 4],
                };
                Sample::new(t, v)
            })
            .collect();
        out.push((l, samples));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
#[ignore = "writes the fixture; run once per format version with KAHU_WRITE_FIXTURE=1"]
fn write_fixture() {
    if std::env::var("KAHU_WRITE_FIXTURE").is_err() {
        return;
    }
    let parent = fixture_dir().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&parent).unwrap();
    let spec = BlockSpec { min_time: 1_699_999_200_000, max_time: 1_700_007_600_000, ..Default::default() };
    let meta = write_block(&parent, data(), &spec, &WriteOptions::default()).unwrap().unwrap();
    let _ = std::fs::remove_dir_all(fixture_dir());
    std::fs::rename(parent.join(&meta.ulid), fixture_dir()).unwrap();
}

#[test]
fn the_committed_version_1_block_still_opens_and_reads_back_bit_exactly() {
    let block = Block::open(&fixture_dir(), FrameCache::new(1 << 20)).unwrap();
    assert_eq!(block.meta().version, 1);
    assert_eq!(block.verify_chunks().unwrap(), data().iter().map(|(_, s)| s.len() as u64).sum::<u64>());
    let got = dump(&BlocksQuerier::new(vec![std::sync::Arc::new(block)]));
    let want: Vec<(Labels, Vec<(i64, u64)>)> =
        data().into_iter().map(|(l, s)| (l, s.iter().map(|x| (x.t, x.v.to_bits())).collect())).collect();
    let got: Vec<(Labels, Vec<(i64, u64)>)> =
        got.into_iter().map(|(l, s)| (l, s.iter().map(|x| (x.t, x.v.to_bits())).collect())).collect();
    assert_eq!(got, want);
}
