//! Storage behind one set of traits, whatever keeps the data: Traces and the landing-domain
//! index ([`Traces`]), the watchlist with its observations and events ([`Watches`]), scanned
//! repositories ([`Repositories`]). Callers hold a [`Store`] and never know the backend:
//! sled is the embedded default ([`sled`]), PostgreSQL the one replicas share ([`postgres`]);
//! the record types are in [`model`].
//!
//! Every write is on disk (or in the database) before it is reported, so a crash loses
//! nothing a user has already seen — except what a caller queued with `put_later` or
//! `put_repository_later`, which the next `flush` makes durable (a caller that queues reports
//! only after that flush: a crash loses at most the writes since the last one).

pub mod encoded;
pub mod model;
mod postgres;
pub mod search;
mod sled;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use encoded::EncodedTrace;
pub use model::{DomainPage, DomainQuery, DomainRecord, DomainSort, WatchRecord};
use model::{Event, Observation, RepositoryRecord};
pub use search::{SearchKey, SearchPage, SearchQuery};

use crate::config::Storage;
use crate::trace::Trace;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the database at {path} is in use by another hoptrace process (sled allows one process at a time)")]
    Locked { path: PathBuf },
    #[error("cannot open the database at {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// sled failed a read or a write (I/O underneath).
    #[error("database: {0}")]
    Sled(String),
    /// PostgreSQL refused a statement (it is reachable: the same statement fails again).
    #[error("database: postgres: {0}")]
    Statement(String),
    /// A record could not be put in its stored form.
    #[error("database: cannot encode the {what}: {message}")]
    Encode { what: &'static str, message: String },
    /// The task writing a batch ended before it reported (it panicked, or the runtime is
    /// stopping); the batch may or may not be on disk.
    #[error("database: the store's write task ended before reporting ({0})")]
    WriteLost(String),
    /// The database cannot be reached now (a shared one that is down or restarting); the call
    /// may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<encoded::EncodedError> for StoreError {
    fn from(e: encoded::EncodedError) -> Self {
        match e {
            encoded::EncodedError::Corrupt(m) => StoreError::Corrupt(m),
            encoded::EncodedError::Encode(e) => StoreError::encode("trace", e),
        }
    }
}

/// Hears the key of each Trace written (see [`Traces::on_write`]).
pub type WriteListener = Arc<dyn Fn(&str) + Send + Sync>;

impl StoreError {
    /// `what` could not be encoded for storing.
    pub(crate) fn encode(what: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Encode {
            what,
            message: e.to_string(),
        }
    }
}

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the call returns.
    Now,
    /// By the next [`Traces::flush`] (the CLI flushes once per group of printed lines).
    NextFlush,
}

/// Traces by normalised input, and the index of final landing domains.
#[async_trait]
pub trait Traces: Send + Sync {
    /// The latest stored Trace for `key`, however old, with when it was stored (ms).
    async fn latest(&self, key: &str) -> Result<Option<(Trace, u64)>, StoreError>;
    /// The same Trace in its stored wire form, for answering without decoding it.
    async fn latest_encoded(&self, key: &str) -> Result<Option<EncodedTrace>, StoreError> {
        match self.latest(key).await? {
            Some((trace, at)) => Ok(Some(EncodedTrace::encode(&trace, at)?)),
            None => Ok(None),
        }
    }
    /// Calls `listener` with the key of every Trace written from now on, after the write is
    /// applied and before its writer is told: whoever keeps something made from a stored
    /// Trace forgets it there. `false` when the backend cannot promise that (other processes
    /// write to it too): then nothing read from it may be kept.
    fn on_write(&self, _listener: WriteListener) -> bool {
        false
    }
    /// Stores `trace` under `key`, as `encoded` (the same Trace: its JSON, and when it is
    /// stored), and, when it landed somewhere, updates the landing-domain index, together;
    /// returns once both are durable, or for [`Durability::NextFlush`] once queued (where the
    /// backend has no cheaper way, durable at once). Taking the encoded form lets the caller
    /// answer with the very bytes stored instead of encoding the Trace a second time.
    async fn put_encoded(
        &self,
        key: &str,
        trace: &Trace,
        encoded: &EncodedTrace,
        durability: Durability,
    ) -> Result<(), StoreError>;
    /// Stores `trace` under `key` as stored at `now_ms` (see [`Traces::put_encoded`]);
    /// returns once it is durable.
    async fn put(&self, key: &str, trace: &Trace, now_ms: u64) -> Result<(), StoreError> {
        let encoded = &EncodedTrace::encode(trace, now_ms)?;
        self.put_encoded(key, trace, encoded, Durability::Now).await
    }
    /// The same write, made durable by the next [`Traces::flush`].
    async fn put_later(&self, key: &str, trace: &Trace, now_ms: u64) -> Result<(), StoreError> {
        let encoded = &EncodedTrace::encode(trace, now_ms)?;
        self.put_encoded(key, trace, encoded, Durability::NextFlush)
            .await
    }
    /// Returns once every write made so far is durable.
    async fn flush(&self) -> Result<(), StoreError>;
    async fn domain(&self, domain: &str) -> Result<Option<DomainRecord>, StoreError>;
    /// Every landing domain, in name order.
    async fn domains(&self) -> Result<Vec<DomainRecord>, StoreError>;
    /// One page of the index in the order `q` asks for.
    async fn domains_page(&self, q: &DomainQuery) -> Result<DomainPage, StoreError> {
        Ok(q.page_of(self.domains().await?))
    }
    /// The inputs whose chains ended on `domain`.
    async fn domain_inputs(&self, domain: &str) -> Result<Vec<String>, StoreError>;
    /// Up to `limit` stored Traces with keys after `after` (from the first with `None`), in
    /// key order, each with when it was stored (ms): how an export walks the whole store.
    async fn traces_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Trace, u64)>, StoreError>;
    /// One page of the Traces that meet `q` (see [`search`]). Here: a bounded scan of the
    /// whole store in key order, for a backend without an index (and for a query with no
    /// exact value to look up).
    async fn search(&self, q: &SearchQuery) -> Result<SearchPage, StoreError> {
        scan(self, q).await
    }
    /// A landing page's HTML as kept, by its SHA-256 (`evidence.html_sha256`); kept beside
    /// the screenshots, under a key of its own kind.
    async fn html(&self, sha256: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        self.screenshot(&html_key(sha256)).await
    }
    /// A landing page's screenshot (PNG) by its SHA-256, as a Trace's evidence names it;
    /// stored with that Trace by [`Traces::put`].
    async fn screenshot(&self, sha256: &str) -> Result<Option<bytes::Bytes>, StoreError>;
}

/// Where a landing page's HTML is kept among the screenshots (a hex hash never starts so).
fn html_key(sha256: &str) -> String {
    format!("html:{sha256}")
}

/// What a Trace keeps beside it by content: its screenshot and its landing page's HTML,
/// each under its key.
fn blobs(trace: &Trace) -> Vec<(String, bytes::Bytes)> {
    let Some(e) = &trace.evidence else {
        return Vec::new();
    };
    let shot = trace
        .screenshot
        .clone()
        .zip(e.screenshot_sha256.clone())
        .map(|(png, sha)| (sha, png));
    let html = trace
        .html
        .clone()
        .zip(e.html_sha256.as_deref())
        .map(|(html, sha)| (html_key(sha), html));
    shot.into_iter().chain(html).collect()
}

/// A page of `q` by reading the store in key order from `q.after`, within the scan budget.
async fn scan<T: Traces + ?Sized>(store: &T, q: &SearchQuery) -> Result<SearchPage, StoreError> {
    let mut page = SearchPage::default();
    let mut after = q.after.clone();
    loop {
        let chunk = store.traces_after(after.as_deref(), 500).await?;
        let full = chunk.len() == 500;
        after = chunk.last().map(|(k, _, _)| k.clone());
        if search::collect(q, chunk.into_iter().map(Ok), &mut page)? || !full {
            return Ok(page);
        }
    }
}

/// The watchlist, each link's observations, the events raised, and small counters.
#[async_trait]
pub trait Watches: Send + Sync {
    /// Whether other processes may change the watchlist and raise events in this store too
    /// (then the scheduler and event streams look at it often, not only when told).
    fn shared(&self) -> bool {
        false
    }
    /// Adds or replaces a watch (its due time moves with it).
    async fn put_watch(&self, w: &WatchRecord) -> Result<(), StoreError>;
    /// Adds `w` unless its URL is watched already; whether it was added.
    async fn add_watch_if_absent(&self, w: &WatchRecord) -> Result<bool, StoreError>;
    async fn watch(&self, url: &str) -> Result<Option<WatchRecord>, StoreError>;
    /// Removes a watch (its history stays); whether it was there.
    async fn remove_watch(&self, url: &str) -> Result<bool, StoreError>;
    /// Every watch, in URL order.
    async fn watches(&self) -> Result<Vec<WatchRecord>, StoreError>;
    /// URLs due at `now_ms`, earliest first (at most `limit`).
    async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError>;
    /// When the earliest watch is due.
    async fn next_due(&self) -> Result<Option<u64>, StoreError>;
    /// Claims the watches due at `now_ms` (at most `limit`, earliest first), one run each:
    /// each gets its next due time and, where several processes share the store, a lease
    /// until `now_ms + lease_ms` that keeps the others off it. The lease ends with the next
    /// [`Watches::put_watch`] of the watch (the run recording itself) or at its time, so a
    /// process that dies mid-run loses its claim.
    async fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        // One process per store (sled): no one to race, so no lease to keep.
        let _ = lease_ms;
        let mut claimed = Vec::new();
        for url in self.due(now_ms, limit).await? {
            if let Some(mut w) = self.watch(&url).await? {
                w.next_due_ms = w.next_due_after(now_ms);
                self.put_watch(&w).await?;
                claimed.push(w);
            }
        }
        Ok(claimed)
    }
    /// Appends an observation of `url`, keeping the newest `keep`.
    async fn observe(
        &self,
        url: &str,
        at_ms: u64,
        observation: &Observation,
        keep: usize,
    ) -> Result<(), StoreError>;
    /// Observations of `url`, oldest first.
    async fn observations(&self, url: &str) -> Result<Vec<Observation>, StoreError>;
    /// Stores `event` under the next id (ids only grow, across restarts), which it is given;
    /// keeps the newest `keep` events.
    async fn push_event(&self, keep: usize, event: Event) -> Result<u64, StoreError>;
    /// The newest event's id (0 when there is none).
    async fn last_event_id(&self) -> Result<u64, StoreError>;
    /// Events with ids above `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: u64, limit: usize)
        -> Result<Vec<(u64, Event)>, StoreError>;
    async fn counter(&self, name: &str) -> Result<u64, StoreError>;
    async fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError>;
}

/// What scans found per repository (for resuming, and for campaigns).
#[async_trait]
pub trait Repositories: Send + Sync {
    async fn put_repository(&self, name: &str, record: &RepositoryRecord)
        -> Result<(), StoreError>;
    /// The same write, made durable by the next [`Traces::flush`] (readable at once where the
    /// backend can; where it has no cheaper way, durable at once).
    async fn put_repository_later(
        &self,
        name: &str,
        record: &RepositoryRecord,
    ) -> Result<(), StoreError> {
        self.put_repository(name, record).await
    }
    async fn repository(&self, name: &str) -> Result<Option<RepositoryRecord>, StoreError>;
    /// Every repository's record, in name order.
    async fn repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError>;
    /// Up to `limit` repositories with names after `after` (from the first with `None`), in
    /// name order: how campaigns walk the whole store in bounded memory. Each comes with its
    /// record, or why the record cannot be read ([`StoreError::Corrupt`] naming it), so one
    /// damaged record does not end the walk.
    async fn repositories_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RepositoryPage, StoreError>;
    /// A number that grows whenever a repository is written (by any process on the store):
    /// what was computed from [`Repositories::repositories`] at one version is current while
    /// the version is.
    async fn repositories_version(&self) -> Result<u64, StoreError>;
    /// Up to `limit` repository writes after `version`, oldest first, each with its version,
    /// the record as it is now, and whether it replaced an earlier record: what someone who
    /// computed something at `version` folds in instead of walking the store again. `None`
    /// when the backend keeps no such log.
    async fn repositories_since(
        &self,
        version: u64,
        limit: usize,
    ) -> Result<Option<Vec<Written>>, StoreError> {
        let _ = (version, limit);
        Ok(None)
    }
    /// Up to `limit` repositories last written at or before `version` (of `namespace` alone
    /// when given), with names after `after`, in name order: a walk of the store as it was
    /// at `version` (see [`Repositories::repositories_after`]).
    async fn repositories_at(
        &self,
        namespace: Option<&str>,
        after: Option<&str>,
        version: u64,
        limit: usize,
    ) -> Result<RepositoryPage, StoreError>;
}

/// A page of [`Repositories::repositories_after`]: `(name, record or why not)`.
pub type RepositoryPage = Vec<(String, Result<RepositoryRecord, StoreError>)>;

/// One repository write of [`Repositories::repositories_since`].
#[derive(Debug)]
pub struct Written {
    pub version: u64,
    pub name: String,
    /// It replaced an earlier record of the same name.
    pub replaced: bool,
    pub record: Result<RepositoryRecord, StoreError>,
}

/// Where the repositories of `namespace` begin and end in name order (`ns/` up to `ns0`);
/// everything for none.
pub(crate) fn namespace_range(namespace: Option<&str>) -> (String, Option<String>) {
    match namespace {
        Some(ns) => (format!("{ns}/"), Some(format!("{ns}0"))),
        None => (String::new(), None),
    }
}

/// Everything a backend keeps.
pub trait Backend: Traces + Watches + Repositories {}

impl<T: Traces + Watches + Repositories> Backend for T {}

/// The store callers hold: a backend behind the traits, cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens the backend `[storage]` names (PostgreSQL: connects and migrates).
    pub async fn open(config: &Storage) -> Result<Store, StoreError> {
        match &config.backend {
            crate::config::Backend::Sled(sled) => Store::open_sled(&sled.path),
            crate::config::Backend::Postgres(pg) => {
                Ok(Store(Arc::new(postgres::PgStore::open(pg).await?)))
            }
        }
    }

    /// The embedded sled database at `path` (one process at a time).
    pub fn open_sled(path: &std::path::Path) -> Result<Store, StoreError> {
        Ok(Store(Arc::new(sled::SledStore::open(path)?)))
    }

    /// A store over any backend (a test's, say).
    pub fn with_backend(backend: Arc<dyn Backend>) -> Store {
        Store(backend)
    }
}
