//! The collection boundary: a [`Collector`] fills a [`Batch`] with one pass over what it reads.

use kahu_tsdb::model::{Labels, LabelsBuilder, METRIC_NAME};

/// The type of a metric family, as exposition formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter; its name ends in `_total`.
    Counter,
    /// Value that goes up and down.
    Gauge,
}

/// One metric family of a pass: metadata plus its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Full metric name as stored and exposed (counters end in `_total`).
    pub name: String,
    /// HELP text.
    pub help: String,
    /// TYPE.
    pub kind: MetricType,
    /// Samples: label pairs (without `__name__`) and value.
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

/// What one collection pass produced, in the order collectors added it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    families: Vec<Family>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts (or continues) family `name`; samples are added to the returned family.
    #[expect(clippy::indexing_slicing, reason = "pos was either found or just pushed")]
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut Family {
        let pos = match self.families.iter().position(|f| f.name == name) {
            Some(pos) => pos,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[pos]
    }

    /// The families of this pass.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Every sample as a full label set (with `__name__`) and value.
    pub fn series(&self) -> impl Iterator<Item = (Labels, f64)> + '_ {
        self.families.iter().flat_map(|f| {
            f.samples.iter().map(move |(labels, v)| {
                let mut b = LabelsBuilder::new();
                b.set(METRIC_NAME, f.name.as_str());
                for (k, val) in labels {
                    b.set(k.as_str(), val.as_str());
                }
                (b.build(), *v)
            })
        })
    }
}

impl Family {
    /// Adds one sample.
    pub fn sample<K: Into<String>, V: Into<String>>(
        &mut self,
        labels: impl IntoIterator<Item = (K, V)>,
        value: f64,
    ) -> &mut Self {
        self.samples.push((labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), value));
        self
    }
}

/// A collector could not read what it reads.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Reading or parsing a file failed.
    #[error("read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Reads one part of the host (node CPU, cgroups, …) into a [`Batch`].
///
/// Contract: `collect` is called once per collection pass from one thread at a time; it appends
/// to the batch and returns. A collector that fails part-way keeps what it added and returns the
/// error, which the caller counts and logs; other collectors are unaffected.
pub trait Collector: Send {
    /// Short name, used in self-metrics and logs (`cpu`, `meminfo`, `cgroup`).
    fn name(&self) -> &'static str;

    /// Adds this collector's families for one pass.
    fn collect(&mut self, batch: &mut Batch) -> Result<(), CollectError>;
}
