//! `/v1/scan`: the links of a text or a Docker Hub repository, resolved and judged.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::extract::JsonBody;
use super::{json_response, Api, ApiError};
use crate::chain::Entry;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Plain text, or
    text: Option<String>,
    /// a Docker Hub repository object (judged and kept for campaigns).
    repository: Option<serde_json::Value>,
    #[serde(default)]
    refresh: bool,
}

pub async fn scan(
    State(api): State<Arc<Api>>,
    JsonBody(r): JsonBody<ScanRequest>,
) -> Result<Response, ApiError> {
    let doc = match (r.text, r.repository) {
        (Some(text), None) => crate::scan::Document::text("text", text),
        (None, Some(repo)) => crate::scan::Document::from_hub(&repo)
            .map_err(|e| ApiError::bad_request(format!("repository: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "give either `text` or `repository` (a Docker Hub repository object)",
            ))
        }
    };
    let max = api.max_batch.min(crate::scan::MAX_LINKS_PER_REPOSITORY);
    let (found, left_out) = crate::scan::links_of(&doc, max);
    let entries = found.iter().map(|l| Entry::parse(l.url.clone())).collect();
    let traces = api.resolve_all(entries, r.refresh).await?;
    // Only a named repository is kept: campaigns group repositories.
    let store = (!doc.namespace.is_empty()).then_some(&api.store);
    let scanned = crate::scan::conclude(store, &doc, found, traces, left_out).await?;
    Ok(json_response(StatusCode::OK, &scanned))
}
