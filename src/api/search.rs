//! `GET /v1/search`: every stored chain that holds a value (host, registrable domain, IP,
//! label, page title, body, screenshot or favicon hash), whose URLs contain a substring, or that was
//! stored in a time range; a page at a time, with a cursor (`next`) for the one after.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::extract::Params;
use super::{json_response, Api, ApiError};
use crate::store::search::SearchHit;
use crate::store::{SearchKey, SearchPage, SearchQuery};

/// The search a request's parameters ask for (400 when it asks for nothing, or for a time
/// that is not one).
pub(super) fn query(q: &Params) -> Result<SearchQuery, ApiError> {
    let mut s = SearchQuery {
        terms: SearchKey::ALL
            .iter()
            .filter_map(|k| {
                let v = q.get(k.as_str())?;
                let v = crate::defang::refang(v.trim());
                (!v.is_empty()).then(|| k.term(&v))
            })
            .collect(),
        url: q
            .get("url")
            .map(|u| crate::defang::refang(u.trim()))
            .filter(|u| !u.is_empty()),
        since_ms: time(q, "since")?,
        until_ms: time(q, "until")?,
        after: q.get("after").filter(|a| !a.is_empty()),
        limit: q.number("limit", 50, crate::store::search::MAX_LIMIT)?,
    };
    s.limit = s.page_size();
    if s.is_empty() {
        return Err(ApiError::bad_request(
            "say what to search for: host, domain, ip, label, title, body, screenshot, favicon, url, since or until",
        ));
    }
    Ok(s)
}

/// A time parameter: RFC 3339 (`2026-12-07T10:00:00Z`) or a day (`2026-12-07`, its start).
fn time(q: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = q.get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let v = v.trim();
    let full = match v.len() {
        10 => format!("{v}T00:00:00Z"),
        _ => v.to_string(),
    };
    let t = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a time such as 2026-12-07 or 2026-12-07T10:00:00Z, not {v:?}"
        ))
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(Some(ms))
}

impl Api {
    /// One page of the search.
    pub(super) async fn search(&self, q: &SearchQuery) -> Result<SearchPage, ApiError> {
        Ok(self.store.search(q).await?)
    }
}

pub async fn search(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let query = query(&q)?;
    let page = api.search(&query).await?;
    let hits: Vec<SearchHit> = page
        .hits
        .iter()
        .map(|(_, t, at)| SearchHit::of(t, *at))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"results": hits, "next": page.next, "scanned": page.scanned}),
    ))
}
