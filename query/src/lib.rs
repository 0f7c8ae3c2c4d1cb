//! kahu-query: PromQL evaluation with Prometheus 3.x semantics, and the Prometheus HTTP API.
//!
//! # Overview
//!
//! - [`Engine`] parses an expression with `promql-parser` and evaluates its AST against a
//!   [`kahu_tsdb::Querier`]; it is the only way this crate reads data.
//! - [`Value`] is what an expression evaluates to: scalar, string, instant vector or matrix.
//! - [`api`] holds the `/api/v1/...` handlers, which use only the engine and the querier.
//! - [`format`](mod@format) writes floats and timestamps exactly as Prometheus' JSON does.
//! - [`promqltest`] runs test scripts in the format of Prometheus' own PromQL tests.
//!
//! # Example
//!
//! ```
//! use kahu_query::{Engine, QueryOpts, Value};
//! use kahu_tsdb::{Appendable, MemHead, Queryable, model::Labels};
//!
//! let head = MemHead::new();
//! let mut app = head.appender();
//! app.append(&Labels::from_pairs([("__name__", "up")]), 10_000, 1.0)?;
//! app.commit()?;
//!
//! let engine = Engine::default();
//! let res = engine.instant_query(head.querier()?.as_ref(), "up", 20_000, &QueryOpts::default())?;
//! assert!(matches!(res.value, Value::Vector(ref s) if s.len() == 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
pub mod engine;
pub mod format;
pub mod promqltest;
pub mod value;

pub use engine::{
    CancelToken, Engine, EngineOptions, ErrorKind, EvalError, QueryOpts, QueryResult, QueryStats,
    QueryTimings, SampleStats, StatsLevel,
};
pub use value::{InstantSample, RangeSeries, Value};
