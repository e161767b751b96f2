//! Re-resolution over time. Fake shorteners answer every visit with a new path and move to a
//! new payload host after each takedown: one resolution sees one moment, the history shows
//! the rotation. `hoptrace serve` runs a [`Watcher`]: a scheduler that re-resolves watched
//! links on their intervals, keeps every observation, and raises an event (stored, streamed,
//! and POSTed to a webhook) when a watched link lands somewhere new.

mod history;
mod webhook;
use history::event_for;
pub use history::{summarize, History, NewHost, Summary};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{broadcast, Notify, Semaphore};

use crate::chain::{Resolver, VisitorError};
use crate::config;
use crate::input::Link;
pub use crate::store::model::{Event, EventKind, Observation, WatchCell};
use crate::store::{Store, StoreError, WatchRecord};
use crate::trace::{rfc3339, rfc3339_ms, Trace};

/// The longest interval a watch may have (ten years): intervals are turned into
/// milliseconds and added to the clock, which must not overflow.
pub use crate::config::MAX_WATCH_EVERY_SECONDS as MAX_EVERY_SECONDS;

/// Events kept in the store for resuming streams (the newest).
const KEEP_EVENTS: usize = 10_000;
/// Webhook attempts per event before it is given up.
const WEBHOOK_ATTEMPTS: u32 = 6;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Store key of the id of the last event the webhook is done with.
const WEBHOOK_CURSOR: &str = "webhook_cursor";

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("url: {0}")]
    Url(#[from] crate::input::InputError),
    #[error("every_seconds must be at least {min} (watch.min_every_seconds)")]
    TooOften { min: u64 },
    #[error("every_seconds must be at most {MAX_EVERY_SECONDS} (ten years)")]
    TooRare,
    #[error(transparent)]
    Visitor(#[from] VisitorError),
    #[error("{0} visitors (profiles x points) is more than a watch may have ({MAX_CELLS})")]
    TooManyVisitors(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most visitors (profiles times points) one watch's runs may have.
pub const MAX_CELLS: usize = 64;

/// Who a watch's runs resolve as: every profile through every point (none named: the
/// default profile, `direct`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visitors {
    pub profiles: Vec<String>,
    pub via: Vec<String>,
}

/// The watcher's time: the system's, or a test's that moves only when told (so the
/// scheduler's timing is tested without waiting for it).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::now_ms()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// What the watcher counts, registered in the service's metrics.
#[derive(Default, Clone)]
pub struct WatchMetrics {
    pub runs: Counter,
    pub events: Counter,
    /// Webhook deliveries by result: `delivered`, `failed` (gave up after retries),
    /// `refused` (the egress policy denied the address).
    pub webhook: Family<ResultLabel, Counter>,
}

/// The watchlist's scheduler, history and events.
pub struct Watcher {
    clock: Arc<dyn Clock>,
    resolver: Arc<Resolver>,
    store: Store,
    default_every: u64,
    min_every: u64,
    max_observations: usize,
    webhook: Option<url::Url>,
    webhook_backoff: Duration,
    /// Entries running now: one run of an entry at a time.
    running: Mutex<HashSet<String>>,
    /// Runs at once (their tasks and store reads); the visits inside them wait for the
    /// resolver's process-wide slots like any other.
    slots: Arc<Semaphore>,
    wake: Notify,
    new_event: Notify,
    live: broadcast::Sender<Event>,
    pub metrics: WatchMetrics,
    /// How long a claimed run keeps other processes off its watch (`watch.lease_seconds`).
    lease_ms: u64,
}

impl Watcher {
    /// A watcher for `[watch]`, running at most `concurrency` entries at once
    /// (`limits.concurrency`); their visits share the resolver's slots.
    pub fn new(
        w: &config::Watch,
        concurrency: u32,
        resolver: Arc<Resolver>,
        store: Store,
    ) -> Arc<Watcher> {
        Watcher::with_clock(w, concurrency, resolver, store, Arc::new(SystemClock))
    }

    /// A watcher whose idea of the time is `clock` (a test's, which it moves by hand).
    pub fn with_clock(
        w: &config::Watch,
        concurrency: u32,
        resolver: Arc<Resolver>,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Arc<Watcher> {
        Arc::new(Watcher {
            clock,
            resolver,
            store,
            default_every: w.default_every.as_secs(),
            min_every: w.min_every.as_secs(),
            max_observations: w.max_observations as usize,
            webhook: w.webhook_url.clone(),
            webhook_backoff: w.webhook_backoff,
            lease_ms: w.lease.as_millis().try_into().unwrap_or(u64::MAX),
            running: Mutex::default(),
            slots: Arc::new(Semaphore::new((concurrency as usize).max(1))),
            wake: Notify::new(),
            new_event: Notify::new(),
            live: broadcast::channel(1024).0,
            metrics: WatchMetrics::default(),
        })
    }

    /// Makes the scheduler look at the due list now (after a test's clock moved).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The key a URL is watched under (normalised as the cache does); only web URLs.
    pub fn key(url: &str) -> Result<String, WatchError> {
        crate::input::web_url(url)
            .map(|u| u.to_string())
            .map_err(WatchError::Url)
    }

    /// Watches `url` every `every` seconds (default `watch.default_every_seconds`) as
    /// `visitors`, first run now; an existing watch gets the new interval and visitors and
    /// keeps its due time. Answers the entry and whether it is new.
    pub async fn add(
        &self,
        url: &str,
        every: Option<u64>,
        visitors: Visitors,
    ) -> Result<(WatchRecord, bool), WatchError> {
        let key = Watcher::key(url)?;
        let named = crate::compare::named(&visitors.profiles, &visitors.via);
        if named > MAX_CELLS {
            return Err(WatchError::TooManyVisitors(named));
        }
        let cells = crate::compare::product(&visitors.profiles, &visitors.via);
        for (profile, via) in &cells {
            self.resolver.visitor(profile, via)?;
        }
        let every = every.unwrap_or(self.default_every);
        if every < self.min_every {
            return Err(WatchError::TooOften {
                min: self.min_every,
            });
        }
        if every > MAX_EVERY_SECONDS {
            return Err(WatchError::TooRare);
        }
        let (mut record, new) = match self.store.watch(&key).await? {
            Some(mut w) => {
                w.every_seconds = every;
                w.auto = false;
                (w, false)
            }
            None => (
                WatchRecord::new(key, every, false, self.clock.now_ms()),
                true,
            ),
        };
        record.profiles = visitors.profiles;
        record.via = visitors.via;
        self.store.put_watch(&record).await?;
        self.wake.notify_one();
        Ok((record, new))
    }

    pub async fn remove(&self, url: &str) -> Result<bool, WatchError> {
        Ok(self.store.remove_watch(&Watcher::key(url)?).await?)
    }

    pub async fn list(&self) -> Result<Vec<WatchRecord>, WatchError> {
        Ok(self.store.watches().await?)
    }

    pub async fn history(&self, url: &str) -> Result<Option<History>, WatchError> {
        let key = Watcher::key(url)?;
        let observations: Vec<Observation> = self.store.observations(&key).await?;
        if observations.is_empty() {
            return Ok(None);
        }
        Ok(Some(History {
            url: key,
            summary: summarize(&observations),
            observations,
        }))
    }

    /// Live events from now on (see [`Store::events_after`] for the ones before).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The scheduler: runs due entries until `shutdown`. Entries overdue at start (say, after
    /// a restart) run once each, and each next due time counts from its run.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = match self.start_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("watch scheduler: {e}");
                    Some(self.clock.now_ms() + 1000)
                }
            };
            // Other processes on a shared store add watches and run them without telling this
            // one: look again within a second.
            let longest = match self.store.shared() {
                true => 1_000,
                false => 60_000,
            };
            let wait = next.map_or(Duration::from_millis(longest), |at| {
                Duration::from_millis(at.saturating_sub(self.clock.now_ms()).clamp(10, longest))
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = &mut shutdown => return,
            }
        }
    }

    /// Starts every due entry; answers when the next one is due.
    async fn start_due(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now_ms();
        // Claiming sets the next due time as the run starts, so the entry leaves the due list
        // whether this run finishes or the process dies (then it runs once at its next time,
        // or when its lease ends, not again at once); of several processes on one store, one
        // gets each claim.
        let claimed = self.store.claim_due(now, 1024, self.lease_ms).await?;
        for w in claimed {
            let url = w.url.clone();
            if !self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(url.clone())
            {
                tracing::debug!("{url} still running from its last turn; skipped");
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = me.slots.clone().acquire_owned().await;
                if let Err(e) = me.run_one(&w).await {
                    tracing::error!("watch run of {url}: {e}");
                }
                me.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&url);
                // The run's end released its claim: look again at what is due when.
                me.wake.notify_one();
            });
        }
        self.store.next_due().await
    }

    /// Re-resolves one entry (cache bypassed) as each of its visitors at once, records their
    /// observations, raises their events: each visitor's observation is compared with that
    /// visitor's history (one country's branch moving is news even if another's was there).
    async fn run_one(&self, w: &WatchRecord) -> Result<(), StoreError> {
        let url = w.url.as_str();
        let matrix = match w.default_visitor() {
            true => Vec::new(),
            false => crate::compare::product(&w.profiles, &w.via),
        };
        let traces: Vec<Result<Trace, VisitorError>> = match Link::parse(url) {
            // A Trace the store did not keep is still an observation.
            Ok(link) if matrix.is_empty() => {
                vec![Ok(self
                    .resolver
                    .rerun(&link)
                    .await
                    .unwrap_or_else(|u| u.trace))]
            }
            Ok(link) => self
                .resolver
                .resolve_matrix(&link, &matrix)
                .await
                .into_iter()
                .map(|r| r.map(|r| r.trace))
                .collect(),
            Err(e) => (0..matrix.len().max(1))
                .map(|_| Ok(Trace::input_error(url, e.to_string())))
                .collect(),
        };
        let cells: Vec<Option<WatchCell>> = match matrix.is_empty() {
            true => vec![None],
            false => matrix
                .into_iter()
                .map(|(profile, via)| Some(WatchCell { profile, via }))
                .collect(),
        };
        self.metrics.runs.inc();
        let at = self.clock.now_ms();
        let before: Vec<Observation> = self.store.observations(url).await?;
        let keep = self.max_observations.saturating_mul(cells.len());
        for (cell, trace) in cells.into_iter().zip(traces) {
            let trace = match trace {
                Ok(t) => t,
                Err(e) => {
                    // The configuration lost a profile or point since the watch named it.
                    tracing::warn!("watch run of {url}: {e}");
                    continue;
                }
            };
            let mut now = Observation::of(&trace, at);
            now.cell = cell;
            self.store.observe(url, at, &now, keep).await?;
            let mine: Vec<Observation> = before
                .iter()
                .filter(|o| o.cell == now.cell)
                .cloned()
                .collect();
            if let Some((kind, before)) = event_for(&mine, &now) {
                self.raise(url, kind, before, &now).await?;
            }
        }
        if let Some(mut w) = self.store.watch(url).await? {
            w.last_run_ms = Some(at);
            self.store.put_watch(&w).await?;
        }
        Ok(())
    }

    /// Stores, streams and counts one event.
    async fn raise(
        &self,
        url: &str,
        kind: EventKind,
        before: Vec<String>,
        now: &Observation,
    ) -> Result<(), StoreError> {
        let event = |id| Event {
            id,
            event: kind,
            url: url.to_string(),
            host: now.final_host.clone(),
            final_url: now.final_url.clone(),
            labels: now.landing_labels.clone(),
            before: before.clone(),
            at: now.at.clone(),
            cell: now.cell.clone(),
        };
        let id = self.store.push_event(KEEP_EVENTS, event(0)).await?;
        tracing::info!("{kind}: {url} now lands on {}", now.final_host);
        self.metrics.events.inc();
        let _ = self.live.send(event(id));
        self.new_event.notify_one();
        Ok(())
    }
}

/// The watch entry as the API shows it.
pub fn entry_json(w: &WatchRecord) -> serde_json::Value {
    serde_json::json!({
        "url": w.url,
        "every_seconds": w.every_seconds,
        "next_due": rfc3339_ms(w.next_due_ms),
        "added": rfc3339(w.added_ms),
        "last_run": w.last_run_ms.map(rfc3339_ms),
        "auto": w.auto,
        "profiles": w.profiles,
        "via": w.via,
    })
}
