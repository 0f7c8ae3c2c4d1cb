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
    fast: Fast,
}

/// What a matcher's value reduces to, so that matching and index lookups avoid the regex engine.
#[derive(Debug, Clone, PartialEq)]
enum Fast {
    /// No shortcut: run the regex.
    None,
    /// The value is one of these literals (sorted, deduplicated): `=` or `=~"a|b|c"`.
    Set(Vec<String>),
    /// The value starts with this literal: `=~"abc.*"` (`.` matches newlines too).
    Prefix(String),
}

const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'];

/// The literal a regex fragment stands for, if it is one (`\.` style escapes of punctuation are
/// literal too).
fn literal(fragment: &str) -> Option<String> {
    let mut out = String::with_capacity(fragment.len());
    let mut chars = fragment.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let e = chars.next()?;
            // `\<` and `\>` are word boundaries in the regex crate, not literals.
            if !e.is_ascii_punctuation() || e == '<' || e == '>' {
                return None;
            }
            out.push(e);
        } else if META.contains(&c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn analyze(op: MatchOp, value: &str) -> Fast {
    match op {
        MatchOp::Equal | MatchOp::NotEqual => Fast::Set(vec![value.to_string()]),
        MatchOp::Regex | MatchOp::NotRegex => {
            // Alternation is split only at top level: any bracket or paren disables this path.
            if let Some(set) = value.split('|').map(literal).collect::<Option<Vec<String>>>() {
                let mut set = set;
                set.sort();
                set.dedup();
                return Fast::Set(set);
            }
            if let Some(head) = value.strip_suffix(".*")
                && !head.ends_with('\\')
                && let Some(prefix) = literal(head)
            {
                return Fast::Prefix(prefix);
            }
            Fast::None
        }
    }
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
        let fast = analyze(op, &value);
        Ok(Matcher { name, op, value, re, fast })
    }

    /// `name = value`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let fast = analyze(MatchOp::Equal, &value);
        Matcher { name: name.into(), op: MatchOp::Equal, value, re: None, fast }
    }

    /// The literal values this matcher accepts (for `=` and regexes that are a literal or an
    /// alternation of literals), sorted; `None` when it is not such a matcher.
    pub fn literal_values(&self) -> Option<&[String]> {
        match &self.fast {
            Fast::Set(s) => Some(s),
            Fast::None | Fast::Prefix(_) => None,
        }
    }

    /// The literal prefix of a `prefix.*` regex.
    pub fn literal_prefix(&self) -> Option<&str> {
        match &self.fast {
            Fast::Prefix(p) => Some(p),
            Fast::None | Fast::Set(_) => None,
        }
    }

    fn regex_match(&self, value: &str) -> bool {
        match &self.fast {
            Fast::Set(s) => s.binary_search_by(|x| x.as_str().cmp(value)).is_ok(),
            Fast::Prefix(p) => value.starts_with(p.as_str()),
            Fast::None => self.re.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }

    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, _) => self.regex_match(value),
            (MatchOp::NotRegex, _) => !self.regex_match(value),
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

    /// `(op, pattern, value, matches)`: Prometheus semantics, one row each.
    const TABLE: &[(MatchOp, &str, &str, bool)] = &[
        // Regexes are anchored at both ends, as a whole (the alternation too).
        (MatchOp::Regex, "fo+", "foo", true),
        (MatchOp::Regex, "fo+", "xfoo", false),
        (MatchOp::Regex, "fo+", "foox", false),
        (MatchOp::Regex, "foo|bar", "foo", true),
        (MatchOp::Regex, "foo|bar", "foobar", false),
        (MatchOp::Regex, "foo|bar", "xbar", false),
        (MatchOp::Regex, "^foo$", "foo", true),
        // `.` matches a newline (Prometheus 3), in the prefix fast path too.
        (MatchOp::Regex, "a.b", "a\nb", true),
        (MatchOp::Regex, "foo.*", "foo\nbar", true),
        (MatchOp::Regex, ".*", "line1\nline2", true),
        (MatchOp::Regex, ".+", "\n", true),
        (MatchOp::NotRegex, "a.*", "a\n", false),
        // A missing label is the empty string.
        (MatchOp::Regex, ".*", "", true),
        (MatchOp::Regex, ".+", "", false),
        (MatchOp::Regex, "", "", true),
        (MatchOp::Regex, "", "a", false),
        (MatchOp::Regex, "a|", "", true),
        (MatchOp::NotRegex, ".+", "", true),
        (MatchOp::NotRegex, "x|y", "", true),
        (MatchOp::NotRegex, "x|y", "x", false),
        (MatchOp::Equal, "", "", true),
        (MatchOp::NotEqual, "", "", false),
        (MatchOp::NotEqual, "", "a", true),
        // Escaped punctuation is literal; an unescaped dot is not.
        (MatchOp::Regex, r"foo\.bar", "foo.bar", true),
        (MatchOp::Regex, r"foo\.bar", "fooxbar", false),
        (MatchOp::Regex, "foo.bar", "fooxbar", true),
        (MatchOp::Regex, r"kube\-.*", "kube-proxy", true),
        (MatchOp::Regex, r"a\|b", "a|b", true),
        (MatchOp::Regex, r"a\|b", "a", false),
        // Word boundaries (regex crate syntax) are not literals.
        (MatchOp::Regex, r"\<foo", "foo", true),
        (MatchOp::Regex, r"\<foo", "<foo", false),
        (MatchOp::Regex, r"foo\>.*", "foo bar", true),
        // Flags, classes, UTF-8.
        (MatchOp::Regex, "(?i)foo", "FOO", true),
        (MatchOp::Regex, "[a-c]+", "abca", true),
        (MatchOp::Regex, "[a-c]+", "abcd", false),
        (MatchOp::Regex, "ä.", "äö", true),
        (MatchOp::Equal, "a.b", "a.b", true),
        (MatchOp::Equal, "a.b", "axb", false),
    ];

    #[test]
    fn matcher_semantics_table() -> Result<(), MatcherError> {
        for &(op, pattern, value, want) in TABLE {
            let m = Matcher::new(op, "l", pattern)?;
            assert_eq!(m.matches(value), want, "{{{m}}} on {value:?}");
        }
        Ok(())
    }

    /// Pieces random patterns are made of: literals, escapes, metacharacters, flags, classes.
    const PATTERN_PIECES: &[&str] = &[
        "a", "b", "x", "ä", "\n", "<", "-", " ", r"\.", r"\-", r"\<", r"\>", r"\\", r"\|", r"\*", ".", "*",
        "+", "|", ".*", ".+", "(?i)", "[ab]", "^", "$", "(", ")",
    ];
    const VALUE_PIECES: &[&str] = &["a", "b", "A", ".", "x", "ä", "\n", "<", "-", "\\", " ", "|", "*"];

    fn concat_of(
        pieces: &'static [&'static str],
        max: usize,
    ) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::collection::vec(proptest::sample::select(pieces), 0..max).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
        ))]
        /// The fast paths must agree with the regex engine on every input, for both regex operators.
        #[test]
        fn fast_paths_agree_with_the_regex(
            pattern in concat_of(PATTERN_PIECES, 7),
            values in proptest::collection::vec(concat_of(VALUE_PIECES, 6), 8),
        ) {
            if let Ok(m) = Matcher::new(MatchOp::Regex, "l", pattern.as_str()) {
                let not = Matcher::new(MatchOp::NotRegex, "l", pattern.as_str()).unwrap();
                let re = Regex::new(&format!("^(?s:{pattern})$")).unwrap();
                for value in values.iter().chain(m.literal_values().unwrap_or_default()) {
                    proptest::prop_assert_eq!(m.matches(value), re.is_match(value), "{} on {:?}", m, value);
                    proptest::prop_assert_eq!(not.matches(value), !re.is_match(value), "{} on {:?}", not, value);
                }
                if let Some(p) = m.literal_prefix() {
                    proptest::prop_assert!(re.is_match(p), "{} rejects its own prefix {:?}", m, p);
                }
            }
        }
    }

    #[test]
    fn literal_alternation_and_prefix_are_recognised() {
        let m = Matcher::new(MatchOp::Regex, "a", "foo|bar|foo").unwrap();
        assert_eq!(m.literal_values(), Some(&["bar".to_string(), "foo".to_string()][..]));
        let m = Matcher::new(MatchOp::Regex, "a", "kube\\-.*").unwrap();
        assert_eq!(m.literal_prefix(), Some("kube-"));
        assert!(m.matches("kube-\nx"));
        let m = Matcher::new(MatchOp::Regex, "a", "(foo|bar)").unwrap();
        assert_eq!(m.literal_values(), None);
    }

    #[test]
    fn bad_regex_is_an_error_not_a_panic() {
        assert!(matches!(Matcher::new(MatchOp::Regex, "a", "("), Err(MatcherError::BadRegex { .. })));
    }
}
