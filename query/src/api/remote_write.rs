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
//! Decoding is zero-copy ([`decode`]): label strings are borrowed from the decompressed buffer,
//! checked for UTF-8 with one call over each series' label bytes, and handed with those bytes to
//! [`Appender::append_proto`], so the head hashes a series with one call over contiguous memory
//! and an existing series costs no allocation. Labels in another encoding (unsorted, empty
//! values, unusual field layout) take [`Appender::append_pairs`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kahu_tsdb::metadata::{Metadata, MetadataStore, MetricType};
use kahu_tsdb::model::{ProtoFigures, ProtoLabels};
use kahu_tsdb::{AppendError, Appendable, Appender, SeriesHint};
use parking_lot::RwLock;

/// What the handler needs.
pub struct RemoteWriteState {
    /// Where samples go.
    pub appendable: Arc<dyn Appendable>,
    /// Where the requests' metric metadata (TYPE/HELP/UNIT) goes, for `/api/v1/metadata`.
    pub metadata: Option<Arc<MetadataStore>>,
    /// Largest accepted body, compressed and decompressed, in bytes.
    pub max_request_bytes: usize,
    /// Where the series of label sets already written were filed.
    pub series_cache: SeriesCache,
}

/// Stripes of a [`SeriesCache`] (a power of two).
const CACHE_STRIPES: usize = 64;

/// What an entry costs besides its bytes: key, hint, boxed-slice header, table slot, allocator.
const CACHE_ENTRY_OVERHEAD: usize = 64;

/// A label set's bytes, its series' hint, and what parsing the bytes found.
struct CacheEntry {
    encoded: Box<[u8]>,
    hint: SeriesHint,
    figures: ProtoFigures,
}

/// What the cache knew about a series' labels when the request was decoded.
#[derive(Debug, Clone, Copy, Default)]
struct Cached {
    /// The key of the labels' bytes in the cache.
    key: u64,
    /// The hint filed under exactly these bytes.
    hint: Option<SeriesHint>,
}

/// One stripe: hash of the encoded labels to those bytes and their series' hint.
#[derive(Default)]
struct CacheStripe {
    map: std::collections::HashMap<u64, CacheEntry, std::hash::BuildHasherDefault<HashIsKey>>,
    bytes: usize,
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The series hints ([`Appender::append_proto_hinted`]) of label sets written before, keyed by
/// their exact remote-write encoding, as Prometheus' scrape cache keeps series refs by the
/// exposition line: a sender repeats each series' labels byte for byte in every request, so an
/// existing series costs one comparison of contiguous bytes instead of a label-by-label
/// comparison against the head's symbol table. An entry is only used when the bytes are equal
/// (a hash collision falls back to the store's own lookup), and the store checks that a hint is
/// its own and that the series still exists. Memory is bounded: a stripe whose entries would
/// exceed its share of the budget is emptied (the series are then found the usual way).
pub struct SeriesCache {
    stripes: Box<[RwLock<CacheStripe>]>,
    stripe_budget: usize,
    hash: fn(&[u8]) -> u64,
}

impl Default for SeriesCache {
    /// A cache of at most 32 MiB (about 100,000 series of typical size).
    fn default() -> Self {
        SeriesCache::with_budget(32 << 20)
    }
}

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCache").field("budget", &(self.stripe_budget * CACHE_STRIPES)).finish()
    }
}

impl SeriesCache {
    /// A cache holding at most about `bytes` bytes.
    pub fn with_budget(bytes: usize) -> Self {
        SeriesCache::with_hash(bytes, xxhash_rust::xxh3::xxh3_64)
    }

    fn with_hash(bytes: usize, hash: fn(&[u8]) -> u64) -> Self {
        SeriesCache {
            stripes: (0..CACHE_STRIPES).map(|_| RwLock::new(CacheStripe::default())).collect(),
            stripe_budget: bytes / CACHE_STRIPES,
            hash,
        }
    }

    fn stripe(&self, hash: u64) -> Option<&RwLock<CacheStripe>> {
        self.stripes.get((hash >> 58) as usize & (CACHE_STRIPES - 1))
    }

    /// The key of `encoded` and, if these exact bytes were filed, their hint and figures.
    fn get(&self, encoded: &[u8]) -> (u64, Option<(SeriesHint, ProtoFigures)>) {
        let key = (self.hash)(encoded);
        let hit = self.stripe(key).and_then(|s| {
            let s = s.read();
            let e = s.map.get(&key)?;
            (*e.encoded == *encoded).then_some((e.hint, e.figures))
        });
        (key, hit)
    }

    /// Files `hint` under `labels`' bytes (replacing what had the same key).
    fn put(&self, hash: u64, labels: &ProtoLabels<'_>, hint: SeriesHint) {
        let encoded = labels.encoded();
        let Some(stripe) = self.stripe(hash) else { return };
        let mut s = stripe.write();
        let cost = encoded.len() + CACHE_ENTRY_OVERHEAD;
        if s.bytes + cost > self.stripe_budget {
            s.map = Default::default();
            s.bytes = 0;
            if cost > self.stripe_budget {
                return;
            }
        }
        let entry = CacheEntry { encoded: encoded.into(), hint, figures: labels.figures() };
        if let Some(old) = s.map.insert(hash, entry) {
            s.bytes -= old.encoded.len() + CACHE_ENTRY_OVERHEAD;
        }
        s.bytes += cost;
    }
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

/// The labels of one series of a request.
#[derive(Debug, Clone, Copy)]
pub enum SeriesLabels<'a, 'b> {
    /// Their encoding, canonical ([`ProtoLabels::parse`]): read in place, never split into pairs
    /// unless needed.
    Proto(ProtoLabels<'a>),
    /// Pairs as sent, in any other encoding.
    Pairs(&'b [(&'a str, &'a str)]),
}

impl<'a> SeriesLabels<'a, '_> {
    /// The pairs as sent.
    pub fn to_vec(&self) -> Vec<(&'a str, &'a str)> {
        match self {
            SeriesLabels::Proto(p) => p.pairs().collect(),
            SeriesLabels::Pairs(pairs) => pairs.to_vec(),
        }
    }
}

/// One series of a request, borrowed from the message bytes.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRef<'a, 'b> {
    /// The labels.
    pub labels: SeriesLabels<'a, 'b>,
    /// `(timestamp ms, value)` pairs as sent.
    pub samples: &'b [(i64, f64)],
    /// Exemplars in the series.
    pub exemplars: u64,
    /// Histograms in the series.
    pub histograms: u64,
    /// What the series cache knew of the labels.
    cached: Cached,
}

/// Where one series' labels are.
enum SpanLabels<'a> {
    Proto(ProtoLabels<'a>, Cached),
    /// In [`Decoded::pairs`].
    Pairs(std::ops::Range<usize>),
}

/// Where one series' parts are in [`Decoded`].
struct Span<'a> {
    labels: SpanLabels<'a>,
    samples: std::ops::Range<usize>,
    exemplars: u64,
    histograms: u64,
}

/// A whole request, decoded into flat lists.
#[derive(Default)]
struct Decoded<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<(i64, f64)>,
    series: Vec<Span<'a>>,
}

/// A label as bytes with their offsets in the message, before the UTF-8 check.
#[derive(Clone, Copy)]
struct RawLabel<'a> {
    name: (&'a [u8], usize),
    value: (&'a [u8], usize),
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

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Tags and most lengths are one byte.
        if let Some(&byte) = self.b.get(self.off)
            && byte < 0x80
        {
            self.off += 1;
            return Ok(u64::from(byte));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, DecodeError> {
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
    #[inline]
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
    #[inline]
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

/// A `Label` message. On a malformed label, the strings read before the error are pushed to
/// `partial` so that an earlier invalid UTF-8 string is reported first, as a streaming decoder
/// would.
fn decode_label<'a>(
    b: &'a [u8],
    base: usize,
    partial: &mut Vec<(&'a [u8], usize)>,
) -> Result<RawLabel<'a>, DecodeError> {
    // What every sender writes: name then value, one-byte lengths.
    if let [0x0a, ln, rest @ ..] = b
        && let Some((name, rest)) = rest.split_at_checked(usize::from(*ln))
        && let [0x12, lv, value @ ..] = rest
        && *ln < 0x80
        && *lv < 0x80
        && value.len() == usize::from(*lv)
    {
        return Ok(RawLabel { name: (name, base + 2), value: (value, base + 4 + name.len()) });
    }
    let mut r = Reader::new(b, base);
    let empty: &'a [u8] = &[];
    let (mut name, mut value) = ((empty, base), (empty, base));
    while !r.done() {
        let step = match r.key() {
            Ok((1, 2)) => r.bytes().map(|x| name = x),
            Ok((2, 2)) => r.bytes().map(|x| value = x),
            Ok((_, w)) => r.skip(w),
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            partial.extend([name, value]);
            return Err(e);
        }
    }
    Ok(RawLabel { name, value })
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

/// The first string of `strs` that is not UTF-8, as an error.
fn first_not_utf8<'a>(strs: impl IntoIterator<Item = (&'a [u8], usize)>) -> Option<DecodeError> {
    strs.into_iter()
        .find(|(s, _)| std::str::from_utf8(s).is_err())
        .map(|(_, offset)| DecodeError::NotUtf8 { offset })
}

/// The label strings of one series (`raw`, all inside `region`) as `str`s, pushed to `out` as
/// pairs. UTF-8 is checked over runs of strings at once: the bytes between two strings are tags
/// and lengths, ASCII while lengths are under 128, so such a run is valid UTF-8 exactly when its
/// strings are. A run that fails is checked string by string to report the first bad one.
fn label_strs<'a>(
    raw: &[RawLabel<'a>],
    region: &'a [u8],
    strs: &mut Vec<&'a str>,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), DecodeError> {
    let base = region.as_ptr().addr();
    let flat = |k: usize| {
        let l = raw.get(k / 2)?;
        Some(if k.is_multiple_of(2) { l.name } else { l.value })
    };
    // Where `s` starts in `region`, if it lies inside it.
    let start_of = |s: &[u8]| {
        let start = s.as_ptr().addr().wrapping_sub(base);
        (start.checked_add(s.len()).is_some_and(|end| end <= region.len())).then_some(start)
    };
    strs.clear();
    let n = raw.len() * 2;
    let mut k = 0;
    while let Some((first, _)) = flat(k) {
        let Some(start) = start_of(first).filter(|_| !first.is_empty()) else {
            if first.is_empty() {
                strs.push("");
            } else {
                let (s, offset) = flat(k).unwrap_or_default();
                strs.push(std::str::from_utf8(s).map_err(|_| DecodeError::NotUtf8 { offset })?);
            }
            k += 1;
            continue;
        };
        // Extend the run while the next string follows with only ASCII bytes in between.
        let mut end = start + first.len();
        let mut j = k + 1;
        while let Some((s, _)) = flat(j) {
            if !s.is_empty() {
                match start_of(s) {
                    Some(st) if st >= end && region.get(end..st).is_some_and(<[u8]>::is_ascii) => {
                        end = st + s.len();
                    }
                    _ => break,
                }
            }
            j += 1;
        }
        let run = region.get(start..end).and_then(|r| std::str::from_utf8(r).ok());
        for m in k..j.min(n) {
            let (s, offset) = flat(m).unwrap_or_default();
            let sub = match (run, start_of(s)) {
                _ if s.is_empty() => Some(""),
                (Some(run), Some(st)) => st.checked_sub(start).and_then(|rel| run.get(rel..rel + s.len())),
                _ => None,
            };
            match sub {
                Some(sub) => strs.push(sub),
                None => strs.push(std::str::from_utf8(s).map_err(|_| DecodeError::NotUtf8 { offset })?),
            }
        }
        k = j;
    }
    out.extend(strs.chunks_exact(2).map(|p| match p {
        [n, v] => (*n, *v),
        _ => ("", ""),
    }));
    Ok(())
}

/// Decodes one `TimeSeries` into `d`. `raw` is scratch space.
fn decode_series<'a>(
    b: &'a [u8],
    base: usize,
    d: &mut Decoded<'a>,
    raw: &mut Vec<RawLabel<'a>>,
    strs: &mut Vec<&'a str>,
) -> Result<(), DecodeError> {
    raw.clear();
    let samples_start = d.samples.len();
    let (mut exemplars, mut histograms) = (0, 0);
    // Offsets in `b` of the first label field and of the end of the last one.
    let mut region: Option<(usize, usize)> = None;
    let mut partial = Vec::new();
    let mut r = Reader::new(b, base);
    let mut parse = || -> Result<(), DecodeError> {
        while !r.done() {
            let key_at = r.off;
            match r.key()? {
                (1, 2) => {
                    let (lb, off) = r.bytes()?;
                    raw.push(decode_label(lb, off, &mut partial)?);
                    region = Some((region.map_or(key_at, |(start, _)| start), r.off));
                }
                (2, 2) => {
                    let (sb, off) = r.bytes()?;
                    d.samples.push(decode_sample(sb, off)?);
                }
                (3, 2) => {
                    r.bytes()?;
                    exemplars += 1;
                }
                (4, 2) => {
                    r.bytes()?;
                    histograms += 1;
                }
                (_, w) => r.skip(w)?,
            }
        }
        Ok(())
    };
    if let Err(e) = parse() {
        // A label string before the malformed bytes that is not UTF-8 is the first error.
        let read = raw.iter().flat_map(|l| [l.name, l.value]).chain(partial);
        return Err(first_not_utf8(read).unwrap_or(e));
    }
    let encoded_labels = region.and_then(|(start, end)| b.get(start..end)).unwrap_or_default();
    let labels_start = d.pairs.len();
    label_strs(raw, encoded_labels, strs, &mut d.pairs)?;
    d.series.push(Span {
        labels: SpanLabels::Pairs(labels_start..d.pairs.len()),
        samples: samples_start..d.samples.len(),
        exemplars,
        histograms,
    });
    Ok(())
}

/// A `Sample` as every sender writes it: value (field 1) then timestamp (field 2), both present.
#[inline]
fn fast_sample(sb: &[u8]) -> Option<(i64, f64)> {
    let (first, rest) = sb.split_first_chunk::<9>()?;
    let [0x09, v @ ..] = first else { return None };
    let [0x10, t @ ..] = rest else { return None };
    let mut r = Reader::new(t, 0);
    let t = r.varint().ok()?;
    r.done().then_some((t as i64, f64::from_bits(u64::from_le_bytes(*v))))
}

/// Decodes one `TimeSeries` laid out as senders write it: the labels first, in their canonical
/// encoding ([`ProtoLabels::parse`]), kept as they are rather than split into pairs. `None` (with
/// `d` as it was) for anything else, which [`decode_series`] then reads and reports exactly.
fn decode_series_fast<'a>(
    b: &'a [u8],
    base: usize,
    d: &mut Decoded<'a>,
    cache: Option<&SeriesCache>,
) -> Option<()> {
    let mut r = Reader::new(b, base);
    while r.b.get(r.off) == Some(&0x0a) {
        r.off += 1;
        r.bytes().ok()?;
    }
    let pos = r.off;
    let encoded = b.get(..pos)?;
    // Bytes the cache holds parsed before: the parse would find what it found then.
    let (labels, cached) = match cache.map(|c| c.get(encoded)) {
        Some((key, Some((hint, figures)))) => {
            (ProtoLabels::parsed_before(encoded, figures), Cached { key, hint: Some(hint) })
        }
        Some((key, None)) => (ProtoLabels::parse(encoded)?, Cached { key, hint: None }),
        None => (ProtoLabels::parse(encoded)?, Cached::default()),
    };
    let samples_start = d.samples.len();
    let (mut exemplars, mut histograms) = (0, 0);
    let mut rest = || -> Option<()> {
        while !r.done() {
            match r.key().ok()? {
                (2, 2) => {
                    let (sb, off) = r.bytes().ok()?;
                    d.samples.push(fast_sample(sb).or_else(|| decode_sample(sb, off).ok())?);
                }
                (3, 2) => {
                    r.bytes().ok()?;
                    exemplars += 1;
                }
                (4, 2) => {
                    r.bytes().ok()?;
                    histograms += 1;
                }
                (1, _) => return None,
                (_, w) => r.skip(w).ok()?,
            }
        }
        Some(())
    };
    if rest().is_none() {
        d.samples.truncate(samples_start);
        return None;
    }
    d.series.push(Span {
        labels: SpanLabels::Proto(labels, cached),
        samples: samples_start..d.samples.len(),
        exemplars,
        histograms,
    });
    Some(())
}

/// Decodes a `WriteRequest` without copying, calling `each` for every series. Protobuf
/// semantics: fields in any order, unknown fields skipped. The whole message is checked before
/// the first call, so a malformed request stores nothing.
pub fn decode<'a>(msg: &'a [u8], each: impl FnMut(&SeriesRef<'a, '_>)) -> Result<(), DecodeError> {
    decode_with_metadata(msg, None, each).map(drop)
}

/// [`decode`], returning the `metadata` fields (bytes and offset) found on the way.
type Fields<'a> = Vec<(&'a [u8], usize)>;

fn decode_with_metadata<'a>(
    msg: &'a [u8],
    cache: Option<&SeriesCache>,
    mut each: impl FnMut(&SeriesRef<'a, '_>),
) -> Result<Fields<'a>, DecodeError> {
    let mut series: Fields<'a> = Vec::new();
    let mut metadata: Fields<'a> = Vec::new();
    let mut r = Reader::new(msg, 0);
    while !r.done() {
        match r.key()? {
            (1, 2) => series.push(r.bytes()?),
            (3, 2) => metadata.push(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    let mut d = Decoded {
        pairs: Vec::with_capacity(series.len() * 16),
        samples: Vec::with_capacity(series.len()),
        series: Vec::with_capacity(series.len()),
    };
    let (mut raw, mut strs) = (Vec::new(), Vec::new());
    for &(b, off) in &series {
        if decode_series_fast(b, off, &mut d, cache).is_none() {
            decode_series(b, off, &mut d, &mut raw, &mut strs)?;
        }
    }
    for s in &d.series {
        let labels = match &s.labels {
            SpanLabels::Proto(p, c) => (SeriesLabels::Proto(*p), *c),
            SpanLabels::Pairs(r) => {
                (SeriesLabels::Pairs(d.pairs.get(r.clone()).unwrap_or_default()), Cached::default())
            }
        };
        let (labels, cached) = labels;
        each(&SeriesRef {
            labels,
            samples: d.samples.get(s.samples.clone()).unwrap_or_default(),
            exemplars: s.exemplars,
            histograms: s.histograms,
            cached,
        });
    }
    Ok(metadata)
}

/// The `metadata` list of a `WriteRequest` (field 3): `(family, metadata)` for each
/// `MetricMetadata{type=1, metric_family_name=2, help=4, unit=5}` with a family name.
pub fn decode_metadata(msg: &[u8]) -> Result<Vec<(String, Metadata)>, DecodeError> {
    let mut fields = Vec::new();
    let mut r = Reader::new(msg, 0);
    while !r.done() {
        match r.key()? {
            (3, 2) => fields.push(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    metadata_of(&fields)
}

/// The metadata in `MetricMetadata` messages (`type=1, metric_family_name=2, help=4, unit=5`),
/// those with a family name.
fn metadata_of(fields: &[(&[u8], usize)]) -> Result<Vec<(String, Metadata)>, DecodeError> {
    let mut out = Vec::new();
    for &(b, base) in fields {
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
        if family.is_empty() {
            continue;
        }
        // prompb.MetricMetadata.MetricType: UNKNOWN, COUNTER, GAUGE, HISTOGRAM, GAUGEHISTOGRAM,
        // SUMMARY, INFO, STATESET.
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
        out.push((family.to_string(), Metadata { kind, help: help.to_string(), unit: unit.to_string() }));
    }
    Ok(out)
}

/// Decodes `msg` and appends it through one appender, committing once. The request's metric
/// metadata goes to `metadata`, if given.
pub fn ingest(
    appendable: &dyn Appendable,
    msg: &[u8],
    metadata: Option<&MetadataStore>,
    cache: Option<&SeriesCache>,
) -> Result<Result<WriteOutcome, kahu_tsdb::CommitError>, DecodeError> {
    let mut app: Box<dyn Appender + '_> = appendable.appender();
    let mut out = WriteOutcome::default();
    let count = |out: &mut WriteOutcome, appended: Result<(), AppendError>| {
        if let Err(e) = appended {
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
    };
    // Hints learnt in this request, filed once it is decoded.
    let mut learnt: Vec<(u64, ProtoLabels<'_>, SeriesHint)> = Vec::new();
    let fields = decode_with_metadata(msg, cache, |s| {
        out.exemplars += s.exemplars;
        out.histograms += s.histograms;
        match &s.labels {
            SeriesLabels::Proto(p) => {
                let Cached { key, hint: cached } = s.cached;
                let mut hint = cached;
                for &(t, v) in s.samples {
                    out.samples += 1;
                    let (h, appended) = app.append_proto_hinted(hint, p, t, v);
                    hint = h;
                    count(&mut out, appended);
                }
                if let Some(h) = hint
                    && cache.is_some()
                    && hint != cached
                {
                    learnt.push((key, *p, h));
                }
            }
            SeriesLabels::Pairs(pairs) => {
                for &(t, v) in s.samples {
                    out.samples += 1;
                    count(&mut out, app.append_pairs(pairs, t, v));
                }
            }
        }
    })?;
    if let Some(c) = cache {
        for (key, labels, hint) in learnt {
            c.put(key, &labels, hint);
        }
    }
    if let Some(store) = metadata
        && !fields.is_empty()
    {
        // The message decoded as a whole above, so its metadata list does too.
        for (family, md) in metadata_of(&fields).unwrap_or_default() {
            store.set("remote_write", &family, md);
        }
    }
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
        with_buffer(|buf| {
            let msg = decompress_into(&body, buf).map_err(|e| format!("snappy decode: {e}"))?;
            ingest(state.appendable.as_ref(), msg, state.metadata.as_deref(), Some(&state.series_cache))
                .map_err(|e| format!("decode protobuf WriteRequest: {e}"))
        })
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

/// Decompressed messages up to this size keep their buffer for the thread's next request.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

/// Runs `f` with this thread's decompression buffer (blocking-pool threads live on between
/// requests, so the buffer is neither allocated nor zeroed again for every request).
fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let r = f(&mut buf);
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Snappy-decompresses `body` into `buf` (grown as needed, never shrunk here), returning the
/// message.
fn decompress_into<'b>(body: &[u8], buf: &'b mut Vec<u8>) -> Result<&'b [u8], snap::Error> {
    let n = snap::raw::decompress_len(body)?;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    let dst = buf.get_mut(..n).unwrap_or_default();
    let written = snap::raw::Decoder::new().decompress(body, dst)?;
    Ok(buf.get(..written).unwrap_or_default())
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
                s.labels.to_vec().iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>(),
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

        /// Labels as prost encodes them arrive in their canonical encoding, which hashes like the
        /// pairs, unless a name or value is empty; whether they are sorted is told apart.
        #[test]
        fn sorted_labels_arrive_canonical(req in arb_request()) {
            let bytes = req.encode_to_vec();
            decode(&bytes, |s| {
                let pairs = s.labels.to_vec();
                let non_empty = pairs.iter().all(|(n, v)| !n.is_empty() && !v.is_empty());
                let sorted = pairs.windows(2).all(|w| w[0].0 < w[1].0);
                match s.labels {
                    SeriesLabels::Proto(p) => {
                        assert!(non_empty, "{pairs:?}");
                        assert_eq!(p.is_sorted(), sorted, "{pairs:?}");
                        assert_eq!(p.hash(), kahu_tsdb::model::proto_labels_hash(pairs.iter().copied()));
                    }
                    SeriesLabels::Pairs(_) => assert!(!non_empty, "{pairs:?}"),
                }
            }).unwrap();
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

    /// A request whose label strings (placeholders `#0`, `#1`, …) are turned into invalid UTF-8.
    fn with_bad_strings(series: &[&[(&str, &str)]], bad: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let req = prompb::WriteRequest {
            timeseries: series
                .iter()
                .map(|labels| prompb::TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| prompb::Label { name: n.to_string(), value: v.to_string() })
                        .collect(),
                    samples: vec![prompb::Sample { value: 1.0, timestamp: 1 }],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        };
        let mut bytes = req.encode_to_vec();
        let mut offsets = Vec::new();
        for b in bad {
            let at = bytes.windows(b.len()).position(|w| w == b.as_bytes()).unwrap();
            bytes[at] = 0xff;
            offsets.push(at);
        }
        (bytes, offsets)
    }

    /// Invalid UTF-8 anywhere in a label is the error for the whole request, at the offset of
    /// the first bad string in message order, whether the rest of the labels are ASCII or not.
    #[test]
    fn invalid_utf8_is_reported_at_the_first_bad_string() {
        type Case<'a> = (&'a [&'a [(&'a str, &'a str)]], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[&[("__name__", "up"), ("job", "#0")]], &["#0"]),
            (&[&[("__name__", "up"), ("#0", "x")]], &["#0"]),
            (&[&[("__name__", "up"), ("job", "é#0")]], &["#0"]),
            (&[&[("a", "ok")], &[("b", "#0"), ("c", "#1")]], &["#0", "#1"]),
            (&[&[("b", "#0"), ("a", "ü")], &[("c", "#1")]], &["#0", "#1"]),
            (&[&[("x", &"long".repeat(100)), ("y", "#0")]], &["#0"]),
        ];
        for (series, bad) in cases {
            let (bytes, offsets) = with_bad_strings(series, bad);
            assert!(prompb::WriteRequest::decode(bytes.as_slice()).is_err(), "prost accepts {series:?}");
            // The string starts at the placeholder, except after a multi-byte prefix.
            let first = series
                .iter()
                .flat_map(|s| s.iter())
                .flat_map(|(n, v)| [*n, *v])
                .find(|s| s.contains('#'))
                .unwrap();
            let want = offsets[0] - (first.len() - first.trim_start_matches(|c| c != '#').len());
            let mut calls = 0;
            assert_eq!(
                decode(&bytes, |_| calls += 1),
                Err(DecodeError::NotUtf8 { offset: want }),
                "{series:?}"
            );
            assert_eq!(calls, 0, "nothing is delivered from a request that does not decode");
        }
        // Invalid UTF-8 before malformed bytes in the same series is reported first.
        let (mut bytes, offsets) = with_bad_strings(&[&[("a", "#0"), ("b", "x")]], &["#0"]);
        let last = bytes.len() - 1;
        bytes[last - 10] = 0x7f; // a field with wire type 7 among the samples
        assert_eq!(decode(&bytes, |_| {}), Err(DecodeError::NotUtf8 { offset: offsets[0] }));
    }

    /// Series in layouts no common sender writes (a label after the samples, a label's value
    /// before its name, a non-minimal length, a sample's timestamp first) are read like prost
    /// reads them.
    #[test]
    fn unusual_layouts_decode_like_prost() {
        let label = |n: &[u8], v: &[u8]| [&[0x0a, n.len() as u8][..], n, &[0x12, v.len() as u8], v].concat();
        let field = |tag: u8, body: &[u8]| [&[tag, body.len() as u8][..], body].concat();
        let sample = [&[0x09][..], &2.5f64.to_le_bytes(), &[0x10, 0x07]].concat();
        let reversed_sample = [&[0x10, 0x07, 0x09][..], &2.5f64.to_le_bytes()].concat();
        let reversed_label = [&[0x12, 1, b'v', 0x0a, 1, b'n'][..]].concat();
        let loose_label = [&[0x0a, 0x81, 0x00, b'n', 0x12, 1, b'v'][..]].concat();
        let series: Vec<Vec<u8>> = vec![
            [field(0x0a, &label(b"a", b"1")), field(0x12, &sample), field(0x0a, &label(b"b", b"2"))].concat(),
            [field(0x0a, &reversed_label), field(0x12, &sample)].concat(),
            [field(0x0a, &loose_label), field(0x12, &reversed_sample)].concat(),
            [field(0x12, &sample), field(0x28, &[]), field(0x0a, &label(b"x", b"y"))].concat(),
        ];
        for ts in series {
            let msg = field(0x0a, &ts);
            let want = prompb::WriteRequest::decode(msg.as_slice()).unwrap();
            let mut got = Vec::new();
            decode(&msg, |s| {
                got.push((
                    s.labels.to_vec().iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>(),
                    s.samples.to_vec(),
                ))
            })
            .unwrap();
            let want: Vec<_> = want
                .timeseries
                .iter()
                .map(|t| {
                    (
                        t.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect::<Vec<_>>(),
                        t.samples.iter().map(|s| (s.timestamp, s.value)).collect::<Vec<_>>(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{ts:02x?}");
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
        let out = ingest(&head, &req.encode_to_vec(), None, None).unwrap().unwrap();
        assert_eq!((out.samples, out.samples_written, out.out_of_order, out.invalid_labels), (3, 1, 1, 1));
        let msg = out.problem().unwrap();
        assert!(
            msg.contains("1 of 3 samples written")
                && msg.contains("1 out of order")
                && msg.contains("1 invalid labels"),
            "{msg}"
        );
    }

    /// One step of a remote-write session: a request of `(label set index, samples)`, or a head
    /// truncation (which removes series the cache may still hold hints for).
    #[derive(Debug, Clone)]
    enum Step {
        Write(Vec<(usize, Vec<(i64, f64)>)>),
        Truncate(i64),
    }

    /// Label sets, some of them unsorted, with an empty value, an empty or repeated name: every
    /// one carries `zz="1"` so that one matcher selects all that were stored.
    fn arb_label_sets() -> impl Strategy<Value = Vec<Vec<(String, String)>>> {
        let pair = ("[a-c_]{0,2}", "[xy]{0,2}");
        proptest::collection::vec(
            (proptest::collection::vec(pair, 0..4), any::<bool>(), any::<prop::sample::Index>()),
            1..8,
        )
        .prop_map(|sets| {
            sets.into_iter()
                .map(|(pairs, sort, at)| {
                    let mut pairs: Vec<(String, String)> = pairs;
                    if sort {
                        pairs.sort();
                        pairs.dedup_by(|a, b| a.0 == b.0);
                    }
                    pairs.insert(at.index(pairs.len() + 1), ("zz".into(), "1".into()));
                    pairs
                })
                .collect()
        })
    }

    fn arb_steps(sets: usize) -> impl Strategy<Value = Vec<Step>> {
        let sample = (0i64..40, prop_oneof![Just(1.0), Just(2.0), any::<f64>()]);
        let write = proptest::collection::vec((0..sets, proptest::collection::vec(sample, 0..3)), 0..6)
            .prop_map(Step::Write);
        let step = prop_oneof![8 => write, 1 => (0i64..40).prop_map(Step::Truncate)];
        proptest::collection::vec(step, 1..12)
    }

    /// Every stored series and its samples (value bits), by labels.
    fn stored(db: &kahu_tsdb::Db) -> Vec<(String, Vec<(i64, u64)>)> {
        use kahu_tsdb::Queryable;
        let q = db.querier().unwrap();
        let all = [kahu_tsdb::model::Matcher::equal("zz", "1")];
        let mut out = Vec::new();
        for s in q.select(&all, i64::MIN, i64::MAX).unwrap() {
            let mut it = s.iter();
            let mut samples = Vec::new();
            while let Some(x) = it.next() {
                samples.push((x.t, x.v.to_bits()));
            }
            out.push((s.labels().to_string(), samples));
        }
        out
    }

    fn request(sets: &[Vec<(String, String)>], series: &[(usize, Vec<(i64, f64)>)]) -> Vec<u8> {
        let timeseries = series
            .iter()
            .map(|(i, samples)| prompb::TimeSeries {
                labels: sets[*i]
                    .iter()
                    .map(|(name, value)| prompb::Label { name: name.clone(), value: value.clone() })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| prompb::Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            })
            .collect();
        prompb::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The series cache changes nothing but speed: sessions through no cache, a real one, one
        /// whose hash always collides (every lookup compares bytes and must fall back), and one
        /// too small to keep much (emptied as it goes) store the same samples and give the same
        /// answers, truncations (hints to series that are gone) included.
        #[test]
        fn the_series_cache_stores_exactly_what_the_lookup_does(
            (sets, steps) in arb_label_sets().prop_flat_map(|sets| {
                let n = sets.len();
                (Just(sets), arb_steps(n))
            })
        ) {
            let caches = [
                None,
                Some(SeriesCache::default()),
                Some(SeriesCache::with_hash(1 << 20, |_| 7)),
                Some(SeriesCache::with_hash(1 << 20, |b| b.len() as u64)),
                Some(SeriesCache::with_budget(CACHE_STRIPES * (CACHE_ENTRY_OVERHEAD + 24))),
            ];
            let dirs: Vec<_> = caches.iter().map(|_| tempfile::tempdir().unwrap()).collect();
            let dbs: Vec<_> = dirs
                .iter()
                .map(|d| kahu_tsdb::Db::open(d.path(), kahu_tsdb::Options::default()).unwrap())
                .collect();
            for step in &steps {
                match step {
                    Step::Write(series) => {
                        let msg = request(&sets, series);
                        let outs: Vec<WriteOutcome> = dbs
                            .iter()
                            .zip(&caches)
                            .map(|(db, c)| ingest(db, &msg, None, c.as_ref()).unwrap().unwrap())
                            .collect();
                        for o in &outs[1..] {
                            prop_assert_eq!(o, &outs[0]);
                        }
                    }
                    Step::Truncate(t) => {
                        for db in &dbs {
                            db.head().truncate_before(*t);
                        }
                    }
                }
            }
            let want = stored(&dbs[0]);
            for db in &dbs[1..] {
                prop_assert_eq!(&stored(db), &want);
            }
        }
    }

    #[test]
    fn a_hint_from_another_store_is_not_taken() {
        let cache = SeriesCache::default();
        let sets = vec![vec![("__name__".to_string(), "up".to_string()), ("zz".into(), "1".into())]];
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db1 = kahu_tsdb::Db::open(d1.path(), kahu_tsdb::Options::default()).unwrap();
        let db2 = kahu_tsdb::Db::open(d2.path(), kahu_tsdb::Options::default()).unwrap();
        // Series in db2 first, so that db1's ref for the label set means another series in db2.
        let other = vec![vec![("__name__".to_string(), "other".to_string()), ("zz".into(), "1".into())]];
        ingest(&db2, &request(&other, &[(0, vec![(1, 1.0)])]), None, None).unwrap().unwrap();
        let msg = request(&sets, &[(0, vec![(5, 2.0)])]);
        for db in [&db1, &db2] {
            let out = ingest(db, &msg, None, Some(&cache)).unwrap().unwrap();
            assert_eq!(out.samples_written, 1);
        }
        assert_eq!(
            stored(&db2),
            vec![
                ("other{zz=\"1\"}".to_string(), vec![(1, 1f64.to_bits())]),
                ("up{zz=\"1\"}".to_string(), vec![(5, 2f64.to_bits())]),
            ]
        );
    }
}
