//! Fixed-width bit packing, least significant bit first.

use super::CodecError;

/// Bytes that `n` values of `width` bits take.
#[inline]
pub fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

#[inline]
fn mask(width: u32) -> u64 {
    if width >= 64 { u64::MAX } else { (1u64 << width) - 1 }
}

/// Appends `vals` packed at `width` bits each (bits above `width` are ignored).
pub fn pack(out: &mut Vec<u8>, vals: impl IntoIterator<Item = u64>, width: u32) {
    if width == 0 {
        return;
    }
    let m = mask(width);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for v in vals {
        acc |= u128::from(v & m) << bits;
        bits += width;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

/// Reads `n` values of `width` bits from the start of `data` into `out`; returns the bytes used.
pub fn unpack(data: &[u8], n: usize, width: u32, out: &mut Vec<u64>) -> Result<usize, CodecError> {
    if width > 64 {
        return Err(CodecError::Invalid("bit width above 64"));
    }
    let len = packed_len(n, width);
    let data = data.get(..len).ok_or(CodecError::Truncated)?;
    if width == 0 {
        out.extend(std::iter::repeat_n(0, n));
        return Ok(0);
    }
    let m = mask(width);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    let mut bytes = data.iter();
    for _ in 0..n {
        while bits < width {
            acc |= u128::from(*bytes.next().ok_or(CodecError::Truncated)?) << bits;
            bits += 8;
        }
        out.push((acc as u64) & m);
        acc >>= width;
        bits -= width;
    }
    Ok(len)
}

/// Bits needed to hold `v` (0 for 0).
#[inline]
pub fn bit_len(v: u64) -> u32 {
    64 - v.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn packed_values_unpack_to_themselves(width in 0u32..=64, raw in proptest::collection::vec(any::<u64>(), 0..300)) {
            let vals: Vec<u64> = raw.iter().map(|v| v & mask(width)).map(|v| if width == 0 { 0 } else { v }).collect();
            let mut out = Vec::new();
            pack(&mut out, vals.iter().copied(), width);
            prop_assert_eq!(out.len(), packed_len(vals.len(), width));
            let mut back = Vec::new();
            prop_assert_eq!(unpack(&out, vals.len(), width, &mut back).unwrap(), out.len());
            prop_assert_eq!(back, vals);
        }
    }
}
