//! `/v1/hub`: a Docker Hub crawl started as a job (`POST`, 202 with its id and `Location`),
//! read back while it runs and after (`GET /v1/hub/{id}?after=N`: status, counts, and the
//! kept records numbered above N). A crawl of thousands of repositories takes longer than
//! any request may, so the caller polls; one crawl runs at a time per server (429 while it
//! does).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode, Uri};
use serde::Deserialize;

use super::extract::{JsonBody, Params};
use super::{json_response, Api, ApiError};
use crate::hub::{HubError, Order};

/// Seconds a client refused for a running crawl is told to wait.
const BUSY_RETRY_SECONDS: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubRequest {
    #[serde(default)]
    namespaces: Vec<String>,
    /// One repository search.
    search: Option<String>,
    /// `namespace/name` entries.
    #[serde(default)]
    repositories: Vec<String>,
    /// RFC 3339: only repositories updated after it.
    since: Option<String>,
    /// Scan what is read into the store (campaigns, exports).
    #[serde(default)]
    scan: bool,
}

pub async fn start(
    State(api): State<Arc<Api>>,
    JsonBody(r): JsonBody<HubRequest>,
) -> Result<Response, ApiError> {
    let sources = crate::hub::sources(&r.namespaces, r.search.as_slice(), &r.repositories)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let since = match &r.since {
        Some(s) => Some(humantime::parse_rfc3339_weak(s).map_err(|_| {
            ApiError::bad_request(format!(
                "since: not an RFC 3339 date: {}",
                s.chars().take(64).collect::<String>()
            ))
        })?),
        None => None,
    };
    let order = Order {
        sources,
        since,
        scan: r.scan,
        incremental: false,
    };
    let job = api.crawls.start(order).map_err(|e| match e {
        HubError::Busy => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", e.to_string())
            .retry_after(BUSY_RETRY_SECONDS),
        e => ApiError::internal(e.to_string()),
    })?;
    let mut resp = json_response(StatusCode::ACCEPTED, &job.view(0));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/hub/{}", job.id)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

pub async fn job(State(api): State<Arc<Api>>, uri: Uri, q: Params) -> Result<Response, ApiError> {
    let id = uri.path().trim_start_matches("/v1/hub/");
    let after = q.number("after", 0, usize::MAX)? as u64;
    let job = api.crawls.job(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no crawl {} (this server keeps its newest few)",
            id.escape_debug().take(64).collect::<String>()
        ))
    })?;
    Ok(json_response(StatusCode::OK, &job.view(after)))
}
