//! `/v1/export`: the store's chains as MISP, STIX 2.1, CSV or text (see [`crate::export`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

use super::extract::Params;
use super::{Api, ApiError};
use crate::export::{gather, parse_since, render, ExportError, Filter, Format};

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::Store(e) => e.into(),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

pub async fn export(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let now = crate::now_ms();
    let format: Format = q.required("format")?.parse()?;
    let filter = Filter {
        since_ms: q.get("since").map(|s| parse_since(&s, now)).transpose()?,
        label: q.get("label"),
        campaign: q.get("campaign"),
        defang: matches!(q.get("defang").as_deref(), Some("1" | "true")),
    };
    let found = gather(&api.store, &filter, now).await?;
    // Indicators from every chain, then a document: seconds of CPU for a large store, off the
    // threads that answer other calls.
    let body = tokio::task::spawn_blocking(move || render(&found, format, &filter))
        .await
        .map_err(|e| ApiError::internal(format!("the export stopped: {e}")))??;
    let mut resp = Response::new(axum::body::Body::from(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}
