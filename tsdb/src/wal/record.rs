//! Typed WAL records (series, samples) inside a commit frame's payload. Framing lives in
//! [`super::segment`]; this module only knows bytes of one payload. Format:
//! `docs/format/wal.md`.

use crate::model::{Label, Labels};

/// Record type of a series record.
pub const REC_SERIES: u8 = 1;
/// Record type of a samples record.
pub const REC_SAMPLES: u8 = 2;
/// Record type of a tombstones record (deleted ranges of head series).
pub const REC_TOMBSTONES: u8 = 3;

/// A payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end in the middle of a field.
    #[error("record truncated at byte {offset}")]
    Truncated {
        /// Offset in the payload.
        offset: usize,
    },
    /// An unknown record type.
    #[error("unknown record type {rtype} at byte {offset}")]
    UnknownType {
        /// The type byte.
        rtype: u8,
        /// Offset in the payload.
        offset: usize,
    },
    /// A label name or value is not UTF-8.
    #[error("label string is not UTF-8 at byte {offset}")]
    NotUtf8 {
        /// Offset in the payload.
        offset: usize,
    },
    /// A varint is longer than 10 bytes or a count is implausible.
    #[error("malformed integer at byte {offset}")]
    BadInt {
        /// Offset in the payload.
        offset: usize,
    },
}

/// One sample of a samples record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// The series (a `HeadSeriesRef`).
    pub sref: u64,
    /// Timestamp, ms.
    pub t: i64,
    /// Value bits.
    pub v: u64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series: ref and labels.
    Series(Vec<(u64, Labels)>),
    /// Samples.
    Samples(Vec<RefSample>),
    /// Deleted ranges: series labels and inclusive interval.
    Tombstones(Vec<(Labels, crate::tombstones::Interval)>),
}

/// Appends an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Encodes series records. `labels` yields `(name, value)` pairs sorted by name.
pub struct SeriesEncoder<'a> {
    out: &'a mut Vec<u8>,
    body: Vec<u8>,
    count: u64,
}

impl<'a> SeriesEncoder<'a> {
    /// Starts a series record that is appended to `out` by [`SeriesEncoder::finish`].
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        SeriesEncoder { out, body: Vec::new(), count: 0 }
    }

    /// Adds one series.
    pub fn add<'s>(&mut self, sref: u64, labels: impl ExactSizeIterator<Item = (&'s str, &'s str)>) {
        put_uvarint(&mut self.body, sref);
        put_uvarint(&mut self.body, labels.len() as u64);
        for (n, v) in labels {
            put_str(&mut self.body, n);
            put_str(&mut self.body, v);
        }
        self.count += 1;
    }

    /// Writes the record (nothing when no series were added).
    pub fn finish(self) {
        if self.count == 0 {
            return;
        }
        let mut head = Vec::with_capacity(10);
        put_uvarint(&mut head, self.count);
        self.out.push(REC_SERIES);
        put_uvarint(self.out, (head.len() + self.body.len()) as u64);
        self.out.extend_from_slice(&head);
        self.out.extend_from_slice(&self.body);
    }
}

/// Appends a tombstones record to `out` (nothing when `stones` is empty).
pub fn encode_tombstones(out: &mut Vec<u8>, stones: &[(Labels, crate::tombstones::Interval)]) {
    if stones.is_empty() {
        return;
    }
    let mut body = Vec::new();
    crate::tombstones::encode_wal_body(&mut body, stones);
    out.push(REC_TOMBSTONES);
    put_uvarint(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// Appends a samples record to `out`.
pub fn encode_samples(out: &mut Vec<u8>, samples: &[RefSample]) {
    let Some(first) = samples.first() else { return };
    let mut body = Vec::with_capacity(samples.len() * 11 + 20);
    put_uvarint(&mut body, samples.len() as u64);
    put_uvarint(&mut body, first.sref);
    put_varint(&mut body, first.t);
    for s in samples {
        put_varint(&mut body, s.sref.wrapping_sub(first.sref) as i64);
        put_varint(&mut body, s.t.wrapping_sub(first.t));
        body.extend_from_slice(&s.v.to_le_bytes());
    }
    out.push(REC_SAMPLES);
    put_uvarint(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// Reads fields from a payload, tracking the offset for error messages.
struct Dec<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Dec<'a> {
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut x: u64 = 0;
        let mut s = 0u32;
        for i in 0..10 {
            let Some(&b) = self.b.get(self.off) else {
                return Err(RecordError::Truncated { offset: self.off });
            };
            self.off += 1;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(RecordError::BadInt { offset: self.off });
                }
                return Ok(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        Err(RecordError::BadInt { offset: self.off })
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.off.checked_add(n).ok_or(RecordError::BadInt { offset: self.off })?;
        let s = self.b.get(self.off..end).ok_or(RecordError::Truncated { offset: self.off })?;
        self.off = end;
        Ok(s)
    }

    fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| RecordError::BadInt { offset: self.off })?;
        let off = self.off;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| RecordError::NotUtf8 { offset: off })
    }

    /// A count that cannot exceed the bytes left (each element takes at least `min` bytes).
    fn count(&mut self, min: usize) -> Result<usize, RecordError> {
        let n = self.uvarint()?;
        let left = self.b.len().saturating_sub(self.off);
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min) <= left => Ok(n),
            _ => Err(RecordError::BadInt { offset: self.off }),
        }
    }
}

/// Decodes every record of a commit payload.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Record>, RecordError> {
    let mut d = Dec { b: payload, off: 0 };
    let mut out = Vec::new();
    while d.off < payload.len() {
        let start = d.off;
        let rtype = d.bytes(1)?.first().copied().unwrap_or(0);
        let len = usize::try_from(d.uvarint()?).map_err(|_| RecordError::BadInt { offset: d.off })?;
        let body_off = d.off;
        let body = d.bytes(len)?;
        let mut b = Dec { b: body, off: 0 };
        let rec = match rtype {
            REC_SERIES => {
                let n = b.count(2)?;
                let mut series = Vec::with_capacity(n);
                for _ in 0..n {
                    let sref = b.uvarint()?;
                    let nl = b.count(2)?;
                    let mut labels = Vec::with_capacity(nl);
                    for _ in 0..nl {
                        let name = b.str()?;
                        let value = b.str()?;
                        labels.push(Label::new(name, value));
                    }
                    series.push((sref, Labels::from_vec(labels)));
                }
                Record::Series(series)
            }
            REC_SAMPLES => {
                let n = b.count(10)?;
                let mut samples = Vec::with_capacity(n);
                if n > 0 {
                    let base_ref = b.uvarint()?;
                    let base_t = b.varint()?;
                    for _ in 0..n {
                        let dref = b.varint()?;
                        let dt = b.varint()?;
                        let v = b.bytes(8)?;
                        let mut vb = [0u8; 8];
                        vb.copy_from_slice(v);
                        samples.push(RefSample {
                            sref: base_ref.wrapping_add(dref as u64),
                            t: base_t.wrapping_add(dt),
                            v: u64::from_le_bytes(vb),
                        });
                    }
                }
                Record::Samples(samples)
            }
            REC_TOMBSTONES => {
                let stones = crate::tombstones::decode_wal_body(body)
                    .map_err(|_| RecordError::Truncated { offset: body_off })?;
                b.off = body.len();
                Record::Tombstones(stones)
            }
            _ => return Err(RecordError::UnknownType { rtype, offset: start }),
        };
        if b.off != body.len() {
            return Err(RecordError::Truncated { offset: body_off + b.off });
        }
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(
            series in proptest::collection::vec((any::<u64>(), proptest::collection::btree_map("[a-z_]{1,8}", ".{1,12}", 1..6)), 0..8),
            samples in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50),
        ) {
            let mut out = Vec::new();
            let mut enc = SeriesEncoder::new(&mut out);
            for (r, l) in &series {
                enc.add(*r, l.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            }
            enc.finish();
            let samples: Vec<RefSample> = samples.into_iter().map(|(sref, t, v)| RefSample { sref, t, v }).collect();
            encode_samples(&mut out, &samples);
            let recs = decode_payload(&out).unwrap();
            let mut want = Vec::new();
            if !series.is_empty() {
                want.push(Record::Series(series.iter().map(|(r, l)| (*r, Labels::from_pairs(l.iter().map(|(n, v)| (n.as_str(), v.as_str()))))).collect()));
            }
            if !samples.is_empty() {
                want.push(Record::Samples(samples));
            }
            prop_assert_eq!(recs, want);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_payload(&bytes);
        }
    }
}
