//! The `--query.*` flags of `kahu serve`, named and defaulted as Prometheus' own.

use std::time::Duration;

use kahu_query::EngineOptions;

use crate::cli::parse_duration;

/// PromQL engine limits and defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryFlags {
    /// How far back an instant vector selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub lookback_delta: Duration,

    /// Longest a query may take, time waiting for a slot included.
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Most samples a single query may hold in memory at once.
    #[arg(long = "query.max-samples", value_name = "N", default_value_t = 50_000_000)]
    pub max_samples: usize,

    /// Most queries evaluated at the same time; further queries wait for a slot.
    #[arg(long = "query.max-concurrency", value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,
}

impl QueryFlags {
    /// The engine settings these flags describe.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            lookback_delta: self.lookback_delta,
            timeout: self.timeout,
            max_samples: self.max_samples,
            max_concurrency: usize::try_from(self.max_concurrency).unwrap_or(usize::MAX),
            ..EngineOptions::default()
        }
    }
}
