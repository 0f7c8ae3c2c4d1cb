//! The `kahu` binary: command line and server wiring only. Everything else lives in the library
//! crates (`kahu-tsdb`, `kahu-query`, `kahu-exporter`).

mod cli;
mod exporter;
mod logging;
mod promqltest;
mod query;
mod query_flags;
mod serve;
mod storage_flags;
mod tsdb_cmd;
mod tsdb_metrics;
mod web;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, the whole chain: "open data directory: create …: Permission denied".
            eprintln!("kahu: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Promqltest(args) => promqltest::run(args),
        cli::Command::Query(args) => query::run(args),
        cli::Command::Collect(args) => exporter::collect_command(args),
        cli::Command::Tsdb(args) => tsdb_cmd::run(args),
    }
}
