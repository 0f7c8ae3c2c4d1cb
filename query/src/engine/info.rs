//! `info(v, [data-label-selector])` (experimental in Prometheus 3): enriches each series of `v`
//! with the data labels of the info series (`target_info` unless the selector names others) that
//! share its identifying labels (`instance`, `job`).

use std::collections::HashMap;

use kahu_tsdb::model::{Labels, METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::Expr;

use super::error::EvalError;
use super::eval::{Evaluator, selector_matchers};
use super::types::{Point, Range, Series, Val};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// An info series' key: its metric name and identifying labels.
fn signature(name: &str, labels: &Labels) -> Vec<(String, String)> {
    let mut sig = vec![(METRIC_NAME.to_string(), name.to_string())];
    for id in IDENTIFYING {
        if let Some(v) = labels.get(id) {
            sig.push((id.to_string(), v.to_string()));
        }
    }
    sig
}

impl Evaluator<'_> {
    pub(crate) fn info(&mut self, args: &[Box<Expr>], r: Range) -> Result<Val, EvalError> {
        let base_expr = args.first().ok_or_else(|| EvalError::exec("info() needs an instant vector"))?;
        let base = self.eval_vector(base_expr, r)?;

        // Matchers of the data-label selector, split into info-metric-name and data-label ones.
        let mut name_matchers: Vec<Matcher> = Vec::new();
        let mut data_matchers: Vec<Matcher> = Vec::new();
        if let Some(sel) = args.get(1) {
            let mut e: &Expr = sel;
            while let Expr::Paren(p) = e {
                e = &p.expr;
            }
            let Expr::VectorSelector(vs) = e else {
                return Err(EvalError::exec("the second argument of info() must be a label selector"));
            };
            for m in selector_matchers(vs)?.into_iter().flatten() {
                if m.name == METRIC_NAME { name_matchers.push(m) } else { data_matchers.push(m) }
            }
        }
        if name_matchers.is_empty() {
            name_matchers.push(Matcher::equal(METRIC_NAME, TARGET_INFO));
        }
        let is_info_name = |name: &str| name_matchers.iter().all(|m| m.matches(name));

        // Identifying-label values of the base series, for the info-series selection.
        let mut values: HashMap<&str, Vec<String>> = HashMap::new();
        for s in &base {
            if is_info_name(s.labels.metric_name().unwrap_or("")) {
                continue;
            }
            for id in IDENTIFYING {
                if let Some(v) = s.labels.get(id) {
                    let vs = values.entry(id).or_default();
                    if !vs.iter().any(|x| x == v) {
                        vs.push(v.to_string());
                    }
                }
            }
        }
        let info = if values.is_empty() {
            Vec::new()
        } else {
            let mut set = name_matchers.clone();
            set.extend(data_matchers.iter().cloned());
            for (id, vs) in &values {
                let re = vs.iter().map(|v| regex::escape(v)).collect::<Vec<_>>().join("|");
                set.push(Matcher::new(MatchOp::Regex, *id, re)?);
            }
            self.select_instant(&[set], 0, None, r, false)?
        };
        let info_names: Vec<String> = {
            let mut n: Vec<String> =
                info.iter().filter_map(|s| s.labels.metric_name().map(str::to_string)).collect();
            n.sort();
            n.dedup();
            n
        };
        let info_sigs: Vec<Vec<(String, String)>> =
            info.iter().map(|s| signature(s.labels.metric_name().unwrap_or(""), &s.labels)).collect();
        let data_names: Vec<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();
        let all_match_empty = data_matchers.iter().all(Matcher::matches_empty);

        let mut out: Vec<Series> = Vec::new();
        let mut index: HashMap<Labels, (usize, usize)> = HashMap::new();
        let mut base_pos = vec![0usize; base.len()];
        let mut info_pos = vec![0usize; info.len()];
        let mut present: HashMap<&[(String, String)], usize> = HashMap::new();
        for (step, t) in r.timestamps().enumerate() {
            if step % 256 == 0 {
                self.check()?;
            }
            present.clear();
            for (k, s) in info.iter().enumerate() {
                let Some(i) = info_pos.get_mut(k) else { continue };
                if s.points.get(*i).is_some_and(|p| p.t == t) {
                    *i += 1;
                    let Some(sig) = info_sigs.get(k) else { continue };
                    if present.insert(sig.as_slice(), k).is_some() {
                        return Err(EvalError::exec(format!(
                            "found duplicate series for info metric {}",
                            s.labels.metric_name().unwrap_or("")
                        )));
                    }
                }
            }
            for (bi, bs) in base.iter().enumerate() {
                let Some(i) = base_pos.get_mut(bi) else { continue };
                let Some(p) = bs.points.get(*i).filter(|p| p.t == t).copied() else { continue };
                *i += 1;
                let name = bs.labels.metric_name().unwrap_or("");
                let labels = if is_info_name(name) {
                    bs.labels.clone()
                } else {
                    let mut added: Vec<(String, String)> = Vec::new();
                    for info_name in &info_names {
                        let sig = signature(info_name, &bs.labels);
                        let Some(info_series) = present.get(sig.as_slice()).and_then(|&k| info.get(k)) else {
                            continue;
                        };
                        for l in info_series.labels.iter() {
                            let n = l.name.as_ref();
                            if n == METRIC_NAME || (!data_names.is_empty() && !data_names.contains(&n)) {
                                continue;
                            }
                            if let Some((_, v)) = added.iter().find(|(an, _)| an == n) {
                                if v.as_str() != l.value.as_ref() {
                                    return Err(EvalError::exec(format!("conflicting label: {n}")));
                                }
                                continue;
                            }
                            if bs.labels.get(n).is_some() {
                                continue;
                            }
                            added.push((n.to_string(), l.value.to_string()));
                        }
                    }
                    if added.is_empty() && !all_match_empty {
                        continue;
                    }
                    let mut b = bs.labels.builder();
                    for (n, v) in added {
                        b.set(n, v);
                    }
                    b.build()
                };
                let slot = match index.get(&labels) {
                    Some(&(slot, last)) if last == step => {
                        let _ = slot;
                        return Err(super::types::duplicate_labelset());
                    }
                    Some(&(slot, _)) => slot,
                    None => {
                        out.push(Series {
                            labels: labels.clone(),
                            drop_name: bs.drop_name,
                            points: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                index.insert(labels, (slot, step));
                if let Some(s) = out.get_mut(slot) {
                    s.points.push(Point { t, v: p.v });
                }
            }
        }
        Ok(Val::Vector(out))
    }
}
