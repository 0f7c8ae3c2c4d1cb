//! Label-set validation shared by every appender.

use crate::model::Labels;

/// Why `labels` cannot be stored, or `None` when it can.
///
/// Names must be non-empty and must not repeat. Values are `str`, so UTF-8 is guaranteed by the
/// type; decoders that build labels from bytes reject invalid UTF-8 before they get here.
pub fn label_problem(labels: &Labels) -> Option<String> {
    if labels.is_empty() {
        return Some("empty label set".to_string());
    }
    let mut prev: Option<&str> = None;
    for l in labels {
        if l.name.is_empty() {
            return Some("empty label name".to_string());
        }
        if prev == Some(l.name.as_ref()) {
            return Some(format!("label name {:?} repeats", l.name.as_ref()));
        }
        prev = Some(l.name.as_ref());
    }
    None
}
