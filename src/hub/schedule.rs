//! `[hub.schedule]`: `hoptrace serve` crawls the configured sources every `every_seconds`,
//! incrementally, scanning what it reads into the store. The time of the last run's start
//! is a store counter, so a restart keeps the rhythm instead of crawling at once again.

use std::sync::Arc;
use std::time::Duration;

use crate::config::HubSchedule;

use super::{sources, Crawls, HubError, Order};

/// Store counter: when the schedule's last run began (ms since the epoch).
const LAST_RUN: &str = "hub:schedule:last_run";
/// After a failed run, the next one comes at most this much later (it resumes where the
/// failed one stopped).
const RETRY: Duration = Duration::from_secs(15 * 60);

/// What the schedule crawls, as an order; `None` when it names no source (off).
pub fn order(s: &HubSchedule) -> Result<Option<Order>, HubError> {
    if !s.enabled() {
        return Ok(None);
    }
    Ok(Some(Order {
        sources: sources(&s.namespaces, &s.search, &s.repositories)?,
        since: None,
        scan: true,
        incremental: true,
    }))
}

/// Runs `order` whenever it is due, until `shutdown`.
pub async fn run(
    crawls: Arc<Crawls>,
    order: Order,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let every_ms = every.as_millis() as u64;
    loop {
        let last = match crawls.store.counter(LAST_RUN).await {
            Ok(ms) => ms,
            Err(e) => {
                tracing::error!("hub schedule: {e}");
                crate::now_ms()
            }
        };
        let wait = last
            .saturating_add(every_ms)
            .saturating_sub(crate::now_ms());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = &mut shutdown => return,
        }
        let began = crate::now_ms();
        let job = tokio::select! {
            job = crawls.run(&order) => job,
            _ = &mut shutdown => return,
        };
        // A failed run comes again sooner, resuming from its cursor.
        let next_base = match job.error() {
            None => {
                let (records, imageless) = job.counts();
                tracing::info!("hub schedule: {records} repositories read, {imageless} imageless");
                began
            }
            Some(e) => {
                tracing::error!("hub schedule: {e}");
                let retry = every_ms.min(RETRY.as_millis() as u64);
                began.saturating_add(retry).saturating_sub(every_ms)
            }
        };
        if let Err(e) = crawls.store.set_counter(LAST_RUN, next_base).await {
            tracing::error!("hub schedule: {e}");
        }
    }
}
