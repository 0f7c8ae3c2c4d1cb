//! The collection boundary: a [`Collector`] fills a [`Batch`] with one pass over what it reads.
//!
//! A [`Batch`] is a list of metric [`Family`]s in the order collectors added them. Each family has
//! the metadata that exposition and the HTTP API's `/api/v1/metadata` need (name, HELP, TYPE and the
//! UNIT derived from the name) and its samples. Label names and values are `Arc<str>`, so that a
//! container's identity labels are allocated once per pass and shared by all of its series.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use kahu_tsdb::model::{Label, Labels, METRIC_NAME};

/// The type of a metric family, as exposition formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// Monotonic counter; its name ends in `_total`.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// No type given (node_exporter's `vmstat` and `netstat` fields are untyped).
    Untyped,
}

impl MetricType {
    /// The name Prometheus' `/api/v1/metadata` uses (`counter`, `gauge`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Untyped => "unknown",
        }
    }
}

/// A label set without `__name__`: pairs in the order the collector gave them.
pub type LabelPairs = Vec<(Arc<str>, Arc<str>)>;

/// One sample of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label pairs (without `__name__`). Names are unique within a sample.
    pub labels: LabelPairs,
    /// The value.
    pub value: f64,
}

/// One metric family of a pass: metadata plus its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Full metric name as stored and exposed (counters end in `_total`).
    pub name: Arc<str>,
    /// HELP text.
    pub help: Cow<'static, str>,
    /// TYPE.
    pub kind: MetricType,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Units that OpenMetrics' `# UNIT` line names, recognised as the name's suffix.
const UNITS: [&str; 5] = ["seconds", "bytes", "celsius", "ratio", "joules"];

impl Family {
    /// Adds one sample.
    pub fn sample<K: Into<Arc<str>>, V: Into<Arc<str>>>(
        &mut self,
        labels: impl IntoIterator<Item = (K, V)>,
        value: f64,
    ) -> &mut Self {
        let labels = labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.samples.push(Sample { labels, value });
        self
    }

    /// Adds one sample whose labels are already `Arc`s (no allocation per label).
    pub fn push(&mut self, labels: LabelPairs, value: f64) -> &mut Self {
        self.samples.push(Sample { labels, value });
        self
    }

    /// The unit, when the name ends in one (before `_total` for counters): `container_cpu_usage_seconds_total`
    /// has unit `seconds`, `container_memory_rss` none. This is what OpenMetrics' `# UNIT` says.
    pub fn unit(&self) -> Option<&'static str> {
        let base = match self.kind {
            MetricType::Counter => self.name.strip_suffix("_total").unwrap_or(&self.name),
            _ => &self.name,
        };
        UNITS.into_iter().find(|u| base.strip_suffix(u).is_some_and(|rest| rest.ends_with('_')))
    }
}

/// What one collection pass produced, in the order collectors added it. Family names are unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    families: Vec<Family>,
    index: HashMap<Arc<str>, usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts (or continues) family `name`; samples are added to the returned family. When the
    /// family exists, `help` and `kind` of the first call are kept.
    #[expect(clippy::indexing_slicing, reason = "positions in the index are always in bounds")]
    pub fn family(
        &mut self,
        name: &str,
        help: impl Into<Cow<'static, str>>,
        kind: MetricType,
    ) -> &mut Family {
        let pos = match self.index.get(name) {
            Some(&pos) => pos,
            None => {
                let name: Arc<str> = Arc::from(name);
                self.families.push(Family {
                    name: Arc::clone(&name),
                    help: help.into(),
                    kind,
                    samples: Vec::new(),
                });
                let pos = self.families.len() - 1;
                self.index.insert(name, pos);
                pos
            }
        };
        &mut self.families[pos]
    }

    /// The families of this pass.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The family called `name`, if this pass has it.
    pub fn get(&self, name: &str) -> Option<&Family> {
        self.index.get(name).and_then(|&i| self.families.get(i))
    }

    /// Number of samples over all families.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }

    /// Moves every family of `other` into this batch (samples of a family both have are appended).
    pub fn merge(&mut self, other: Batch) {
        for fam in other.families {
            match self.index.get(&fam.name) {
                Some(&pos) => {
                    if let Some(mine) = self.families.get_mut(pos) {
                        mine.samples.extend(fam.samples);
                    }
                }
                None => {
                    self.index.insert(Arc::clone(&fam.name), self.families.len());
                    self.families.push(fam);
                }
            }
        }
    }

    /// A batch of the families for which `keep` is true.
    pub fn filter(&self, mut keep: impl FnMut(&Family) -> bool) -> Batch {
        let mut out = Batch::new();
        for fam in self.families.iter().filter(|f| keep(f)) {
            out.index.insert(Arc::clone(&fam.name), out.families.len());
            out.families.push(fam.clone());
        }
        out
    }

    /// Every sample as a full label set (with `__name__`) and value, for appending to storage.
    pub fn series(&self) -> impl Iterator<Item = (Labels, f64)> + '_ {
        let name_label: Arc<str> = Arc::from(METRIC_NAME);
        self.families.iter().flat_map(move |f| {
            let name_label = Arc::clone(&name_label);
            f.samples.iter().map(move |s| {
                let mut v = Vec::with_capacity(s.labels.len() + 1);
                v.push(Label { name: Arc::clone(&name_label), value: Arc::clone(&f.name) });
                v.extend(
                    s.labels.iter().map(|(k, val)| Label { name: Arc::clone(k), value: Arc::clone(val) }),
                );
                (Labels::from_vec(v), s.value)
            })
        })
    }
}

/// A collector could not read what it reads.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Reading a file failed.
    #[error("read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the kernel documents.
    #[error("parse {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The collector was not run because its previous pass has not finished (a hung read).
    #[error("previous pass still running after the time budget")]
    Busy,
    /// The collector did not finish within its time budget.
    #[error("did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

impl CollectError {
    /// A [`CollectError::Read`] for `path`.
    pub fn read(path: &std::path::Path, source: std::io::Error) -> Self {
        CollectError::Read { path: path.display().to_string(), source }
    }
}

/// Reads one part of the host (node CPU, cgroups, …) into a [`Batch`].
///
/// Contract: `collect` is called once per collection pass, from one thread at a time (the pass
/// runner gives each collector its own thread so that a hung read cannot stall the others); it
/// appends to the batch and returns. A collector that fails part-way keeps what it added and
/// returns the error, which the caller counts and logs; other collectors are unaffected.
pub trait Collector: Send {
    /// Short name, used in self-metrics and logs (`cpu`, `meminfo`, `cgroup`).
    fn name(&self) -> &'static str;

    /// Adds this collector's families for one pass. `now_ms` is the pass's timestamp.
    fn collect(&mut self, batch: &mut Batch, now_ms: i64) -> Result<(), CollectError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_the_name_suffix_before_total() {
        let mut b = Batch::new();
        let c = b.family("container_cpu_usage_seconds_total", "h", MetricType::Counter).unit();
        assert_eq!(c, Some("seconds"));
        assert_eq!(b.family("container_memory_rss", "h", MetricType::Gauge).unit(), None);
        assert_eq!(b.family("node_memory_MemTotal_bytes", "h", MetricType::Gauge).unit(), Some("bytes"));
        assert_eq!(b.family("bytes", "h", MetricType::Gauge).unit(), None);
    }

    #[test]
    fn families_are_unique_and_merge_appends_samples() {
        let mut a = Batch::new();
        a.family("x", "h", MetricType::Gauge).sample([("a", "1")], 1.0);
        a.family("x", "other", MetricType::Counter).sample([("a", "2")], 2.0);
        let mut b = Batch::new();
        b.family("x", "h", MetricType::Gauge).sample([("a", "3")], 3.0);
        b.family("y", "h", MetricType::Gauge).sample::<&str, &str>([], 4.0);
        a.merge(b);
        assert_eq!(a.families().len(), 2);
        assert_eq!(a.get("x").map(|f| f.samples.len()), Some(3));
        assert_eq!(a.get("x").map(|f| f.kind), Some(MetricType::Gauge));
        let series: Vec<String> = a.series().map(|(l, _)| l.to_string()).collect();
        assert_eq!(series, ["x{a=\"1\"}", "x{a=\"2\"}", "x{a=\"3\"}", "y{}"]);
    }
}
