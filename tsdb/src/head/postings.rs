//! Postings lists of the head index: series refs in increasing order, stored compactly. Most
//! label pairs of a high-cardinality label (`id`, `pod`, …) have one series, held inline; longer
//! lists are the gaps between successive refs as LEB128 varints, so that refs created one after
//! another (the common case) cost one byte each instead of eight.

/// Sorted, distinct series refs. 16 bytes inline; one heap allocation for a longer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Postings {
    /// A single ref.
    One(u64),
    /// Two refs or more.
    Many(Box<Packed>),
}

/// Two refs or more, delta-coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The first ref, then the gap to each next one, as varints.
    bytes: Vec<u8>,
    /// The last ref (the append fast path compares with it).
    last: u64,
    len: usize,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the delta-coded refs of `bytes`; stops at a truncated varint (never written).
#[derive(Debug, Clone)]
pub(crate) struct PackedIter<'a> {
    bytes: std::slice::Iter<'a, u8>,
    cur: u64,
}

impl Iterator for PackedIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = *self.bytes.next()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        self.cur = self.cur.wrapping_add(v);
        Some(self.cur)
    }
}

/// The refs of a [`Postings`] list, in order.
#[derive(Debug, Clone)]
pub(crate) enum Iter<'a> {
    One(std::option::IntoIter<u64>),
    Many(PackedIter<'a>),
}

impl Iterator for Iter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        match self {
            Iter::One(o) => o.next(),
            Iter::Many(p) => p.next(),
        }
    }
}

impl Packed {
    fn from_sorted(refs: &[u64]) -> Packed {
        let mut bytes = Vec::with_capacity(refs.len() + 8);
        let mut prev = 0u64;
        for &r in refs {
            put_uvarint(&mut bytes, r.wrapping_sub(prev));
            prev = r;
        }
        bytes.shrink_to_fit();
        Packed { bytes, last: prev, len: refs.len() }
    }

    fn push(&mut self, r: u64) {
        if self.bytes.len() == self.bytes.capacity() {
            // Grow by an eighth: a list of a million refs should not hold a megabyte spare.
            self.bytes.reserve_exact((self.bytes.len() / 8).max(8));
        }
        put_uvarint(&mut self.bytes, r.wrapping_sub(self.last));
        self.last = r;
        self.len += 1;
    }
}

impl Postings {
    /// The list of one ref.
    pub(crate) fn new(r: u64) -> Postings {
        Postings::One(r)
    }

    /// A list of sorted, distinct refs; `None` when empty.
    pub(crate) fn from_sorted(refs: &[u64]) -> Option<Postings> {
        match refs {
            [] => None,
            [one] => Some(Postings::One(*one)),
            _ => Some(Postings::Many(Box::new(Packed::from_sorted(refs)))),
        }
    }

    /// Number of refs.
    pub(crate) fn len(&self) -> usize {
        match self {
            Postings::One(_) => 1,
            Postings::Many(p) => p.len,
        }
    }

    /// The refs in increasing order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        match self {
            Postings::One(r) => Iter::One(Some(*r).into_iter()),
            Postings::Many(p) => Iter::Many(PackedIter { bytes: p.bytes.iter(), cur: 0 }),
        }
    }

    /// The refs as a vector.
    pub(crate) fn to_vec(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.len());
        v.extend(self.iter());
        v
    }

    fn last(&self) -> u64 {
        match self {
            Postings::One(r) => *r,
            Postings::Many(p) => p.last,
        }
    }

    /// Adds `r` (cheap when it is the largest ref yet, as for a new series).
    pub(crate) fn insert(&mut self, r: u64) {
        if r > self.last() {
            match self {
                Postings::One(first) => {
                    *self = Postings::Many(Box::new(Packed::from_sorted(&[*first, r])));
                }
                Postings::Many(p) => p.push(r),
            }
            return;
        }
        let mut v = self.to_vec();
        if let Err(pos) = v.binary_search(&r) {
            v.insert(pos, r);
            if let Some(p) = Postings::from_sorted(&v) {
                *self = p;
            }
        }
    }

    /// Removes the refs of sorted `gone`; `false` when none is left.
    pub(crate) fn remove_sorted(&mut self, gone: &[u64]) -> bool {
        let v: Vec<u64> = self.iter().filter(|x| gone.binary_search(x).is_err()).collect();
        if v.len() == self.len() {
            return true;
        }
        match Postings::from_sorted(&v) {
            Some(p) => {
                *self = p;
                true
            }
            None => false,
        }
    }

    /// Heap bytes held (not counting the 16 bytes of the list itself).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Postings::One(_) => 0,
            Postings::Many(p) => std::mem::size_of::<Packed>() + p.bytes.capacity(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_list_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Postings>(), 16);
    }

    proptest! {
        /// Inserting in any order and removing any subset give what a `BTreeSet` gives, for
        /// refs small and huge (gaps of one byte to ten).
        #[test]
        fn postings_match_btreeset(
            refs in proptest::collection::vec(prop_oneof![0u64..300, any::<u64>()], 1..60),
            gone in proptest::collection::vec(0usize..60, 0..30),
        ) {
            let mut p = Postings::new(refs[0]);
            let mut want = BTreeSet::from([refs[0]]);
            for &r in &refs[1..] {
                p.insert(r);
                want.insert(r);
                prop_assert_eq!(p.to_vec(), want.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(p.len(), want.len());
            }
            let mut g: Vec<u64> = gone.iter().filter_map(|&i| refs.get(i).copied()).collect();
            g.sort_unstable();
            g.dedup();
            for r in &g {
                want.remove(r);
            }
            let left = p.remove_sorted(&g);
            prop_assert_eq!(left, !want.is_empty());
            if left {
                prop_assert_eq!(p.to_vec(), want.into_iter().collect::<Vec<_>>());
            }
        }
    }
}
