//! `/v1/watch` (add, list, remove watched links) and `/v1/history`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::extract::{JsonBody, Params};
use super::{json_response, Api, ApiError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    url: String,
    every_seconds: Option<u64>,
    /// Client profiles each run resolves as (none: the default profile).
    #[serde(default)]
    profiles: Vec<String>,
    /// Egress points each run goes out through (none: `direct`).
    #[serde(default)]
    via: Vec<String>,
}

/// The watcher checks the URL itself (the same `input::web_url` as every other call).
pub async fn add(
    State(api): State<Arc<Api>>,
    JsonBody(r): JsonBody<WatchRequest>,
) -> Result<Response, ApiError> {
    let visitors = crate::watch::Visitors {
        profiles: r.profiles,
        via: r.via,
    };
    let (entry, new) = api.watcher.add(&r.url, r.every_seconds, visitors).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &crate::watch::entry_json(&entry)))
}

pub async fn remove(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let url = q.required("url")?;
    if api.watcher.remove(&url).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("{url} is not watched")))
    }
}

pub async fn list(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let list = api.watcher.list().await?;
    let watches: Vec<_> = list.iter().map(crate::watch::entry_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"watches": watches, "total": watches.len()}),
    ))
}

pub async fn history(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let url = q.required("url")?;
    match api.watcher.history(&url).await? {
        Some(h) => Ok(json_response(StatusCode::OK, &h)),
        None => Err(ApiError::not_found(format!("no observations of {url}"))),
    }
}
