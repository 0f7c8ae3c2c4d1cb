//! Admin operations: `delete_series` (tombstones in the head, the WAL and blocks),
//! `clean_tombstones` and `snapshot`, checked against a model of what must remain, through
//! restarts, persisting, checkpoints and compaction.

use std::collections::BTreeMap;
use std::path::Path;

use kahu_tsdb::model::{Labels, Matcher, Sample};
use kahu_tsdb::{Appendable, Db};

use crate::blocks::{RANGE, block_opts};
use crate::common::{dump_db, series};

/// 6 series, one sample every 10 ms in `[from, to)`, value = t.
fn fill(db: &Db, from: i64, to: i64) -> BTreeMap<Labels, Vec<Sample>> {
    let mut model: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for t in (from..to).step_by(10) {
        let mut app = db.appender();
        for i in 0..6 {
            app.append(&series(i), t, t as f64).unwrap();
            model.entry(series(i)).or_default().push(Sample::new(t, t as f64));
        }
        app.commit().unwrap();
    }
    model
}

/// The model after deleting `[mint, maxt]` of the series `i` for which `which(i)` holds.
fn delete_in_model(
    model: &mut BTreeMap<Labels, Vec<Sample>>,
    which: impl Fn(usize) -> bool,
    mint: i64,
    maxt: i64,
) {
    for i in (0..6).filter(|&i| which(i)) {
        if let Some(s) = model.get_mut(&series(i)) {
            s.retain(|x| x.t < mint || x.t > maxt);
        }
    }
    model.retain(|_, s| !s.is_empty());
}

fn tombstone_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("tombstones").exists())
        .count()
}

fn re(name: &str, pattern: &str) -> Matcher {
    Matcher::new(kahu_tsdb::model::MatchOp::Regex, name, pattern).unwrap()
}

#[test]
fn a_deletion_in_the_head_hides_the_samples_at_once_and_survives_restart_persisting_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    let mut model = fill(&db, 0, 800);
    // Series 1 and 3, [200, 450]; series 4 entirely.
    db.delete_series(&[re("i", "1|3")], 200, 450).unwrap();
    db.delete_series(&[Matcher::equal("i", "4")], i64::MIN, i64::MAX).unwrap();
    delete_in_model(&mut model, |i| i == 1 || i == 3, 200, 450);
    delete_in_model(&mut model, |i| i == 4, i64::MIN, i64::MAX);
    assert_eq!(dump_db(&db), model, "right after the deletion");
    // Later samples of a deleted series are not deleted (the deletion is clamped to the data).
    let mut app = db.appender();
    app.append(&series(4), 5_000, 1.0).unwrap();
    app.commit().unwrap();
    model.insert(series(4), vec![Sample::new(5_000, 1.0)]);
    assert_eq!(dump_db(&db), model, "a sample after the deletion");
    drop(db);

    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    assert_eq!(dump_db(&db), model, "after a restart (WAL replay)");
    let read_only = Db::open_read_only(dir.path()).unwrap();
    assert_eq!(dump_db(&read_only), model, "read-only view");
    drop(read_only);
    // More data, so that [0, 1s) and more is persisted and the WAL checkpointed.
    let mut app = db.appender();
    for t in (5_010..6_000).step_by(10) {
        app.append(&series(0), t, t as f64).unwrap();
        model.get_mut(&series(0)).unwrap().push(Sample::new(t, t as f64));
    }
    app.commit().unwrap();
    db.delete_series(&[Matcher::equal("i", "0")], 5_500, 5_600).unwrap();
    delete_in_model(&mut model, |i| i == 0, 5_500, 5_600);
    let s = db.maintain().unwrap();
    assert!(s.persisted >= 1, "{s:?}");
    assert!(db.stats().blocks.loaded >= 1);
    assert_eq!(dump_db(&db), model, "after persisting");
    // The persisted blocks hold no deleted sample (no tombstones file needed).
    assert_eq!(tombstone_files(dir.path()), 0);
    let block_samples: u64 = db.blocks().iter().map(|b| b.meta().stats.num_samples).sum();
    let model_below: usize = model.values().flatten().filter(|x| x.t < RANGE).count();
    assert_eq!(block_samples as usize, model_below, "samples in the blocks");
    drop(db);
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    assert_eq!(dump_db(&db), model, "after restart from a checkpoint");
}

#[test]
fn a_deletion_in_blocks_writes_tombstones_that_compaction_and_clean_tombstones_apply() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    let mut model = fill(&db, 0, 6 * RANGE);
    db.maintain().unwrap();
    let blocks_before = db.stats().blocks.loaded;
    assert_eq!(blocks_before, 5, "{:?}", db.stats().blocks);
    // Across the five blocks and the head.
    db.delete_series(&[Matcher::equal("i", "2")], 500, 5_500).unwrap();
    delete_in_model(&mut model, |i| i == 2, 500, 5_500);
    assert_eq!(dump_db(&db), model);
    assert_eq!(tombstone_files(dir.path()), 5, "one file per block touched");
    let (head, blocks) = db.tombstone_counts();
    assert_eq!((head, blocks), (1, 5));
    drop(db);

    // Restart with compaction on: the tombstones are read back, then compaction applies them.
    let db = Db::open(dir.path(), block_opts(true)).unwrap();
    assert_eq!(dump_db(&db), model, "after restart");
    let samples_before: u64 = db.blocks().iter().map(|b| b.meta().stats.num_samples).sum();
    db.maintain().unwrap();
    assert_eq!(dump_db(&db), model, "after compaction");
    let compacted: Vec<_> = db.blocks().into_iter().filter(|b| b.meta().compaction.level > 1).collect();
    assert!(!compacted.is_empty(), "nothing compacted");
    assert!(compacted.iter().all(|b| !b.dir().join("tombstones").exists()));
    let samples_after: u64 = compacted.iter().map(|b| b.meta().stats.num_samples).sum();
    let in_compacted = model
        .values()
        .flatten()
        .filter(|x| compacted.iter().any(|b| b.meta().min_time <= x.t && x.t < b.meta().max_time))
        .count() as u64;
    assert_eq!(samples_after, in_compacted, "deleted samples are gone from the compacted block");
    assert!(samples_after < samples_before);

    // A new deletion on the compacted block, then clean_tombstones rewrites it.
    db.delete_series(&[re("i", "[05]")], 0, 1_500).unwrap();
    delete_in_model(&mut model, |i| i == 0 || i == 5, 0, 1_500);
    assert_eq!(dump_db(&db), model);
    assert!(tombstone_files(dir.path()) >= 1);
    let old: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
    db.clean_tombstones().unwrap();
    assert_eq!(tombstone_files(dir.path()), 0, "no tombstones left");
    assert_eq!(db.tombstone_counts().1, 0);
    assert_eq!(dump_db(&db), model, "after clean_tombstones");
    let new: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
    assert_ne!(old, new, "the block with tombstones was rewritten");
    for u in old.iter().filter(|u| !new.contains(u)) {
        assert!(!dir.path().join(u).exists(), "old block {u} deleted");
    }
    drop(db);
    let db = Db::open(dir.path(), block_opts(true)).unwrap();
    assert_eq!(dump_db(&db), model, "after a final restart");
}

#[test]
fn a_damaged_tombstones_file_quarantines_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    fill(&db, 0, 3 * RANGE);
    db.maintain().unwrap();
    db.delete_series(&[Matcher::equal("i", "1")], 0, 100).unwrap();
    let block = db.blocks()[0].dir().to_path_buf();
    drop(db);
    let file = block.join("tombstones");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    assert_eq!(db.stats().blocks.quarantined, 1);
    assert!(dir.path().join("quarantine").join(block.file_name().unwrap()).exists());
    assert!(dump_db(&db).values().flatten().all(|x| x.t >= RANGE), "the block's data is not served");
}

#[test]
fn the_v1_fixture_block_without_tombstones_opens_and_takes_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1-block");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("meta.json")).unwrap()).unwrap();
    let ulid = meta["ulid"].as_str().unwrap();
    let block = dir.path().join(ulid);
    std::fs::create_dir_all(block.join("chunks")).unwrap();
    for f in ["meta.json", "index", "chunks/000001"] {
        std::fs::copy(fixture.join(f), block.join(f)).unwrap();
    }
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    let mut model = dump_db(&db);
    assert!(!model.is_empty());
    let (victim, samples) = model.iter().next().map(|(l, s)| (l.clone(), s.clone())).unwrap();
    let (lo, hi) = (samples[0].t, samples[samples.len() / 2].t);
    let ms: Vec<Matcher> = victim.iter().map(|l| Matcher::equal(l.name.as_ref(), l.value.as_ref())).collect();
    db.delete_series(&ms, lo, hi).unwrap();
    model.get_mut(&victim).unwrap().retain(|x| x.t < lo || x.t > hi);
    assert_eq!(dump_db(&db), model);
    drop(db);
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    assert_eq!(dump_db(&db), model, "after restart");
}

#[test]
fn a_snapshot_is_a_data_directory_holding_the_blocks_and_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    let mut model = fill(&db, 0, 3 * RANGE);
    db.maintain().unwrap();
    db.delete_series(&[Matcher::equal("i", "3")], 100, 2_900).unwrap();
    delete_in_model(&mut model, |i| i == 3, 100, 2_900);
    assert_eq!(dump_db(&db), model);
    let snap = dir.path().join("snapshots").join("with-head");
    db.snapshot(&snap, true).unwrap();
    let blocks_only = dir.path().join("snapshots").join("without-head");
    db.snapshot(&blocks_only, false).unwrap();
    // Appends after the snapshot are not in it.
    let mut app = db.appender();
    app.append(&series(0), 9_000, 1.0).unwrap();
    app.commit().unwrap();
    // The snapshot directory does not disturb the data directory.
    drop(db);
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    assert_eq!(db.stats().blocks.quarantined, 0);
    drop(db);

    let s = Db::open_read_only(&snap).unwrap();
    assert_eq!(dump_db(&s), model, "snapshot with head");
    drop(s);
    let s = Db::open(&snap, block_opts(false)).unwrap();
    assert_eq!(dump_db(&s), model, "snapshot opened writable");
    drop(s);
    let s = Db::open_read_only(&blocks_only).unwrap();
    let mut below = model.clone();
    let persisted_until = s.blocks().iter().map(|b| b.meta().max_time).max().unwrap();
    for v in below.values_mut() {
        v.retain(|x| x.t < persisted_until);
    }
    below.retain(|_, v| !v.is_empty());
    assert_eq!(dump_db(&s), below, "snapshot without head");
    // Block files are hard links, not copies.
    use std::os::unix::fs::MetadataExt;
    let b = &s.blocks()[0];
    assert!(std::fs::metadata(b.dir().join("index")).unwrap().nlink() >= 2);
}

/// Label names and values answer from the series in the head and the blocks, ignoring
/// tombstones, as Prometheus 2.42 does (checked against the real one over HTTP in
/// `tests/it/admin_api.rs`): a series whose samples were all deleted, or whose samples were
/// never committed, keeps its names and values listed until it leaves the head, with or without
/// matchers. The series API (`list_series`) lists the deleted series too, not the rolled-back
/// one (it has no sample).
#[test]
fn label_names_and_values_list_head_series_until_they_leave_the_head() {
    use kahu_tsdb::Queryable;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts(false)).unwrap();
    fill(&db, 0, 500);
    let gone = Labels::from_pairs([("__name__", "m"), ("i", "9"), ("only_rolled_back", "yes")]);
    let mut app = db.appender();
    app.append(&gone, 100, 1.0).unwrap();
    app.rollback();
    db.delete_series(&[Matcher::equal("i", "0")], i64::MIN, i64::MAX).unwrap();
    let q = db.querier().unwrap();
    let values = q.label_values("i", &[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(values, ["0", "1", "2", "3", "4", "5", "9"]);
    let names = q.label_names(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(names, ["__name__", "i", "only_rolled_back"]);
    // With a matcher: the deleted series and the rolled-back one too, also in a range where the
    // latter has no sample (the head answers from its postings when its range overlaps).
    assert_eq!(q.label_values("i", &[Matcher::equal("i", "0")], 0, 1000).unwrap(), ["0"]);
    let rolled_back = [Matcher::equal("only_rolled_back", "yes")];
    assert_eq!(q.label_values("i", &rolled_back, 300, 400).unwrap(), ["9"]);
    assert_eq!(q.label_names(&rolled_back, 300, 400).unwrap(), ["__name__", "i", "only_rolled_back"]);
    assert!(q.label_values("i", &rolled_back, 600, 700).unwrap().is_empty(), "outside the head's range");
    // The series API lists the deleted series within its data's range; select does not.
    let m = [Matcher::equal("__name__", "m")];
    let all: Vec<Labels> = (0..6).map(series).collect();
    assert_eq!(q.list_series(&m, 0, 1000).unwrap(), all);
    assert_eq!(q.list_series(&m, 490, 490).unwrap(), all);
    assert!(q.list_series(&m, 600, 700).unwrap().is_empty());
    let selected: Vec<Labels> = q.select(&m, 0, 1000).unwrap().map(|s| s.labels().clone()).collect();
    assert_eq!(selected, all[1..]);
    // No sample shows.
    assert!(!dump_db(&db).contains_key(&series(0)));
    drop(q);
    // Persisted: the series leave the head (nothing of theirs was written into a block).
    for t in (500..3000).step_by(10) {
        let mut app = db.appender();
        app.append(&series(1), t, 1.0).unwrap();
        app.commit().unwrap();
    }
    let s = db.maintain().unwrap();
    assert_eq!(s.persisted, 2, "{s:?}");
    let q = db.querier().unwrap();
    assert_eq!(q.label_values("i", &[], i64::MIN, i64::MAX).unwrap(), ["1", "2", "3", "4", "5"]);
    assert_eq!(q.label_names(&[], i64::MIN, i64::MAX).unwrap(), ["__name__", "i"]);
    let listed = q.list_series(&[Matcher::equal("__name__", "m")], 0, 1000).unwrap();
    assert_eq!(listed, (1..6).map(series).collect::<Vec<_>>(), "the deleted series left with the head");
}
