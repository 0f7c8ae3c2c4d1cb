//! Feeding a [`Source`] (the generated workload or a replayed capture) to any Prometheus remote-write 1.0 receiver (kahu, Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics), the way Prometheus' own queue manager
//! sends: series sharded over a few connections, about 2,000 samples per request, in time order,
//! protobuf `WriteRequest` compressed with snappy's block format.
//!
//! The protobuf is written by hand: each series' labels are encoded once and reused for every
//! request, which keeps the pusher from being the bottleneck when measuring a receiver.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::workload::{SeriesId, Source};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The receiver's endpoint, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    /// Samples per request (Prometheus' `max_samples_per_send` defaults to 2,000).
    pub samples_per_request: usize,
    /// Concurrent connections (shards); a series always goes through the same one, so its
    /// samples arrive in order.
    pub connections: usize,
    /// Attempts per request when the receiver answers 5xx or 429, as Prometheus retries.
    pub retries: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { url: String::new(), samples_per_request: 2_000, connections: 4, retries: 10 }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PushReport {
    /// Samples sent and acknowledged.
    pub samples: u64,
    /// Requests sent and acknowledged.
    pub requests: u64,
    /// Bytes of request bodies (snappy-compressed protobuf).
    pub body_bytes: u64,
    /// Wall time from the first request to the last acknowledgement.
    pub elapsed: Duration,
}

/// A push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The receiver refused a request (4xx other than 429), or kept failing after retries.
    #[error("remote write to {url} answered {status}: {body}")]
    Rejected {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The connection failed.
    #[error("remote write to {url}")]
    Transport {
        /// The endpoint.
        url: String,
        /// Why.
        #[source]
        source: Box<ureq::Error>,
    },
    /// A sender thread died.
    #[error("remote write sender thread panicked")]
    SenderPanicked,
}

/// Appends a protobuf varint.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_varint(buf, u64::from(field << 3 | 2));
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// The `labels` fields (tag 1 of `TimeSeries`) of one series, encoded once.
pub fn encode_labels(labels: &kahu_tsdb::model::Labels) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for l in labels {
        label.clear();
        put_bytes(&mut label, 1, l.name.as_bytes());
        put_bytes(&mut label, 2, l.value.as_bytes());
        put_bytes(&mut out, 1, &label);
    }
    out
}

/// Encodes a `WriteRequest` whose series each carry the given pre-encoded labels and samples.
pub fn encode_write_request<'a>(series: impl IntoIterator<Item = (&'a [u8], &'a [(i64, f64)])>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ts = Vec::new();
    let mut sample = Vec::with_capacity(20);
    for (labels, samples) in series {
        ts.clear();
        ts.extend_from_slice(labels);
        for &(t, v) in samples {
            sample.clear();
            // value: double, field 1 (wire type 1); timestamp: int64, field 2 (varint).
            sample.push(1 << 3 | 1);
            sample.extend_from_slice(&v.to_bits().to_le_bytes());
            sample.push(2 << 3);
            put_varint(&mut sample, t as u64);
            put_bytes(&mut ts, 2, &sample);
        }
        put_bytes(&mut out, 1, &ts);
    }
    out
}

/// One series' pre-encoded labels and its samples in one request.
type Group<'a> = (&'a [u8], Vec<(i64, f64)>);

/// One request's worth of samples for one shard, in arrival order.
struct Batch {
    samples: Vec<(SeriesId, i64, f64)>,
}

/// Pushes the whole workload to `opts.url` and waits for every acknowledgement.
pub fn push(workload: &mut impl Source, opts: &PushOptions) -> Result<PushReport, PushError> {
    let shards = opts.connections.max(1);
    let per_request = opts.samples_per_request.max(1);
    let start = Instant::now();
    // Encoded labels per series, shared with the sender threads; grows as churn adds series.
    let mut encoded: Vec<Arc<[u8]>> = Vec::new();
    let mut txs = Vec::with_capacity(shards);
    let mut handles = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (tx, rx) = mpsc::sync_channel::<(Batch, Vec<Arc<[u8]>>)>(4);
        let url = opts.url.clone();
        let retries = opts.retries;
        txs.push(tx);
        handles.push(thread::spawn(move || sender(&url, retries, rx)));
    }
    let mut pending: Vec<Batch> =
        (0..shards).map(|_| Batch { samples: Vec::with_capacity(per_request) }).collect();
    let mut send_err = None;
    'outer: while let Some(scrape) = workload.next_scrape() {
        while encoded.len() < workload.series_created() {
            let id = encoded.len() as SeriesId;
            let bytes = workload.labels(id).map(encode_labels).unwrap_or_default();
            encoded.push(bytes.into());
        }
        for (id, v) in scrape.samples {
            let shard = id as usize % shards;
            let Some(batch) = pending.get_mut(shard) else { continue };
            batch.samples.push((id, scrape.t, v));
            if batch.samples.len() >= per_request {
                let full = std::mem::replace(batch, Batch { samples: Vec::with_capacity(per_request) });
                let labels = full
                    .samples
                    .iter()
                    .map(|s| encoded.get(s.0 as usize).cloned().unwrap_or_default())
                    .collect();
                if let Some(tx) = txs.get(shard)
                    && tx.send((full, labels)).is_err()
                {
                    send_err = Some(shard);
                    break 'outer;
                }
            }
        }
    }
    if send_err.is_none() {
        for (shard, batch) in pending.into_iter().enumerate() {
            if batch.samples.is_empty() {
                continue;
            }
            let labels = batch
                .samples
                .iter()
                .map(|s| encoded.get(s.0 as usize).cloned().unwrap_or_default())
                .collect();
            if let Some(tx) = txs.get(shard) {
                let _ = tx.send((batch, labels));
            }
        }
    }
    drop(txs);
    let mut report = PushReport::default();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => {
                report.samples += r.samples;
                report.requests += r.requests;
                report.body_bytes += r.body_bytes;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(PushError::SenderPanicked);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn sender(
    url: &str,
    retries: u32,
    rx: mpsc::Receiver<(Batch, Vec<Arc<[u8]>>)>,
) -> Result<PushReport, PushError> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut report = PushReport::default();
    let mut encoder = snap::raw::Encoder::new();
    for (batch, labels) in rx {
        // Group consecutive samples of one series into one TimeSeries, as Prometheus does.
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut index: std::collections::HashMap<SeriesId, usize> = std::collections::HashMap::new();
        for ((id, t, v), l) in batch.samples.iter().zip(&labels) {
            let i = *index.entry(*id).or_insert_with(|| {
                groups.push((l, Vec::new()));
                groups.len() - 1
            });
            if let Some(g) = groups.get_mut(i) {
                g.1.push((*t, *v));
            }
        }
        let proto = encode_write_request(groups.iter().map(|(l, s)| (*l, s.as_slice())));
        let body = encoder.compress_vec(&proto).unwrap_or_default();
        post(&agent, url, &body, retries)?;
        report.samples += batch.samples.len() as u64;
        report.requests += 1;
        report.body_bytes += body.len() as u64;
    }
    Ok(report)
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8], retries: u32) -> Result<(), PushError> {
    let mut backoff = Duration::from_millis(30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = agent
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("User-Agent", "kahu-workload/0.1")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(body);
        match resp {
            Ok(mut r) => {
                let status = r.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let text = r.body_mut().read_to_string().unwrap_or_default();
                let retryable = status >= 500 || status == 429;
                if !retryable || attempt > retries {
                    let body: String = text.chars().take(300).collect();
                    return Err(PushError::Rejected { url: url.to_string(), status, body });
                }
            }
            Err(e) => {
                if attempt > retries {
                    return Err(PushError::Transport { url: url.to_string(), source: Box::new(e) });
                }
            }
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kahu_tsdb::model::Labels;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Label {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }

    #[test]
    fn the_hand_written_protobuf_decodes_as_a_remote_write_request() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let enc = encode_labels(&l);
        let samples = [(-5i64, 1.5), (1_795_737_600_000, f64::from_bits(0x7ff0_0000_0000_0002))];
        let bytes = encode_write_request([(enc.as_slice(), &samples[..])]);
        let req = WriteRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 1);
        let ts = &req.timeseries[0];
        assert_eq!(ts.labels.len(), 2);
        assert_eq!((ts.labels[1].name.as_str(), ts.labels[1].value.as_str()), ("job", "node"));
        assert_eq!(ts.samples[0].timestamp, -5);
        assert_eq!(ts.samples[1].value.to_bits(), 0x7ff0_0000_0000_0002);
    }
}
