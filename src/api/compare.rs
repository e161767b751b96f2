//! `/v1/compare`: one link as several client profiles at once (see [`crate::compare`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::extract::JsonBody;
use super::{check_url, json_response, Api, ApiError};
use crate::compare::DIRECT;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    url: String,
    /// Empty: every built-in profile.
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    via: Vec<String>,
}

pub async fn compare(
    State(api): State<Arc<Api>>,
    JsonBody(r): JsonBody<CompareRequest>,
) -> Result<Response, ApiError> {
    check_url("url", &r.url)?;
    if let Some(v) = r.via.iter().find(|v| *v != DIRECT) {
        return Err(ApiError::bad_request(format!(
            "via: no egress point `{v}` (only `{DIRECT}`: egress points are not built yet)"
        )));
    }
    let cells = match r.profiles.len() {
        0 => api.resolver.profiles().builtin_names().len(),
        n => n,
    };
    // Each cell is a resolution: it takes its place in the queue and a resolver slot.
    let _held = api.hold(cells).await?;
    let found = crate::compare::compare(&api.resolver, &r.url, &r.profiles)
        .await
        .map_err(|e| ApiError::bad_request(format!("profiles: {e}")))?;
    Ok(json_response(StatusCode::OK, &found))
}
