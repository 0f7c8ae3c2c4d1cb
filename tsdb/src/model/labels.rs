use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair. Names and values are shared `Arc<str>`s so that an interner can hand the same
/// allocation to millions of series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name.
    pub name: Arc<str>,
    /// Label value.
    pub value: Arc<str>,
}

impl Label {
    /// Makes a label pair.
    pub fn new(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Label { name: name.into(), value: value.into() }
    }
}

/// A label set, sorted by name, `__name__` included. Empty values are dropped on construction:
/// Prometheus treats a label with an empty value as absent.
///
/// Duplicate names are kept (so that validation in the appender can reject them with a clear
/// error) but sorted next to each other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels {
    labels: Vec<Label>,
}

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Labels { labels: Vec::new() }
    }

    /// Builds a label set from pairs in any order.
    pub fn from_pairs<N, V, I>(pairs: I) -> Self
    where
        N: Into<Arc<str>>,
        V: Into<Arc<str>>,
        I: IntoIterator<Item = (N, V)>,
    {
        let labels = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        Self::from_vec(labels)
    }

    /// Builds a label set from labels in any order.
    pub fn from_vec(mut labels: Vec<Label>) -> Self {
        labels.retain(|l| !l.value.is_empty());
        labels.sort();
        Labels { labels }
    }

    /// Wraps labels that are already sorted by name, without empty values (the head's own
    /// series). Not checked: unsorted input breaks lookups, never memory safety.
    pub fn from_sorted_unchecked(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| matches!(w, [a, b] if a <= b)));
        Labels { labels }
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_ref().cmp(name))
            .ok()
            .and_then(|i| self.labels.get(i))
            .map(|l| l.value.as_ref())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    /// The labels as a slice, in name order.
    pub fn as_slice(&self) -> &[Label] {
        &self.labels
    }

    /// Consumes the set into its sorted labels.
    pub fn into_vec(self) -> Vec<Label> {
        self.labels
    }

    /// A builder starting from this set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder { labels: self.labels.clone() }
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.labels.iter()
    }
}

/// Formats as Prometheus does: `name{a="b", c="d"}` with the metric name outside the braces.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.labels.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value.as_ref())?;
        }
        f.write_str("}")
    }
}

/// Edits a label set: set, delete, then `build` re-sorts once.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// A builder with no labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing any earlier value; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        self.labels.retain(|l| l.name != name);
        if !value.is_empty() {
            self.labels.push(Label { name, value });
        }
        self
    }

    /// Removes `name` if present.
    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name.as_ref() != name);
        self
    }

    /// Keeps only the labels whose names `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(&l.name));
        self
    }

    /// The finished, sorted label set.
    pub fn build(&self) -> Labels {
        Labels::from_vec(self.labels.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_empty_values_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("__name__", "up"), ("a", "1"), ("c", "")]);
        let names: Vec<&str> = l.iter().map(|l| l.name.as_ref()).collect();
        assert_eq!(names, ["__name__", "a", "b"]);
        assert_eq!(l.get("a"), Some("1"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.metric_name(), Some("up"));
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("job", "node"), ("__name__", "up"), ("x", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="node", x="a\"b"}"#);
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn builder_sets_and_deletes() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let mut b = l.builder();
        b.set("a", "9").delete("b").set("c", "3");
        assert_eq!(b.build(), Labels::from_pairs([("a", "9"), ("c", "3")]));
    }
}
