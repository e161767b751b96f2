//! `/v1/har`, `/v1/screenshot` and `/v1/html`: the evidence kept with a stored Trace — its
//! HTTP records as HAR 1.2, its landing page's screenshot and HTML.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

use super::extract::Params;
use super::{json_response, Api, ApiError};
use crate::store::{EncodedTrace, StoreError};
use crate::trace::Trace;

impl Api {
    /// The stored Trace of the `url` parameter; 404 when there is none.
    pub(super) async fn stored_trace(&self, q: &Params) -> Result<Trace, ApiError> {
        let mut trace = self
            .stored_encoded(q)
            .await?
            .decode()
            .map_err(StoreError::from)?;
        trace.cached = true;
        Ok(trace)
    }

    /// The same, as stored (for sending on without decoding it).
    pub(super) async fn stored_encoded(&self, q: &Params) -> Result<EncodedTrace, ApiError> {
        let url = q.required("url")?;
        let key = self
            .inputs
            .parse(&url)
            .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
        self.store
            .latest_encoded(key.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no trace stored for {url}")))
    }
}

pub async fn har(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let trace = api.stored_trace(&q).await?;
    let mut resp = json_response(StatusCode::OK, &crate::har::har(&[&trace]));
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"hoptrace.har\""),
    );
    Ok(resp)
}

/// The landing page's HTML as kept: a text download, never a page (no sniffing, no script,
/// sandboxed even if a browser were to render it).
pub async fn html(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let trace = api.stored_trace(&q).await?;
    let none = || ApiError::not_found(format!("no HTML kept of {}", trace.input));
    let sha = trace
        .evidence
        .as_ref()
        .and_then(|e| e.html_sha256.as_deref())
        .ok_or_else(none)?;
    let html = api.store.html(sha).await?.ok_or_else(none)?;
    let mut resp = Response::new(axum::body::Body::from(html));
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"landing-page.html.txt\"",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    Ok(resp)
}

/// The PNG, served as an image that cannot become anything else: no sniffing, no script.
pub async fn screenshot(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let trace = api.stored_trace(&q).await?;
    let none = || ApiError::not_found(format!("no screenshot of {}", trace.input));
    let sha = trace
        .evidence
        .as_ref()
        .and_then(|e| e.screenshot_sha256.as_deref())
        .ok_or_else(none)?;
    let png = api.store.screenshot(sha).await?.ok_or_else(none)?;
    let mut resp = Response::new(axum::body::Body::from(png));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(resp)
}
