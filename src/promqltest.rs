//! `kahu promqltest FILE…`: runs PromQL test scripts (Prometheus' `promqltest` format).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `kahu promqltest`.
#[derive(Debug, clap::Args)]
pub struct PromqltestArgs {
    /// Test scripts to run.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs every file, prints each failing case and a summary, and exits 1 on any failure.
pub fn run(args: PromqltestArgs) -> anyhow::Result<ExitCode> {
    let mut report = kahu_query::promqltest::Report::default();
    for file in &args.files {
        let r = kahu_query::promqltest::run_file(file).with_context(|| format!("read {}", file.display()))?;
        report.merge(r);
    }
    println!("{report}");
    Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
