//! Reading an index file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    BlockSeriesRef, ChunkMeta, MAGIC, PAGE_SERIES, PAGE_TABLE, POSTINGS, POSTINGS_TABLE, SERIES, SYMBOLS,
    SeriesEntry, TOC_LEN, VERSION,
};
use crate::block::chunks::ChunkRef;
use crate::block::codec::CodecError;
use crate::block::codec::buf::Dec;
use crate::block::section::{self, SectionError};
use crate::fs::MappedFile;
use crate::model::{Label, Labels, MatchOp, Matcher};

/// An index could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be opened or mapped.
    #[error("open index {path}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A section failed its checks.
    #[error("index {path}")]
    Section {
        /// The index file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: SectionError,
    },
    /// The contents are inconsistent.
    #[error("index {path}: {reason}")]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One label value's postings list location.
#[derive(Debug, Clone)]
struct ValueEntry {
    value: Arc<str>,
    off: usize,
    len: usize,
}

/// A read-only, memory-mapped index.
#[derive(Debug, Clone)]
pub struct IndexReader {
    path: PathBuf,
    file: MappedFile,
    symbols: Vec<Arc<str>>,
    pages: Vec<usize>,
    num_series: usize,
    postings: std::ops::Range<usize>,
    table: BTreeMap<Arc<str>, Vec<ValueEntry>>,
}

impl IndexReader {
    /// Maps `path` and checks its header, TOC and every section's checksum; loads the symbols
    /// and the postings table.
    pub fn open(path: &Path) -> Result<IndexReader, IndexError> {
        let file =
            MappedFile::open(path).map_err(|source| IndexError::Io { path: path.to_path_buf(), source })?;
        let corrupt = |reason| IndexError::Corrupt { path: path.to_path_buf(), reason };
        let sec = |source| IndexError::Section { path: path.to_path_buf(), source };
        if file.get(..4) != Some(&MAGIC[..]) {
            return Err(corrupt("not an index file (bad magic)"));
        }
        let version = file.get(4).copied().unwrap_or(0);
        if version == 0 || version > VERSION {
            return Err(corrupt("unsupported index format version"));
        }
        if file.get(5..8) != Some(&[0u8, 0, 0][..]) {
            return Err(corrupt("reserved header bytes are not zero"));
        }
        let toc_at = file.len().checked_sub(TOC_LEN).ok_or(corrupt("file shorter than its TOC"))?;
        let toc = file.get(toc_at..).ok_or(corrupt("file shorter than its TOC"))?;
        if toc.get(36..40) != Some(&MAGIC[..]) {
            return Err(corrupt("bad TOC magic (truncated file?)"));
        }
        let mut d = Dec::new(toc);
        let mut offs = [0usize; 4];
        for o in &mut offs {
            *o = usize::try_from(d.u64().map_err(|_| corrupt("TOC"))?).map_err(|_| corrupt("TOC offset"))?;
        }
        let crc = d.u32().map_err(|_| corrupt("TOC"))?;
        if crc32c::crc32c(toc.get(..32).unwrap_or(&[])) != crc {
            return Err(corrupt("TOC checksum mismatch"));
        }
        let [sym_off, table_off, postings_off, ptable_off] = offs;

        let (p, _) = section::read(&file, sym_off, SYMBOLS, VERSION).map_err(sec)?;
        let symbols = parse_symbols(&p).map_err(|_| corrupt("symbol table"))?;

        let (p, _) = section::read(&file, table_off, PAGE_TABLE, VERSION).map_err(sec)?;
        let mut d = Dec::new(&p);
        let n = d.len(file.len(), "page count").map_err(|_| corrupt("series page table"))?;
        let mut pages = Vec::with_capacity(n);
        let mut at = 0usize;
        for _ in 0..n {
            at = at
                .checked_add(d.len(file.len(), "page offset").map_err(|_| corrupt("series page table"))?)
                .ok_or(corrupt("page offset"))?;
            pages.push(at);
        }
        // Every page's checksum, and the series count from the last page.
        let mut num_series = 0;
        for (i, &off) in pages.iter().enumerate() {
            let loc = section::locate(&file, off, SERIES, VERSION).map_err(sec)?;
            if i + 1 == pages.len() {
                let p = section::payload(&file, &loc).map_err(sec)?;
                let count =
                    Dec::new(&p).len(PAGE_SERIES, "page series count").map_err(|_| corrupt("series page"))?;
                num_series = i * PAGE_SERIES + count;
            }
        }

        let loc = section::locate(&file, postings_off, POSTINGS, VERSION).map_err(sec)?;
        if loc.zstd {
            return Err(corrupt("compressed postings"));
        }
        let postings = loc.payload.clone();

        let (p, _) = section::read(&file, ptable_off, POSTINGS_TABLE, VERSION).map_err(sec)?;
        let table = parse_table(&p, &symbols, postings.len()).map_err(|_| corrupt("postings table"))?;
        Ok(IndexReader { path: path.to_path_buf(), file, symbols, pages, num_series, postings, table })
    }

    fn corrupt(&self, reason: &'static str) -> IndexError {
        IndexError::Corrupt { path: self.path.clone(), reason }
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.num_series
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(|k| k.as_ref())
    }

    /// Every value of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.table.get(name).into_iter().flatten().map(|e| e.value.as_ref())
    }

    /// `(value, series count)` for every value of `name`, for `tsdb analyze`.
    pub fn value_cardinalities(&self, name: &str) -> Vec<(&str, usize)> {
        self.table
            .get(name)
            .into_iter()
            .flatten()
            .map(|e| (e.value.as_ref(), self.read_postings(e).map(|p| p.len()).unwrap_or(0)))
            .collect()
    }

    fn read_postings(&self, e: &ValueEntry) -> Result<Vec<u32>, IndexError> {
        let start = self.postings.start + e.off;
        let bytes =
            self.file.get(start..start + e.len).ok_or(self.corrupt("postings list beyond its section"))?;
        let mut d = Dec::new(bytes);
        let bad = |_| self.corrupt("postings list");
        let n = d.len(self.num_series, "postings count").map_err(bad)?;
        let mut out = Vec::with_capacity(n);
        let mut id = 0u64;
        for i in 0..n {
            let v = d.uvarint().map_err(bad)?;
            if i > 0 && v == 0 {
                return Err(self.corrupt("postings list not increasing"));
            }
            id = id.checked_add(v).ok_or(self.corrupt("postings list"))?;
            if id >= self.num_series as u64 {
                return Err(self.corrupt("postings entry beyond the series"));
            }
            out.push(id as u32);
        }
        Ok(out)
    }

    /// The sorted series refs carrying `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u32>, IndexError> {
        let Some(vals) = self.table.get(name) else { return Ok(Vec::new()) };
        match vals.binary_search_by(|e| e.value.as_ref().cmp(value)) {
            Ok(i) => vals.get(i).map_or(Ok(Vec::new()), |e| self.read_postings(e)),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The values of `name` carried by at least one series of `refs` (sorted ids), sorted, found
    /// by intersecting each value's postings with `refs` as Prometheus'
    /// `FindIntersectingPostings` does; `None` when the value's postings are bigger than reading
    /// the series of `refs` would be (a label with about as many values as series, like `pod`).
    pub fn values_among(&self, name: &str, refs: &[u32]) -> Result<Option<Vec<&str>>, IndexError> {
        let Some(vals) = self.table.get(name) else { return Ok(Some(Vec::new())) };
        // A series entry (labels and chunk metas) costs a few dozen bytes to decode.
        let bytes: usize = vals.iter().map(|e| e.len).sum();
        if bytes > refs.len().saturating_mul(32) {
            return Ok(None);
        }
        let mut out = Vec::new();
        for e in vals {
            if !intersect(&self.read_postings(e)?, refs).is_empty() {
                out.push(e.value.as_ref());
            }
        }
        Ok(Some(out))
    }

    /// Values of `m.name` that `m` accepts (non-empty values only), narrowed through the sorted
    /// value list before the matcher is run.
    fn matching_entries<'a>(&'a self, m: &Matcher) -> Vec<&'a ValueEntry> {
        let Some(vals) = self.table.get(m.name.as_str()) else { return Vec::new() };
        let find =
            |v: &str| vals.binary_search_by(|e| e.value.as_ref().cmp(v)).ok().and_then(|i| vals.get(i));
        match m.op {
            MatchOp::Equal => find(&m.value).into_iter().collect(),
            MatchOp::Regex => match narrow(&m.value) {
                Narrow::Set(set) => {
                    set.iter().filter_map(|v| find(v)).filter(|e| m.matches(&e.value)).collect()
                }
                Narrow::Prefix(p) => {
                    let start = vals.partition_point(|e| e.value.as_ref() < p.as_str());
                    vals.get(start..)
                        .unwrap_or(&[])
                        .iter()
                        .take_while(|e| e.value.starts_with(p.as_str()))
                        .filter(|e| m.matches(&e.value))
                        .collect()
                }
                Narrow::None => vals.iter().filter(|e| m.matches(&e.value)).collect(),
            },
            MatchOp::NotEqual | MatchOp::NotRegex => vals.iter().filter(|e| m.matches(&e.value)).collect(),
        }
    }

    fn union(
        &self,
        entries: impl Iterator<Item = Result<Vec<u32>, IndexError>>,
    ) -> Result<Vec<u32>, IndexError> {
        let mut all = Vec::new();
        for p in entries {
            all.extend(p?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Sorted refs of the series that satisfy every matcher (all series when there are none),
    /// with Prometheus semantics: a matcher that accepts the empty string also selects series
    /// without the label.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<u32>, IndexError> {
        let mut result: Option<Vec<u32>> = None;
        // Matchers that select by inclusion first: they shrink the set the most.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| m.matches(""));
        for m in order {
            if m.matches("") {
                let excluded = self.union(
                    self.table
                        .get(m.name.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|e| !m.matches(&e.value))
                        .map(|e| self.read_postings(e)),
                )?;
                let base = result.take().unwrap_or_else(|| (0..self.num_series as u32).collect());
                result = Some(subtract(&base, &excluded));
            } else {
                let included =
                    self.union(self.matching_entries(m).into_iter().map(|e| self.read_postings(e)))?;
                result = Some(match result.take() {
                    None => included,
                    Some(r) => intersect(&r, &included),
                });
            }
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                break;
            }
        }
        Ok(result.unwrap_or_else(|| (0..self.num_series as u32).collect()))
    }

    /// Decompresses series page `page`.
    pub fn page(&self, page: usize) -> Result<Vec<SeriesEntry>, IndexError> {
        let off = *self.pages.get(page).ok_or(self.corrupt("series ref beyond the series"))?;
        let (p, _) = section::read(&self.file, off, SERIES, VERSION)
            .map_err(|source| IndexError::Section { path: self.path.clone(), source })?;
        self.parse_page(&p).map_err(|_| self.corrupt("series page"))
    }

    fn parse_page(&self, p: &[u8]) -> Result<Vec<SeriesEntry>, CodecError> {
        let mut d = Dec::new(p);
        let n = d.len(PAGE_SERIES, "page series count")?;
        let mut out = Vec::with_capacity(n);
        let sym = |d: &mut Dec<'_>| -> Result<Arc<str>, CodecError> {
            let i = d.len(self.symbols.len(), "symbol ref")?;
            self.symbols.get(i).cloned().ok_or(CodecError::Invalid("symbol ref"))
        };
        for _ in 0..n {
            let ln = d.len(1024, "label count")?;
            let mut labels = Vec::with_capacity(ln);
            for _ in 0..ln {
                let name = sym(&mut d)?;
                let value = sym(&mut d)?;
                labels.push(Label { name, value });
            }
            let cn = d.len(1 << 24, "chunk count")?;
            let mut chunks = Vec::with_capacity(cn);
            let mut prev_maxt: Option<i64> = None;
            for _ in 0..cn {
                let v = d.varint()?;
                let mint = match prev_maxt {
                    None => v,
                    Some(pm) => pm.wrapping_add(v),
                };
                let maxt = mint.wrapping_add(d.uvarint()? as i64);
                let samples =
                    u32::try_from(d.uvarint()?).map_err(|_| CodecError::Invalid("chunk samples"))?;
                let chunk = ChunkRef(d.u64()?);
                chunks.push(ChunkMeta { mint, maxt, samples, chunk });
                prev_maxt = Some(maxt);
            }
            out.push((Labels::from_vec(labels), chunks));
        }
        if d.remaining() > 0 {
            return Err(CodecError::Trailing(d.remaining()));
        }
        Ok(out)
    }

    /// Labels and chunks of the given series (sorted refs), decompressing each page once.
    pub fn series(&self, refs: &[u32]) -> Result<Vec<(BlockSeriesRef, Labels, Vec<ChunkMeta>)>, IndexError> {
        let mut out = Vec::with_capacity(refs.len());
        let mut cur: Option<(usize, Vec<SeriesEntry>)> = None;
        for &r in refs {
            let page = r as usize / PAGE_SERIES;
            if cur.as_ref().is_none_or(|c| c.0 != page) {
                cur = Some((page, self.page(page)?));
            }
            let entry = cur
                .as_ref()
                .and_then(|c| c.1.get(r as usize % PAGE_SERIES))
                .ok_or(self.corrupt("series ref beyond its page"))?;
            out.push((BlockSeriesRef(r), entry.0.clone(), entry.1.clone()));
        }
        Ok(out)
    }
}

fn parse_symbols(p: &[u8]) -> Result<Vec<Arc<str>>, CodecError> {
    let mut d = Dec::new(p);
    let n = d.len(p.len(), "symbol count")?;
    let mut out: Vec<Arc<str>> = Vec::with_capacity(n);
    for _ in 0..n {
        let l = d.len(p.len(), "symbol length")?;
        let s = std::str::from_utf8(d.bytes(l)?).map_err(|_| CodecError::Invalid("symbol is not UTF-8"))?;
        if out.last().is_some_and(|prev| prev.as_ref() >= s) {
            return Err(CodecError::Invalid("symbols not sorted"));
        }
        out.push(Arc::from(s));
    }
    Ok(out)
}

fn parse_table(
    p: &[u8],
    symbols: &[Arc<str>],
    postings_len: usize,
) -> Result<BTreeMap<Arc<str>, Vec<ValueEntry>>, CodecError> {
    let mut d = Dec::new(p);
    let sym = |d: &mut Dec<'_>| -> Result<Arc<str>, CodecError> {
        let i = d.len(symbols.len(), "symbol ref")?;
        symbols.get(i).cloned().ok_or(CodecError::Invalid("symbol ref"))
    };
    let names = d.len(symbols.len(), "label name count")?;
    let mut table = BTreeMap::new();
    let mut off = 0usize;
    for _ in 0..names {
        let name = sym(&mut d)?;
        let nv = d.len(symbols.len(), "value count")?;
        let mut vals: Vec<ValueEntry> = Vec::with_capacity(nv);
        for _ in 0..nv {
            let value = sym(&mut d)?;
            off = off
                .checked_add(d.len(postings_len, "postings offset")?)
                .ok_or(CodecError::Invalid("postings offset"))?;
            let len = d.len(postings_len, "postings length")?;
            if off.checked_add(len).is_none_or(|e| e > postings_len) {
                return Err(CodecError::Invalid("postings beyond the section"));
            }
            if vals.last().is_some_and(|v| v.value >= value) {
                return Err(CodecError::Invalid("label values not sorted"));
            }
            vals.push(ValueEntry { value, off, len });
        }
        table.insert(name, vals);
    }
    Ok(table)
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

fn subtract(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|&x| {
            while b.get(j).is_some_and(|&y| y < x) {
                j += 1;
            }
            b.get(j) != Some(&x)
        })
        .collect()
}

/// How a regex's candidates can be narrowed through sorted values.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Narrow {
    /// The regex is an alternation of literals: only these values can match.
    Set(Vec<String>),
    /// Every match starts with this literal.
    Prefix(String),
    /// No narrowing: test every value.
    None,
}

const META: &[char] = &['.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$', '\\'];

/// What a (fully anchored) Prometheus regex says about its matches. Conservative: narrowing
/// only ever drops values that cannot match; every candidate is still tested.
pub(crate) fn narrow(pattern: &str) -> Narrow {
    if !pattern.contains(|c: char| META.contains(&c) && c != '|') {
        return Narrow::Set(pattern.split('|').map(str::to_string).collect());
    }
    if pattern.contains('|') {
        return Narrow::None;
    }
    let end = pattern.find(|c: char| META.contains(&c)).unwrap_or(pattern.len());
    let mut prefix: String = pattern.get(..end).unwrap_or("").to_string();
    // A quantifier after the prefix makes its last character optional.
    if pattern.get(end..).is_some_and(|r| r.starts_with(['?', '*', '{'])) {
        prefix.pop();
    }
    if prefix.is_empty() { Narrow::None } else { Narrow::Prefix(prefix) }
}
