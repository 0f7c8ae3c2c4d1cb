//! Where each node of the AST starts in the query text.
//!
//! `promql-parser` keeps no positions, but annotations must name one (`(1:6)`). This module
//! tokenizes the query again and walks the AST in source order alongside the tokens, noting the
//! byte offset at which each node starts. If the walk and the text ever disagree (an AST shape it
//! does not expect), the remaining nodes get no position and annotations about them point at the
//! start of the query: a wrong column, never a failed query.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, BinaryExpr, Call, Expr, VectorSelector};

/// Start offsets of AST nodes, keyed by node address (the AST is not moved while it is in use).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    starts: HashMap<usize, usize>,
}

impl Positions {
    /// Positions of the nodes of `expr`, parsed from `query`.
    pub(crate) fn compute(query: &str, expr: &Expr) -> Self {
        let tokens = tokenize(query);
        let mut w = Walker { tokens: &tokens, i: 0, starts: HashMap::new() };
        let _ = w.expr(expr);
        Positions { starts: w.starts }
    }

    /// Byte offset where `expr` starts (0 when unknown).
    pub(crate) fn of(&self, expr: &Expr) -> usize {
        self.starts.get(&key(expr)).copied().unwrap_or(0)
    }
}

fn key(e: &Expr) -> usize {
    std::ptr::from_ref(e) as usize
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number,
    Str,
    Punct(&'static str),
}

const PUNCT: [&str; 24] = [
    "==", "!=", "<=", ">=", "=~", "!~", "(", ")", "{", "}", "[", "]", ",", "@", ":", "+", "-", "*", "/", "%",
    "^", "<", ">", "=",
];

fn tokenize(q: &str) -> Vec<(Tok, usize)> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' {
            while b.get(i).is_some_and(|&c| c != b'\n') {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let start = i;
            i += 1;
            while let Some(&d) = b.get(i) {
                i += 1;
                if d == b'\\' && c != b'`' {
                    i += 1;
                } else if d == c {
                    break;
                }
            }
            out.push((Tok::Str, start));
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while let Some(&d) = b.get(i) {
                let exp_sign = (d == b'+' || d == b'-')
                    && matches!(b.get(i.wrapping_sub(1)), Some(b'e' | b'E'))
                    && !q.get(start..i).is_some_and(|s| s.starts_with("0x") || s.starts_with("0X"));
                if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push((Tok::Number, start));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' && !after_bracket(&out) {
            let start = i;
            while b.get(i).is_some_and(|&d| d.is_ascii_alphanumeric() || d == b'_' || d == b':') {
                i += 1;
            }
            out.push((Tok::Ident(q.get(start..i).unwrap_or("").to_string()), start));
        } else if let Some(p) = PUNCT.iter().find(|p| b.get(i..i + p.len()) == Some(p.as_bytes())) {
            out.push((Tok::Punct(p), i));
            i += p.len();
        } else {
            // Not PromQL; the parser would have rejected it. Skip the character.
            i += q.get(i..).and_then(|s| s.chars().next()).map_or(1, char::len_utf8);
        }
    }
    out
}

/// Inside `[5m:1m]`, `:` is punctuation, not the start of a metric name.
fn after_bracket(out: &[(Tok, usize)]) -> bool {
    matches!(out.last(), Some((Tok::Number | Tok::Punct("["), _)))
}

struct Walker<'a> {
    tokens: &'a [(Tok, usize)],
    i: usize,
    starts: HashMap<usize, usize>,
}

impl Walker<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.i).map(|(t, _)| t)
    }

    fn pos(&self) -> Option<usize> {
        self.tokens.get(self.i).map(|(_, p)| *p)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn is_ident(&self, names: &[&str]) -> bool {
        matches!(self.peek(), Some(Tok::Ident(n)) if names.iter().any(|m| n.eq_ignore_ascii_case(m)))
    }

    fn punct(&mut self, p: &str) -> Option<()> {
        self.is_punct(p).then(|| self.i += 1)
    }

    fn bump(&mut self) -> Option<()> {
        (self.i < self.tokens.len()).then(|| self.i += 1)
    }

    /// Skips a balanced `( … )`, `{ … }` or `[ … ]` group starting at the current token.
    fn group(&mut self, open: &str, close: &str) -> Option<()> {
        self.punct(open)?;
        let mut depth = 1;
        while depth > 0 {
            if self.is_punct(open) {
                depth += 1;
            } else if self.is_punct(close) {
                depth -= 1;
            }
            self.bump()?;
        }
        Some(())
    }

    fn expr(&mut self, e: &Expr) -> Option<()> {
        // A unary plus leaves no node behind.
        while self.is_punct("+") && !matches!(e, Expr::NumberLiteral(_)) {
            self.bump()?;
        }
        let start = self.pos()?;
        self.starts.insert(key(e), start);
        match e {
            Expr::NumberLiteral(_) => {
                while self.is_punct("+") || self.is_punct("-") {
                    self.bump()?;
                }
                self.bump()
            }
            Expr::StringLiteral(_) => self.bump(),
            Expr::Paren(p) => {
                self.punct("(")?;
                self.expr(&p.expr)?;
                self.punct(")")
            }
            Expr::Unary(u) => {
                self.punct("-")?;
                self.expr(&u.expr)
            }
            Expr::VectorSelector(vs) => {
                self.selector(vs)?;
                self.modifiers()
            }
            Expr::MatrixSelector(ms) => {
                self.selector(&ms.vs)?;
                self.group("[", "]")?;
                self.modifiers()
            }
            Expr::Subquery(sq) => {
                self.expr(&sq.expr)?;
                self.group("[", "]")?;
                self.modifiers()
            }
            Expr::Call(c) => self.call(c),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            Expr::Extension(_) => None,
        }
    }

    fn selector(&mut self, _vs: &VectorSelector) -> Option<()> {
        if matches!(self.peek(), Some(Tok::Ident(_))) {
            self.bump()?;
        }
        if self.is_punct("{") {
            self.group("{", "}")?;
        }
        Some(())
    }

    fn modifiers(&mut self) -> Option<()> {
        loop {
            if self.is_ident(&["offset"]) {
                self.bump()?;
                while self.is_punct("+") || self.is_punct("-") {
                    self.bump()?;
                }
                self.bump()?;
            } else if self.is_punct("@") {
                self.bump()?;
                if self.is_ident(&["start", "end"]) {
                    self.bump()?;
                    self.group("(", ")")?;
                } else {
                    while self.is_punct("+") || self.is_punct("-") {
                        self.bump()?;
                    }
                    self.bump()?;
                }
            } else {
                return Some(());
            }
        }
    }

    fn call(&mut self, c: &Call) -> Option<()> {
        self.bump()?; // function name
        self.punct("(")?;
        for (n, arg) in c.args.args.iter().enumerate() {
            if self.is_punct(")") {
                // An argument the parser filled in (a default); it has no text.
                break;
            }
            if n > 0 {
                self.punct(",")?;
            }
            self.expr(arg)?;
        }
        self.punct(")")
    }

    fn grouping(&mut self) -> Option<()> {
        if self.is_ident(&["by", "without"]) {
            self.bump()?;
            self.group("(", ")")?;
        }
        Some(())
    }

    fn aggregate(&mut self, a: &AggregateExpr) -> Option<()> {
        self.bump()?; // the aggregation operator
        self.grouping()?;
        self.punct("(")?;
        if let Some(param) = &a.param {
            self.expr(param)?;
            self.punct(",")?;
        }
        self.expr(&a.expr)?;
        self.punct(")")?;
        self.grouping()
    }

    fn binary(&mut self, b: &BinaryExpr) -> Option<()> {
        self.expr(&b.lhs)?;
        self.bump()?; // the operator (a punctuation token or and/or/unless/atan2)
        if self.is_ident(&["bool"]) {
            self.bump()?;
        }
        if self.is_ident(&["on", "ignoring"]) {
            self.bump()?;
            self.group("(", ")")?;
        }
        if self.is_ident(&["group_left", "group_right"]) {
            self.bump()?;
            if self.is_punct("(") {
                self.group("(", ")")?;
            }
        }
        while self.is_ident(&["fill", "fill_left", "fill_right"]) {
            self.bump()?;
            self.group("(", ")")?;
        }
        self.expr(&b.rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::parser::parse;

    fn call_arg_positions(q: &str) -> Vec<usize> {
        let e = parse(q).unwrap();
        let p = Positions::compute(q, &e);
        let mut out = Vec::new();
        fn visit(e: &Expr, p: &Positions, out: &mut Vec<usize>) {
            match e {
                Expr::Call(c) => {
                    for a in &c.args.args {
                        out.push(p.of(a));
                        visit(a, p, out);
                    }
                }
                Expr::Aggregate(a) => {
                    if let Some(x) = &a.param {
                        out.push(p.of(x));
                    }
                    visit(&a.expr, p, out);
                }
                Expr::Binary(b) => {
                    visit(&b.lhs, p, out);
                    visit(&b.rhs, p, out);
                }
                Expr::Paren(x) => visit(&x.expr, p, out),
                Expr::Subquery(x) => visit(&x.expr, p, out),
                Expr::Unary(x) => visit(&x.expr, p, out),
                _ => {}
            }
        }
        visit(&e, &p, &mut out);
        out
    }

    #[test]
    fn finds_argument_starts() {
        assert_eq!(call_arg_positions("rate(http_requests[5m])"), [5]);
        assert_eq!(
            call_arg_positions("histogram_quantile(0.9, rate(x_bucket{a=\"b\"}[5m] offset -1m))"),
            [19, 24, 29]
        );
        assert_eq!(call_arg_positions("sum by (a) (quantile(-2, x))"), [21]);
        assert_eq!(call_arg_positions("1 + \n  rate(foo[1m:] @ start())"), [12]);
        assert_eq!(
            call_arg_positions("topk(3, x) by (b) + quantile_over_time(0.5, (y)[5m:1m])"),
            [5, 39, 44]
        );
        assert_eq!(
            call_arg_positions("label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")"),
            [14, 18, 23, 29, 34]
        );
    }
}
