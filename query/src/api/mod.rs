//! The Prometheus HTTP API (`/api/v1/...`) over a [`Queryable`] and the [`Engine`].

mod params;
mod response;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kahu_tsdb::Queryable;

use crate::engine::{Engine, EvalError, QueryOpts};
pub use params::Params;
pub use response::{ApiError, ErrorType};

/// What the API handlers share.
pub struct ApiState {
    /// Where queries read from.
    pub storage: Arc<dyn Queryable>,
    /// The PromQL engine.
    pub engine: Engine,
}

/// The `/api/v1` routes, to be merged into the server's router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().route("/api/v1/query", get(query).post(query)).with_state(state)
}

async fn query(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = Params::from_request(&method, &uri, &headers, &body);
        let query = params.required("query")?.to_string();
        let t_ms = match params.get("time") {
            Some(t) => params::parse_time("time", t)?,
            None => now_ms(),
        };
        let task = tokio::task::spawn_blocking(move || {
            let querier = state.storage.querier().map_err(EvalError::Storage)?;
            state.engine.instant_query(querier.as_ref(), &query, t_ms, &QueryOpts::default())
        });
        let result = task.await.map_err(|e| ApiError::new(ErrorType::Internal, e.to_string()))?;
        result.map(|r| r.value).map_err(ApiError::from_eval)
    }
    .await;
    match result {
        Ok(value) => response::success(&response::value_json(&value)),
        Err(err) => err.into_response(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
