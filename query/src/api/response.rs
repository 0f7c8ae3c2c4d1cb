//! The response envelope, error types and status codes of the Prometheus API.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::{ErrorKind, EvalError};
use crate::format::{write_float, write_timestamp};
use crate::value::Value;

/// The `errorType` values of the Prometheus API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Bad parameters or an expression that does not parse (400).
    BadData,
    /// Evaluation failed (422).
    Execution,
    /// A storage or server error (500).
    Internal,
    /// The query ran out of time (503).
    Timeout,
    /// The query was canceled (499).
    Canceled,
    /// Nothing there (404).
    NotFound,
}

impl ErrorType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Internal => "internal",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::NotFound => "not_found",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            // 499 is nginx's "client closed request", which Prometheus uses too.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API error: a type and a message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The error type.
    pub kind: ErrorType,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// Makes an error.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }

    /// Maps an engine error to the type Prometheus reports for it.
    pub fn from_eval(err: EvalError) -> Self {
        let kind = match err.kind() {
            ErrorKind::BadData => {
                return ApiError::new(ErrorType::BadData, format!("invalid parameter \"query\": {err}"));
            }
            ErrorKind::Execution => ErrorType::Execution,
            ErrorKind::Timeout => ErrorType::Timeout,
            ErrorKind::Canceled => ErrorType::Canceled,
            ErrorKind::Internal => ErrorType::Internal,
        };
        ApiError::new(kind, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = format!(
            "{{\"status\":\"error\",\"errorType\":\"{}\",\"error\":{}}}",
            self.kind.as_str(),
            serde_json::Value::String(self.message)
        );
        (self.kind.status(), [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A 200 answer with `data` (already JSON).
pub fn success(data_json: &str) -> Response {
    let body = format!("{{\"status\":\"success\",\"data\":{data_json}}}");
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"resultType": …, "result": …}` for a query result.
pub fn value_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar { t, v } => point(&mut out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            write_timestamp(&mut out, *t);
            out.push(',');
            out.push_str(&serde_json::Value::String(v.clone()).to_string());
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                metric(&mut out, &s.labels);
                out.push_str(",\"value\":");
                point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                metric(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(&mut out, *t, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_float(out, v);
    out.push_str("\"]");
}

fn metric(out: &mut String, labels: &kahu_tsdb::model::Labels) {
    let map: serde_json::Map<String, serde_json::Value> =
        labels.iter().map(|l| (l.name.to_string(), serde_json::Value::String(l.value.to_string()))).collect();
    out.push_str(&serde_json::Value::Object(map).to_string());
}
