//! `/v1/domains`, `/v1/domains/{domain}` and `/v1/campaigns`: the landing-domain index and
//! campaigns, paged.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{StatusCode, Uri};
use serde::Serialize;
use serde_json::json;

use super::extract::Params;
use super::{json_response, Api, ApiError};
use crate::store::{DomainQuery, DomainSort};

/// The campaigns last computed: the clusters, kept to fold later writes in, and their
/// summaries at the size last asked.
pub struct Campaigns {
    clusters: crate::campaigns::Clusters,
    min: usize,
    campaigns: Arc<Summaries>,
}

/// Every campaign's summary (lists capped, see `campaigns::SAMPLE`) and repositories per day:
/// what the service keeps, a few KB a campaign, whatever the campaigns' sizes.
pub struct Summaries {
    pub campaigns: Vec<crate::campaigns::Campaign>,
    pub days: Vec<std::collections::BTreeMap<String, u64>>,
}

/// Campaigns over every scanned repository in the store (computed again when a repository
/// was written since the last time, by any process), a page at a time: `cursor` is the
/// `next_cursor` of the page before (`offset` still works).
pub async fn campaigns(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let min = q.number("min_repositories", 2, usize::MAX)?;
    let limit = q.number("limit", 100, 1000)?;
    let offset = start(&q)?;
    let all = api.campaigns(min).await?;
    Ok(page("campaigns", all.campaigns.as_slice(), offset, limit))
}

/// Where a page starts: its `cursor` (opaque to clients), else `offset`.
fn start(q: &Params) -> Result<usize, ApiError> {
    match q.get("cursor") {
        None => q.number("offset", 0, usize::MAX),
        Some(c) => c
            .strip_prefix('o')
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("cursor {c:?} is not one this service gave"))
            }),
    }
}

/// The cursor of the page starting at `offset`.
fn cursor(offset: usize) -> String {
    format!("o{offset:x}")
}

impl Api {
    /// Every campaign of at least `min` repositories, largest first. The store is walked
    /// once; the repositories written since (by any process) are folded into the clusters
    /// kept from then, unless they cannot be (see `Clusters::fold`), which walks again.
    pub(super) async fn campaigns(&self, min: usize) -> Result<Arc<Summaries>, ApiError> {
        let min = min.max(1);
        let mut kept = self.campaigns.lock().await;
        let version = self.store.repositories_version().await?;
        if let Some(c) = kept
            .as_ref()
            .filter(|c| c.clusters.version == version && c.min == min)
        {
            return Ok(c.campaigns.clone());
        }
        let mut folded = None;
        if let Some(mut c) = kept.take() {
            if c.clusters.version == version || c.clusters.fold(&self.store).await? {
                c.clusters.summarize(min);
                folded = Some(c.clusters);
            }
        }
        let mut clusters = match folded {
            Some(c) => c,
            None => {
                let c = crate::campaigns::Clusters::build(&self.store, min).await?;
                for e in &c.damaged.errors {
                    tracing::warn!("campaigns: skipped a damaged record: {e}");
                }
                c
            }
        };
        let campaigns = Arc::new(Summaries {
            campaigns: std::mem::take(&mut clusters.campaigns),
            days: std::mem::take(&mut clusters.days),
        });
        *kept = Some(Campaigns {
            clusters,
            min,
            campaigns: campaigns.clone(),
        });
        Ok(campaigns)
    }
}

pub async fn list(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let mut query = domain_query(&q, 100)?;
    query.offset = start(&q)?;
    let offset = query.offset;
    let page = api.store.domains_page(&query).await?;
    let next = (offset + page.domains.len() < page.total).then_some(offset + page.domains.len());
    Ok(json_response(
        StatusCode::OK,
        &json!({"domains": page.domains, "total": page.total, "next_offset": next, "next_cursor": next.map(cursor)}),
    ))
}

/// The page of the landing-domain index that `sort`, `order`, `offset` and `limit` ask for
/// (`limit` defaults to `default_limit`).
pub(super) fn domain_query(q: &Params, default_limit: usize) -> Result<DomainQuery, ApiError> {
    let sort = match q.get("sort").as_deref() {
        None | Some("inputs") => DomainSort::Inputs,
        Some("last_seen") => DomainSort::LastSeen,
        Some("first_seen") => DomainSort::FirstSeen,
        Some("domain") => DomainSort::Domain,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort must be inputs, last_seen, first_seen or domain, not {other:?}"
            )))
        }
    };
    let limit = q.number("limit", default_limit, 1000)?;
    let offset = q.number("offset", 0, usize::MAX)?;
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    // Counts and times sort largest/newest first by default, names A to Z.
    let descending = match q.get("order").as_deref() {
        None => sort != DomainSort::Domain,
        Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order must be asc or desc, not {other:?}"
            )))
        }
    };
    Ok(DomainQuery {
        sort,
        descending,
        offset,
        limit,
    })
}

/// One landing domain with the inputs that reached it.
pub async fn one(State(api): State<Arc<Api>>, uri: Uri) -> Result<Response, ApiError> {
    let domain = uri.path().trim_start_matches("/v1/domains/");
    let domain = percent_encoding::percent_decode_str(domain)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let record = api
        .store
        .domain(&domain)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no resolution ever landed on {domain}")))?;
    let inputs = api.store.domain_inputs(&domain).await?;
    let mut value = serde_json::to_value(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    value["input_count"] = value["inputs"].take();
    value["inputs"] = json!(inputs);
    Ok(json_response(StatusCode::OK, &value))
}

/// One page of `all` as `{name: [...], "total", "next_offset"}` (`next_offset` null on the
/// last page).
fn page<T: Serialize>(name: &str, all: &[T], offset: usize, limit: usize) -> Response {
    let total = all.len();
    let items: Vec<&T> = all.iter().skip(offset).take(limit).collect();
    let next = (offset + items.len() < total).then_some(offset + items.len());
    let mut body = json!({"total": total, "next_offset": next, "next_cursor": next.map(cursor)});
    body[name] = json!(items);
    json_response(StatusCode::OK, &body)
}
