//! The values a PromQL expression evaluates to.

use kahu_tsdb::model::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// Series labels (without `__name__` after most functions and operators).
    pub labels: Labels,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a range vector or range-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Series labels.
    pub labels: Labels,
    /// Samples as `(milliseconds, value)`, in time order.
    pub samples: Vec<(i64, f64)>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp (milliseconds).
    Scalar {
        /// Evaluation time in milliseconds.
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a timestamp (milliseconds).
    String {
        /// Evaluation time in milliseconds.
        t: i64,
        /// Value.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<InstantSample>),
    /// A range vector, or the result of a range query.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The API's `resultType` for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
