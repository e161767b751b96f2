//! The resolution loop: from an input to a Trace, one hop at a time. Each hop is decoded
//! statically when it is a known wrapper, otherwise fetched through the egress gate; its next
//! hop comes from the [`NextHopFinder`]s in turn. The cache sits in front, the store behind.

mod admission;
mod batch;
mod cache;
mod hop;
mod resolved;
mod visitor;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::browser::Driver;
use crate::config::{AutoSource, Config};
use crate::discover::NextHopFinder;
use crate::egress::{Egress, EgressError};
use crate::fetch::{ClientError, Fetcher, Form};
use crate::input::Link;
use crate::labels::{LabelError, Labels};
use crate::profile::Profiles;
use crate::shared::claim::Claims;
use crate::shared::limit::RateLimit;
use crate::shared::{Shared, SharedError};
use crate::store::{Durability, EncodedTrace, Store};
use crate::trace::{rfc3339, ErrorKind, Outcome, Trace, TraceError, Via};
pub use admission::Admission;
pub use batch::{Batch, BatchError, Entry, Groups};
pub use cache::{servable, CachedJson};
use hop::{host_of, Step};
pub use resolved::{Lookup, Resolved, Unstored};
use visitor::Way;
pub use visitor::{Visitor, VisitorError, DIRECT};

/// Start-up failures: everything here is a configuration or environment problem.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Shared(#[from] SharedError),
    #[error(transparent)]
    Labels(#[from] LabelError),
}

/// Resolves links. One per process: the politeness limiter and connection pool are shared
/// by all work.
pub struct Resolver {
    /// hoptrace's own way out, and each egress point's.
    direct: Way,
    points: std::collections::BTreeMap<String, Way>,
    profiles: Profiles,
    /// Visits in flight in this process (`limits.concurrency`), whoever asked for them.
    admission: Admission,
    /// Per target host; shared across processes with `limits.shared_url`.
    politeness: RateLimit,
    /// Who resolves which link, across processes (with `limits.shared_url`).
    claims: Option<Claims>,
    shared: Option<Arc<Shared>>,
    /// Swapped whole on reload (SIGHUP); a resolution keeps the lists it started with.
    labels: std::sync::RwLock<Arc<Labels>>,
    store: Option<Store>,
    /// Cache-using resolutions in flight, by key: a second caller for the same link waits for
    /// the first instead of visiting it again (a scan finds one shortener link in thousands
    /// of repositories at once).
    in_flight: std::sync::Mutex<HashMap<String, Arc<InFlightCell>>>,
    /// Links through fake or lookalike shorteners are watched (every this many seconds) as
    /// soon as a resolution sees them: only where `watch.auto_from` names the caller's source
    /// ([`Resolver::watch_automatically`]); none by default.
    auto_watch: Option<u64>,
    /// See [`Resolver::defer_durability`].
    durability: Durability,
    max_hops: usize,
    hop_timeout: Duration,
    total_timeout: Duration,
    /// Fetch and hash each landing page's icon (`http.favicon`).
    favicon: bool,
    cache_ttl: Duration,
}

impl Resolver {
    /// A resolver with the browser stage the config asks for (Chromium, started on first
    /// use).
    pub fn new(config: &Config, store: Option<Store>) -> Result<Resolver, SetupError> {
        Resolver::with_driver(config, store, crate::browser::configured_driver(config))
    }

    /// A resolver using `driver` for pages that need a browser (`None`: no browser stage).
    pub fn with_driver(
        config: &Config,
        store: Option<Store>,
        driver: Option<Arc<dyn Driver>>,
    ) -> Result<Resolver, SetupError> {
        let direct = Way::new(config, Egress::new(config)?, driver.clone())?;
        let mut points = std::collections::BTreeMap::new();
        for (name, point) in &config.egress.points {
            let egress = Egress::for_point(config, point)?;
            points.insert(name.clone(), Way::new(config, egress, driver.clone())?);
        }
        let shared = match &config.limits.shared_url {
            None => None,
            Some(url) => Some(Arc::new(Shared::open(url)?)),
        };
        let per_host = config.limits.per_host_per_second;
        Ok(Resolver {
            direct,
            points,
            profiles: Profiles::from_config(config),
            admission: Admission::new(config.limits.concurrency),
            // A burst of the rate's whole part (at least 1).
            politeness: RateLimit::new(
                per_host,
                per_host.floor().clamp(1.0, f64::from(u32::MAX)) as u32,
                shared.clone(),
                "host:",
            ),
            claims: shared.clone().map(Claims::new),
            shared,
            labels: std::sync::RwLock::new(Arc::new(Labels::load(&config.labels.extra_files)?)),
            store,
            in_flight: Default::default(),
            auto_watch: None,
            durability: Durability::Now,
            max_hops: config.limits.max_hops as usize,
            hop_timeout: config.limits.hop_timeout,
            favicon: config.http.favicon,
            total_timeout: config.limits.total_timeout,
            cache_ttl: config.storage.cache_ttl,
        })
    }

    /// Resolutions for `source` add automatic watches when `watch.auto` is on and
    /// `watch.auto_from` names `source` (opt-in: an ad-hoc run leaves nothing behind unasked).
    pub fn watch_automatically(&mut self, watch: &crate::config::Watch, source: AutoSource) {
        self.auto_watch = (watch.auto && watch.auto_from.contains(&source))
            .then_some(watch.default_every.as_secs());
    }

    /// Resolutions queue their store writes instead of waiting for each to reach the disk;
    /// the caller must [`Store::flush`] before it reports a result (the CLI flushes once per
    /// group of printed lines). The cache and the domain index see a queued Trace only after
    /// that flush.
    pub fn defer_durability(&mut self) {
        self.durability = Durability::NextFlush;
    }

    /// When this resolver's store writes are durable (see [`Resolver::defer_durability`]).
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Adds a way of finding next hops, asked after the ones already there (the browser
    /// stage plugs in here).
    pub fn add_finder(&mut self, finder: Arc<dyn NextHopFinder>) {
        self.direct.finders.push(finder);
    }

    /// Loads the indicator lists again (the built-in ones and `labels.extra_files`) and
    /// uses them for resolutions that start from now on. On error the old lists stay.
    pub fn reload_labels(&self, lists: &crate::config::Labels) -> Result<(), LabelError> {
        let fresh = Arc::new(Labels::load(&lists.extra_files)?);
        *self.labels.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn labels(&self) -> Arc<Labels> {
        self.labels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The HTTP client behind the egress gate (for webhooks).
    pub fn fetcher(&self) -> &Fetcher {
        &self.direct.fetcher
    }

    /// The process-wide admission every visit passes (for its gauges).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The client profiles, built in and configured.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The Redis that processes share (`limits.shared_url`), if any.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// Resolves `input`: from the cache when `use_cache` and a fresh Trace is stored, else by
    /// following the chain, then stores the result. Never fails: problems are in the Trace (a
    /// store that failed to keep it is logged).
    pub async fn resolve(&self, input: &str, use_cache: bool) -> Trace {
        let lookup = Lookup::cache_if(use_cache);
        Resolved::kept_or_not(self.try_resolve(input, lookup).await).trace
    }

    /// Resolves `input` as `lookup` says; `Err` when the Trace could not be stored (the
    /// caller decides whether an unstored answer may be given).
    pub async fn try_resolve(&self, input: &str, lookup: Lookup) -> Result<Resolved, Unstored> {
        match Link::parse(input) {
            Ok(link) => self.resolve_link(&link, lookup).await,
            Err(e) => Ok(Resolved::unstored(Trace::input_error(input, e.to_string()))),
        }
    }

    /// [`Resolver::try_resolve`] of a link parsed already. Stages in order: the cache, single
    /// flight in this process, the claim among processes ([`Resolver::resolve_once`]), then
    /// the visit (admission, the hop loop) and the store writer ([`Resolver::follow_and_store`]).
    pub async fn resolve_link(&self, link: &Link, lookup: Lookup) -> Result<Resolved, Unstored> {
        let (input, key) = (link.input(), link.key());
        match lookup {
            Lookup::Refresh => return self.follow_and_store(link, true).await,
            Lookup::Cache => {
                if let Some(trace) = self.cached_key(input, key).await {
                    return Ok(Resolved::unstored(trace));
                }
            }
        }
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        // Removes the entry however this call ends (a caller may be cancelled mid-way; the
        // cell then lets the next waiter do the work).
        let _leave = InFlight {
            map: &self.in_flight,
            key,
            cell: &cell,
        };
        cell.get_or_init(|| self.resolve_once(link)).await;
        drop(_leave);
        // The last one holding the cell takes its Trace rather than copying it (every
        // resolution but a shared one is alone with its cell, so a copy is almost always waste).
        let result = match Arc::try_unwrap(cell) {
            Ok(only) => only.into_inner(),
            Err(shared) => shared.get().cloned(),
        };
        // (Set by `get_or_init` above.)
        let mut result = match result {
            Some(result) => result,
            None => {
                let lost = Trace::input_error(input, "the resolution was lost".into());
                Ok(Resolved::unstored(lost))
            }
        };
        match &mut result {
            Ok(r) => r.trace.input = input.to_string(),
            Err(u) => u.trace.input = input.to_string(),
        }
        result
    }

    /// One visit for `link` among all processes sharing a Redis: the one that claims it
    /// resolves it; the others wait for its Trace in the store (or resolve themselves when
    /// the claim lapses without one, or Redis is away).
    async fn resolve_once(&self, link: &Link) -> Result<Resolved, Unstored> {
        let Some(claims) = &self.claims else {
            return self.follow_and_store(link, true).await;
        };
        let key = link.key();
        let ttl = self.total_timeout + Duration::from_secs(5);
        if !claims.claim(key, ttl).await {
            let deadline = Instant::now() + ttl;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(trace) = self.cached_key(link.input(), key).await {
                    return Ok(Resolved::unstored(trace));
                }
                if Instant::now() >= deadline || !claims.held_elsewhere(key).await {
                    break;
                }
            }
        }
        let result = self.follow_and_store(link, true).await;
        claims.release(key).await;
        result
    }

    /// A watched link's re-resolution: cache bypassed, stored, and never watched anew (a
    /// watch removed while this ran stays removed).
    pub async fn rerun(&self, link: &Link) -> Result<Trace, Unstored> {
        self.follow_and_store(link, false).await.map(|r| r.trace)
    }

    /// The visit, then the store writer: the Trace kept (queued until the next flush when
    /// durability is deferred), and a watch added for a rotating link when `may_watch`.
    async fn follow_and_store(&self, link: &Link, may_watch: bool) -> Result<Resolved, Unstored> {
        let key = link.key();
        let mut trace = self.follow(link.input(), link.url().clone()).await;
        let Some(store) = &self.store else {
            return Ok(Resolved::unstored(trace));
        };
        let stored = match EncodedTrace::encode(&trace, crate::now_ms()) {
            Ok(encoded) => store
                .put_encoded(key, &trace, &encoded, self.durability)
                .await
                .map(|()| encoded),
            Err(e) => Err(e.into()),
        };
        let encoded = match stored {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::error!("storing the trace of {key} failed: {error}");
                return Err(Unstored { trace, error });
            }
        };
        if let Some(every) = self.auto_watch.filter(|_| may_watch && rotates(&trace)) {
            let watch =
                crate::store::WatchRecord::new(key.to_string(), every, true, crate::now_ms());
            match store.add_watch_if_absent(&watch).await {
                Ok(true) => {
                    tracing::info!("watching {key} (it passes through a fake shortener)");
                    trace.watch_added = Some(crate::trace::WatchAdded {
                        url: key.to_string(),
                        every_seconds: every,
                    });
                }
                Ok(false) => {}
                Err(e) => tracing::error!("auto-watching {key} failed: {e}"),
            }
        }
        Ok(Resolved {
            trace,
            stored: Some(encoded),
        })
    }

    /// Follows the chain from `start` as the default profile, directly (no cache, no store).
    pub async fn follow(&self, input: &str, start: Url) -> Trace {
        let visitor = Visitor {
            profile: self.profiles.default_profile(),
            via: DIRECT,
            way: &self.direct,
        };
        self.follow_as(input, start, &visitor).await
    }

    /// Follows the chain from `start` as `visitor` (no cache, no store).
    async fn follow_as(&self, input: &str, start: Url, visitor: &Visitor<'_>) -> Trace {
        let _slot = self.admission.enter().await;
        let began = Instant::now();
        let started_ms = crate::now_ms();
        let mut trace = Trace {
            input: input.to_string(),
            final_url: start.to_string(),
            final_host: host_of(&start),
            outcome: Outcome::Landed,
            hops: Vec::new(),
            labels: Vec::new(),
            cached: false,
            error: None,
            resolved_at: Some(rfc3339(started_ms)),
            elapsed_ms: None,
            evidence: None,
            screenshot: None,
            watch_added: None,
            html: None,
        };
        // Request (URL, and the method when not GET) -> index of the hop that first made it.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut current = start;
        let mut via = Via::Input;
        // The form the current hop POSTs, if it does: its body and the page that sent it.
        let mut post: Option<(String, Url)> = None;
        // Network time used; waiting for per-host politeness is not counted, so a big batch
        // aimed at one host is slowed down, not timed out.
        let mut spent = Duration::ZERO;

        loop {
            let mut hop = self.hop(&current, via);
            seen.insert(request_key(&current, post.is_some()), trace.hops.len());

            let first = trace.hops.is_empty();
            let next = match self
                .step(
                    &current,
                    post.as_ref().map(|(body, from)| Form { body, from }),
                    &mut hop,
                    &mut spent,
                    visitor,
                    first,
                )
                .await
            {
                Step::End(outcome, error) => {
                    trace.outcome = outcome;
                    trace.error = error;
                    trace.hops.push(hop);
                    break;
                }
                Step::Next(found) => {
                    trace.hops.push(hop);
                    found
                }
            };
            let crate::discover::Found {
                mut url,
                via: next_via,
                post: next_post,
            } = next;
            // A fragment never leaves the browser: it is not part of the next request.
            url.set_fragment(None);
            if let Some(&first) = seen.get(&request_key(&url, next_post.is_some())) {
                let mut again = self.hop(&url, next_via);
                again.reason = crate::trace::HopNote::Loop { first }.into();
                trace.hops.push(again);
                trace.outcome = Outcome::Loop;
                break;
            }
            if trace.hops.len() > self.max_hops {
                trace.outcome = Outcome::TooManyHops;
                trace.error = Some(TraceError {
                    kind: ErrorKind::TooManyHops,
                    message: format!(
                        "stopped after {} hops (limits.max_hops); next was {url}",
                        self.max_hops
                    ),
                });
                break;
            }
            post = next_post.map(|body| {
                // A 307 or 308 repeats the form as it was sent, from the page that sent it.
                let from = match post.take() {
                    Some((_, from)) if next_via == Via::HttpRedirect => from,
                    _ => current.clone(),
                };
                (body, from)
            });
            current = url;
            via = next_via;
        }
        trace.elapsed_ms = Some(began.elapsed().as_millis() as u64);
        let shot = trace.hops.last_mut().and_then(|h| h.screenshot.take());
        if let Some(png) = shot.filter(|_| trace.outcome == Outcome::Landed) {
            trace.set_screenshot(png);
        }
        let html = trace.hops.last_mut().and_then(|h| h.html.take());
        if let Some(html) = html.filter(|_| trace.outcome == Outcome::Landed) {
            trace.set_html(html);
        }
        let icon = trace.hops.last_mut().and_then(|h| h.favicon.take());
        if let Some(icon) = icon.filter(|_| trace.outcome == Outcome::Landed) {
            trace.set_favicon(icon);
        }
        trace.finish();
        trace
    }
}

/// Whether a chain passes through a fake or lookalike shortener: those rotate their targets,
/// so only watching them shows where they lead over time.
fn rotates(trace: &Trace) -> bool {
    trace.labels.iter().any(|l| {
        *l == crate::labels::Builtin::FakeShortener
            || *l == crate::labels::Builtin::LookalikeShortener
    })
}

/// One resolution in flight, shared by the callers that want it.
type InFlightCell = tokio::sync::OnceCell<Result<Resolved, Unstored>>;

/// Takes a finished single-flight entry out of the map (only if it is still this call's cell:
/// a later resolution of the same key has its own).
struct InFlight<'a> {
    map: &'a std::sync::Mutex<HashMap<String, Arc<InFlightCell>>>,
    key: &'a str,
    cell: &'a Arc<InFlightCell>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(self.key).is_some_and(|c| Arc::ptr_eq(c, self.cell)) {
            map.remove(self.key);
        }
    }
}

/// What makes two requests of a chain the same one: a form POSTed to its own page's URL is
/// a new request, not a loop.
fn request_key(url: &Url, post: bool) -> String {
    match post {
        true => format!("POST {url}"),
        false => url.to_string(),
    }
}
