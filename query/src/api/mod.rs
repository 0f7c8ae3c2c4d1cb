//! The Prometheus HTTP API (`/api/v1/...`) over a [`Queryable`] and the [`Engine`].
//!
//! - [`router`] builds the routes; [`ApiState`] is what they share.
//! - `params`: parameters as Prometheus parses them (times, durations, `limit`, `match[]`).
//! - `response`: the envelope, error types and status codes, and the streaming body.
//! - `query`: `query`, `query_range`, `query_exemplars`, `format_query`, `parse_query`.
//! - `series`: `series`, `labels`, `label/<name>/values`, `metadata`.
//! - `status`: `status/*`, `rules`, `alerts`, `targets` and the admin endpoints.
//!
//! Cross-cutting behaviour, as Prometheus: gzip or deflate when the client accepts it, CORS
//! headers for requests with an `Origin`, `OPTIONS` answered with 204, and (kahu's own) a body
//! size limit answered with 413.

mod ast_json;
mod params;
pub mod prompb;
mod query;
pub mod remote_write;
mod response;
mod series;
mod status;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use kahu_tsdb::Queryable;
use kahu_tsdb::metadata::MetadataStore;
use tower_http::compression::CompressionLayer;

use crate::engine::Engine;
pub use ast_json::expr_to_json;
pub use params::{
    MAX_TIME_MS, MIN_TIME_MS, Params, parse_duration, parse_error_offset, parse_selector, parse_time,
    prom_duration_ms, unescape_label_name,
};
pub use query::range_query;
pub use response::{Annotations, ApiError, ErrorType, json_str, value_json, write_json_str};
pub use status::{
    Admin, AdminError, BuildInfo, ScrapeHealth, Target, TargetSource, TsdbStatus, TsdbStatusSource,
    go_duration,
};

/// Settings of the API (the `--web.*` flags).
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Origins allowed by CORS, as Prometheus' `--web.cors.origin` (anchored; default `.*`).
    pub cors_origin: regex::Regex,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Whether `/api/v1/admin/*` works (`--web.enable-admin-api`).
    pub enable_admin: bool,
}

impl Default for ApiOptions {
    #[expect(clippy::expect_used, reason = "a constant pattern that compiles")]
    fn default() -> Self {
        ApiOptions {
            cors_origin: cors_regex(".*").expect("`.*` compiles"),
            max_body_bytes: 10 << 20,
            enable_admin: false,
        }
    }
}

/// Compiles a `--web.cors.origin` value as Prometheus does: anchored at both ends.
pub fn cors_regex(origin: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{origin})$"))
}

/// What the API handlers share.
pub struct ApiState {
    /// Where queries read from.
    pub storage: Arc<dyn Queryable>,
    /// The PromQL engine.
    pub engine: Engine,
    /// TYPE/HELP/UNIT per metric family.
    pub metadata: Arc<MetadataStore>,
    /// `--web.*` settings.
    pub options: ApiOptions,
    /// `status/buildinfo`.
    pub build: BuildInfo,
    /// `status/flags`: every command-line flag with its value.
    pub flags: Vec<(String, String)>,
    /// `status/config`: the effective configuration as YAML.
    pub config_yaml: String,
    /// When the server started (`status/runtimeinfo`).
    pub start_time: SystemTime,
    /// `storageRetention` of `status/runtimeinfo`, e.g. `15d`.
    pub storage_retention: String,
    /// What kahu collects or scrapes (`targets`).
    pub targets: Option<Arc<dyn TargetSource>>,
    /// Head statistics for `status/tsdb`.
    pub tsdb_status: Option<Arc<dyn TsdbStatusSource>>,
    /// The store's admin operations, used when `enable_admin` is set.
    pub admin: Option<Arc<dyn Admin>>,
}

impl ApiState {
    /// State with default settings, no targets and no admin operations.
    pub fn new(storage: Arc<dyn Queryable>, engine: Engine) -> Self {
        ApiState {
            storage,
            engine,
            metadata: Arc::new(MetadataStore::new()),
            options: ApiOptions::default(),
            build: BuildInfo::default(),
            flags: Vec::new(),
            config_yaml: String::new(),
            start_time: SystemTime::now(),
            storage_retention: String::new(),
            targets: None,
            tsdb_status: None,
            admin: None,
        }
    }
}

/// One API request: its parameters (URL and form body), read with the body-size limit.
pub struct ApiRequest {
    /// The parameters.
    pub params: Params,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request method.
    pub method: Method,
}

impl FromRequest<Arc<ApiState>> for ApiRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let limit = state.options.max_body_bytes;
        let too_large = || {
            ApiError::bad_data(format!("request body larger than the limit of {limit} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        // A body that fails to arrive completely is either too large (chunked, no length) or a
        // client that went away, which sees no answer anyway.
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
        Ok(ApiRequest {
            params: Params::from_request(&parts.method, &parts.uri, &parts.headers, &bytes),
            headers: parts.headers,
            method: parts.method,
        })
    }
}

/// The `/api/v1` routes, to be merged into the server's router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/query_exemplars", get(query::exemplars).post(query::exemplars))
        .route("/api/v1/format_query", get(query::format).post(query::format))
        .route("/api/v1/parse_query", get(query::parse).post(query::parse))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::label_names).post(series::label_names))
        // Prometheus answers GET only; Grafana's resource calls may POST with an empty body.
        .route("/api/v1/label/{name}/values", get(series::label_values).post(series::label_values))
        .route("/api/v1/metadata", get(series::metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/rules", get(status::rules))
        .route("/api/v1/alerts", get(status::alerts))
        .route("/api/v1/targets", get(status::targets))
        .route("/api/v1/admin/tsdb/delete_series", post(status::delete_series).put(status::delete_series))
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(status::clean_tombstones).put(status::clean_tombstones),
        )
        .route("/api/v1/admin/tsdb/snapshot", post(status::snapshot).put(status::snapshot))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), cors_and_options))
        .layer(CompressionLayer::new().gzip(true).deflate(true).no_br().no_zstd())
        .with_state(state)
}

/// Prometheus' `SetCORS` for requests that carry an `Origin`, and `OPTIONS` answered with 204.
async fn cors_and_options(State(state): State<Arc<ApiState>>, req: Request<Body>, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = if req.method() == Method::OPTIONS { response::no_content() } else { next.run(req).await };
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Date"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if state.options.cors_origin.as_str() == "^(?:.*)$" {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else if origin.to_str().is_ok_and(|o| state.options.cors_origin.is_match(o)) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
    resp
}

/// The current time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Converts a non-negative nanosecond count to a `Duration`.
pub(crate) fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}
