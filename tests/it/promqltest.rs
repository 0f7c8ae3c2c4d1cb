//! `kahu promqltest FILE…`: exit codes, failure report and summary line.

use std::process::Command;

use crate::harness::kahu_bin;

fn run(script: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("case.test");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(kahu_bin()).arg("promqltest").arg(&file).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn passing_script_exits_zero_with_summary() {
    let (code, out) = run("load 1m\n  up{job=\"a\"} 1 2\n\neval instant at 1m up\n  up{job=\"a\"} 2\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "1 passed, 0 failed");
}

#[test]
fn failing_case_shows_expected_and_actual_and_exits_one() {
    let (code, out) = run("load 1m\n  up{job=\"a\"} 1 2\n\neval instant at 1m up\n  up{job=\"a\"} 3\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("case.test:4: eval instant at 1m up"), "{out}");
    assert!(out.contains("expected 3 for up{job=\"a\"} but got 2"), "{out}");
    assert!(out.trim_end().ends_with("0 passed, 1 failed"), "{out}");
}

#[test]
fn unsupported_commands_count_as_failures() {
    let (code, out) =
        run("load_with_nhcb 1m\n  h_bucket{le=\"1\"} 1\n\nfrobnicate\n\neval instant at 0 1\n  1\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.trim_end().ends_with("1 passed, 2 failed"), "{out}");
}
