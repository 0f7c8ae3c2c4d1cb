//! Bit streams for the Gorilla chunk codec: a writer that appends into a `Vec<u8>` in place and a
//! reader over a byte slice. Bits are written most significant first, as Prometheus' `bstream`.

/// Appends bits to a byte vector. The last byte may be partly filled.
///
/// `extra` is the writing codec's own small state, kept here because it fits in what would
/// otherwise be the writer's padding after `free` (a head chunk per series: 8 bytes a series).
#[derive(Debug, Clone, Default)]
pub struct BitWriter<S = ()> {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 when the last byte is full or there is none).
    free: u8,
    /// The codec's state.
    pub extra: S,
}

impl<S: Default> BitWriter<S> {
    /// A writer that starts after `prefix` (whole bytes, e.g. a chunk header).
    pub fn with_prefix(prefix: &[u8]) -> Self {
        Self::with_prefix_capacity(prefix, 32)
    }

    /// A writer that starts after `prefix`, with room for `capacity` bytes before it grows.
    pub fn with_prefix_capacity(prefix: &[u8], capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity.max(prefix.len()));
        bytes.extend_from_slice(prefix);
        BitWriter { bytes, free: 0, extra: S::default() }
    }
}

impl<S> BitWriter<S> {
    /// The bytes written so far (the last one zero-padded).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Mutable access to whole bytes already written (for headers).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Releases the spare capacity; the writer stays usable.
    pub fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// Bytes of heap memory held.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    fn push_byte(&mut self, b: u8) {
        if self.bytes.len() == self.bytes.capacity() {
            // Grow in small steps: a head chunk holds ~120 samples of 1 to 10 bytes each, and
            // the default doubling would leave up to half of each chunk's allocation unused
            // (an eighth at most leaves 6 % on average, for ~20 reallocations a kilobyte).
            let step = (self.bytes.len() / 8).clamp(16, 128);
            self.bytes.reserve_exact(step);
        }
        self.bytes.push(b);
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte(0);
            self.free = 8;
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `n` bits of `v` (n ≤ 64), most significant first.
    #[inline]
    pub fn write_bits(&mut self, v: u64, n: u8) {
        let mut n = u32::from(n.min(64));
        while n > 0 {
            if self.free == 0 {
                self.push_byte(0);
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            // The `take` bits of v just below bit n.
            let chunk = (v >> (n - take)) & ((1u64 << take) - 1);
            let shift = u32::from(self.free) - take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= (chunk as u8) << shift;
            }
            self.free -= take as u8;
            n -= take;
        }
    }

    /// Writes a whole byte (not necessarily byte-aligned).
    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }
}

/// Reads bits from a byte slice; every read returns `None` past the end.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    next: usize,
    /// Unread bits, left-aligned.
    buf: u64,
    /// Number of valid bits in `buf`.
    valid: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`, starting at its first bit.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, next: 0, buf: 0, valid: 0 }
    }

    #[inline]
    fn refill(&mut self) {
        while self.valid <= 56 {
            let Some(&b) = self.data.get(self.next) else { return };
            self.buf |= u64::from(b) << (56 - self.valid);
            self.valid += 8;
            self.next += 1;
        }
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        if self.valid == 0 {
            self.refill();
            if self.valid == 0 {
                return None;
            }
        }
        let bit = self.buf >> 63 == 1;
        self.buf <<= 1;
        self.valid -= 1;
        Some(bit)
    }

    /// Reads `n` bits (n ≤ 64) as the low bits of the result.
    #[inline]
    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        let n = u32::from(n);
        if n == 0 {
            return Some(0);
        }
        if n > 56 {
            let hi = self.read_bits((n - 32) as u8)?;
            let lo = self.read_bits(32)?;
            return Some((hi << 32) | lo);
        }
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return None;
            }
        }
        let out = self.buf >> (64 - n);
        self.buf <<= n;
        self.valid -= n;
        Some(out)
    }

    /// Reads an unsigned LEB128 varint (bit-aligned, as Prometheus' bstream reads it).
    pub fn read_uvarint(&mut self) -> Option<u64> {
        let mut x: u64 = 0;
        let mut s: u32 = 0;
        for i in 0..10 {
            let b = self.read_bits(8)?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return None;
                }
                return Some(x | (b << s));
            }
            x |= (b & 0x7f) << s;
            s += 7;
        }
        None
    }

    /// Reads a zig-zag varint.
    pub fn read_varint(&mut self) -> Option<i64> {
        let u = self.read_uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Writes `v` as an unsigned LEB128 varint.
pub fn write_uvarint<S>(w: &mut BitWriter<S>, mut v: u64) {
    while v >= 0x80 {
        w.write_byte((v as u8) | 0x80);
        v >>= 7;
    }
    w.write_byte(v as u8);
}

/// Writes `v` as a zig-zag varint.
pub fn write_varint<S>(w: &mut BitWriter<S>, v: i64) {
    write_uvarint(w, ((v << 1) ^ (v >> 63)) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..200)) {
            let mut w = BitWriter::<()>::default();
            for &(v, n) in &items {
                w.write_bits(v, n);
            }
            let mut r = BitReader::new(w.bytes());
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n), Some(v & mask));
            }
        }

        #[test]
        fn varints_round_trip(vals in proptest::collection::vec(any::<i64>(), 0..50), lead in 0u8..8) {
            let mut w = BitWriter::<()>::default();
            w.write_bits(0, lead);
            for &v in &vals {
                write_varint(&mut w, v);
                write_uvarint(&mut w, v as u64);
            }
            let mut r = BitReader::new(w.bytes());
            r.read_bits(lead);
            for &v in &vals {
                prop_assert_eq!(r.read_varint(), Some(v));
                prop_assert_eq!(r.read_uvarint(), Some(v as u64));
            }
        }
    }

    #[test]
    fn reads_past_the_end_are_none() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(4), Some(0xf));
        assert_eq!(r.read_bits(5), None);
        assert_eq!(r.read_bit(), Some(true));
    }
}
