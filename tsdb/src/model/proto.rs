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
pub fn encode_proto_labels<'s>(pairs: impl IntoIterator<Item = (&'s str, &'s str)>, out: &mut Vec<u8>) {
    for (n, v) in pairs {
        out.push(TAG_1);
        put_varint(out, label_len(n, v));
        out.push(TAG_1);
        put_varint(out, n.len());
        out.extend_from_slice(n.as_bytes());
        out.push(TAG_2);
        put_varint(out, v.len());
        out.extend_from_slice(v.as_bytes());
    }
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

/// A label set with its remote-write encoding at hand: name-value pairs without empty names or
/// values and exactly the bytes [`encode_proto_labels`] writes for them, as checked by
/// [`ProtoLabels::new`], so that an appender can trust the hash computed from the bytes. Whether
/// the names are sorted (as a label set must be to be stored under that hash) is checked only
/// when needed ([`ProtoLabels::is_sorted`]): a series the head already holds with these exact
/// labels proves it.
#[derive(Debug, Clone, Copy)]
pub struct ProtoLabels<'a> {
    pairs: &'a [(&'a str, &'a str)],
    hash: u64,
}

/// Whether `b[pos..]` starts with `want`; the position after it.
fn expect(b: &[u8], pos: usize, want: &[u8]) -> Option<usize> {
    let end = pos.checked_add(want.len())?;
    let got = b.get(pos..end)?;
    // Borrowed from the same buffer (the receiver's case): no need to compare the bytes.
    (std::ptr::eq(got.as_ptr(), want.as_ptr()) || got == want).then_some(end)
}

fn expect_varint(b: &[u8], mut pos: usize, v: usize) -> Option<usize> {
    let mut v = v as u64;
    loop {
        let byte = *b.get(pos)?;
        pos += 1;
        if v < 0x80 {
            return (u64::from(byte) == v).then_some(pos);
        }
        if byte != ((v as u8) | 0x80) {
            return None;
        }
        v >>= 7;
    }
}

impl<'a> ProtoLabels<'a> {
    /// `pairs` with their encoding `encoded`, or `None` unless no name or value is empty and
    /// `encoded` is exactly their [`encode_proto_labels`] form (cheap when the strings are
    /// borrowed from `encoded`: no string is compared).
    pub fn new(pairs: &'a [(&'a str, &'a str)], encoded: &[u8]) -> Option<Self> {
        let mut pos = 0;
        for &(n, v) in pairs {
            if n.is_empty() || v.is_empty() {
                return None;
            }
            pos = expect(encoded, pos, &[TAG_1])?;
            pos = expect_varint(encoded, pos, label_len(n, v))?;
            pos = expect(encoded, pos, &[TAG_1])?;
            pos = expect_varint(encoded, pos, n.len())?;
            pos = expect(encoded, pos, n.as_bytes())?;
            pos = expect(encoded, pos, &[TAG_2])?;
            pos = expect_varint(encoded, pos, v.len())?;
            pos = expect(encoded, pos, v.as_bytes())?;
        }
        (pos == encoded.len()).then(|| ProtoLabels { pairs, hash: xxh3_64(encoded) })
    }

    /// Whether the names are strictly increasing (sorted, no repeats).
    pub fn is_sorted(&self) -> bool {
        self.pairs.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0))
    }

    /// The pairs, as given.
    pub fn pairs(&self) -> &'a [(&'a str, &'a str)] {
        self.pairs
    }

    /// [`proto_labels_hash`] of the pairs.
    pub fn hash(&self) -> u64 {
        self.hash
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

    #[test]
    fn only_the_exact_sorted_encoding_is_accepted() {
        let pairs = [("__name__", "up"), ("job", "node")];
        let mut enc = Vec::new();
        encode_proto_labels(pairs.iter().copied(), &mut enc);
        let p = ProtoLabels::new(&pairs, &enc).unwrap();
        assert_eq!(p.hash(), proto_labels_hash(pairs.iter().copied()));
        assert_eq!(p.hash(), xxh3_64(&enc));
        // Trailing bytes, a missing byte, a changed byte.
        let mut longer = enc.clone();
        longer.push(0);
        assert!(ProtoLabels::new(&pairs, &longer).is_none());
        assert!(ProtoLabels::new(&pairs, &enc[..enc.len() - 1]).is_none());
        let mut changed = enc.clone();
        *changed.last_mut().unwrap() = b'x';
        assert!(ProtoLabels::new(&pairs, &changed).is_none());
        // A non-minimal varint for the name length (valid protobuf, not canonical).
        let mut loose = vec![TAG_1, 13, TAG_1, 0x88, 0x00];
        loose.extend_from_slice(b"__name__");
        loose.extend_from_slice(&[TAG_2, 2, b'u', b'p']);
        assert!(ProtoLabels::new(&pairs[..1], &loose).is_none());
        // Empty strings are refused; unsorted or repeated names are accepted but not sorted.
        for bad in [vec![("a", "")], vec![("", "1")]] {
            let mut e = Vec::new();
            encode_proto_labels(bad.iter().copied(), &mut e);
            assert!(ProtoLabels::new(&bad, &e).is_none(), "{bad:?}");
        }
        for unsorted in [vec![("job", "node"), ("__name__", "up")], vec![("a", "1"), ("a", "2")]] {
            let mut e = Vec::new();
            encode_proto_labels(unsorted.iter().copied(), &mut e);
            assert!(!ProtoLabels::new(&unsorted, &e).unwrap().is_sorted(), "{unsorted:?}");
        }
        assert!(p.is_sorted());
        assert!(ProtoLabels::new(&[], &[]).is_some_and(|p| p.is_sorted()));
    }

    proptest! {
        /// Whatever the string lengths (one- and two-byte varints), the encoding is accepted back
        /// and hashes as the pairs do. (That it is what prost writes is checked in the receiver.)
        #[test]
        fn encoding_round_trips(names in proptest::collection::btree_set("[a-z_]{1,8}", 0..6), long in 0usize..300) {
            let values: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{n}{}", "v".repeat(i * long))).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
            let mut enc = Vec::new();
            encode_proto_labels(pairs.iter().copied(), &mut enc);
            let p = ProtoLabels::new(&pairs, &enc);
            prop_assert!(p.is_some());
            prop_assert_eq!(p.map(|p| p.hash()), Some(proto_labels_hash(pairs.iter().copied())));
        }
    }
}
