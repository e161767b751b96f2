//! The cache in front of resolution: which stored Trace may answer, and answers taken from
//! the store either as a Trace or, for a caller that only sends it on, as its JSON.

use std::time::Duration;

use bytes::Bytes;

use super::Resolver;
use crate::input::Link;
use crate::store::EncodedTrace;
use crate::trace::{Outcome, Trace};

/// The cache's policy: a Trace stored at `stored_at_ms` answers from the cache while it is
/// younger than `ttl` (`storage.cache_ttl_seconds`). Failures (`error`, `timeout`) are kept
/// as the latest Trace but never served from the cache: the next call tries again.
pub fn servable(outcome: Outcome, stored_at_ms: u64, ttl: Duration, now_ms: u64) -> bool {
    let young = now_ms.saturating_sub(stored_at_ms) < ttl.as_millis() as u64;
    young && !matches!(outcome, Outcome::Error | Outcome::Timeout)
}

/// A cache hit as the JSON of its Trace (`cached` set, the caller's input), with what decides
/// whether it may still answer ([`servable`]).
#[derive(Debug, Clone)]
pub struct CachedJson {
    pub json: Bytes,
    pub outcome: Outcome,
    /// When its Trace was stored (ms).
    pub stored_at_ms: u64,
}

impl Resolver {
    /// The latest stored Trace of `input`, however old and whatever its outcome (`cached`
    /// set); `None` when there is none.
    pub async fn stored(&self, link: &Link) -> Option<Trace> {
        let (mut trace, _) = self.store.as_ref()?.latest(link.key()).await.ok()??;
        trace.cached = true;
        trace.input = link.input().to_string();
        Some(trace)
    }

    /// A fresh Trace of `link` from the store, without any network work (`None` when there
    /// is none).
    pub async fn cached(&self, link: &Link) -> Option<Trace> {
        self.cached_key(link.input(), link.key()).await
    }

    /// What [`Resolver::cached`] answers, as JSON taken from the stored bytes without
    /// decoding the Trace: what an API cache hit sends.
    pub async fn cached_json(&self, link: &Link) -> Option<CachedJson> {
        let key = link.key();
        let stored = self.servable_encoded(key).await?;
        Some(CachedJson {
            json: Bytes::from(logged(key, stored.answer(Some(link.input()), true))?),
            outcome: stored.outcome(),
            stored_at_ms: stored.stored_at_ms(),
        })
    }

    /// Whether a hit made from a Trace stored at `stored_at_ms` with `outcome` may still
    /// answer now.
    pub fn still_servable(&self, outcome: Outcome, stored_at_ms: u64) -> bool {
        servable(outcome, stored_at_ms, self.cache_ttl, crate::now_ms())
    }

    /// A Trace stored for `key` that [`servable`] says may answer from the cache.
    pub(super) async fn cached_key(&self, input: &str, key: &str) -> Option<Trace> {
        let mut trace = logged(key, self.servable_encoded(key).await?.decode())?;
        trace.cached = true;
        trace.input = input.to_string();
        Some(trace)
    }

    async fn servable_encoded(&self, key: &str) -> Option<EncodedTrace> {
        let store = self.store.as_ref()?;
        let now = crate::now_ms();
        logged(key, store.latest_encoded(key).await)?
            .filter(|e| servable(e.outcome(), e.stored_at_ms(), self.cache_ttl, now))
    }
}

/// A failed cache lookup is a miss (the link is resolved instead), and logged.
fn logged<T>(key: &str, r: Result<T, impl std::fmt::Display>) -> Option<T> {
    r.map_err(|e| tracing::warn!("cache lookup for {key} failed: {e}"))
        .ok()
}
