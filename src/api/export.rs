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
    // Held until the document is sent (it is in memory until then), not just until it is made.
    let turn = api.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!(
                "{} export(s) already running (server.max_exports); retry when it is done",
                api.max_exports
            ),
        )
        .retry_after(5)
    })?;
    let now = crate::now_ms();
    let format: Format = q.required("format")?.parse()?;
    let filter = Filter {
        since_ms: q.get("since").map(|s| parse_since(&s, now)).transpose()?,
        label: q.get("label"),
        campaign: q.get("campaign"),
        defang: matches!(q.get("defang").as_deref(), Some("1" | "true")),
    };
    let found = gather(&api.store, &filter, format, api.max_export_chains, now).await?;
    // Indicators from every chain, then a document: seconds of CPU for a large store, off the
    // threads that answer other calls.
    let body = tokio::task::spawn_blocking(move || render(&found, format, &filter))
        .await
        .map_err(|e| ApiError::internal(format!("the export stopped: {e}")))??;
    let mut resp = Response::new(sent_then_release(body, turn));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}

/// `body` as a stream of chunks that gives the export's turn back when the last one has been
/// taken for sending (or the client went away), so a client that reads slowly holds its turn.
fn sent_then_release(body: Vec<u8>, turn: tokio::sync::OwnedSemaphorePermit) -> axum::body::Body {
    const CHUNK: usize = 64 * 1024;
    let body = bytes::Bytes::from(body);
    let chunks = (0..body.len()).step_by(CHUNK).map(move |at| {
        Ok::<_, std::convert::Infallible>(body.slice(at..(at + CHUNK).min(body.len())))
    });
    let stream = futures_util::stream::unfold((chunks, turn), |(mut chunks, turn)| async move {
        chunks.next().map(|chunk| (chunk, (chunks, turn)))
    });
    axum::body::Body::from_stream(stream)
}
