//! Quantiles and fractions of classic histograms (`le` buckets), as Prometheus computes them
//! (`promql/quantile.go`).

use super::math::almost_equal;

/// One cumulative bucket: observations `<= upper`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

/// Tolerance under which bucket counts that differ are considered equal (float noise from rates).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// The φ-quantile of a classic histogram, and whether the counts had to be forced to be monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(forced) = prepare(buckets) else { return (f64::NAN, false) };
    if buckets.len() < 2 {
        return (f64::NAN, false);
    }
    let n = buckets.len();
    let count = |i: usize| buckets.get(i).map_or(f64::NAN, |b| b.count);
    let upper = |i: usize| buckets.get(i).map_or(f64::NAN, |b| b.upper);
    let observations = count(n - 1);
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket: first bucket with count >= rank. Written as
    // `!(count >= rank)`, not `count < rank`: with NaN counts no bucket qualifies and the answer
    // is the +Inf bucket's lower bound, as in Prometheus.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let b = buckets.get(..n - 1).map_or(0, |bs| bs.partition_point(|x| !(x.count >= rank)));
    if b == n - 1 {
        return (upper(n - 2), forced);
    }
    if b == 0 && upper(0) <= 0.0 {
        return (upper(0), forced);
    }
    let (mut start, end, mut c) = (0.0, upper(b), count(b));
    if b > 0 {
        start = upper(b - 1);
        c -= count(b - 1);
        rank -= count(b - 1);
    }
    (start + (end - start) * (rank / c), forced)
}

/// The fraction of observations between `lower` and `upper`, interpolating linearly inside
/// buckets (the first bucket starts at 0 when its upper bound is positive).
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if prepare(buckets).is_none() || buckets.len() < 2 {
        return f64::NAN;
    }
    let total = buckets.last().map_or(f64::NAN, |b| b.count);
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let rank_at = |x: f64| -> f64 {
        let mut prev_upper = f64::NEG_INFINITY;
        let mut prev_count = 0.0;
        for (i, b) in buckets.iter().enumerate() {
            if x <= b.upper {
                let lo =
                    if i == 0 { if b.upper > 0.0 { 0.0 } else { f64::NEG_INFINITY } } else { prev_upper };
                if b.upper.is_infinite() || lo.is_infinite() {
                    return if x >= b.upper { b.count } else { prev_count };
                }
                if x <= lo {
                    return prev_count;
                }
                return prev_count + (b.count - prev_count) * (x - lo) / (b.upper - lo);
            }
            prev_upper = b.upper;
            prev_count = b.count;
        }
        total
    };
    (rank_at(upper) - rank_at(lower)) / total
}

/// Sorts by upper bound, checks for the +Inf bucket, merges equal bounds and forces the counts to
/// be monotonic. `None` when there is no +Inf bucket; otherwise whether counts were forced.
fn prepare(buckets: &mut Vec<Bucket>) -> Option<bool> {
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return None;
    }
    // coalesceBuckets
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
    // ensureMonotonicAndIgnoreSmallDeltas
    let mut forced = false;
    let mut prev = buckets.first().map_or(0.0, |b| b.count);
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    Some(forced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|&(upper, count)| Bucket { upper, count }).collect()
    }

    #[test]
    fn quantile_interpolates_within_a_bucket() {
        let mut bs = b(&[(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)]);
        let (q, forced) = bucket_quantile(0.75, &mut bs);
        assert!((q - 0.15).abs() < 1e-12 && !forced);
    }

    #[test]
    fn nan_counts_give_the_highest_finite_bound_as_in_prometheus() {
        let mut bs = b(&[(0.1, f64::NAN), (5.0, f64::NAN), (f64::INFINITY, f64::NAN)]);
        assert_eq!(bucket_quantile(0.3, &mut bs).0, 5.0);
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_finite_bound() {
        let mut bs = b(&[(1.0, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(0.99, &mut bs).0, 1.0);
    }

    #[test]
    fn no_inf_bucket_gives_nan_and_decreasing_counts_are_forced() {
        assert!(bucket_quantile(0.5, &mut b(&[(1.0, 1.0)])).0.is_nan());
        let (_, forced) = bucket_quantile(0.5, &mut b(&[(1.0, 5.0), (2.0, 4.0), (f64::INFINITY, 6.0)]));
        assert!(forced);
    }

    #[test]
    fn fraction_of_uniform_buckets() {
        let mut bs = b(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]);
        assert!((bucket_fraction(0.5, 1.5, &mut bs) - 0.5).abs() < 1e-12);
    }
}
