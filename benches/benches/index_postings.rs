//! Index measurements for issue 4: are delta-varint postings lists and sorted label values
//! (with prefix/alternation narrowing) the right on-disk choices, against roaring bitmaps
//! (`roaring`) and an FST of the values searched with a regex DFA (`fst` + `regex-automata`)?
//!
//! Postings: the 100,000-series node workload (`kahu_benches::workload`, one node, cAdvisor +
//! node_exporter label sets), series numbered in label order as in a block. Each list is encoded
//! both ways; sizes are printed (`postings_size ...` lines, all lists and the lists each case
//! reads), and criterion times what a matcher costs from the stored bytes: decoding the lists
//! and intersecting (`__name__` ∩ `namespace`) or uniting them (a pod regex), down to the sorted
//! series refs the series lookup needs.
//!
//! Label values: 100,000 pod names (Kubernetes-style `<app>-<10>-<5>`), written as a real block
//! index; a regex matcher's series refs through `IndexReader::select` (sorted values, prefix /
//! alternation narrowing, the regex on every candidate) against an FST of the same values searched
//! with an anchored dense DFA, then the same postings reads.
//!
//! `cargo bench -p kahu-benches --bench index_postings`

#![expect(clippy::expect_used, reason = "a benchmark has nobody to report an error to: it stops")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use kahu_benches::workload::{Config, Workload};
use kahu_tsdb::block::{BlockSpec, WriteOptions, write_block};
use kahu_tsdb::index::IndexReader;
use kahu_tsdb::model::{Labels, MatchOp, Matcher, Sample};
use regex_automata::dfa::Automaton as _;
use roaring::RoaringBitmap;

/// A label pair's postings, in both encodings.
struct List {
    varint: Vec<u8>,
    roaring: Vec<u8>,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn uvarint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&x) = b.get(*pos) {
        *pos += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

/// `count | first | gaps`, as `docs/format/index.md` stores a list.
fn encode_varint(refs: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    put_uvarint(&mut out, refs.len() as u64);
    let mut prev = 0u32;
    for (i, &r) in refs.iter().enumerate() {
        put_uvarint(&mut out, u64::from(if i == 0 { r } else { r - prev }));
        prev = r;
    }
    out
}

fn decode_varint(b: &[u8]) -> Vec<u32> {
    let mut pos = 0;
    let n = uvarint(b, &mut pos) as usize;
    let mut out = Vec::with_capacity(n);
    let mut cur = 0u32;
    for i in 0..n {
        let d = uvarint(b, &mut pos) as u32;
        cur = if i == 0 { d } else { cur + d };
        out.push(cur);
    }
    out
}

fn encode_roaring(refs: &[u32]) -> Vec<u8> {
    let mut bm = RoaringBitmap::from_sorted_iter(refs.iter().copied()).expect("sorted");
    bm.optimize();
    let mut out = Vec::with_capacity(bm.serialized_size());
    bm.serialize_into(&mut out).expect("serialize");
    out
}

fn decode_roaring(b: &[u8]) -> RoaringBitmap {
    RoaringBitmap::deserialize_unchecked_from(b).expect("deserialize")
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The node workload's label pairs → sorted series refs (series numbered in label order).
fn node_postings(series: usize) -> BTreeMap<(String, String), List> {
    let w = Workload::new(Config { series, ..Config::default() });
    let mut all: Vec<&Labels> = (0..w.series_created() as u32).filter_map(|id| w.labels(id)).collect();
    all.sort();
    let mut refs: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for (r, l) in all.iter().enumerate() {
        for x in l.iter() {
            refs.entry((x.name.to_string(), x.value.to_string())).or_default().push(r as u32);
        }
    }
    eprintln!("postings_workload series={} pairs={}", all.len(), refs.len());
    refs.into_iter()
        .map(|(k, v)| (k, List { varint: encode_varint(&v), roaring: encode_roaring(&v) }))
        .collect()
}

/// The value of `name` with the longest list.
fn largest<'a>(p: &'a BTreeMap<(String, String), List>, name: &str) -> (&'a str, &'a List) {
    p.iter()
        .filter(|((n, _), _)| n == name)
        .max_by_key(|(_, l)| l.varint.len())
        .map(|((_, v), l)| (v.as_str(), l))
        .expect("label present")
}

fn sizes(case: &str, lists: &[&List]) {
    let v: usize = lists.iter().map(|l| l.varint.len()).sum();
    let r: usize = lists.iter().map(|l| l.roaring.len()).sum();
    let refs: usize = lists.iter().map(|l| decode_varint(&l.varint).len()).sum();
    eprintln!(
        "postings_size {case}: lists={} refs={refs} varint_bytes={v} roaring_bytes={r} roaring/varint={:.3}",
        lists.len(),
        r as f64 / v as f64
    );
}

fn postings_benches(c: &mut Criterion) {
    let p = node_postings(100_000);
    let all: Vec<&List> = p.values().collect();
    sizes("all", &all);
    let short: Vec<&List> = p.values().filter(|l| decode_varint(&l.varint).len() <= 16).collect();
    sizes("lists_of_at_most_16_refs", &short);
    let (metric, name_list) = largest(&p, "__name__");
    let (ns, ns_list) = largest(&p, "namespace");
    sizes(&format!("__name__={metric}"), &[name_list]);
    sizes(&format!("namespace={ns}"), &[ns_list]);
    // A pod regex: every pod of the app with the most pods (its name prefix).
    let mut by_app: BTreeMap<&str, Vec<&List>> = BTreeMap::new();
    for ((n, v), l) in &p {
        if n == "pod" {
            let app = v.rsplit_once('-').map_or(v.as_str(), |(a, _)| a);
            let app = app.rsplit_once('-').filter(|(_, h)| h.len() == 10).map_or(app, |(a, _)| a);
            by_app.entry(app).or_default().push(l);
        }
    }
    let (app, pods) = by_app.iter().max_by_key(|(_, l)| l.len()).expect("pods");
    sizes(&format!("pod=~\"{app}-.*\""), pods);

    let mut g = c.benchmark_group("index_postings");
    g.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("intersect_name_namespace/varint", |b| {
        b.iter(|| intersect(&decode_varint(&name_list.varint), &decode_varint(&ns_list.varint)))
    });
    g.bench_function("intersect_name_namespace/roaring", |b| {
        b.iter(|| {
            let x = decode_roaring(&name_list.roaring) & decode_roaring(&ns_list.roaring);
            x.iter().collect::<Vec<u32>>()
        })
    });
    g.bench_function("union_pod_regex/varint", |b| {
        b.iter(|| {
            let mut all: Vec<u32> = Vec::new();
            for l in pods {
                all.extend(decode_varint(&l.varint));
            }
            all.sort_unstable();
            all.dedup();
            all
        })
    });
    g.bench_function("union_pod_regex/roaring", |b| {
        b.iter(|| {
            let mut u = RoaringBitmap::new();
            for l in pods {
                u |= decode_roaring(&l.roaring);
            }
            u.iter().collect::<Vec<u32>>()
        })
    });
    g.bench_function("name_namespace_pods/varint", |b| {
        b.iter(|| {
            let mut all: Vec<u32> = Vec::new();
            for l in pods {
                all.extend(decode_varint(&l.varint));
            }
            all.sort_unstable();
            all.dedup();
            intersect(&intersect(&decode_varint(&name_list.varint), &decode_varint(&ns_list.varint)), &all)
        })
    });
    g.bench_function("name_namespace_pods/roaring", |b| {
        b.iter(|| {
            let mut u = RoaringBitmap::new();
            for l in pods {
                u |= decode_roaring(&l.roaring);
            }
            let x = decode_roaring(&name_list.roaring) & decode_roaring(&ns_list.roaring) & u;
            x.iter().collect::<Vec<u32>>()
        })
    });
    g.finish();
}

/// Kubernetes-style pod names: 50 apps, `<app>-<10 alnum>-<5 alnum>`, deterministic.
fn pod_names(n: usize) -> Vec<String> {
    const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const APPS: [&str; 10] =
        ["frontend", "checkout", "cart", "payment", "shipping", "ads", "catalog", "email", "redis", "search"];
    let mut x = 0x6b61_6875u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(ALNUM.get((next() % ALNUM.len() as u64) as usize).copied().unwrap_or(b'x')))
            .collect()
    };
    let mut out: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{}-{}-{}-{}",
                APPS.get(i % APPS.len()).unwrap_or(&"app"),
                (i / APPS.len()) % 5,
                s(10),
                s(5)
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An `fst::Automaton` over a fully anchored regex-automata dense DFA.
struct Dfa(regex_automata::dfa::dense::DFA<Vec<u32>>);

impl fst::Automaton for &Dfa {
    type State = regex_automata::util::primitives::StateID;

    fn start(&self) -> Self::State {
        let cfg = regex_automata::util::start::Config::new().anchored(regex_automata::Anchored::Yes);
        self.0.start_state(&cfg).expect("start state")
    }

    fn is_match(&self, s: &Self::State) -> bool {
        self.0.is_match_state(self.0.next_eoi_state(*s))
    }

    fn can_match(&self, s: &Self::State) -> bool {
        !self.0.is_dead_state(*s)
    }

    fn accept(&self, s: &Self::State, byte: u8) -> Self::State {
        self.0.next_state(*s, byte)
    }
}

fn label_value_benches(c: &mut Criterion) {
    use fst::{IntoStreamer, Streamer};
    let pods = pod_names(100_000);
    eprintln!("label_values pods={}", pods.len());
    let dir = tempfile::tempdir().expect("temporary directory");
    let series = pods.iter().map(|p| {
        (
            Labels::from_pairs([("__name__", "kube_pod_info"), ("pod", p.as_str())]),
            vec![Sample::new(1_000, 1.0)],
        )
    });
    let spec = BlockSpec { min_time: 0, max_time: 7_200_000, compaction: Default::default() };
    let meta = write_block(dir.path(), series, &spec, &WriteOptions::default())
        .expect("write block")
        .expect("a block");
    let reader = IndexReader::open(&dir.path().join(&meta.ulid).join("index")).expect("open index");
    let set = fst::Set::from_iter(pods.iter()).expect("fst");
    let fst_bytes = set.as_fst().as_bytes().len();
    let list_bytes: usize = pods.iter().map(|p| p.len() + 1).sum();
    eprintln!("label_values_size values={} sorted_list_bytes~{list_bytes} fst_bytes={fst_bytes}", pods.len());

    let mut g = c.benchmark_group("label_values_regex");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (id, re) in [
        ("prefix", "frontend-3-.*"),
        ("alternation_of_prefixes", "(frontend|payment)-3-.*"),
        ("infix", ".*-3-bc.*"),
        ("suffix", ".*-zz"),
        ("char_class", "[a-c].*-[0-4]-b.*"),
    ] {
        let m = Matcher::new(MatchOp::Regex, "pod", re).expect("regex");
        let kahu = reader.select(std::slice::from_ref(&m)).expect("select");
        let dfa = Dfa(regex_automata::dfa::dense::DFA::new(&format!("^(?:{re})$")).expect("dfa"));
        let via_fst = |dfa: &Dfa| {
            let mut s = set.search(dfa).into_stream();
            let mut refs: Vec<u32> = Vec::new();
            while let Some(v) = s.next() {
                let v = std::str::from_utf8(v).expect("utf-8");
                refs.extend(reader.postings("pod", v).expect("postings"));
            }
            refs.sort_unstable();
            refs.dedup();
            refs
        };
        assert_eq!(via_fst(&dfa), kahu, "{re}: the FST search and the index disagree");
        eprintln!("label_values_regex {id} {re:?}: {} series", kahu.len());
        g.bench_function(format!("{id}/sorted_values"), |b| {
            b.iter(|| reader.select(black_box(std::slice::from_ref(&m))).expect("select"))
        });
        g.bench_function(format!("{id}/fst_dfa"), |b| b.iter(|| via_fst(black_box(&dfa))));
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    postings_benches(&mut c);
    label_value_benches(&mut c);
    c.final_summary();
}
