//! Request parameters as Go's `r.FormValue` sees them: the URL query string plus, for a
//! form-encoded POST, the body.

use axum::http::{HeaderMap, Method, Uri, header};

use super::response::{ApiError, ErrorType};

/// All parameters of one request, in order of appearance (body first, as Go's `FormValue`).
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Collects the parameters of a request.
    pub fn from_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut pairs = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if (method == Method::POST || method == Method::PUT || method == Method::PATCH) && is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = uri.query() {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The first value of `name`, or the error Prometheus gives when it is missing.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorType::BadData,
                format!("invalid parameter {name:?}: missing required parameter"),
            )
        })
    }
}

/// Parses a time parameter as Prometheus does: Unix seconds with an optional fraction, rounded to
/// milliseconds.
pub fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorType::BadData,
            format!("invalid parameter {name:?}: cannot parse {s:?} to a valid timestamp"),
        )
    };
    let secs: f64 = s.parse().map_err(|_| bad())?;
    if !secs.is_finite() {
        return Err(bad());
    }
    let ms = (secs * 1000.0).round();
    if ms < i64::MIN as f64 || ms > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(ms as i64)
}
