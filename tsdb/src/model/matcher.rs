use std::fmt;

use regex::Regex;

/// The four label-matching operators of PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// A matcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The regular expression does not compile.
    #[error("invalid regular expression {pattern:?} for label {name:?}: {reason}")]
    BadRegex {
        /// Label name the matcher applies to.
        name: String,
        /// The pattern as the user wrote it.
        pattern: String,
        /// Why it does not compile (part of the message, so API errors show it).
        reason: regex::Error,
    },
}

/// A label matcher with Prometheus semantics: a missing label matches as the empty string, and
/// regular expressions are fully anchored with `.` matching newlines (Prometheus 3).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; fails only for a regex that does not compile.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|reason| MatcherError::BadRegex {
                    name: name.clone(),
                    pattern: value.clone(),
                    reason,
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher { name, op, value, re })
    }

    /// `name = value`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), re: None }
    }

    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Unreachable by construction: regex ops always carry a compiled regex.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether the matcher matches the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_fully_anchored_and_dot_matches_newline() -> Result<(), MatcherError> {
        let m = Matcher::new(MatchOp::Regex, "a", "fo+")?;
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::new(MatchOp::Regex, "a", "a.b")?;
        assert!(m.matches("a\nb"));
        let m = Matcher::new(MatchOp::NotRegex, "a", "x|y")?;
        assert!(m.matches(""));
        assert!(!m.matches("x"));
        Ok(())
    }

    #[test]
    fn bad_regex_is_an_error_not_a_panic() {
        assert!(matches!(Matcher::new(MatchOp::Regex, "a", "("), Err(MatcherError::BadRegex { .. })));
    }
}
