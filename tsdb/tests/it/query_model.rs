//! Random sequences of append / commit / rollback / restart / query over a small universe of
//! label sets, checked against a plain `BTreeMap` model: every query's `select` (with `seek`),
//! `label_names` and `label_values` must give what the model gives for the committed samples,
//! whatever is appended but not committed at the time.

use std::collections::{BTreeMap, BTreeSet};

use kahu_tsdb::model::{Labels, MatchOp, Matcher, Sample, stale_nan};
use kahu_tsdb::{AppendError, Appendable, Appender, Db, Querier, Queryable};
use proptest::prelude::*;

use crate::common::opts;

/// The label sets the test appends to: shared and missing labels, a newline in a value, names
/// that only some series have.
const UNIVERSE: &[&[(&str, &str)]] = &[
    &[("__name__", "up"), ("job", "a")],
    &[("__name__", "up"), ("job", "b"), ("zone", "x")],
    &[("__name__", "up"), ("job", "a\nb")],
    &[("__name__", "cpu"), ("job", "a"), ("zone", "y")],
    &[("__name__", "cpu"), ("job", "ab")],
    &[("__name__", "cpu"), ("mode", "idle")],
    &[("__name__", "mem"), ("zone", "x")],
    &[("__name__", "up"), ("job", "kube-a")],
];
const NAMES: &[&str] = &["__name__", "job", "zone", "mode", "absent"];
const LITERALS: &[&str] = &["", "a", "b", "ab", "up", "cpu", "x", "idle", "a\nb"];
const PATTERNS: &[&str] =
    &["", "a", ".*", ".+", "a.*", "a|b", "a.b", "kube-.*", "(a|ab)", "up|cpu", "[xy]", "i.*e", "a\\|b"];

#[derive(Debug, Clone)]
enum Op {
    /// Append to series `s` at `last + dt - 1` (so 0 = older, 1 = same, ≥2 = newer).
    Append {
        s: usize,
        dt: i64,
        v: u8,
    },
    Commit,
    Rollback,
    Restart,
    Query(Query),
}

#[derive(Debug, Clone)]
struct Query {
    /// `(op, name, value)`.
    matchers: Vec<(MatchOp, String, String)>,
    mint: i64,
    maxt: i64,
    /// Where to seek in each selected series, as an offset from `mint`.
    seek: i64,
    /// The name asked for in `label_values`.
    name: usize,
}

/// A matcher made from a label of one of the series (so that it selects something), or a random
/// one over the tables above.
fn matcher() -> impl Strategy<Value = (MatchOp, String, String)> {
    let derived = (0..UNIVERSE.len(), 0..3usize, 0..5u8).prop_map(|(s, i, kind)| {
        let pairs = UNIVERSE[s];
        let (name, value) = pairs[i % pairs.len()];
        match kind {
            0 => (MatchOp::Equal, name.to_string(), value.to_string()),
            1 => (MatchOp::Regex, name.to_string(), format!("{}.*", value.get(..1).unwrap_or(""))),
            2 => (MatchOp::Regex, name.to_string(), format!("{value}|zz")),
            3 => (MatchOp::NotEqual, name.to_string(), value.to_string()),
            _ => (MatchOp::NotRegex, name.to_string(), format!("{}.+", value.get(..1).unwrap_or(""))),
        }
    });
    let random =
        (0..4u8, 0..NAMES.len(), 0..PATTERNS.len().max(LITERALS.len())).prop_map(|(op, name, value)| {
            let name = NAMES[name].to_string();
            match op {
                0 => (MatchOp::Equal, name, LITERALS[value % LITERALS.len()].to_string()),
                1 => (MatchOp::NotEqual, name, LITERALS[value % LITERALS.len()].to_string()),
                2 => (MatchOp::Regex, name, PATTERNS[value % PATTERNS.len()].to_string()),
                _ => (MatchOp::NotRegex, name, PATTERNS[value % PATTERNS.len()].to_string()),
            }
        });
    prop_oneof![3 => derived, 2 => random]
}

fn query() -> impl Strategy<Value = Query> {
    (proptest::collection::vec(matcher(), 1..3), 994..1010i64, 0..16i64, 0..12i64, 0..NAMES.len())
        .prop_map(|(matchers, mint, len, seek, name)| Query { matchers, mint, maxt: mint + len, seek, name })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..UNIVERSE.len(), 0..4i64, 0..4u8).prop_map(|(s, dt, v)| Op::Append { s, dt, v }),
        3 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Restart),
        3 => query().prop_map(Op::Query),
    ]
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs(UNIVERSE[s].iter().copied())
}

fn val(v: u8) -> f64 {
    [1.0, -0.0, stale_nan(), f64::INFINITY][v as usize]
}

fn build_matchers(q: &Query) -> Vec<Matcher> {
    q.matchers
        .iter()
        .map(|(op, name, value)| Matcher::new(*op, name.as_str(), value.as_str()).unwrap())
        .collect()
}

/// Checks one query against the model of committed samples.
fn check(
    q: &dyn Querier,
    query: &Query,
    committed: &BTreeMap<Labels, Vec<Sample>>,
    ever_appended: &BTreeSet<Labels>,
) -> Result<(), TestCaseError> {
    let matchers = build_matchers(query);
    let (mint, maxt) = (query.mint, query.maxt);
    // The model: matching series with samples in range; a missing label matches as "".
    let want: BTreeMap<&Labels, Vec<Sample>> = committed
        .iter()
        .filter(|(l, _)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
        .map(|(l, s)| (l, s.iter().filter(|x| x.t >= mint && x.t <= maxt).copied().collect::<Vec<_>>()))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let ctx = format!(
        "{{{}}} [{mint}, {maxt}]",
        matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );

    let got: Vec<_> = q.select(&matchers, mint, maxt).unwrap().collect();
    let got_labels: Vec<&Labels> = got.iter().map(|s| s.labels()).collect();
    let want_labels: Vec<&Labels> = want.keys().copied().collect();
    prop_assert_eq!(got_labels, want_labels, "select {}", ctx);
    for s in &got {
        let model = &want[s.labels()];
        let mut it = s.iter();
        let mut all = Vec::new();
        while let Some(x) = it.next() {
            all.push(x);
        }
        prop_assert_eq!(&all, model, "samples of {} for {}", s.labels(), ctx);
        // `seek` on a fresh iterator, then `next` after it.
        let target = mint + query.seek;
        let mut it = s.iter();
        let pos = model.iter().position(|x| x.t >= target);
        prop_assert_eq!(
            it.seek(target),
            pos.map(|p| model[p]),
            "seek({}) in {} for {}",
            target,
            s.labels(),
            ctx
        );
        if let Some(p) = pos {
            prop_assert_eq!(it.next(), model.get(p + 1).copied(), "next after seek in {}", s.labels());
            // Seeking backwards does not move.
            prop_assert_eq!(it.seek(mint), model.get(p + 1).copied(), "seek back in {}", s.labels());
        }
    }

    // With matchers the head answers from its index too when its range overlaps, as
    // Prometheus' head does: at least the matching series with samples in range, at most every
    // matching series ever appended to.
    let name = NAMES[query.name];
    let matching: Vec<&Labels> =
        ever_appended.iter().filter(|l| kahu_tsdb::querier::matches_all(l, &matchers)).collect();
    let lower: BTreeSet<String> = want.keys().flat_map(|l| l.iter().map(|x| x.name.to_string())).collect();
    let upper: BTreeSet<String> =
        matching.iter().flat_map(|l| l.iter().map(|x| x.name.to_string())).collect();
    let got: BTreeSet<String> = q.label_names(&matchers, mint, maxt).unwrap().into_iter().collect();
    prop_assert!(lower.is_subset(&got) && got.is_subset(&upper), "label_names {:?} {}", got, ctx);
    let lower: BTreeSet<&str> = want.keys().filter_map(|l| l.get(name)).collect();
    let upper: BTreeSet<&str> = matching.iter().filter_map(|l| l.get(name)).collect();
    let got = q.label_values(name, &matchers, mint, maxt).unwrap();
    let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
    prop_assert!(lower.is_subset(&got) && got.is_subset(&upper), "label_values({}) {:?} {}", name, got, ctx);

    // Without matchers the answer comes from the index, as in Prometheus' head: at least every
    // committed series in range, at most every series ever appended to.
    let in_range: Vec<&Labels> = committed
        .iter()
        .filter(|(_, s)| s.iter().any(|x| x.t >= mint && x.t <= maxt))
        .map(|(l, _)| l)
        .collect();
    let lower: BTreeSet<String> =
        in_range.iter().flat_map(|l| l.iter().map(|x| x.name.to_string())).collect();
    let upper: BTreeSet<String> =
        ever_appended.iter().flat_map(|l| l.iter().map(|x| x.name.to_string())).collect();
    let all: BTreeSet<String> = q.label_names(&[], mint, maxt).unwrap().into_iter().collect();
    prop_assert!(lower.is_subset(&all) && all.is_subset(&upper), "label_names() {:?} for {}", all, ctx);
    let lower: BTreeSet<&str> = in_range.iter().filter_map(|l| l.get(name)).collect();
    let upper: BTreeSet<&str> = ever_appended.iter().filter_map(|l| l.get(name)).collect();
    let all = q.label_values(name, &[], mint, maxt).unwrap();
    let all: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    prop_assert!(
        lower.is_subset(&all) && all.is_subset(&upper),
        "label_values({}) {:?} for {}",
        name,
        all,
        ctx
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]
    #[test]
    fn queries_agree_with_a_btreemap_model(ops in proptest::collection::vec(op(), 1..150)) {
        let dir = tempfile::tempdir().unwrap();
        let mut committed: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut ever_appended: BTreeSet<Labels>;
        let mut batch: Vec<(Labels, Sample)> = Vec::new();
        for session in ops.split(|o| matches!(o, Op::Restart)) {
            let db = Db::open(dir.path(), opts()).unwrap();
            // Series that were never committed are gone after a restart.
            ever_appended = committed.keys().cloned().collect();
            let mut app: Option<Box<dyn Appender + '_>> = None;
            for op in session {
                match op {
                    Op::Append { s, dt, v } => {
                        let l = labels(*s);
                        let last = batch.iter().rev().find(|(bl, _)| *bl == l).map(|(_, x)| *x)
                            .or_else(|| committed.get(&l).and_then(|v| v.last().copied()));
                        let t = last.map_or(1000, |x| x.t + dt - 1);
                        let value = val(*v);
                        let a = app.get_or_insert_with(|| db.appender());
                        let got = a.append(&l, t, value);
                        ever_appended.insert(l.clone());
                        match last {
                            Some(x) if t < x.t => prop_assert!(matches!(got, Err(AppendError::OutOfOrder { .. })), "{:?}", got),
                            Some(x) if t == x.t && x.v.to_bits() == value.to_bits() => prop_assert!(got.is_ok()),
                            Some(x) if t == x.t => prop_assert!(matches!(got, Err(AppendError::DuplicateTimestamp { .. })), "{:?}", got),
                            _ => {
                                prop_assert!(got.is_ok(), "{:?}", got);
                                batch.push((l, Sample::new(t, value)));
                            }
                        }
                    }
                    Op::Commit => {
                        if let Some(a) = app.take() {
                            a.commit().unwrap();
                        }
                        for (l, s) in batch.drain(..) {
                            committed.entry(l).or_default().push(s);
                        }
                    }
                    Op::Rollback => {
                        if let Some(a) = app.take() {
                            a.rollback();
                        }
                        batch.clear();
                    }
                    Op::Restart => {}
                    Op::Query(query) => check(db.querier().unwrap().as_ref(), query, &committed, &ever_appended)?,
                }
            }
            drop(app);
            batch.clear();
        }
    }
}
