//! Shared helpers.

use std::collections::BTreeMap;

use kahu_tsdb::model::{Labels, Matcher, Sample};
use kahu_tsdb::{Db, FsyncPolicy, Options, Querier, Queryable};

/// Options for tests: small segments so that tests cross segment boundaries.
pub fn opts() -> Options {
    Options { wal_fsync: FsyncPolicy::Never, wal_segment_size: 64 << 10, ..Options::default() }
}

/// Every series and its samples, as a querier sees them (all time, all series).
pub fn dump(q: &dyn Querier) -> BTreeMap<Labels, Vec<Sample>> {
    dump_matching(q, &[Matcher::new(kahu_tsdb::model::MatchOp::Regex, "__name__", ".+").unwrap()])
}

/// Series matching `m`, with their samples.
pub fn dump_matching(q: &dyn Querier, m: &[Matcher]) -> BTreeMap<Labels, Vec<Sample>> {
    let mut out = BTreeMap::new();
    for s in q.select(m, i64::MIN, i64::MAX).unwrap() {
        let mut it = s.iter();
        let mut v = Vec::new();
        while let Some(x) = it.next() {
            v.push(x);
        }
        assert!(it.err().is_none(), "{:?}", it.err());
        out.insert(s.labels().clone(), v);
    }
    out
}

/// Dump of a Db.
pub fn dump_db(db: &Db) -> BTreeMap<Labels, Vec<Sample>> {
    dump(db.querier().unwrap().as_ref())
}

/// `{__name__="m", i="<i>"}`.
pub fn series(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
}
