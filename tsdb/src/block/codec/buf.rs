//! Byte-level encoding helpers: varints and fixed-width integers appended to a `Vec<u8>`, and a
//! decoder over `&[u8]` that returns [`CodecError`] instead of panicking on bad input.

use super::CodecError;

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a zig-zag signed varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Zig-zag: small magnitudes of either sign become small unsigned numbers.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bytes [`put_uvarint`] writes for `v`.
#[inline]
pub fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes [`put_varint`] writes for `v`.
#[inline]
pub fn varint_len(v: i64) -> usize {
    uvarint_len(zigzag(v))
}

/// Reads from a byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let b = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| CodecError::Truncated)?))
    }

    /// A little-endian `u64`.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| CodecError::Truncated)?))
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    #[inline]
    pub fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(CodecError::VarintOverflow);
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CodecError::VarintOverflow)
    }

    /// A zig-zag signed varint.
    #[inline]
    pub fn varint(&mut self) -> Result<i64, CodecError> {
        self.uvarint().map(unzigzag)
    }

    /// A uvarint used as a count or length, which must not exceed `max`.
    pub fn len(&mut self, max: usize, what: &'static str) -> Result<usize, CodecError> {
        let v = self.uvarint()?;
        usize::try_from(v).ok().filter(|&v| v <= max).ok_or(CodecError::Invalid(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip_with_the_length_they_announce(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            put_uvarint(&mut out, u);
            prop_assert_eq!(out.len(), varint_len(v) + uvarint_len(u));
            let mut d = Dec::new(&out);
            prop_assert_eq!(d.varint().unwrap(), v);
            prop_assert_eq!(d.uvarint().unwrap(), u);
            prop_assert_eq!(d.remaining(), 0);
        }
    }

    #[test]
    fn an_eleven_byte_varint_is_an_error() {
        let b = [0xffu8; 11];
        assert_eq!(Dec::new(&b).uvarint(), Err(CodecError::VarintOverflow));
        let b = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Dec::new(&b).uvarint(), Err(CodecError::VarintOverflow));
        assert_eq!(Dec::new(&[0x80]).uvarint(), Err(CodecError::Truncated));
    }
}
