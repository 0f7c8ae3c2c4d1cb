//! Real exposition captured from a machine over time, kept as a small canned dataset.
//!
//! A capture is taken by scraping targets every 15 s into `DIR/<target>/<unix-ms>.prom` (the
//! `kahu-workload capture` command does it), then packed by [`Capture::from_dir`] +
//! [`Capture::write`] into one zstd-compressed text file transposed by series, which compresses
//! several times better than the raw scrapes:
//!
//! ```text
//! kahu-capture 1
//! target node
//! times 1795737600000 1795737615003 …
//! series node_load1{instance="…",job="…"}
//! 0.52 0.48 - 0.61 …            one token per scrape, as exposed; "-" where the series was absent
//! series …
//! ```
//!
//! Reading it back with [`Capture::replay`] yields scrapes in time order, with a staleness marker
//! where a series disappears, as Prometheus would have stored them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kahu_tsdb::model::{Labels, stale_nan};

use crate::workload::{Scrape, SeriesId, Source, Target};

/// Reading or writing a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file or directory could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The capture file is not in the expected format.
    #[error("{path}: line {line}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the decompressed text.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One target's scrapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetCapture {
    /// Directory name of the target (`node`, `kahu`).
    pub name: String,
    /// Scrape timestamps, increasing.
    pub times: Vec<i64>,
    /// Each series' labels and its value at each scrape (`None`: absent from that scrape).
    pub series: Vec<(Labels, Vec<Option<f64>>)>,
}

/// A canned dataset of real scrapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capture {
    /// The targets, by name.
    pub targets: Vec<TargetCapture>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Io { path: path.to_path_buf(), source }
}

impl Capture {
    /// Packs `DIR/<target>/<unix-ms>.prom` files. Lines that are not samples are ignored.
    pub fn from_dir(dir: &Path) -> Result<Capture, CaptureError> {
        let mut targets = Vec::new();
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for tdir in names.into_iter().filter(|p| p.is_dir()) {
            let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(&tdir)
                .map_err(io(&tdir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|p| {
                    let t = p.file_stem()?.to_str()?.parse::<i64>().ok()?;
                    Some((t, p))
                })
                .collect();
            files.sort();
            let mut index: BTreeMap<Labels, usize> = BTreeMap::new();
            let mut series: Vec<(Labels, Vec<Option<f64>>)> = Vec::new();
            let mut times = Vec::new();
            for (t, path) in &files {
                let text = std::fs::read_to_string(path).map_err(io(path))?;
                let parsed = parse_exposition(&text);
                if parsed.is_empty() {
                    continue; // A failed scrape: Prometheus would have stored nothing either.
                }
                times.push(*t);
                let col = times.len() - 1;
                for (labels, v) in parsed {
                    let i = *index.entry(labels.clone()).or_insert_with(|| {
                        series.push((labels, Vec::new()));
                        series.len() - 1
                    });
                    if let Some((_, vals)) = series.get_mut(i) {
                        vals.resize(col, None);
                        vals.push(Some(v));
                    }
                }
            }
            for (_, vals) in &mut series {
                vals.resize(times.len(), None);
            }
            let name = tdir.file_name().and_then(|n| n.to_str()).unwrap_or("target").to_string();
            targets.push(TargetCapture { name, times, series });
        }
        Ok(Capture { targets })
    }

    /// Writes the packed, zstd-compressed form.
    pub fn write(&self, path: &Path) -> Result<(), CaptureError> {
        let mut text = String::from("kahu-capture 1\n");
        for t in &self.targets {
            let _ = writeln!(text, "target {}", t.name);
            text.push_str("times");
            for time in &t.times {
                let _ = write!(text, " {time}");
            }
            text.push('\n');
            for (labels, vals) in &t.series {
                let _ = writeln!(text, "series {}", format_labels(labels));
                let mut first = true;
                for v in vals {
                    if !first {
                        text.push(' ');
                    }
                    first = false;
                    match v {
                        // Go's strconv.FormatFloat(v, 'g', -1, 64) and Rust's `{}` both print the
                        // shortest string that parses back to the same bits.
                        Some(v) => {
                            let _ = write!(text, "{}", format_value(*v));
                        }
                        None => text.push('-'),
                    }
                }
                text.push('\n');
            }
        }
        let file = std::fs::File::create(path).map_err(io(path))?;
        let mut enc = zstd::Encoder::new(file, 19).map_err(io(path))?;
        enc.write_all(text.as_bytes()).map_err(io(path))?;
        enc.finish().map_err(io(path))?.sync_all().map_err(io(path))?;
        Ok(())
    }

    /// Reads a packed capture.
    pub fn read(path: &Path) -> Result<Capture, CaptureError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut text = String::new();
        zstd::Decoder::new(file).map_err(io(path))?.read_to_string(&mut text).map_err(io(path))?;
        let bad = |line: usize, reason: &str| CaptureError::Format {
            path: path.to_path_buf(),
            line: line + 1,
            reason: reason.to_string(),
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "kahu-capture 1")) => {}
            _ => return Err(bad(0, "not a kahu capture (expected `kahu-capture 1`)")),
        }
        let mut targets: Vec<TargetCapture> = Vec::new();
        while let Some((n, line)) = lines.next() {
            if let Some(name) = line.strip_prefix("target ") {
                targets.push(TargetCapture { name: name.to_string(), ..Default::default() });
            } else if let Some(times) = line.strip_prefix("times") {
                let t = targets.last_mut().ok_or_else(|| bad(n, "times before target"))?;
                t.times = times
                    .split_whitespace()
                    .map(|s| s.parse::<i64>().map_err(|_| bad(n, "bad timestamp")))
                    .collect::<Result<_, _>>()?;
            } else if let Some(series) = line.strip_prefix("series ") {
                let labels = parse_series(series).ok_or_else(|| bad(n, "bad series"))?;
                let (n2, vals) = lines.next().ok_or_else(|| bad(n, "series without values"))?;
                let t = targets.last_mut().ok_or_else(|| bad(n, "series before target"))?;
                let vals: Vec<Option<f64>> = vals
                    .split(' ')
                    .map(|s| {
                        if s == "-" {
                            Ok(None)
                        } else {
                            parse_value(s).map(Some).ok_or_else(|| bad(n2, "bad value"))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                if vals.len() != t.times.len() {
                    return Err(bad(n2, "value count differs from times"));
                }
                t.series.push((labels, vals));
            } else if !line.is_empty() {
                return Err(bad(n, "unexpected line"));
            }
        }
        Ok(Capture { targets })
    }

    /// Samples in the capture (staleness markers not counted).
    pub fn samples(&self) -> u64 {
        self.targets
            .iter()
            .flat_map(|t| &t.series)
            .map(|(_, v)| v.iter().filter(|v| v.is_some()).count() as u64)
            .sum()
    }

    /// Every series with its samples as Prometheus would have stored them (a staleness marker at
    /// the first scrape a series is missing from).
    pub fn series_samples(&self) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut out = Vec::new();
        for t in &self.targets {
            for (labels, vals) in &t.series {
                let mut samples = Vec::new();
                let mut present = false;
                for (time, v) in t.times.iter().zip(vals) {
                    match v {
                        Some(v) => {
                            samples.push((*time, *v));
                            present = true;
                        }
                        None if present => {
                            samples.push((*time, stale_nan()));
                            present = false;
                        }
                        None => {}
                    }
                }
                out.push((labels.clone(), samples));
            }
        }
        out
    }

    /// Replays the capture as scrapes in time order.
    pub fn replay(&self) -> Replay<'_> {
        let mut labels = Vec::new();
        let mut first_id = Vec::new();
        for t in &self.targets {
            first_id.push(labels.len() as SeriesId);
            labels.extend(t.series.iter().map(|(l, _)| l.clone()));
        }
        Replay { capture: self, labels, first_id, next: vec![0; self.targets.len()] }
    }
}

/// A [`Source`] over a [`Capture`]'s scrapes.
#[derive(Debug)]
pub struct Replay<'a> {
    capture: &'a Capture,
    labels: Vec<Labels>,
    first_id: Vec<SeriesId>,
    next: Vec<usize>,
}

impl Source for Replay<'_> {
    fn next_scrape(&mut self) -> Option<Scrape> {
        // The target whose next scrape is earliest.
        let (ti, k, t) = self
            .capture
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, tc)| {
                let k = *self.next.get(i)?;
                Some((i, k, *tc.times.get(k)?))
            })
            .min_by_key(|&(_, _, t)| t)?;
        let tc = self.capture.targets.get(ti)?;
        if let Some(n) = self.next.get_mut(ti) {
            *n += 1;
        }
        let base = self.first_id.get(ti).copied().unwrap_or(0);
        let mut samples = Vec::new();
        for (i, (_, vals)) in tc.series.iter().enumerate() {
            let id = base + i as SeriesId;
            match (
                vals.get(k).copied().flatten(),
                k.checked_sub(1).and_then(|p| vals.get(p).copied().flatten()),
            ) {
                (Some(v), _) => samples.push((id, v)),
                (None, Some(_)) => samples.push((id, stale_nan())),
                (None, None) => {}
            }
        }
        let target = if tc.name == "kahu" { Target::Other } else { Target::NodeExporter };
        Some(Scrape { target, t, samples })
    }

    fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.labels.get(id as usize)
    }

    fn series_created(&self) -> usize {
        self.labels.len()
    }
}

/// Formats a value the way Prometheus' text exposition does (`NaN`, `+Inf`, `-Inf`, shortest
/// round-trip decimal otherwise).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn format_labels(labels: &Labels) -> String {
    let mut out = String::new();
    out.push_str(labels.metric_name().unwrap_or(""));
    out.push('{');
    let mut first = true;
    for l in labels.iter().filter(|l| l.name.as_ref() != "__name__") {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&l.name);
        out.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Parses `name{a="b",…}` (the part of a sample line before the value).
fn parse_series(s: &str) -> Option<Labels> {
    parse_series_prefix(s).and_then(|(l, rest)| rest.trim().is_empty().then_some(l))
}

/// Parses a series at the start of `s`, returning the labels and the rest of the line.
fn parse_series_prefix(s: &str) -> Option<(Labels, &str)> {
    let name_end = s.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(s.len());
    let name = s.get(..name_end)?;
    let mut pairs: Vec<(String, String)> = vec![("__name__".to_string(), name.to_string())];
    let mut rest = s.get(name_end..)?;
    if let Some(body) = rest.strip_prefix('{') {
        let mut it = body.char_indices().peekable();
        loop {
            // Skip separators.
            while let Some(&(_, c)) = it.peek() {
                if c == ',' || c.is_whitespace() {
                    it.next();
                } else {
                    break;
                }
            }
            let &(start, c) = it.peek()?;
            if c == '}' {
                rest = body.get(start + 1..)?;
                break;
            }
            let eq = body.get(start..)?.find('=')? + start;
            let lname = body.get(start..eq)?.trim().to_string();
            while let Some(&(i, _)) = it.peek() {
                if i > eq {
                    break;
                }
                it.next();
            }
            if it.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = it.next()?;
                match c {
                    '"' => break,
                    '\\' => match it.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
            pairs.push((lname, value));
        }
    }
    Some((Labels::from_pairs(pairs), rest))
}

/// The samples of a Prometheus text-format exposition (comments and bad lines skipped; an
/// explicit timestamp is ignored, as the capture records scrape time).
pub fn parse_exposition(text: &str) -> Vec<(Labels, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (labels, rest) = parse_series_prefix(line)?;
            let v = parse_value(rest.split_whitespace().next()?)?;
            Some((labels, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse_with_escapes_and_special_values() {
        let text = "# HELP x y\nup 1\nfoo{a=\"b\\\"c\",d=\"e\\\\f\"} +Inf 123\nbar{} NaN\nbad line\n";
        let got = parse_exposition(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, Labels::from_pairs([("__name__", "up")]));
        assert_eq!(got[1].0.get("a"), Some("b\"c"));
        assert_eq!(got[1].0.get("d"), Some("e\\f"));
        assert_eq!(got[1].1, f64::INFINITY);
        assert!(got[2].1.is_nan());
    }

    #[test]
    fn a_capture_round_trips_through_its_file_and_marks_disappearing_series_stale() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("1000.prom"), "a{x=\"1\"} 1.5\nb 2\n").unwrap();
        std::fs::write(node.join("16000.prom"), "a{x=\"1\"} 0.1\n").unwrap();
        std::fs::write(node.join("31000.prom"), "a{x=\"1\"} 1e-300\nb 3\n").unwrap();
        let c = Capture::from_dir(dir.path()).unwrap();
        let file = dir.path().join("c.zst");
        c.write(&file).unwrap();
        let back = Capture::read(&file).unwrap();
        assert_eq!(back, c);
        let series = back.series_samples();
        let b = series.iter().find(|(l, _)| l.metric_name() == Some("b")).unwrap();
        assert_eq!(b.1.len(), 3);
        assert_eq!(b.1[1].1.to_bits(), kahu_tsdb::model::STALE_NAN_BITS);
        let mut r = back.replay();
        let mut n = 0;
        while let Some(s) = r.next_scrape() {
            n += s.samples.len();
        }
        assert_eq!(n, 6);
    }
}
