//! Warnings and infos, worded and rendered as Prometheus does (`util/annotations`):
//! `PromQL warning: <msg> (<line>:<col>)`, where the position is the start of the expression the
//! annotation is about.

use std::collections::HashSet;

use super::gofmt::{go_float_g, go_quote};

/// Whether an annotation is a warning or an info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Level {
    Warning,
    Info,
}

/// The annotations of one query: deduplicated, in the order first raised.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    items: Vec<(Level, String, usize)>,
    seen: HashSet<(Level, String, usize)>,
}

impl Annotations {
    /// Adds an annotation about the expression starting at byte `pos` of the query.
    pub(crate) fn add(&mut self, level: Level, msg: String, pos: usize) {
        let item = (level, msg, pos);
        if self.seen.insert(item.clone()) {
            self.items.push(item);
        }
    }

    /// Renders the annotations against the query text: `(warnings, infos)`.
    pub(crate) fn render(&self, query: &str) -> (Vec<String>, Vec<String>) {
        let mut warnings = Vec::new();
        let mut infos = Vec::new();
        for (level, msg, pos) in &self.items {
            let (prefix, out) = match level {
                Level::Warning => ("PromQL warning", &mut warnings),
                Level::Info => ("PromQL info", &mut infos),
            };
            out.push(format!("{prefix}: {msg} ({})", line_col(query, *pos)));
        }
        (warnings, infos)
    }
}

/// `line:col` of byte offset `pos`, both 1-based, columns counted in bytes (Prometheus
/// `posrange.StartPosInput`).
pub(crate) fn line_col(query: &str, pos: usize) -> String {
    let before = query.get(..pos).unwrap_or(query);
    let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{line}:{col}")
}

pub(crate) fn invalid_quantile(q: f64) -> String {
    format!("quantile value should be between 0 and 1, got {}", go_float_g(q))
}

pub(crate) fn invalid_ratio(ratio: f64, capped: f64) -> String {
    format!(
        "ratio value should be between -1 and 1, got {}, capping to {}",
        go_float_g(ratio),
        go_float_g(capped)
    )
}

pub(crate) fn bad_bucket_label(metric: &str, le: &str) -> String {
    format!(
        "bucket label \"le\" is missing or has a malformed value of {} for metric name {}",
        go_quote(le),
        go_quote(metric)
    )
}

pub(crate) fn possible_non_counter(metric: &str) -> String {
    format!(
        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
        go_quote(metric)
    )
}

pub(crate) fn forced_monotonicity(metric: &str) -> String {
    format!(
        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {}",
        go_quote(metric)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_prometheus() {
        let mut a = Annotations::default();
        a.add(Level::Info, possible_non_counter("http_requests"), 5);
        a.add(Level::Info, possible_non_counter("http_requests"), 5);
        a.add(Level::Warning, invalid_quantile(1.5), 0);
        let (w, i) = a.render("rate(http_requests[5m])");
        assert_eq!(w, ["PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:1)"]);
        assert_eq!(
            i,
            [
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"http_requests\" (1:6)"
            ]
        );
    }

    #[test]
    fn positions_count_lines() {
        assert_eq!(line_col("a +\n  b", 6), "2:3");
        assert_eq!(line_col("abc", 0), "1:1");
    }
}
