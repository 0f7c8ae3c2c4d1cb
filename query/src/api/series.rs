//! `series`, `labels`, `label/<name>/values` and `metadata`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use kahu_tsdb::Querier;
use kahu_tsdb::model::{Labels, Matcher};

use super::params::{
    go_quote, invalid_param, parse_go_int, parse_limit, parse_match_sets, time_param, unescape_label_name,
};
use super::response::{self, Annotations, ApiError, ErrorType, JsonSink, write_json_str, write_labels};
use super::{ApiRequest, ApiState, MAX_TIME_MS, MIN_TIME_MS};

/// Start, end, `match[]` sets and limit shared by the label and series endpoints.
struct Selection {
    start: i64,
    end: i64,
    sets: Vec<Vec<Matcher>>,
    limit: usize,
}

/// Parses the parameters in Prometheus' order. `match_err` turns a bad `match[]` into the
/// endpoint's error: `series` prefixes `invalid parameter "match[]"`, the label endpoints do not.
fn selection(req: &ApiRequest, match_err: fn(String) -> ApiError) -> Result<Selection, ApiError> {
    let p = &req.params;
    let limit = parse_limit(p)?;
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    let sets = parse_match_sets(&p.all("match[]")).map_err(match_err)?;
    Ok(Selection { start, end, sets, limit })
}

fn querier(state: &ApiState) -> Result<Box<dyn Querier>, ApiError> {
    state.storage.querier().map_err(|e| ApiError::internal(e.to_string()))
}

/// Runs `f` on a blocking thread: storage reads may touch disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("request failed: {e}")))?
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    if req.params.all("match[]").is_empty() {
        return ApiError::bad_data("no match[] parameter provided").into_response();
    }
    let sel = match selection(&req, |e| invalid_param("match[]", e)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let q = querier(&state)?;
        // Several match[] sets: the union, deduplicated and in label order.
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        let mut truncated = false;
        for set in &sel.sets {
            // As Prometheus' select with the "series" hint: a head series whose samples were
            // deleted stays listed until it leaves the head.
            let found =
                q.list_series(set, sel.start, sel.end).map_err(|e| ApiError::internal(e.to_string()))?;
            for labels in found {
                all.insert(labels);
                if sel.limit > 0 && sel.sets.len() == 1 && all.len() > sel.limit {
                    truncated = true;
                    break;
                }
            }
        }
        if sel.limit > 0 && all.len() > sel.limit {
            truncated = true;
        }
        Ok((all, truncated))
    })
    .await;
    let (all, truncated) = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut annotations = Annotations::default();
    if truncated {
        annotations.warn("results truncated due to limit");
    }
    let limit = if sel.limit == 0 { usize::MAX } else { sel.limit };
    response::stream_success(annotations, move |w| {
        w.buf().push('[');
        for (i, labels) in all.iter().take(limit).enumerate() {
            if i > 0 {
                w.buf().push(',');
            }
            write_labels(w.buf(), labels);
            w.checkpoint()?;
        }
        w.buf().push(']');
        Ok(())
    })
}

/// `GET|POST /api/v1/labels`.
pub async fn label_names(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let sel = match selection(&req, ApiError::bad_data) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let q = querier(&state)?;
        union(&sel, |m| {
            q.label_names(m, sel.start, sel.end)
                .map_err(|e| ApiError::new(ErrorType::Execution, e.to_string()))
        })
    })
    .await;
    string_list(result, sel_limit(&req))
}

/// `GET|POST /api/v1/label/<name>/values`. A name starting with `U__` is unescaped first, so
/// that clients can ask for UTF-8 label names in a path segment.
pub async fn label_values(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    req: ApiRequest,
) -> Response {
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return ApiError::bad_data(format!("invalid label name: {}", go_quote(&name))).into_response();
    }
    let sel = match selection(&req, ApiError::bad_data) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let result = blocking(move || {
        let q = querier(&state)?;
        union(&sel, |m| {
            q.label_values(&name, m, sel.start, sel.end).map_err(|e| ApiError::internal(e.to_string()))
        })
    })
    .await;
    string_list(result, sel_limit(&req))
}

fn sel_limit(req: &ApiRequest) -> usize {
    parse_limit(&req.params).unwrap_or(0)
}

/// The sorted union of `f` over every `match[]` set, or `f` with no matchers when none is given.
fn union(
    sel: &Selection,
    f: impl Fn(&[Matcher]) -> Result<Vec<String>, ApiError>,
) -> Result<Vec<String>, ApiError> {
    if sel.sets.is_empty() {
        return f(&[]);
    }
    let mut all = BTreeSet::new();
    for set in &sel.sets {
        all.extend(f(set)?);
    }
    Ok(all.into_iter().collect())
}

fn string_list(result: Result<Vec<String>, ApiError>, limit: usize) -> Response {
    let mut values = match result {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut annotations = Annotations::default();
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        annotations.warn("results truncated due to limit");
    }
    response::stream_success(annotations, move |w| {
        w.buf().push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                w.buf().push(',');
            }
            write_json_str(w.buf(), v);
            if i % 1024 == 1023 {
                w.checkpoint()?;
            }
        }
        w.buf().push(']');
        Ok(())
    })
}

/// `GET /api/v1/metadata`: `{name: [{type, unit, help}]}` from the metadata store, with
/// Prometheus' `limit` (families; negative: all), `limit_per_metric` and `metric`.
pub async fn metadata(State(state): State<Arc<ApiState>>, req: ApiRequest) -> Response {
    let p = &req.params;
    let limit = match p.get("limit").map(parse_go_int) {
        None => -1,
        Some(Ok(n)) => n,
        Some(Err(_)) => return ApiError::bad_data("limit must be a number").into_response(),
    };
    let per_metric = match p.get("limit_per_metric").map(parse_go_int) {
        None => -1,
        Some(Ok(n)) => n,
        Some(Err(_)) => return ApiError::bad_data("limit_per_metric must be a number").into_response(),
    };
    let families = match p.get("metric") {
        Some(metric) => {
            let entries = state.metadata.get(metric);
            if entries.is_empty() { Vec::new() } else { vec![(metric.to_string(), entries)] }
        }
        None => state.metadata.all(),
    };
    let max_families = usize::try_from(limit).unwrap_or(usize::MAX);
    let max_entries = usize::try_from(per_metric).ok().filter(|n| *n > 0).unwrap_or(usize::MAX);
    let mut out = String::from("{");
    for (i, (name, entries)) in families.iter().take(max_families).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(&mut out, name);
        out.push_str(":[");
        for (j, m) in entries.iter().take(max_entries).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"type\":\"");
            out.push_str(m.kind.as_str());
            out.push_str("\",\"unit\":");
            write_json_str(&mut out, &m.unit);
            out.push_str(",\"help\":");
            write_json_str(&mut out, &m.help);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    response::success(&out)
}
