//! `kahu tsdb analyze` and `kahu tsdb verify` on real block directories.

use std::process::Command;

use kahu_tsdb::block::{BlockSpec, WriteOptions, write_block};
use kahu_tsdb::model::{Labels, Sample};

use crate::harness::kahu_bin;

fn data_dir_with_blocks() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for k in 0..2i64 {
        let series: std::collections::BTreeMap<Labels, Vec<Sample>> = (0..50)
            .map(|i| {
                let l = Labels::from_pairs([("__name__", format!("m{}", i % 3)), ("pod", format!("p{i}"))]);
                let s: Vec<Sample> =
                    (0..480).map(|j| Sample::new(k * 7_200_000 + j * 15_000, (i * j) as f64)).collect();
                (l, s)
            })
            .collect();
        let spec = BlockSpec { min_time: k * 7_200_000, max_time: (k + 1) * 7_200_000, ..Default::default() };
        ids.push(write_block(dir.path(), series, &spec, &WriteOptions::default()).unwrap().unwrap().ulid);
    }
    (dir, ids)
}

#[test]
fn verify_passes_on_whole_blocks_and_names_the_damaged_file() {
    let (dir, ids) = data_dir_with_blocks();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2 blocks checked, 0 damaged"), "{stdout}");

    let seg = dir.path().join(&ids[1]).join("chunks/000001");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{}/chunks/000001", ids[1])), "{stdout}");
    assert!(stdout.contains("checksum mismatch"), "{stdout}");
    assert!(stdout.contains("2 blocks checked, 1 damaged"), "{stdout}");
}

#[test]
fn analyze_lists_blocks_and_cardinalities() {
    let (dir, ids) = data_dir_with_blocks();
    let out =
        Command::new(kahu_bin()).args(["tsdb", "analyze", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Blocks: 2"), "{stdout}");
    assert!(stdout.contains(&ids[0]) && stdout.contains(&ids[1]), "{stdout}");
    assert!(stdout.contains("1970-01-01T02:00:00Z"), "{stdout}");
    assert!(stdout.contains("Total: 48000 samples"), "{stdout}");
    // m0 has pods 0,3,…,48: 17 series; the label with most values is pod (50).
    assert!(stdout.contains("        17 m0"), "{stdout}");
    assert!(stdout.contains("        50 pod"), "{stdout}");
}
