//! `/v1/compare`: one link as several client profiles at once (see [`crate::compare`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::extract::JsonBody;
use super::{check_url, json_response, Api, ApiError};
use crate::chain::VisitorError;

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
    let found = api.compare(&r).await?;
    Ok(json_response(StatusCode::OK, &found))
}

impl Api {
    /// `url` as every built-in visitor.
    pub(super) async fn compare_default(
        &self,
        url: &str,
    ) -> Result<crate::compare::Comparison, ApiError> {
        let r = CompareRequest {
            url: url.to_string(),
            profiles: Vec::new(),
            via: Vec::new(),
        };
        self.compare(&r).await
    }

    /// The comparison `r` asks for, its visitors admitted as resolutions.
    async fn compare(&self, r: &CompareRequest) -> Result<crate::compare::Comparison, ApiError> {
        let api = self;
        check_url("url", &r.url)?;
        let refused = |e: VisitorError| match e {
            VisitorError::Profile(e) => ApiError::bad_request(format!("profiles: {e}")),
            e @ VisitorError::Via { .. } => ApiError::bad_request(format!("via: {e}")),
        };
        let named = crate::compare::named(&r.profiles, &r.via);
        if named > api.max_batch {
            return Err(ApiError::bad_request(format!(
                "a comparison names at most {} visitors (server.max_batch); this one names {named}",
                api.max_batch
            )));
        }
        let cells = crate::compare::cells(&api.resolver, &r.profiles, &r.via);
        // Each cell is a resolution: it takes its place in the queue, then waits for a slot.
        let _held = api.hold(cells)?;
        crate::compare::compare(&api.resolver, &r.url, &r.profiles, &r.via)
            .await
            .map_err(refused)
    }
}
