//! Terminal charts for range results: a braille line chart per series when there are few,
//! a sparkline per series when there are many, so that the shape shows at a glance.

use kahu_query::format::format_float;

use super::{RangeRow, series_name};

/// Above this many series each gets a one-line sparkline instead of a chart.
const MAX_CHARTS: usize = 6;
/// Height of a line chart, in text rows (4 braille dots each).
const CHART_ROWS: usize = 6;
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Renders `series` over `[start, end]` (ms); `step` (ms, 0 if unknown) decides which
/// neighbouring samples are joined by a line (a gap of more than 1.5 steps is left open).
pub fn render(series: &[RangeRow], start: i64, end: i64, step: i64, width: usize) -> String {
    if series.len() > MAX_CHARTS {
        return sparklines(series, start, end, width);
    }
    let mut out = String::new();
    for (labels, samples) in series {
        out.push_str(&series_name(labels));
        out.push('\n');
        out.push_str(&line_chart(samples, start, end, step, width));
    }
    out
}

/// Compact number for axis labels: four significant digits with k/M/G/T.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = match a {
        a if a >= 1e12 => (v / 1e12, "T"),
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    if unit.is_empty() && (a == 0.0 || (0.01..1e4).contains(&a)) {
        let s = format!("{:.3}", x);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    if unit.is_empty() && a > 0.0 && a < 0.01 {
        // Four significant digits.
        let decimals = usize::try_from(3 - a.log10().floor() as i64).unwrap_or(3).min(20);
        return format!("{v:.decimals$}");
    }
    if unit.is_empty() {
        return format_float(v);
    }
    let s = format!("{x:.2}");
    format!("{}{unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

fn finite_range(samples: &[(i64, f64)]) -> Option<(f64, f64)> {
    let mut it = samples.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

fn clock(ms: i64) -> String {
    chrono::DateTime::<chrono::Local>::from(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    )
    .format("%H:%M:%S")
    .to_string()
}

fn line_chart(samples: &[(i64, f64)], start: i64, end: i64, step: i64, width: usize) -> String {
    let Some((lo, hi)) = finite_range(samples) else { return "  (no finite values)\n".into() };
    let (lo_label, hi_label) = (compact(lo), compact(hi));
    let axis = lo_label.chars().count().max(hi_label.chars().count());
    let cols = width.saturating_sub(axis + 3).max(10);
    let (px_w, px_h) = (cols * 2, CHART_ROWS * 4);
    let mut dots = vec![vec![false; px_w]; px_h];
    let span = (end - start).max(1) as f64;
    let x_of = |t: i64| {
        (((t - start) as f64 / span) * (px_w - 1) as f64).round().clamp(0.0, (px_w - 1) as f64) as usize
    };
    let y_of = |v: f64| {
        let frac = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        // Row 0 is the top.
        (px_h - 1) - (frac * (px_h - 1) as f64).round().clamp(0.0, (px_h - 1) as f64) as usize
    };
    let mut prev: Option<(i64, usize, usize)> = None;
    for &(t, v) in samples {
        if !v.is_finite() {
            prev = None;
            continue;
        }
        let (x, y) = (x_of(t), y_of(v));
        match prev {
            Some((pt, px, py)) if step == 0 || (t - pt) as f64 <= step as f64 * 1.5 => {
                draw_line(&mut dots, px, py, x, y)
            }
            _ => set(&mut dots, x, y),
        }
        prev = Some((t, x, y));
    }
    let mut out = String::new();
    for row in 0..CHART_ROWS {
        let label = match row {
            0 => hi_label.clone(),
            r if r == CHART_ROWS - 1 => lo_label.clone(),
            _ => String::new(),
        };
        out.push_str(&format!("{label:>axis$} ┤"));
        for col in 0..cols {
            out.push(braille(&dots, col, row));
        }
        out.push('\n');
    }
    let (from, to) = (clock(start), clock(end));
    let pad = cols.saturating_sub(from.len() + to.len());
    out.push_str(&format!("{:axis$} └{}\n", "", "─".repeat(cols)));
    out.push_str(&format!("{:axis$}  {from}{}{to}\n", "", " ".repeat(pad)));
    out
}

fn set(dots: &mut [Vec<bool>], x: usize, y: usize) {
    if let Some(cell) = dots.get_mut(y).and_then(|row| row.get_mut(x)) {
        *cell = true;
    }
}

/// Bresenham's line between two dots.
fn draw_line(dots: &mut [Vec<bool>], x0: usize, y0: usize, x1: usize, y1: usize) {
    let (mut x, mut y) = (x0 as i64, y0 as i64);
    let (x1, y1) = (x1 as i64, y1 as i64);
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        set(dots, x as usize, y as usize);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// The braille character for text cell (`col`, `row`): 2×4 dots.
fn braille(dots: &[Vec<bool>], col: usize, row: usize) -> char {
    const BITS: [[u32; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
    let mut code = 0u32;
    for (dy, bits) in BITS.iter().enumerate() {
        for (dx, bit) in bits.iter().enumerate() {
            if dots.get(row * 4 + dy).and_then(|r| r.get(col * 2 + dx)).copied().unwrap_or(false) {
                code |= bit;
            }
        }
    }
    char::from_u32(0x2800 + code).unwrap_or(' ')
}

fn sparklines(series: &[RangeRow], start: i64, end: i64, width: usize) -> String {
    let names: Vec<String> = series.iter().map(|(l, _)| series_name(l)).collect();
    let spark_w = (width / 3).clamp(10, 60);
    let name_w =
        names.iter().map(|n| n.chars().count()).max().unwrap_or(0).min(width.saturating_sub(spark_w + 24));
    let span = (end - start).max(1) as f64;
    let mut out = String::new();
    for (name, (_, samples)) in names.iter().zip(series) {
        let mut buckets = vec![(0.0f64, 0u32); spark_w];
        for &(t, v) in samples.iter().filter(|(_, v)| v.is_finite()) {
            let i = (((t - start) as f64 / span) * (spark_w - 1) as f64)
                .round()
                .clamp(0.0, (spark_w - 1) as f64) as usize;
            if let Some(b) = buckets.get_mut(i) {
                b.0 += v;
                b.1 += 1;
            }
        }
        let (lo, hi) = finite_range(samples).unwrap_or((0.0, 0.0));
        let line: String = buckets
            .iter()
            .map(|&(sum, n)| {
                if n == 0 {
                    return ' ';
                }
                let v = sum / f64::from(n);
                let frac = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                SPARKS.get((frac * 7.0).round().clamp(0.0, 7.0) as usize).copied().unwrap_or(' ')
            })
            .collect();
        let name: String = name.chars().take(name_w).collect();
        let last =
            samples.iter().rev().find(|(_, v)| v.is_finite()).map(|(_, v)| compact(*v)).unwrap_or_default();
        out.push_str(&format!("{name:<name_w$}  {line}  {} … {}  last {last}\n", compact(lo), compact(hi)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_line_goes_from_bottom_left_to_top_right() {
        let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * 1000, i as f64)).collect();
        let chart = line_chart(&samples, 0, 10_000, 1000, 40);
        let rows: Vec<&str> = chart.lines().collect();
        assert!(rows[0].starts_with("10 ┤"), "{chart}");
        assert!(rows[CHART_ROWS - 1].starts_with(" 0 ┤"), "{chart}");
        let top: Vec<char> = rows[0].chars().skip(4).collect();
        let bottom: Vec<char> = rows[CHART_ROWS - 1].chars().skip(4).collect();
        assert_ne!(*top.last().unwrap(), '\u{2800}', "top right is drawn: {chart}");
        assert_ne!(bottom[0], '\u{2800}', "bottom left is drawn: {chart}");
        assert_eq!(top[0], '\u{2800}', "top left is empty: {chart}");
    }

    #[test]
    fn many_series_become_sparklines() {
        let series: Vec<_> = (0..10)
            .map(|i| {
                (
                    vec![("i".to_string(), i.to_string())],
                    (0..20).map(|t| (t * 1000, (t * i) as f64)).collect(),
                )
            })
            .collect();
        let out = render(&series, 0, 19_000, 1000, 100);
        assert_eq!(out.lines().count(), 10);
        assert!(out.lines().nth(9).unwrap().contains('█'), "{out}");
    }

    #[test]
    fn compact_numbers_keep_four_significant_digits() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(12.5), "12.5");
        assert_eq!(compact(1234567.0), "1.23M");
        assert_eq!(compact(0.0001), "0.0001000");
        assert_eq!(compact(0.005555555555555536), "0.005556");
    }
}
