//! Why a query failed, and the Prometheus API `errorType` each reason maps to.

use kahu_tsdb::QueryError;
use kahu_tsdb::model::MatcherError;

/// The Prometheus API error types a query can fail with (`web/api/v1/api.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query does not parse or has the wrong type (`bad_data`, HTTP 400).
    BadData,
    /// Evaluation failed (`execution`, HTTP 422).
    Execution,
    /// The query ran out of time (`timeout`, HTTP 503).
    Timeout,
    /// The caller gave up on the query (`canceled`, HTTP 499).
    Canceled,
    /// Storage failed (`internal`, HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The `errorType` string of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Why a query failed. Messages are Prometheus' own, so that clients and test scripts that match
/// on them keep working.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The expression does not parse, or is not of a type the query kind accepts.
    #[error("{0}")]
    Parse(String),
    /// A regular expression in a label matcher does not compile.
    #[error("{0}")]
    BadMatcher(#[from] MatcherError),
    /// Evaluation failed: many-to-many matching, duplicate output series, a bad function argument…
    #[error("{0}")]
    Execution(String),
    /// The query needs native-histogram support, which this engine does not have yet.
    #[error("{0}: native histograms are not supported by this version of kahu")]
    NativeHistogram(String),
    /// More samples would be held in memory at once than `--query.max-samples` allows.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query exceeded its timeout; the payload names the phase (`query queue`, `expression evaluation`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query was canceled through its [`CancelToken`](super::CancelToken).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Reading from storage failed.
    #[error("{0}")]
    Storage(#[from] QueryError),
}

impl EvalError {
    /// The API error type Prometheus reports for this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EvalError::Parse(_) | EvalError::BadMatcher(_) => ErrorKind::BadData,
            EvalError::Execution(_) | EvalError::NativeHistogram(_) | EvalError::TooManySamples(_) => {
                ErrorKind::Execution
            }
            EvalError::Timeout(_) => ErrorKind::Timeout,
            EvalError::Canceled(_) => ErrorKind::Canceled,
            EvalError::Storage(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        EvalError::Execution(msg.into())
    }
}
