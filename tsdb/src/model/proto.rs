//! Label sets in their Prometheus remote-write protobuf encoding.
//!
//! The head files every series under the hash of this encoding (whatever form the labels come
//! in), so a remote-write receiver that holds the request's bytes hashes a series' labels with one
//! call over contiguous memory, instead of feeding the hasher label by label.

use std::cell::RefCell;

use xxhash_rust::xxh3::xxh3_64;

/// Bytes of `v` as a protobuf varint.
fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn put_varint(out: &mut Vec<u8>, v: usize) {
    let mut v = v as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Tag of `Label.name` (field 1) and of `TimeSeries.labels` (field 1), length-delimited.
const TAG_1: u8 = 1 << 3 | 2;
/// Tag of `Label.value` (field 2), length-delimited.
const TAG_2: u8 = 2 << 3 | 2;

/// Bytes of one encoded `Label` message (without its own tag and length).
fn label_len(name: &str, value: &str) -> usize {
    1 + varint_len(name.len()) + name.len() + 1 + varint_len(value.len()) + value.len()
}

/// Appends the encoding of `pairs` as the `repeated Label labels = 1` fields of a remote-write
/// `TimeSeries` (each `Label { string name = 1; string value = 2; }`): every field present, in
/// field order, minimal varints, as Prometheus and every common sender write them.
///
/// Every append hashes its labels through this, so the common case (name and value shorter than
/// 128 bytes: one-byte length varints, a label message under 16 KiB) writes each label's
/// header bytes as one small array instead of byte by byte.
pub fn encode_proto_labels<'s>(pairs: impl IntoIterator<Item = (&'s str, &'s str)>, out: &mut Vec<u8>) {
    for (n, v) in pairs {
        let (nl, vl) = (n.len(), v.len());
        if nl < 0x80 && vl < 0x80 {
            // At most 2 + 127 + 2 + 127 bytes: the label's length takes one or two bytes.
            let ll = 4 + nl + vl;
            out.reserve(ll + 2);
            if ll < 0x80 {
                out.extend_from_slice(&[TAG_1, ll as u8, TAG_1, nl as u8]);
            } else {
                out.extend_from_slice(&[TAG_1, (ll as u8) | 0x80, (ll >> 7) as u8, TAG_1, nl as u8]);
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&[TAG_2, vl as u8]);
            out.extend_from_slice(v.as_bytes());
        } else {
            encode_label(n, v, out);
        }
    }
}

/// Appends one label field of [`encode_proto_labels`], byte by byte (any lengths).
fn encode_label(n: &str, v: &str, out: &mut Vec<u8>) {
    out.push(TAG_1);
    put_varint(out, label_len(n, v));
    out.push(TAG_1);
    put_varint(out, n.len());
    out.extend_from_slice(n.as_bytes());
    out.push(TAG_2);
    put_varint(out, v.len());
    out.extend_from_slice(v.as_bytes());
}

/// The hash the head files a label set under: xxh3-64 of [`encode_proto_labels`].
pub fn proto_labels_hash<'s>(pairs: impl IntoIterator<Item = (&'s str, &'s str)>) -> u64 {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            encode_proto_labels(pairs, &mut buf);
            let h = xxh3_64(&buf);
            if buf.capacity() > 64 << 10 {
                *buf = Vec::new();
            }
            h
        }
        // Only reachable if hashing re-entered itself; stay correct with a fresh buffer.
        Err(_) => {
            let mut own = Vec::new();
            encode_proto_labels(pairs, &mut own);
            xxh3_64(&own)
        }
    })
}

/// A label set in its remote-write encoding, as a receiver finds it in a request: the bytes of
/// a `TimeSeries`' `labels` fields, checked by [`ProtoLabels::parse`] to be exactly what
/// [`encode_proto_labels`] writes for non-empty names and values, so that an appender can trust
/// the hash of the bytes and read the pairs straight from them. Whether the names are sorted (as
/// a label set must be to be stored under that hash) is checked only when needed
/// ([`ProtoLabels::is_sorted`]): a series the head already holds with these exact labels proves it.
#[derive(Debug, Clone, Copy)]
pub struct ProtoLabels<'a> {
    encoded: &'a [u8],
    /// `encoded` as a `str` when it is valid UTF-8 as a whole (every length under 128: the bytes
    /// between the strings are then ASCII), so that pairs are sliced out without checking again.
    whole: Option<&'a str>,
    hash: u64,
    len: u32,
    max_name: u32,
    max_value: u32,
}

/// What [`ProtoLabels::parse`] found out about an encoding, kept (with the bytes) by a caller
/// that sees the same bytes again, to rebuild the [`ProtoLabels`] with
/// [`ProtoLabels::parsed_before`] instead of parsing again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoFigures {
    hash: u64,
    len: u32,
    max_name: u32,
    max_value: u32,
}

/// Reads a minimal varint at `b[*pos..]` (as [`put_varint`] writes it).
#[inline(always)]
fn read_varint(b: &[u8], pos: &mut usize) -> Option<usize> {
    let first = *b.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(usize::from(first));
    }
    read_varint_long(b, pos)
}

#[cold]
fn read_varint_long(b: &[u8], pos: &mut usize) -> Option<usize> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos + i)?;
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte < 0x80 {
            let v = usize::try_from(v).ok()?;
            // Minimal: the last byte carries bits.
            if byte == 0 {
                return None;
            }
            *pos += i + 1;
            return Some(v);
        }
    }
    None
}

impl<'a> ProtoLabels<'a> {
    /// The label set encoded in `encoded`, or `None` unless every label is
    /// `0x0a L 0x0a n name 0x12 v value` with minimal varint lengths, a non-empty name and value,
    /// and every string valid UTF-8. Label sets that do not fit take
    /// [`crate::Appender::append_pairs`].
    pub fn parse(encoded: &'a [u8]) -> Option<Self> {
        let whole = std::str::from_utf8(encoded).ok();
        let (mut pos, mut len, mut max_name, mut max_value) = (0usize, 0u32, 0usize, 0usize);
        while pos < encoded.len() {
            if *encoded.get(pos)? != TAG_1 {
                return None;
            }
            pos += 1;
            let l = read_varint(encoded, &mut pos)?;
            let label_end = pos.checked_add(l)?;
            if *encoded.get(pos)? != TAG_1 {
                return None;
            }
            pos += 1;
            let n = read_varint(encoded, &mut pos)?;
            let name = encoded.get(pos..pos.checked_add(n)?)?;
            pos += n;
            if *encoded.get(pos)? != TAG_2 {
                return None;
            }
            pos += 1;
            let v = read_varint(encoded, &mut pos)?;
            let value = encoded.get(pos..pos.checked_add(v)?)?;
            pos += v;
            if n == 0 || v == 0 || pos != label_end {
                return None;
            }
            let utf8 = |x: &[u8]| x.is_ascii() || std::str::from_utf8(x).is_ok();
            if whole.is_none() && !(utf8(name) && utf8(value)) {
                return None;
            }
            max_name = max_name.max(n);
            max_value = max_value.max(v);
            len += 1;
        }
        Some(ProtoLabels {
            encoded,
            whole,
            hash: xxh3_64(encoded),
            len,
            max_name: u32::try_from(max_name).unwrap_or(u32::MAX),
            max_value: u32::try_from(max_value).unwrap_or(u32::MAX),
        })
    }

    /// What the parse found, for [`ProtoLabels::parsed_before`].
    pub fn figures(&self) -> ProtoFigures {
        ProtoFigures { hash: self.hash, len: self.len, max_name: self.max_name, max_value: self.max_value }
    }

    /// The label set of `encoded` without parsing it again: the caller vouches that `encoded`
    /// is byte for byte an encoding that [`ProtoLabels::parse`] accepted with `figures` (e.g. a
    /// cache keyed by the bytes, which compares them). Strings are still checked for UTF-8 when
    /// read, so figures of other bytes give wrong hashes and limit checks, never bad strings.
    pub fn parsed_before(encoded: &'a [u8], figures: ProtoFigures) -> Self {
        let ProtoFigures { hash, len, max_name, max_value } = figures;
        ProtoLabels { encoded, whole: None, hash, len, max_name, max_value }
    }

    /// Whether the names are strictly increasing (sorted, no repeats).
    pub fn is_sorted(&self) -> bool {
        let mut pairs = self.pairs();
        let Some((mut prev, _)) = pairs.next() else { return true };
        pairs.all(|(n, _)| std::mem::replace(&mut prev, n) < n)
    }

    /// The `(name, value)` pairs, in the order sent.
    pub fn pairs(&self) -> ProtoPairs<'a> {
        ProtoPairs { b: self.encoded, whole: self.whole, pos: 0 }
    }

    /// The `(name, value)` pairs as bytes, without converting them to `str` (to compare them).
    pub fn byte_pairs(&self) -> ProtoBytePairs<'a> {
        ProtoBytePairs { b: self.encoded, pos: 0 }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the longest name.
    pub fn max_name_len(&self) -> usize {
        self.max_name as usize
    }

    /// Bytes of the longest value.
    pub fn max_value_len(&self) -> usize {
        self.max_value as usize
    }

    /// [`proto_labels_hash`] of the pairs.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The encoded bytes.
    pub fn encoded(&self) -> &'a [u8] {
        self.encoded
    }
}

/// Iterator over the pairs of [`ProtoLabels`].
#[derive(Debug, Clone)]
pub struct ProtoPairs<'a> {
    b: &'a [u8],
    whole: Option<&'a str>,
    pos: usize,
}

impl<'a> ProtoPairs<'a> {
    /// The string at `b[at..at + n]` (checked UTF-8 by `ProtoLabels::parse`).
    #[inline]
    fn str_at(&self, at: usize, n: usize) -> Option<&'a str> {
        match self.whole {
            Some(s) => s.get(at..at.checked_add(n)?),
            None => std::str::from_utf8(self.b.get(at..at.checked_add(n)?)?).ok(),
        }
    }
}

/// Iterator over the pairs of [`ProtoLabels`] as bytes.
#[derive(Debug, Clone)]
pub struct ProtoBytePairs<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ProtoBytePairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        // The layout was checked by `ProtoLabels::parse`.
        let mut pos = self.pos + 1;
        read_varint(self.b, &mut pos)?;
        pos += 1;
        let n = read_varint(self.b, &mut pos)?;
        let name = self.b.get(pos..pos.checked_add(n)?)?;
        pos += n + 1;
        let v = read_varint(self.b, &mut pos)?;
        let value = self.b.get(pos..pos.checked_add(v)?)?;
        self.pos = pos + v;
        Some((name, value))
    }
}

impl<'a> Iterator for ProtoPairs<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        // The layout was checked by `ProtoLabels::parse`.
        let mut pos = self.pos + 1;
        read_varint(self.b, &mut pos)?;
        pos += 1;
        let n = read_varint(self.b, &mut pos)?;
        let name = self.str_at(pos, n)?;
        pos += n + 1;
        let v = read_varint(self.b, &mut pos)?;
        let value = self.str_at(pos, v)?;
        self.pos = pos + v;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_lengths() {
        for (v, n) in [(0, 1), (1, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (usize::MAX, 10)] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), n, "{v}");
        }
    }

    /// The small-label fast path writes what the byte-by-byte encoder writes, on both sides of
    /// every varint boundary (label length 127/128, string length 127/128).
    #[test]
    fn fast_path_matches_the_plain_encoder() {
        let lens = [1usize, 2, 58, 59, 60, 61, 62, 63, 64, 100, 122, 123, 124, 126, 127, 128, 129, 300];
        for &nl in &lens {
            for &vl in &lens {
                let (n, v) = ("n".repeat(nl), "v".repeat(vl));
                let pairs = [("a", "b"), (n.as_str(), v.as_str()), ("z", "y")];
                let mut fast = Vec::new();
                encode_proto_labels(pairs.iter().copied(), &mut fast);
                let mut plain = Vec::new();
                for (n, v) in pairs {
                    encode_label(n, v, &mut plain);
                }
                assert_eq!(fast, plain, "name {nl} bytes, value {vl} bytes");
                assert!(ProtoLabels::parse(&fast).is_some_and(|p| p.pairs().eq(pairs)), "{nl} {vl}");
            }
        }
    }

    #[test]
    fn only_the_exact_encoding_is_accepted() {
        let pairs = [("__name__", "up"), ("job", "node")];
        let mut enc = Vec::new();
        encode_proto_labels(pairs.iter().copied(), &mut enc);
        let p = ProtoLabels::parse(&enc).unwrap();
        assert_eq!(p.pairs().collect::<Vec<_>>(), pairs);
        assert_eq!((p.len(), p.max_name_len(), p.max_value_len()), (2, 8, 4));
        assert_eq!(p.hash(), proto_labels_hash(pairs.iter().copied()));
        assert_eq!(p.hash(), xxh3_64(&enc));
        // Trailing bytes, a missing byte, a length that does not add up.
        let mut longer = enc.clone();
        longer.push(0);
        assert!(ProtoLabels::parse(&longer).is_none());
        assert!(ProtoLabels::parse(&enc[..enc.len() - 1]).is_none());
        let mut bad_len = enc.clone();
        bad_len[1] += 1;
        assert!(ProtoLabels::parse(&bad_len).is_none());
        // Not UTF-8.
        let mut not_utf8 = enc.clone();
        *not_utf8.last_mut().unwrap() = 0xff;
        assert!(ProtoLabels::parse(&not_utf8).is_none());
        // A non-minimal varint for the name length (valid protobuf, not canonical).
        let mut loose = vec![TAG_1, 13, TAG_1, 0x88, 0x00];
        loose.extend_from_slice(b"__name__");
        loose.extend_from_slice(&[TAG_2, 2, b'u', b'p']);
        assert!(ProtoLabels::parse(&loose).is_none());
        // Value before name.
        assert!(ProtoLabels::parse(&[TAG_1, 6, TAG_2, 1, b'v', TAG_1, 1, b'n']).is_none());
        // A long value (two-byte lengths) that is not UTF-8.
        let mut long = Vec::new();
        encode_proto_labels([("a", "é".repeat(100).as_str())], &mut long);
        assert!(ProtoLabels::parse(&long).is_some());
        let at = long.len() - 1;
        long[at] = 0xff;
        assert!(ProtoLabels::parse(&long).is_none());
        // Empty strings are refused; unsorted or repeated names are accepted but not sorted.
        for bad in [vec![("a", "")], vec![("", "1")]] {
            let mut e = Vec::new();
            encode_proto_labels(bad.iter().copied(), &mut e);
            assert!(ProtoLabels::parse(&e).is_none(), "{bad:?}");
        }
        for unsorted in [vec![("job", "node"), ("__name__", "up")], vec![("a", "1"), ("a", "2")]] {
            let mut e = Vec::new();
            encode_proto_labels(unsorted.iter().copied(), &mut e);
            assert!(!ProtoLabels::parse(&e).unwrap().is_sorted(), "{unsorted:?}");
        }
        assert!(p.is_sorted());
        assert!(ProtoLabels::parse(&[]).is_some_and(|p| p.is_sorted() && p.is_empty()));
    }

    proptest! {
        /// Whatever the string lengths (one- and two-byte varints), the encoding of sorted pairs is
        /// accepted back with the same pairs and hash. (That it is what prost writes is checked in
        /// the receiver.)
        #[test]
        fn encoding_round_trips(names in proptest::collection::btree_set("[a-z_]{1,8}", 0..6), long in 0usize..300, accent in any::<bool>()) {
            let values: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{n}{}{}", "v".repeat(i * long), if accent { "é" } else { "" })).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
            let mut enc = Vec::new();
            encode_proto_labels(pairs.iter().copied(), &mut enc);
            let p = ProtoLabels::parse(&enc);
            prop_assert!(p.is_some());
            if let Some(p) = p {
                prop_assert_eq!(p.hash(), proto_labels_hash(pairs.iter().copied()));
                prop_assert_eq!(p.pairs().collect::<Vec<_>>(), pairs.clone());
                let bytes: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
                prop_assert_eq!(p.byte_pairs().collect::<Vec<_>>(), bytes);
                prop_assert!(p.is_sorted());
                // Rebuilt from the figures of a parse of the same bytes, it reads the same.
                let q = ProtoLabels::parsed_before(&enc, p.figures());
                prop_assert_eq!(q.figures(), p.figures());
                prop_assert_eq!((q.hash(), q.len(), q.max_name_len(), q.max_value_len()), (p.hash(), p.len(), p.max_name_len(), p.max_value_len()));
                prop_assert_eq!(q.pairs().collect::<Vec<_>>(), pairs.clone());
                prop_assert_eq!(q.is_sorted(), p.is_sorted());
            }
        }
    }
}
