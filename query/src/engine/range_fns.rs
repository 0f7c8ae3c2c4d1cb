//! The functions over range vectors (`rate`, `*_over_time`, …): one window in, one value out.
//! Each follows the Go code of Prometheus 3 (`promql/functions.go`) operation by operation, since
//! test scripts compare results to 1e-6 and float addition is not associative.

use super::error::EvalError;
use super::eval::Window;
use super::functions::Func;
use super::math::{kahan_inc, quantile};
use super::types::Point;

/// Computes `f` over one non-empty window. `params[i][step]` are the function's scalar
/// arguments other than the range vector, in order; `range` is the window length in ms.
pub(crate) fn kernel(
    f: Func,
    w: &Window<'_>,
    params: &[Vec<f64>],
    range: i64,
) -> Result<Option<f64>, EvalError> {
    let pts = w.points;
    let param = |i: usize| params.get(i).and_then(|p| p.get(w.step)).copied().unwrap_or(f64::NAN);
    let (Some(first), Some(last)) = (pts.first(), pts.last()) else { return Ok(None) };
    Ok(match f {
        Func::Rate => extrapolated_rate(w, range, true, true),
        Func::Increase => extrapolated_rate(w, range, true, false),
        Func::Delta => extrapolated_rate(w, range, false, false),
        Func::Irate => instant_value(pts, true),
        Func::Idelta => instant_value(pts, false),
        Func::Deriv => {
            if pts.len() < 2 {
                return Ok(None);
            }
            Some(linear_regression(pts, first.t).0)
        }
        Func::PredictLinear => {
            if pts.len() < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(pts, w.ts);
            Some(intercept + slope * param(0))
        }
        Func::DoubleExponentialSmoothing => {
            let (sf, tf) = (param(0), param(1));
            if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                return Err(EvalError::exec(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                return Err(EvalError::exec(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
            double_exponential_smoothing(pts, sf, tf)
        }
        Func::AvgOverTime => Some(avg(pts)),
        Func::SumOverTime => {
            let (mut sum, mut c) = (0.0, 0.0);
            for p in pts {
                (sum, c) = kahan_inc(p.v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        Func::CountOverTime => Some(pts.len() as f64),
        Func::MaxOverTime => {
            Some(pts.iter().fold(first.v, |m, p| if p.v > m || m.is_nan() { p.v } else { m }))
        }
        Func::MinOverTime => {
            Some(pts.iter().fold(first.v, |m, p| if p.v < m || m.is_nan() { p.v } else { m }))
        }
        Func::StddevOverTime => Some(variance(pts).sqrt()),
        Func::StdvarOverTime => Some(variance(pts)),
        Func::QuantileOverTime => {
            let mut vals: Vec<f64> = pts.iter().map(|p| p.v).collect();
            Some(quantile(param(0), &mut vals))
        }
        Func::MadOverTime => {
            let mut vals: Vec<f64> = pts.iter().map(|p| p.v).collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = pts.iter().map(|p| (p.v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }
        Func::LastOverTime => Some(last.v),
        Func::FirstOverTime => Some(first.v),
        Func::PresentOverTime => Some(1.0),
        Func::TsOfFirstOverTime => Some(first.t as f64 / 1000.0),
        Func::TsOfLastOverTime => Some(last.t as f64 / 1000.0),
        Func::TsOfMaxOverTime => Some(ts_of_extreme(pts, |cur, best| cur >= best || best.is_nan())),
        Func::TsOfMinOverTime => Some(ts_of_extreme(pts, |cur, best| cur <= best || best.is_nan())),
        Func::Changes => Some(
            pts.windows(2)
                .filter(|p| match p {
                    [a, b] => b.v != a.v && !(a.v.is_nan() && b.v.is_nan()),
                    _ => false,
                })
                .count() as f64,
        ),
        Func::Resets => Some(
            pts.windows(2)
                .filter(|p| match p {
                    [a, b] => b.v < a.v,
                    _ => false,
                })
                .count() as f64,
        ),
        Func::Integral => integral(pts, if params.is_empty() { 0.0 } else { param(0) })?,
        _ => return Err(EvalError::exec(format!("{} is not a range-vector function", f.name()))),
    })
}

/// `rate`, `increase` and `delta` (Prometheus `extrapolatedRate`): the change over the samples in
/// the window, with counter resets undone for counters, extrapolated towards the window edges
/// when the samples come close enough to them.
fn extrapolated_rate(w: &Window<'_>, range: i64, is_counter: bool, is_rate: bool) -> Option<f64> {
    let pts = w.points;
    if pts.len() < 2 {
        return None;
    }
    let (first, last) = (pts.first()?, pts.last()?);
    let num_minus_one = (pts.len() - 1) as f64;
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for p in pts.get(1..)? {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
    }
    let mut duration_to_start = (first.t - w.start) as f64 / 1000.0;
    let mut duration_to_end = (w.end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between = sampled_interval / num_minus_one;
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        // A counter cannot go below zero: do not extrapolate past the time it would have been 0.
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    extrapolate_to += duration_to_start;
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    extrapolate_to += duration_to_end;
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(pts: &[Point], is_rate: bool) -> Option<f64> {
    let n = pts.len();
    if n < 2 {
        return None;
    }
    let (prev, last) = (pts.get(n - 2)?, pts.get(n - 1)?);
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    let mut v = last.v;
    if !is_rate || last.v >= prev.v || last.v.is_nan() || prev.v.is_nan() {
        v = last.v - prev.v;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_t` (Prometheus `linearRegression`).
pub(crate) fn linear_regression(pts: &[Point], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = pts.first().map_or(f64::NAN, |p| p.v);
    let mut const_y = true;
    for (i, p) in pts.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn double_exponential_smoothing(pts: &[Point], sf: f64, tf: f64) -> Option<f64> {
    let l = pts.len();
    if l < 2 {
        return None;
    }
    let v = |i: usize| pts.get(i).map_or(f64::NAN, |p| p.v);
    let mut s0 = 0.0;
    let mut s1 = v(0);
    let mut b = v(1) - v(0);
    for i in 1..l {
        let x = sf * v(i);
        // calcTrendValue(i-1, tf, s0, s1, b)
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `avg_over_time`: a compensated sum divided at the end, switching to an incremental mean only
/// if the sum overflows.
fn avg(pts: &[Point]) -> f64 {
    let Some(first) = pts.first() else { return f64::NAN };
    let (mut sum, mut count) = (first.v, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, p) in pts.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (s, nc) = kahan_inc(p.v, sum, c);
            if !s.is_infinite() {
                (sum, c) = (s, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
    }
    if incremental { mean + c } else { sum / count + c / count }
}

/// Population variance with a compensated running mean (Prometheus `stdvar_over_time`).
fn variance(pts: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in pts {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn ts_of_extreme(pts: &[Point], better: impl Fn(f64, f64) -> bool) -> f64 {
    let Some(first) = pts.first() else { return f64::NAN };
    let (mut best, mut t) = (first.v, first.t);
    for p in pts.iter().skip(1) {
        if better(p.v, best) {
            best = p.v;
            t = p.t;
        }
    }
    t as f64 / 1000.0
}

/// `integral(v[range], strategy)`: the area under the samples, in value-seconds; strategy 0 holds
/// each value until the next sample (left), 1 takes the next sample's value (right), 2 uses
/// trapezoids.
fn integral(pts: &[Point], strategy: f64) -> Result<Option<f64>, EvalError> {
    if !(strategy == 0.0 || strategy == 1.0 || strategy == 2.0) {
        return Err(EvalError::exec(format!(
            "invalid integration strategy {strategy}: expected 0 (left), 1 (right) or 2 (trapezoid)"
        )));
    }
    if pts.len() < 2 {
        return Ok(None);
    }
    let (mut sum, mut c) = (0.0, 0.0);
    for p in pts.windows(2) {
        let [a, b] = p else { continue };
        let dt = (b.t - a.t) as f64 / 1000.0;
        let area = match strategy as u8 {
            0 => a.v * dt,
            1 => b.v * dt,
            _ => (a.v + b.v) / 2.0 * dt,
        };
        (sum, c) = kahan_inc(area, sum, c);
    }
    Ok(Some(sum + c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(points: &[Point], start: i64, end: i64) -> Window<'_> {
        Window { points, ts: end, start, end, step: 0 }
    }

    #[test]
    fn rate_extrapolates_to_window_edges() {
        // 0, 10, 20, … every 30s; window (0, 300s]: samples at 30..300.
        let pts: Vec<Point> = (1..=10).map(|i| Point { t: i * 30_000, v: (i * 10) as f64 }).collect();
        let r = extrapolated_rate(&w(&pts, 0, 300_000), 300_000, true, true).unwrap();
        // increase 90 over 270s, extrapolated to the zero point at 0s → 100 / 300s.
        assert!((r - 100.0 / 300.0).abs() < 1e-12, "{r}");
    }

    #[test]
    fn irate_handles_resets() {
        let pts = [Point { t: 0, v: 10.0 }, Point { t: 10_000, v: 2.0 }];
        assert_eq!(instant_value(&pts, true), Some(0.2));
        assert_eq!(instant_value(&pts, false), Some(-8.0));
    }

    #[test]
    fn deriv_of_a_line_is_its_slope() {
        let pts: Vec<Point> = (0..5).map(|i| Point { t: i * 1000, v: 3.0 * i as f64 + 1.0 }).collect();
        let (slope, intercept) = linear_regression(&pts, 0);
        assert!((slope - 3.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
    }
}
