//! The response envelope, error types and status codes of the Prometheus API, and the streaming
//! body that large results are written into.
//!
//! Every answer is `{"status":…,"data":…,"errorType":…,"error":…,"warnings":[…],"infos":[…]}`
//! with empty keys left out, in that key order (the order of Go's `Response` struct).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::sync::mpsc;

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
    /// The query ran out of time (503).
    Timeout,
    /// The query was canceled (503; see [`ErrorType::status`]).
    Canceled,
    /// A storage or server error (500).
    Internal,
    /// Nothing there (404).
    NotFound,
    /// No acceptable response format (406).
    NotAcceptable,
    /// The feature is switched off or the store is not ready (500, as Prometheus).
    Unavailable,
}

impl ErrorType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::NotFound => "not_found",
            ErrorType::NotAcceptable => "not_acceptable",
            ErrorType::Unavailable => "unavailable",
        }
    }

    /// The HTTP status of an error of this type.
    ///
    /// As Prometheus, except `canceled`: Prometheus answers 499, which Grafana does not parse
    /// (it reads bodies of 2xx, 400, 422 and 503 only), so kahu answers 503 and the user sees
    /// why the query stopped.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        }
    }
}

/// An API error: a type and a message. Answered as the error envelope with the type's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The error type.
    pub kind: ErrorType,
    /// The message.
    pub message: String,
    /// The HTTP status, when it is not the type's own (413 for an oversized body).
    pub status: Option<StatusCode>,
}

impl ApiError {
    /// Makes an error.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into(), status: None }
    }

    /// `bad_data` with a message.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// `internal` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    /// The same error answered with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Maps an engine error to the type Prometheus reports for it.
    pub fn from_eval(err: EvalError) -> Self {
        let kind = match err.kind() {
            ErrorKind::BadData => {
                return ApiError::bad_data(format!("invalid parameter \"query\": {err}"));
            }
            ErrorKind::Execution => ErrorType::Execution,
            ErrorKind::Timeout => ErrorType::Timeout,
            ErrorKind::Canceled => ErrorType::Canceled,
            ErrorKind::Internal => ErrorType::Internal,
        };
        ApiError::new(kind, err.to_string())
    }

    fn body(&self) -> String {
        let mut out = String::with_capacity(64 + self.message.len());
        out.push_str("{\"status\":\"error\",\"errorType\":\"");
        out.push_str(self.kind.as_str());
        out.push_str("\",\"error\":");
        write_json_str(&mut out, &self.message);
        out.push('}');
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| self.kind.status());
        (status, [(header::CONTENT_TYPE, "application/json")], self.body()).into_response()
    }
}

/// Warnings and infos to report with a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// Warnings, already rendered (`PromQL warning: … (1:8)` or plain text).
    pub warnings: Vec<String>,
    /// Infos, already rendered.
    pub infos: Vec<String>,
}

/// At most this many warnings (and as many infos) are listed, as Prometheus' `AsStrings`.
const MAX_ANNOTATIONS: usize = 10;

impl Annotations {
    /// Adds a warning.
    pub fn warn(&mut self, w: impl Into<String>) {
        self.warnings.push(w.into());
    }

    /// Writes `,"warnings":[…],"infos":[…]` (each only when not empty).
    fn write(&self, out: &mut String) {
        write_capped(out, "warnings", &self.warnings, "warning");
        write_capped(out, "infos", &self.infos, "info");
    }
}

fn write_capped(out: &mut String, key: &str, items: &[String], what: &str) {
    if items.is_empty() {
        return;
    }
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, w) in items.iter().take(MAX_ANNOTATIONS).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, w);
    }
    if items.len() > MAX_ANNOTATIONS {
        out.push(',');
        write_json_str(out, &format!("{} more {what} annotations omitted", items.len() - MAX_ANNOTATIONS));
    }
    out.push(']');
}

/// A 200 answer whose `data` is `data_json` (already JSON).
pub fn success(data_json: &str) -> Response {
    success_annotated(data_json, &Annotations::default())
}

/// A 200 answer with `data` and annotations.
pub fn success_annotated(data_json: &str, annotations: &Annotations) -> Response {
    let mut body = String::with_capacity(data_json.len() + 32);
    body.push_str("{\"status\":\"success\",\"data\":");
    body.push_str(data_json);
    annotations.write(&mut body);
    body.push('}');
    json_response(StatusCode::OK, body)
}

/// 204 No Content: what Prometheus answers when a handler has no data (OPTIONS, admin calls).
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Size at which the streaming writer hands a chunk to the connection.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the serialising thread and the connection: bounds the memory one
/// slow client can pin to `CHUNK_BYTES * CHANNEL_CHUNKS`.
const CHANNEL_CHUNKS: usize = 4;

/// Where a streamed answer is written, from a blocking thread. The text accumulates in
/// [`out`](Self::out); [`flush_if_full`](Self::flush_if_full) hands it to the connection.
pub struct StreamWriter {
    /// Text not yet sent.
    pub out: String,
    tx: mpsc::Sender<Bytes>,
}

/// The client went away; stop producing output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl StreamWriter {
    /// Sends the buffered text once it is large enough. Blocks while the client is slower than
    /// the writer, so memory stays bounded; fails once the client has gone.
    pub fn flush_if_full(&mut self) -> Result<(), Disconnected> {
        if self.out.len() >= CHUNK_BYTES { self.flush() } else { Ok(()) }
    }

    /// Sends whatever is buffered.
    pub fn flush(&mut self) -> Result<(), Disconnected> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.out, String::with_capacity(CHUNK_BYTES + 1024)));
        self.tx.blocking_send(chunk).map_err(|_| Disconnected)
    }
}

/// A response body fed by a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// A 200 answer whose `data` is written by `write_data` on a blocking thread while the response
/// is already being sent: a large result is never held in memory as one JSON string. If the
/// client disconnects, `write_data` sees [`Disconnected`] and stops.
pub fn stream_success<F>(annotations: Annotations, write_data: F) -> Response
where
    F: FnOnce(&mut StreamWriter) -> Result<(), Disconnected> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut w = StreamWriter { out: String::with_capacity(CHUNK_BYTES + 1024), tx };
        w.out.push_str("{\"status\":\"success\",\"data\":");
        let written = write_data(&mut w).and_then(|()| {
            annotations.write(&mut w.out);
            w.out.push('}');
            w.flush()
        });
        if written.is_err() {
            tracing::debug!("client disconnected while the answer was streamed");
        }
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::new(ChannelBody { rx }))
        .into_response()
}

/// Something JSON is written into, with a point at which a streaming sink may send what it has.
pub trait JsonSink {
    /// The text buffer to append to.
    fn buf(&mut self) -> &mut String;
    /// Called between elements: a streaming sink sends its buffer when it is large enough.
    fn checkpoint(&mut self) -> Result<(), Disconnected>;
}

impl JsonSink for StreamWriter {
    fn buf(&mut self) -> &mut String {
        &mut self.out
    }
    fn checkpoint(&mut self) -> Result<(), Disconnected> {
        self.flush_if_full()
    }
}

impl JsonSink for String {
    fn buf(&mut self) -> &mut String {
        self
    }
    fn checkpoint(&mut self) -> Result<(), Disconnected> {
        Ok(())
    }
}

/// Writes `{"resultType": …, "result": …}` for a query result, checkpointing between series.
pub fn write_value<S: JsonSink>(w: &mut S, value: &Value) -> Result<(), Disconnected> {
    let out = w.buf();
    out.push_str("{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar { t, v } => point(out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            write_timestamp(out, *t);
            out.push(',');
            write_json_str(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                let out = w.buf();
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                out.push_str(",\"value\":");
                point(out, s.t, s.v);
                out.push('}');
                w.checkpoint()?;
            }
            w.buf().push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                let out = w.buf();
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.samples.iter().enumerate() {
                    let out = w.buf();
                    if j > 0 {
                        out.push(',');
                    }
                    point(out, *t, *v);
                    if j % 1024 == 1023 {
                        w.checkpoint()?;
                    }
                }
                w.buf().push_str("]}");
                w.checkpoint()?;
            }
            w.buf().push(']');
        }
    }
    w.buf().push('}');
    Ok(())
}

/// `{"resultType": …, "result": …}` for a query result, as one string.
pub fn value_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    // A String sink never disconnects.
    let _ = write_value(&mut out, value);
    out
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_float(out, v);
    out.push_str("\"]");
}

/// Writes a label set as a JSON object, in label order.
pub fn write_labels(out: &mut String, labels: &kahu_tsdb::model::Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, &l.name);
        out.push(':');
        write_json_str(out, &l.value);
    }
    out.push('}');
}

/// Writes `s` as a JSON string. Escapes as Go's `encoding/json` does (`<`, `>`, `&` and the
/// line separators U+2028/U+2029 included), so bodies compare byte for byte with Prometheus'.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => None,
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or(""));
        match esc {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or(""));
    out.push('"');
}

/// `s` as a JSON string.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_json_str(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{InstantSample, RangeSeries};
    use kahu_tsdb::model::Labels;

    #[test]
    fn json_strings_escape_as_go() {
        assert_eq!(json_str("a\"b\\c\n<x>&\u{1}\u{2028}é"), r#""a\"b\\c\n\u003cx\u003e\u0026\u0001\u2028é""#);
    }

    #[test]
    fn values_encode_as_prometheus() {
        assert_eq!(
            value_json(&Value::Scalar { t: 4000, v: 2.0 }),
            r#"{"resultType":"scalar","result":[4,"2"]}"#
        );
        assert_eq!(
            value_json(&Value::String { t: 1100, v: "a\"b".into() }),
            r#"{"resultType":"string","result":[1.100,"a\"b"]}"#
        );
        assert_eq!(value_json(&Value::Vector(vec![])), r#"{"resultType":"vector","result":[]}"#);
        let v = Value::Vector(vec![InstantSample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "x")]),
            t: 1_435_781_451_781,
            v: f64::NAN,
        }]);
        assert_eq!(
            value_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[1435781451.781,"NaN"]}]}"#
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            samples: vec![(0, 1.0), (15_000, f64::INFINITY)],
        }]);
        assert_eq!(
            value_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"],[15,"+Inf"]]}]}"#
        );
    }

    #[test]
    fn more_than_ten_warnings_are_summarised() {
        let mut a = Annotations::default();
        for i in 0..12 {
            a.warn(format!("w{i}"));
        }
        a.infos.push("i".into());
        let mut out = String::new();
        a.write(&mut out);
        assert!(out.starts_with(r#","warnings":["w0","#), "{out}");
        assert!(out.ends_with(r#""w9","2 more warning annotations omitted"],"infos":["i"]"#), "{out}");
    }

    #[test]
    fn error_bodies_are_the_error_envelope() {
        let e = ApiError::bad_data("x \"y\"");
        assert_eq!(e.body(), r#"{"status":"error","errorType":"bad_data","error":"x \"y\""}"#);
        assert_eq!(ErrorType::Execution.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ErrorType::Timeout.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ErrorType::Unavailable.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
