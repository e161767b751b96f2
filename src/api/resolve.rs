//! `/v1/resolve`, `/v1/resolve/batch` and `/v1/trace`: the cache first, then a bounded queue in
//! front of the resolver's process-wide `limits.concurrency` slots.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::extract::{JsonBody, Params, RawBody};
use super::{json_response, raw_json_response, Api, ApiError};
use crate::chain::{CachedJson, Entry, Lookup, Resolved};
use crate::input::Link;
use crate::trace::Trace;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    url: String,
    #[serde(default)]
    refresh: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    urls: Vec<String>,
    #[serde(default)]
    refresh: bool,
}

pub async fn one(
    State(api): State<Arc<Api>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // The very request answered from the cache before: its answer again while the Trace is
    // still the latest and fresh, without parsing it or reading the store.
    if let Some(hit) = api.answers.get(&body) {
        if api.resolver.still_servable(hit.outcome, hit.stored_at_ms) {
            return Ok(api.hit(hit));
        }
    }
    let JsonBody(r) = JsonBody::<ResolveRequest>::parse(&body)?;
    let url = api
        .inputs
        .web_url(&r.url)
        .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
    let link = Link::parsed(r.url, url);
    if !r.refresh {
        // A hit is answered from the stored bytes: no decoding and encoding.
        let ticket = api.answers.ticket();
        if let Some(hit) = api.resolver.cached_json(&link).await {
            api.answers.keep(ticket, &body, link.key(), &hit);
            return Ok(api.hit(hit));
        }
    }
    let lookup = Lookup::cache_if(!r.refresh);
    let resolved = api
        .resolve_each(vec![Entry::Link(link)], lookup)
        .await?
        .remove(0);
    // Written as the CLI writes it: the bytes just stored, when they were.
    let mut json = Vec::with_capacity(4096);
    match resolved.write_json(&mut json) {
        Ok(()) => Ok(raw_json_response(StatusCode::OK, json)),
        Err(_) => Ok(json_response(StatusCode::OK, &resolved.trace)),
    }
}

/// One bad entry does not fail the batch: it is an `input` error Trace, with the same words a
/// single call's 400 has (counted as an `error` resolution, as in a scan); the web URLs are
/// resolved.
pub async fn batch(
    State(api): State<Arc<Api>>,
    JsonBody(r): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    if r.urls.len() > api.max_batch {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {} URLs (server.max_batch); this one has {}",
            api.max_batch,
            r.urls.len()
        )));
    }
    let entries = r.urls.into_iter().map(Entry::web).collect();
    let traces = api.resolve_all(entries, r.refresh).await?;
    Ok(json_response(StatusCode::OK, &json!({"traces": traces})))
}

/// The stored Trace of a link, without resolving it.
pub async fn stored(State(api): State<Arc<Api>>, q: Params) -> Result<Response, ApiError> {
    let json = api
        .stored_encoded(&q)
        .await?
        .answer(None, true)
        .map_err(crate::store::StoreError::from)?;
    Ok(raw_json_response(StatusCode::OK, json))
}

impl Api {
    /// A cache hit's answer, counted.
    fn hit(&self, hit: CachedJson) -> Response {
        self.metrics.cache_hit(hit.outcome);
        raw_json_response(StatusCode::OK, hit.json)
    }

    /// Resolves `entries` (answers from the cache need no slot), in input order. Admission is
    /// counted in URLs, not requests (a batch of 500 takes 500 places), so the queue is this
    /// semaphore rather than a per-request load-shed layer: none left is 503.
    pub(super) async fn resolve_all(
        &self,
        entries: Vec<Entry>,
        refresh: bool,
    ) -> Result<Vec<Trace>, ApiError> {
        let resolved = self
            .resolve_each(entries, Lookup::cache_if(!refresh))
            .await?;
        Ok(resolved.into_iter().map(|r| r.trace).collect())
    }

    /// [`Api::resolve_all`] as `lookup` says, each Trace with the bytes stored when its
    /// resolution stored it.
    async fn resolve_each(
        &self,
        entries: Vec<Entry>,
        lookup: Lookup,
    ) -> Result<Vec<Resolved>, ApiError> {
        let mut traces: Vec<Option<Resolved>> = vec![None; entries.len()];
        let mut todo = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let link = match entry {
                Entry::Link(link) => link,
                Entry::Answered(trace) => {
                    traces[i] = Some(Resolved::unstored(*trace));
                    continue;
                }
            };
            let cached = match lookup {
                Lookup::Cache => self.resolver.cached(&link).await,
                Lookup::Refresh => None,
            };
            match cached {
                Some(t) => traces[i] = Some(Resolved::unstored(t)),
                None => todo.push((i, link)),
            }
        }
        if !todo.is_empty() {
            let n = u32::try_from(todo.len()).unwrap_or(u32::MAX);
            let _admitted = self
                .admission
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| full())?;
            let (places, todo): (Vec<usize>, Vec<Link>) = todo.into_iter().unzip();
            // Each visit waits for one of the resolver's slots (process-wide); a link stored
            // since the look above is answered from the cache.
            let done = self.resolver.resolve_each(&todo, lookup).await;
            // An answer the store did not keep is not given: the client retries.
            for (i, t) in places.into_iter().zip(done) {
                traces[i] = Some(t.map_err(|u| ApiError::from(u.error))?);
            }
        }
        let traces: Vec<Resolved> = traces.into_iter().flatten().collect();
        for t in &traces {
            self.metrics.observe(&t.trace);
        }
        Ok(traces)
    }
}

impl Api {
    /// Places in the queue for `n` resolutions run outside [`Api::resolve_all`] (503 when it
    /// is full), held until dropped; each resolution then waits for a resolver slot.
    pub(super) fn hold(&self, n: usize) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.admission
            .clone()
            .try_acquire_many_owned(u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(|_| full())
    }
}

/// The queue is full.
fn full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the resolution queue is full (server.max_queue); try again shortly",
    )
    .retry_after(1)
}
