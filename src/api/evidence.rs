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

/// What the evidence names one kept thing by, and what it is called in a 404.
#[derive(Clone, Copy)]
enum Kept {
    Screenshot,
    Html,
}

/// The stored Trace's kept screenshot or HTML, as a response with `headers` that keep it
/// from becoming anything else (no sniffing; sandboxed, no script); 404 when there is none.
async fn kept(
    api: &Api,
    q: &Params,
    which: Kept,
    headers: &[(header::HeaderName, &'static str)],
) -> Result<Response, ApiError> {
    let trace = api.stored_trace(q).await?;
    let what = match which {
        Kept::Screenshot => "screenshot",
        Kept::Html => "HTML kept",
    };
    let none = || ApiError::not_found(format!("no {what} of {}", trace.input));
    let e = trace.evidence.as_ref();
    let sha = match which {
        Kept::Screenshot => e.and_then(|e| e.screenshot_sha256.as_deref()),
        Kept::Html => e.and_then(|e| e.html_sha256.as_deref()),
    }
    .ok_or_else(none)?;
    let blob = match which {
        Kept::Screenshot => api.store.screenshot(sha).await?,
        Kept::Html => api.store.html(sha).await?,
    }
    .ok_or_else(none)?;
    let mut resp = Response::new(axum::body::Body::from(blob));
    let h = resp.headers_mut();
    let guard = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ),
    ];
    for (name, value) in guard.iter().chain(headers) {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    Ok(resp)
}

/// The landing page's HTML as kept: a text download, never a page.
pub async fn html(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"landing-page.html.txt\"",
        ),
    ];
    kept(&api, &q, Kept::Html, &headers).await
}

/// The PNG, served as an image that cannot become anything else.
pub async fn screenshot(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let headers = [
        (header::CONTENT_TYPE, "image/png"),
        (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
    ];
    kept(&api, &q, Kept::Screenshot, &headers).await
}
