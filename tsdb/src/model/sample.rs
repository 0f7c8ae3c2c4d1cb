/// Bit pattern of Prometheus' staleness marker: a NaN that no arithmetic produces.
///
/// It must be stored and returned bit-exactly; any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`.
#[inline]
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not merely some NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Timestamp in milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; compared bit-wise by `PartialEq` so NaN payloads survive round trips in tests.
    pub v: f64,
}

impl Sample {
    /// Makes a sample.
    #[inline]
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

impl Eq for Sample {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_a_nan_distinct_from_the_default_nan() {
        assert!(stale_nan().is_nan());
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert_eq!(stale_nan().to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn samples_compare_bitwise() {
        assert_eq!(Sample::new(1, f64::NAN), Sample::new(1, f64::NAN));
        assert_ne!(Sample::new(1, f64::NAN), Sample::new(1, stale_nan()));
        assert_ne!(Sample::new(1, 0.0), Sample::new(1, -0.0));
    }
}
