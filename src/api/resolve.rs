//! Resolutions through the API: the cache first, then a bounded queue in front of
//! `limits.concurrency` resolver slots, within the request's time limit.

use super::*;

impl Api {
    /// Resolves `urls` (answers from the cache need no slot), in input order, within the
    /// queue and the request's time limit.
    pub(super) async fn resolve_all(
        &self,
        urls: Vec<String>,
        refresh: bool,
    ) -> Result<Vec<Trace>, ApiError> {
        let mut traces: Vec<Option<Trace>> = vec![None; urls.len()];
        let mut todo = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let cached = match refresh {
                true => None,
                false => self.resolver.cached(url).await,
            };
            match cached {
                Some(t) => traces[i] = Some(t),
                None => todo.push(i),
            }
        }
        if !todo.is_empty() {
            let n = u32::try_from(todo.len()).unwrap_or(u32::MAX);
            let admitted = self
                .admission
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| {
                    let mut e = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "the resolution queue is full (server.max_queue); try again shortly",
                    );
                    e.retry_after = Some(1);
                    e
                })?;
            let work = futures_util::future::join_all(todo.iter().map(|&i| {
                let url = &urls[i];
                async move {
                    // Guards, so a request cut at its time limit does not leave the gauges up.
                    let queued = Counted::new(&self.metrics.queue_depth);
                    let slot = self.slots.acquire().await;
                    drop(queued);
                    let _running = Counted::new(&self.metrics.in_flight);
                    // The cache was asked above: no second lookup.
                    let t = self.resolver.resolve(url, false).await;
                    drop(slot);
                    (i, t)
                }
            }));
            let done = tokio::time::timeout(self.request_timeout, work).await;
            drop(admitted);
            let done = done.map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    format!(
                        "the request took longer than {} ms (server.request_timeout_ms)",
                        self.request_timeout.as_millis()
                    ),
                )
            })?;
            for (i, t) in done {
                traces[i] = Some(t);
            }
        }
        let traces: Vec<Trace> = traces.into_iter().flatten().collect();
        for t in &traces {
            self.metrics.observe(t);
        }
        Ok(traces)
    }
}

/// Holds a gauge up by one while it lives.
struct Counted<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> Counted<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Counted<'a> {
        gauge.inc();
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
