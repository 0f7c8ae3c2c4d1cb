//! Prometheus remote write 1.0 receiver: `POST /api/v1/write`.
//!
//! The body is a snappy block-compressed `prometheus.WriteRequest` ([`super::prompb`]). Each
//! request is one appender commit, and the answer comes only after the commit returned, so an
//! acknowledged request survives `kill -9`. Status codes follow Prometheus' receiver
//! (`storage/remote/write_handler.go`) and the spec:
//!
//! | outcome | status |
//! | --- | --- |
//! | everything stored (or nothing to store) | 204 |
//! | bad snappy, bad protobuf, invalid labels, rejected samples (out of order, duplicate, out of bounds), native histograms | 400, message says how many and why; the rest of the request is stored |
//! | body or decompressed message larger than the limit | 413 |
//! | `Content-Encoding` other than snappy, or a `Content-Type` other than remote write 1.0 | 415 |
//! | the commit failed (WAL write error): retrying can succeed | 500 |
//!
//! Every answer carries `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`.
//!
//! Decoding is zero-copy ([`decode`]): label strings are borrowed from the decompressed buffer
//! and handed to [`Appender::append_pairs`], so an existing series costs no allocation.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kahu_tsdb::metadata::{Metadata, MetadataStore, MetricType};
use kahu_tsdb::{AppendError, Appendable, Appender};

/// What the handler needs.
pub struct RemoteWriteState {
    /// Where samples go.
    pub appendable: Arc<dyn Appendable>,
    /// Where the requests' metric metadata (TYPE/HELP/UNIT) goes, for `/api/v1/metadata`.
    pub metadata: Option<Arc<MetadataStore>>,
    /// Largest accepted body, compressed and decompressed, in bytes.
    pub max_request_bytes: usize,
}

/// The `/api/v1/write` route.
pub fn router(state: Arc<RemoteWriteState>) -> Router {
    let limit = state.max_request_bytes;
    Router::new()
        .route("/api/v1/write", post(write))
        // Axum answers 413 itself when the body is larger.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A remote-write body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The protobuf is malformed.
    #[error("malformed protobuf at byte {offset}: {what}")]
    Malformed {
        /// Offset in the decompressed message.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A label name or value is not UTF-8.
    #[error("label string at byte {offset} is not valid UTF-8")]
    NotUtf8 {
        /// Offset in the decompressed message.
        offset: usize,
    },
}

/// Counts of what one request did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Samples stored.
    pub samples_written: u64,
    /// Samples received.
    pub samples: u64,
    /// Rejected: out of order.
    pub out_of_order: u64,
    /// Rejected: duplicate timestamp, different value.
    pub duplicate: u64,
    /// Rejected: too old for the head.
    pub out_of_bounds: u64,
    /// Rejected: invalid label set (samples of those series).
    pub invalid_labels: u64,
    /// Native histograms received (not stored yet).
    pub histograms: u64,
    /// Exemplars received (not stored).
    pub exemplars: u64,
    /// The first rejection, in full (series and timestamp).
    pub first_error: Option<String>,
}

/// One series of a request, borrowed from the message bytes.
#[derive(Debug, Default)]
pub struct SeriesRef<'a> {
    /// Label pairs as sent.
    pub labels: Vec<(&'a str, &'a str)>,
    /// `(timestamp ms, value)` pairs as sent.
    pub samples: Vec<(i64, f64)>,
    /// Exemplars in the series.
    pub exemplars: u64,
    /// Histograms in the series.
    pub histograms: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    off: usize,
    /// Offset of `b` within the whole message, for errors.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], base: usize) -> Self {
        Reader { b, off: 0, base }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed { offset: self.base + self.off, what }
    }

    fn done(&self) -> bool {
        self.off >= self.b.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut x: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.off) else { return Err(self.err("truncated varint")) };
            self.off += 1;
            x |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(x);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let s = self.b.get(self.off..self.off + 8).ok_or_else(|| self.err("truncated fixed64"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        self.off += 8;
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited field; returns its bytes and their offset in the message.
    fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| self.err("length too large"))?;
        let start = self.off;
        let end = start.checked_add(n).ok_or_else(|| self.err("length too large"))?;
        let s = self.b.get(start..end).ok_or_else(|| self.err("length past the end"))?;
        self.off = end;
        Ok((s, self.base + start))
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let (s, offset) = self.bytes()?;
        std::str::from_utf8(s).map_err(|_| DecodeError::NotUtf8 { offset })
    }

    /// Field number and wire type of the next field.
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(self.err("field number 0"));
        }
        Ok((field, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.bytes().map(drop),
            5 => {
                if self.b.len() < self.off + 4 {
                    return Err(self.err("truncated fixed32"));
                }
                self.off += 4;
                Ok(())
            }
            _ => Err(self.err("unsupported wire type")),
        }
    }
}

fn decode_label(b: &[u8], base: usize) -> Result<(&str, &str), DecodeError> {
    let mut r = Reader::new(b, base);
    let (mut name, mut value) = ("", "");
    while !r.done() {
        match r.key()? {
            (1, 2) => name = r.str()?,
            (2, 2) => value = r.str()?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((name, value))
}

fn decode_sample(b: &[u8], base: usize) -> Result<(i64, f64), DecodeError> {
    let mut r = Reader::new(b, base);
    let (mut t, mut v) = (0i64, 0f64);
    while !r.done() {
        match r.key()? {
            (1, 1) => v = f64::from_bits(r.fixed64()?),
            (2, 0) => t = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((t, v))
}

fn decode_series<'a>(b: &'a [u8], base: usize, out: &mut SeriesRef<'a>) -> Result<(), DecodeError> {
    out.labels.clear();
    out.samples.clear();
    out.exemplars = 0;
    out.histograms = 0;
    let mut r = Reader::new(b, base);
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let (lb, off) = r.bytes()?;
                out.labels.push(decode_label(lb, off)?);
            }
            (2, 2) => {
                let (sb, off) = r.bytes()?;
                out.samples.push(decode_sample(sb, off)?);
            }
            (3, 2) => {
                r.bytes()?;
                out.exemplars += 1;
            }
            (4, 2) => {
                r.bytes()?;
                out.histograms += 1;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(())
}

/// Decodes a `WriteRequest` without copying, calling `each` for every series. Protobuf
/// semantics: fields in any order, unknown fields skipped. The whole message is checked before
/// the first call, so a malformed request stores nothing.
pub fn decode<'a>(msg: &'a [u8], mut each: impl FnMut(&SeriesRef<'a>)) -> Result<(), DecodeError> {
    let mut series: Vec<(&'a [u8], usize)> = Vec::new();
    let mut r = Reader::new(msg, 0);
    while !r.done() {
        match r.key()? {
            (1, 2) => series.push(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    let mut s = SeriesRef::default();
    // Validate everything first (cheap compared to appending), then deliver.
    for &(b, off) in &series {
        decode_series(b, off, &mut s)?;
    }
    for (b, off) in series {
        decode_series(b, off, &mut s)?;
        each(&s);
    }
    Ok(())
}

/// The `metadata` list of a `WriteRequest` (field 3): `(family, metadata)` for each
/// `MetricMetadata{type=1, metric_family_name=2, help=4, unit=5}` with a family name.
pub fn decode_metadata(msg: &[u8]) -> Result<Vec<(String, Metadata)>, DecodeError> {
    let mut out = Vec::new();
    let mut r = Reader::new(msg, 0);
    while !r.done() {
        match r.key()? {
            (3, 2) => {
                let (b, base) = r.bytes()?;
                let mut m = Reader::new(b, base);
                let (mut kind, mut family, mut help, mut unit) = (0u64, "", "", "");
                while !m.done() {
                    match m.key()? {
                        (1, 0) => kind = m.varint()?,
                        (2, 2) => family = m.str()?,
                        (4, 2) => help = m.str()?,
                        (5, 2) => unit = m.str()?,
                        (_, w) => m.skip(w)?,
                    }
                }
                if !family.is_empty() {
                    // prompb.MetricMetadata.MetricType: UNKNOWN, COUNTER, GAUGE, HISTOGRAM,
                    // GAUGEHISTOGRAM, SUMMARY, INFO, STATESET.
                    let kind = match kind {
                        1 => MetricType::Counter,
                        2 => MetricType::Gauge,
                        3 => MetricType::Histogram,
                        4 => MetricType::GaugeHistogram,
                        5 => MetricType::Summary,
                        6 => MetricType::Info,
                        7 => MetricType::StateSet,
                        _ => MetricType::Unknown,
                    };
                    out.push((
                        family.to_string(),
                        Metadata { kind, help: help.to_string(), unit: unit.to_string() },
                    ));
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(out)
}

/// Decodes `msg` and appends it through one appender, committing once.
pub fn ingest(
    appendable: &dyn Appendable,
    msg: &[u8],
) -> Result<Result<WriteOutcome, kahu_tsdb::CommitError>, DecodeError> {
    let mut app: Box<dyn Appender + '_> = appendable.appender();
    let mut out = WriteOutcome::default();
    decode(msg, |s| {
        out.exemplars += s.exemplars;
        out.histograms += s.histograms;
        for &(t, v) in &s.samples {
            out.samples += 1;
            match app.append_pairs(&s.labels, t, v) {
                Ok(()) => {}
                Err(e) => {
                    match e {
                        AppendError::OutOfOrder { .. } => out.out_of_order += 1,
                        AppendError::DuplicateTimestamp { .. } => out.duplicate += 1,
                        AppendError::OutOfBounds { .. } => out.out_of_bounds += 1,
                        AppendError::InvalidLabels { .. } => out.invalid_labels += 1,
                    }
                    if out.first_error.is_none() {
                        out.first_error = Some(e.to_string());
                    }
                }
            }
        }
    })?;
    Ok(app.commit().map(|summary| {
        out.samples_written = summary.samples;
        out
    }))
}

impl WriteOutcome {
    fn rejected(&self) -> u64 {
        self.out_of_order + self.duplicate + self.out_of_bounds + self.invalid_labels
    }

    /// The 400 message, or `None` when everything was stored.
    pub fn problem(&self) -> Option<String> {
        if self.rejected() == 0 && self.histograms == 0 {
            return None;
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.out_of_order, "out of order"),
            (self.duplicate, "duplicate timestamp with a different value"),
            (self.out_of_bounds, "out of bounds (too old)"),
            (self.invalid_labels, "invalid labels"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if self.histograms > 0 {
            parts.push(format!("{} native histograms not supported", self.histograms));
        }
        let mut msg = format!(
            "{} of {} samples written; rejected: {}",
            self.samples_written,
            self.samples,
            parts.join(", ")
        );
        if let Some(first) = &self.first_error {
            msg.push_str("; first: ");
            msg.push_str(first);
        }
        Some(msg)
    }
}

fn respond(status: StatusCode, samples_written: u64, body: String) -> Response {
    let mut r = if body.is_empty() { status.into_response() } else { (status, body).into_response() };
    let h = r.headers_mut();
    h.insert("X-Prometheus-Remote-Write-Samples-Written", HeaderValue::from(samples_written));
    h.insert("X-Prometheus-Remote-Write-Histograms-Written", HeaderValue::from(0u64));
    h.insert("X-Prometheus-Remote-Write-Exemplars-Written", HeaderValue::from(0u64));
    r
}

/// Whether a `Content-Type` selects remote write 1.0 (`prometheus.WriteRequest`).
fn is_v1_content_type(ct: &str) -> bool {
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if ct.trim().is_empty() {
        return true;
    }
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("proto") => v.trim() == "prometheus.WriteRequest",
        _ => true,
    })
}

async fn write(State(state): State<Arc<RemoteWriteState>>, headers: HeaderMap, body: Bytes) -> Response {
    let enc = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") {
        return respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            0,
            format!(
                "unsupported Content-Encoding {enc:?}: remote write bodies are snappy block-compressed\n"
            ),
        );
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_v1_content_type(ct) {
        return respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            0,
            format!(
                "unsupported Content-Type {ct:?}: this receiver accepts remote write 1.0 (application/x-protobuf;proto=prometheus.WriteRequest)\n"
            ),
        );
    }
    match snap::raw::decompress_len(&body) {
        Ok(n) if n > state.max_request_bytes => {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                0,
                format!(
                    "decompressed request of {n} bytes exceeds the limit of {} bytes\n",
                    state.max_request_bytes
                ),
            );
        }
        Ok(_) => {}
        Err(e) => return respond(StatusCode::BAD_REQUEST, 0, format!("snappy decode: {e}\n")),
    }
    let task = tokio::task::spawn_blocking(move || {
        let msg =
            snap::raw::Decoder::new().decompress_vec(&body).map_err(|e| format!("snappy decode: {e}"))?;
        let outcome = ingest(state.appendable.as_ref(), &msg)
            .map_err(|e| format!("decode protobuf WriteRequest: {e}"))?;
        if let Some(store) = &state.metadata {
            // The message decoded as a whole above, so its metadata list does too.
            for (family, md) in decode_metadata(&msg).unwrap_or_default() {
                store.set("remote_write", &family, md);
            }
        }
        Ok::<_, String>(outcome)
    });
    match task.await {
        Ok(Ok(Ok(outcome))) => match outcome.problem() {
            None => respond(StatusCode::NO_CONTENT, outcome.samples_written, String::new()),
            Some(msg) => {
                tracing::debug!(message = %msg, "remote write request partly rejected");
                respond(StatusCode::BAD_REQUEST, outcome.samples_written, format!("{msg}\n"))
            }
        },
        Ok(Ok(Err(commit))) => {
            let msg = format!("store samples: {}", error_chain(&commit));
            tracing::error!(error = %msg, "remote write commit failed");
            respond(StatusCode::INTERNAL_SERVER_ERROR, 0, format!("{msg}\n"))
        }
        Ok(Err(msg)) => respond(StatusCode::BAD_REQUEST, 0, format!("{msg}\n")),
        Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, 0, format!("remote write task failed: {e}\n")),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::prompb;
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn arb_request() -> impl Strategy<Value = prompb::WriteRequest> {
        let label = ("[a-z_]{0,6}", "\\PC{0,6}").prop_map(|(name, value)| prompb::Label { name, value });
        let sample =
            (any::<f64>(), any::<i64>()).prop_map(|(value, timestamp)| prompb::Sample { value, timestamp });
        let series = (
            proptest::collection::vec(label, 0..5),
            proptest::collection::vec(sample, 0..5),
            0..2usize,
            0..2usize,
        )
            .prop_map(|(labels, samples, ne, nh)| prompb::TimeSeries {
                labels,
                samples,
                exemplars: vec![prompb::Exemplar { labels: vec![], value: 1.0, timestamp: 5 }; ne],
                histograms: vec![prompb::Histogram { count_int: Some(3), ..Default::default() }; nh],
            });
        (proptest::collection::vec(series, 0..6), 0..2usize).prop_map(|(timeseries, nm)| {
            prompb::WriteRequest {
                timeseries,
                metadata: vec![
                    prompb::MetricMetadata {
                        r#type: 1,
                        metric_family_name: "x".into(),
                        help: "h".into(),
                        unit: String::new()
                    };
                    nm
                ],
            }
        })
    }

    #[test]
    fn metadata_is_read_from_the_request() {
        use prost::Message;
        let req = prompb::WriteRequest {
            timeseries: vec![],
            metadata: vec![
                prompb::MetricMetadata {
                    r#type: 1,
                    metric_family_name: "http_requests_total".into(),
                    help: "Requests.".into(),
                    unit: String::new(),
                },
                prompb::MetricMetadata {
                    r#type: 3,
                    metric_family_name: "latency_seconds".into(),
                    help: "Latency.".into(),
                    unit: "seconds".into(),
                },
                prompb::MetricMetadata {
                    r#type: 2,
                    metric_family_name: String::new(),
                    help: "x".into(),
                    unit: String::new(),
                },
            ],
        };
        let got = decode_metadata(&req.encode_to_vec()).unwrap();
        assert_eq!(
            got,
            vec![
                (
                    "http_requests_total".to_string(),
                    Metadata { kind: MetricType::Counter, help: "Requests.".into(), unit: String::new() }
                ),
                (
                    "latency_seconds".to_string(),
                    Metadata { kind: MetricType::Histogram, help: "Latency.".into(), unit: "seconds".into() }
                ),
            ]
        );
    }

    proptest! {
        /// The zero-copy decoder must read exactly what prost reads.
        #[test]
        fn fast_decoder_agrees_with_prost(req in arb_request()) {
            let bytes = req.encode_to_vec();
            let back = prompb::WriteRequest::decode(bytes.as_slice()).unwrap();
            let mut got = Vec::new();
            decode(&bytes, |s| got.push((
                s.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>(),
                s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>(),
                s.exemplars as usize,
                s.histograms as usize,
            ))).unwrap();
            let want: Vec<_> = back.timeseries.iter().map(|ts| (
                ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect::<Vec<_>>(),
                ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect::<Vec<_>>(),
                ts.exemplars.len(),
                ts.histograms.len(),
            )).collect();
            prop_assert_eq!(got, want);
        }

        /// Garbage is an error or a (possibly empty) request, never a panic; and the fast decoder
        /// rejects whatever prost rejects as malformed.
        #[test]
        fn garbage_is_rejected_like_prost(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let fast = decode(&bytes, |_| {});
            if prompb::WriteRequest::decode(bytes.as_slice()).is_ok() {
                // prost accepted it; we may only be stricter about wire types prost skips.
                let _ = fast;
            }
        }
    }

    #[test]
    fn content_types_select_v1_only() {
        for ok in [
            "",
            "application/x-protobuf",
            "application/x-protobuf;proto=prometheus.WriteRequest",
            "application/x-protobuf; proto=prometheus.WriteRequest",
        ] {
            assert!(is_v1_content_type(ok), "{ok}");
        }
        for bad in
            ["application/json", "application/x-protobuf;proto=io.prometheus.write.v2.Request", "text/plain"]
        {
            assert!(!is_v1_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn a_request_with_bad_samples_stores_the_rest_and_says_why() {
        let head = kahu_tsdb::MemHead::new();
        let req = prompb::WriteRequest {
            timeseries: vec![
                prompb::TimeSeries {
                    labels: vec![prompb::Label { name: "__name__".into(), value: "up".into() }],
                    samples: vec![
                        prompb::Sample { value: 1.0, timestamp: 2000 },
                        prompb::Sample { value: 1.0, timestamp: 1000 },
                    ],
                    ..Default::default()
                },
                prompb::TimeSeries {
                    labels: vec![prompb::Label { name: "".into(), value: "x".into() }],
                    samples: vec![prompb::Sample { value: 1.0, timestamp: 2000 }],
                    ..Default::default()
                },
            ],
            metadata: vec![],
        };
        let out = ingest(&head, &req.encode_to_vec()).unwrap().unwrap();
        assert_eq!((out.samples, out.samples_written, out.out_of_order, out.invalid_labels), (3, 1, 1, 1));
        let msg = out.problem().unwrap();
        assert!(
            msg.contains("1 of 3 samples written")
                && msg.contains("1 out of order")
                && msg.contains("1 invalid labels"),
            "{msg}"
        );
    }
}
