//! Runs every script in `query/testdata/` through the promqltest runner; any failing case fails.

use std::path::Path;

#[test]
fn testdata_scripts_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read testdata")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut report = kahu_query::promqltest::Report::default();
    for f in &files {
        report.merge(kahu_query::promqltest::run_file(f).expect("read script"));
    }
    println!("{report}");
    assert!(report.passed > 0);
    assert_eq!(report.failed, 0, "{report}");
}
