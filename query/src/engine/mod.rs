//! The PromQL engine: parses with `promql-parser` and evaluates the AST against a [`Querier`].
//!
//! # How a query runs
//!
//! 1. The query waits for one of `max_concurrency` slots ([`limits`]); its timeout already runs.
//! 2. The expression is parsed and type-checked.
//! 3. The evaluator works on whole ranges: every node produces its result for all steps of the
//!    query at once. A selector loads each series once for the whole range and slides its windows
//!    over it; aggregations and vector matching compute grouping keys once per series.
//!    An instant query is a range query with one step.
//! 4. Annotations (warnings and infos) collected on the way are rendered as Prometheus renders
//!    them, with the position of the expression they are about.

mod error;
mod limits;
mod old;

use std::time::{Duration, Instant};

use kahu_tsdb::Querier;

use crate::value::Value;
pub use error::{ErrorKind, EvalError};
pub use limits::CancelToken;
use limits::{Gate, Interrupt};

/// Engine settings, the `--query.*` flags of `kahu serve`. Defaults are Prometheus' defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta: Duration,
    /// Longest a query may run, queue time included (`--query.timeout`, 2m).
    pub timeout: Duration,
    /// Most samples a query may hold in memory at once (`--query.max-samples`, 50,000,000).
    pub max_samples: usize,
    /// Most queries evaluated at the same time; the others wait (`--query.max-concurrency`, 20).
    pub max_concurrency: usize,
    /// Step of a subquery written without one (`x[1h:]`): Prometheus uses the global evaluation
    /// interval, 1m by default.
    pub default_subquery_step: Duration,
    /// Keep `__name__` until the end of evaluation, dropping it only from the final result
    /// (Prometheus' `promql-delayed-name-removal` feature flag; off by default, on in promqltest).
    pub delayed_name_removal: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_concurrency: 20,
            default_subquery_step: Duration::from_secs(60),
            delayed_name_removal: false,
        }
    }
}

/// How much of [`QueryStats`] to compute (the API's `stats` parameter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatsLevel {
    /// No statistics.
    #[default]
    None,
    /// Timings and sample counts (`stats=true`).
    Basic,
    /// Also sample counts per step (`stats=all`).
    PerStep,
}

/// Per-query settings.
#[derive(Debug, Clone, Default)]
pub struct QueryOpts {
    /// Overrides the engine's lookback delta (the API's `lookback_delta` parameter).
    pub lookback_delta: Option<Duration>,
    /// A timeout for this query; the engine's timeout still applies, so the smaller one wins.
    pub timeout: Option<Duration>,
    /// Trip it to stop the query (client went away).
    pub cancel: CancelToken,
    /// Which statistics to return.
    pub stats: StatsLevel,
}

/// Where a query spent its time, as in the `stats.timings` object of the Prometheus API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryTimings {
    /// Evaluation, sorting and preparation together.
    pub eval_total_time: Duration,
    /// Sorting the result.
    pub result_sort_time: Duration,
    /// Parsing and checking the expression.
    pub query_preparation_time: Duration,
    /// Evaluating the expression.
    pub inner_eval_time: Duration,
    /// Waiting for a concurrency slot.
    pub exec_queue_time: Duration,
    /// Everything, queue included.
    pub exec_total_time: Duration,
}

/// How many samples a query touched, as in the `stats.samples` object of the Prometheus API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleStats {
    /// Samples read from storage (a sample read for several steps counts for each).
    pub total_queryable_samples: u64,
    /// Most samples held in memory at once.
    pub peak_samples: u64,
    /// `total_queryable_samples` per step as `(t_ms, n)`, for [`StatsLevel::PerStep`].
    pub total_queryable_samples_per_step: Option<Vec<(i64, u64)>>,
}

/// Statistics of one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    /// Timings.
    pub timings: QueryTimings,
    /// Sample counts.
    pub samples: SampleStats,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value: a vector, scalar or string for instant queries (a matrix for a range-vector
    /// expression), a matrix sorted by labels for range queries.
    pub value: Value,
    /// Warnings, rendered as Prometheus renders them: `PromQL warning: <msg> (<line>:<col>)`.
    /// All of them; the API caps the list it sends.
    pub warnings: Vec<String>,
    /// Infos, rendered as `PromQL info: <msg> (<line>:<col>)`.
    pub infos: Vec<String>,
    /// Statistics when [`QueryOpts::stats`] asked for them.
    pub stats: Option<QueryStats>,
}

/// Evaluates PromQL. Cheap to clone; clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: EngineOptions,
    gate: std::sync::Arc<Gate>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineOptions::default())
    }
}

impl Engine {
    /// An engine with the given settings.
    pub fn new(opts: EngineOptions) -> Self {
        let gate = std::sync::Arc::new(Gate::new(opts.max_concurrency));
        Engine { opts, gate }
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Queries being evaluated now (not counting those waiting for a slot).
    pub fn running_queries(&self) -> usize {
        self.gate.running()
    }

    /// Evaluates `query` at `t_ms` (milliseconds since the epoch).
    pub fn instant_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        t_ms: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        self.run(querier, query, t_ms, t_ms, 0, opts)
    }

    /// Evaluates `query` at `start_ms`, `start_ms + step_ms`, … up to `end_ms`.
    pub fn range_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        if step_ms <= 0 {
            return Err(EvalError::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end_ms < start_ms {
            return Err(EvalError::Parse("end timestamp must not be before start time".into()));
        }
        self.run(querier, query, start_ms, end_ms, step_ms, opts)
    }

    fn run(
        &self,
        querier: &dyn Querier,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        opts: &QueryOpts,
    ) -> Result<QueryResult, EvalError> {
        let begin = Instant::now();
        let timeout = opts.timeout.map_or(self.opts.timeout, |t| t.min(self.opts.timeout));
        let interrupt = Interrupt::new(Some(timeout), opts.cancel.clone());
        let _slot = self.gate.acquire(&interrupt)?;
        let queued = begin.elapsed();

        let lookback = opts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        let lookback_ms = i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
        let value = old::eval(querier, query, start, end, step, lookback_ms)?;

        let stats = (opts.stats != StatsLevel::None).then(|| {
            let total = begin.elapsed();
            QueryStats {
                timings: QueryTimings {
                    eval_total_time: total.saturating_sub(queued),
                    inner_eval_time: total.saturating_sub(queued),
                    exec_queue_time: queued,
                    exec_total_time: total,
                    ..QueryTimings::default()
                },
                samples: SampleStats::default(),
            }
        });
        Ok(QueryResult { value, warnings: Vec::new(), infos: Vec::new(), stats })
    }
}
