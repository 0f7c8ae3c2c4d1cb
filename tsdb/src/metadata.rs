//! Metric metadata: the TYPE, HELP and UNIT of each metric family, as `/api/v1/metadata` serves it.
//!
//! Metadata is not part of a series: Prometheus keeps it per scrape target, and remote write
//! carries it in a separate list. [`MetadataStore`] keeps it per *source* (kahu's own collectors,
//! remote write, one scrape target), so that one source replacing its HELP text replaces only its
//! own entry, while two sources that disagree are both reported, as Prometheus reports two
//! targets that disagree.
//!
//! It lives in memory only, like Prometheus' scrape cache: the sources send it again on every
//! collection pass, scrape or remote-write request.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

/// The type of a metric family, with the names the exposition formats and the API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram`.
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info`.
    Info,
    /// `stateset`.
    StateSet,
    /// `unknown` (also what an untyped exposition line becomes).
    Unknown,
}

impl MetricType {
    /// The name used in `# TYPE` lines and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// Parses a `# TYPE` name; `untyped` and anything unknown become [`MetricType::Unknown`].
    pub fn from_name(name: &str) -> MetricType {
        match name {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The metadata of one metric family from one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metadata {
    /// TYPE.
    pub kind: MetricType,
    /// HELP text (may be empty).
    pub help: String,
    /// UNIT (may be empty).
    pub unit: String,
}

/// Most sources one metric family keeps entries for; beyond it the oldest source's entry is
/// dropped. Bounds memory when many remote-write senders or targets send the same family.
const MAX_SOURCES_PER_FAMILY: usize = 16;

/// Metadata by metric family name and source. See the module documentation.
///
/// `Sync`: writers (collection loop, remote write, scrapes) and readers (the API) share one
/// store behind an `Arc`; every call takes a short lock.
#[derive(Debug, Default)]
pub struct MetadataStore {
    families: RwLock<BTreeMap<String, Vec<SourceEntry>>>,
}

/// One source's metadata for a family.
type SourceEntry = (Arc<str>, Metadata);

impl MetadataStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `source` describes `family` with `metadata`, replacing what the same source
    /// said before.
    pub fn set(&self, source: &str, family: &str, metadata: Metadata) {
        if self
            .families
            .read()
            .get(family)
            .is_some_and(|entries| entries.iter().any(|(s, m)| s.as_ref() == source && *m == metadata))
        {
            // The common case (the same collectors every pass) needs no write lock.
            return;
        }
        let mut families = self.families.write();
        let entries = families.entry(family.to_string()).or_default();
        match entries.iter_mut().find(|(s, _)| s.as_ref() == source) {
            Some((_, m)) => *m = metadata,
            None => {
                if entries.len() >= MAX_SOURCES_PER_FAMILY {
                    entries.remove(0);
                }
                entries.push((Arc::from(source), metadata));
            }
        }
    }

    /// The distinct metadata entries of `family`, in a stable order.
    pub fn get(&self, family: &str) -> Vec<Metadata> {
        self.families.read().get(family).map(|entries| distinct(entries)).unwrap_or_default()
    }

    /// Every family with its distinct entries, sorted by family name.
    pub fn all(&self) -> Vec<(String, Vec<Metadata>)> {
        self.families.read().iter().map(|(name, entries)| (name.clone(), distinct(entries))).collect()
    }

    /// Number of metric families with metadata.
    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    /// Whether no family has metadata.
    pub fn is_empty(&self) -> bool {
        self.families.read().is_empty()
    }
}

fn distinct(entries: &[SourceEntry]) -> Vec<Metadata> {
    let mut out: Vec<Metadata> = entries.iter().map(|(_, m)| m.clone()).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(kind: MetricType, help: &str) -> Metadata {
        Metadata { kind, help: help.to_string(), unit: String::new() }
    }

    #[test]
    fn a_source_replaces_its_own_entry_and_sources_that_agree_are_reported_once() {
        let store = MetadataStore::new();
        store.set("kahu", "up", md(MetricType::Gauge, "old"));
        store.set("kahu", "up", md(MetricType::Gauge, "new"));
        store.set("remote_write", "up", md(MetricType::Gauge, "new"));
        assert_eq!(store.get("up"), vec![md(MetricType::Gauge, "new")]);
    }

    #[test]
    fn sources_that_disagree_are_all_reported() {
        let store = MetadataStore::new();
        store.set("a", "x", md(MetricType::Counter, "one"));
        store.set("b", "x", md(MetricType::Gauge, "two"));
        assert_eq!(store.get("x").len(), 2);
        assert_eq!(store.all().len(), 1);
        assert!(store.get("missing").is_empty());
    }

    #[test]
    fn the_number_of_sources_per_family_is_bounded() {
        let store = MetadataStore::new();
        for i in 0..100 {
            store.set(&format!("s{i}"), "x", md(MetricType::Counter, &format!("h{i}")));
        }
        assert_eq!(store.get("x").len(), MAX_SOURCES_PER_FAMILY);
    }

    #[test]
    fn type_names_round_trip() {
        for t in [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
            MetricType::Summary,
            MetricType::Info,
            MetricType::StateSet,
            MetricType::Unknown,
        ] {
            assert_eq!(MetricType::from_name(t.as_str()), t);
        }
        assert_eq!(MetricType::from_name("untyped"), MetricType::Unknown);
    }
}
