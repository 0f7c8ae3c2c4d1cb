//! Value codecs: `const`, `raw`, `decimal`, `decimal-rc` and `bits-rc`. See `docs/format/chunks.md`, "Value
//! codecs".

use super::CodecError;
use super::buf::{Dec, put_uvarint, uvarint_len};
use super::{ints, rc};

/// `const`: every value has the same bits.
pub mod constant {
    use super::*;

    /// 8 bytes if every value has the bits of the first; `None` otherwise or when empty.
    pub fn estimate(vals: &[f64]) -> Option<usize> {
        let first = vals.first()?.to_bits();
        vals.iter().all(|v| v.to_bits() == first).then_some(8)
    }

    /// Appends the encoding (the first value).
    pub fn encode(out: &mut Vec<u8>, vals: &[f64]) {
        out.extend_from_slice(&vals.first().map_or(0, |v| v.to_bits()).to_le_bytes());
    }

    /// Decodes `n` copies of the stored value.
    pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<f64>, CodecError> {
        let v = f64::from_bits(d.u64()?);
        Ok(vec![v; n])
    }
}

/// `raw`: 8 bytes per value.
pub mod raw {
    use super::*;

    /// `8 × n`.
    pub fn estimate(vals: &[f64]) -> usize {
        8 * vals.len()
    }

    /// Appends the encoding.
    pub fn encode(out: &mut Vec<u8>, vals: &[f64]) {
        for v in vals {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    /// Decodes `n` values.
    pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<f64>, CodecError> {
        (0..n).map(|_| d.u64().map(f64::from_bits)).collect()
    }
}

/// `decimal`: `v = m / 10^exp` with integer mantissas, plus exceptions.
pub mod decimal {
    use super::*;

    /// Largest exponent: 10^18 is exact in `f64` and keeps mantissas of 1–2 digits meaningful.
    pub const MAX_EXP: usize = 18;

    const POW10: [f64; MAX_EXP + 1] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
        1e18,
    ];

    /// Mantissas must be exact in `f64`.
    const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

    #[inline]
    fn pow10(e: usize) -> f64 {
        POW10.get(e).copied().unwrap_or(1.0)
    }

    /// The value a mantissa and exponent decode to.
    #[inline]
    pub fn value(m: i64, e: usize) -> f64 {
        if e == 0 { m as f64 } else { m as f64 / pow10(e) }
    }

    /// The mantissa of `v` at exponent `e`, if `v` reads back bit-exactly from it.
    #[inline]
    pub fn mantissa(v: f64, e: usize) -> Option<i64> {
        let m = if e == 0 { v } else { (v * pow10(e)).round() };
        // NaN fails this comparison too.
        if m.is_nan() || m.abs() >= MAX_MANTISSA {
            return None;
        }
        let m = m as i64;
        (value(m, e).to_bits() == v.to_bits()).then_some(m)
    }

    fn min_exp(v: f64, hint: usize) -> Option<usize> {
        if mantissa(v, hint).is_some() && (hint == 0 || mantissa(v, hint - 1).is_none()) {
            return Some(hint);
        }
        (0..=MAX_EXP).find(|&e| mantissa(v, e).is_some())
    }

    /// A decimal encoding of a value run.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Plan {
        exp: usize,
        exceptions: Vec<(usize, u64)>,
        mantissas: Vec<i64>,
        size: usize,
    }

    fn plan_at(vals: &[f64], e: usize) -> Plan {
        let mut exceptions = Vec::new();
        let mut mantissas = Vec::with_capacity(vals.len());
        let mut prev = 0i64;
        for (i, &v) in vals.iter().enumerate() {
            match mantissa(v, e) {
                Some(m) => {
                    mantissas.push(m);
                    prev = m;
                }
                None => {
                    exceptions.push((i, v.to_bits()));
                    mantissas.push(prev);
                }
            }
        }
        let mut size = 1 + uvarint_len(exceptions.len() as u64);
        let mut pi = 0usize;
        for &(i, _) in &exceptions {
            size += uvarint_len((i - pi) as u64) + 8;
            pi = i;
        }
        size += ints::estimate(&mantissas);
        Plan { exp: e, exceptions, mantissas, size }
    }

    /// The smallest decimal encoding of `vals`, or `None` when most values are not decimals
    /// (then `xor` or `raw` does better).
    pub fn plan(vals: &[f64]) -> Option<Plan> {
        if vals.is_empty() {
            return None;
        }
        let mut exps = [0usize; MAX_EXP + 2];
        let mut hint = 0;
        let mut decimals = 0;
        for &v in vals {
            match min_exp(v, hint) {
                Some(e) => {
                    hint = e;
                    decimals += 1;
                    if let Some(c) = exps.get_mut(e) {
                        *c += 1;
                    }
                }
                None => {
                    if let Some(c) = exps.get_mut(MAX_EXP + 1) {
                        *c += 1;
                    }
                }
            }
        }
        if decimals * 2 < vals.len() {
            return None;
        }
        // Candidate exponents: each one some value needs.
        (0..=MAX_EXP)
            .filter(|&e| exps.get(e).is_some_and(|&c| c > 0))
            .map(|e| plan_at(vals, e))
            .min_by_key(|p| p.size)
    }

    impl Plan {
        /// Exact encoded size.
        pub fn size(&self) -> usize {
            self.size
        }

        /// How many values are exceptions (stored as raw bits).
        pub fn exceptions(&self) -> usize {
            self.exceptions.len()
        }

        fn encode_header(&self, out: &mut Vec<u8>) {
            out.push(self.exp as u8);
            put_uvarint(out, self.exceptions.len() as u64);
            let mut pi = 0usize;
            for &(i, bits) in &self.exceptions {
                put_uvarint(out, (i - pi) as u64);
                out.extend_from_slice(&bits.to_le_bytes());
                pi = i;
            }
        }

        /// Appends the encoding.
        pub fn encode(&self, out: &mut Vec<u8>) {
            self.encode_header(out);
            ints::encode(out, &self.mantissas);
        }

        /// The `decimal-rc` encoding of the same exponent, exceptions and mantissas (range-coded).
        pub fn encode_rc(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(self.size);
            self.encode_header(&mut out);
            out.extend_from_slice(&rc::encode_best(&self.mantissas));
            out
        }
    }

    /// Decodes `n` values.
    pub fn decode(d: &mut Dec<'_>, n: usize) -> Result<Vec<f64>, CodecError> {
        decode_with(d, n, ints::decode)
    }

    /// Decodes `n` values of `decimal-rc`.
    pub fn decode_rc(d: &mut Dec<'_>, n: usize) -> Result<Vec<f64>, CodecError> {
        decode_with(d, n, rc::decode)
    }

    fn decode_with(
        d: &mut Dec<'_>,
        n: usize,
        mantissas: fn(&mut Dec<'_>, usize) -> Result<Vec<i64>, CodecError>,
    ) -> Result<Vec<f64>, CodecError> {
        let e = usize::from(d.u8()?);
        if e > MAX_EXP {
            return Err(CodecError::Invalid("decimal exponent"));
        }
        let exc_n = d.len(n, "decimal exception count")?;
        let mut exceptions = Vec::with_capacity(exc_n);
        let mut pi = 0usize;
        for k in 0..exc_n {
            let di = d.len(n, "decimal exception index")?;
            if k > 0 && di == 0 {
                return Err(CodecError::Invalid("decimal exception index"));
            }
            pi += di;
            if pi >= n {
                return Err(CodecError::Invalid("decimal exception index"));
            }
            exceptions.push((pi, f64::from_bits(d.u64()?)));
        }
        let mantissas = mantissas(d, n)?;
        let mut out: Vec<f64> = mantissas.into_iter().map(|m| value(m, e)).collect();
        for (i, v) in exceptions {
            if let Some(slot) = out.get_mut(i) {
                *slot = v;
            }
        }
        Ok(out)
    }
}

/// `bits-rc`: the values' bit patterns as `i64`s, range-coded. Full-precision floats.
pub mod bits {
    use super::*;

    /// Whether `bits-rc` applies: `const` does not, and `decimal` (whose plan is `decimal`, if
    /// it applies) does not hold every value.
    pub fn applies(vals: &[f64], decimal: Option<&decimal::Plan>) -> bool {
        !vals.is_empty() && constant::estimate(vals).is_none() && decimal.is_none_or(|p| p.exceptions() > 0)
    }

    /// The encoding (the range-coded sequence of bit patterns).
    pub fn encode_rc(vals: &[f64]) -> Vec<u8> {
        let ints: Vec<i64> = vals.iter().map(|v| v.to_bits() as i64).collect();
        rc::encode_best(&ints)
    }

    /// Decodes `n` values.
    pub fn decode_rc(d: &mut Dec<'_>, n: usize) -> Result<Vec<f64>, CodecError> {
        Ok(rc::decode(d, n)?.into_iter().map(|i| f64::from_bits(i as u64)).collect())
    }
}
