//! Prometheus metrics of the service, in the text format `GET /metrics` answers.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::trace::{Outcome, Trace, Via};

// Labels are the kinds' own static names: counting allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViaLabel {
    via: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Route {
    Resolve,
    Batch,
    Scan,
    Compare,
    Hub,
    Trace,
    Har,
    Export,
    Screenshot,
    Html,
    Campaigns,
    Watch,
    History,
    Events,
    Domains,
    Domain,
    Search,
    Health,
    Metrics,
    OpenApi,
    /// The web view (`/ui/...`).
    Ui,
    Unknown,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Route,
}

/// Everything the service counts.
pub struct Metrics {
    registry: Registry,
    resolutions: Family<OutcomeLabel, Counter>,
    hops: Family<ViaLabel, Counter>,
    blocked_hops: Counter,
    blocked_browser_requests: Counter,
    cache_hits: Counter,
    browser_hops: Counter,
    /// Script pages the embedded engine decided, and those it left to Chromium by reason
    /// (kept by [`crate::script`], copied in when rendered).
    script_emulated: Counter,
    script_deferred: Family<ReasonLabel, Counter>,
    resolution_seconds: Histogram,
    requests: Family<RequestLabel, Counter>,
    request_seconds: Family<RouteLabel, Histogram>,
    /// Resolutions waiting for a slot, process-wide (set from the resolver's admission).
    pub queue_depth: Gauge,
    /// Resolutions running, process-wide.
    pub in_flight: Gauge,
    /// Connections turned away at `server.max_connections` (every open one busy).
    pub connections_refused: Counter,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
    .into_iter()
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hoptrace");
        let m = Metrics {
            resolutions: Family::default(),
            hops: Family::default(),
            blocked_hops: Counter::default(),
            blocked_browser_requests: Counter::default(),
            cache_hits: Counter::default(),
            browser_hops: Counter::default(),
            script_emulated: Counter::default(),
            script_deferred: Family::default(),
            resolution_seconds: Histogram::new(latency_buckets()),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            connections_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "resolutions",
            "Resolutions by outcome (cache hits included)",
            m.resolutions.clone(),
        );
        registry.register("hops", "Hops by how they were reached", m.hops.clone());
        registry.register(
            "blocked_hops",
            "Hops refused by the egress policy",
            m.blocked_hops.clone(),
        );
        registry.register(
            "blocked_browser_requests",
            "Requests pages made in the browser that the policy refused",
            m.blocked_browser_requests.clone(),
        );
        registry.register(
            "cache_hits",
            "Resolutions answered from the store",
            m.cache_hits.clone(),
        );
        registry.register(
            "script_pages_emulated",
            "Script pages the embedded engine decided without Chromium",
            m.script_emulated.clone(),
        );
        registry.register(
            "script_pages_deferred",
            "Script pages the embedded engine left to Chromium, by reason",
            m.script_deferred.clone(),
        );
        registry.register(
            "browser_hops",
            "Hops revealed by running a page in the browser",
            m.browser_hops.clone(),
        );
        registry.register(
            "resolution_seconds",
            "Time of one resolution (not from cache)",
            m.resolution_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "API requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "API request latency by route",
            m.request_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Resolutions admitted and waiting for a slot",
            m.queue_depth.clone(),
        );
        registry.register("in_flight", "Resolutions running", m.in_flight.clone());
        registry.register(
            "connections_refused",
            "Connections turned away at server.max_connections, every open one busy",
            m.connections_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds the watch scheduler's counters.
    pub fn register_watch(&mut self, w: &crate::watch::WatchMetrics) {
        self.registry.register(
            "watch_runs",
            "Re-resolutions of watched links",
            w.runs.clone(),
        );
        self.registry.register(
            "watch_events",
            "New-landing-host and relabel events raised",
            w.events.clone(),
        );
        self.registry.register(
            "webhook_deliveries",
            "Webhook deliveries by result (delivered, failed, refused)",
            w.webhook.clone(),
        );
    }

    /// The shared Redis's fallbacks (see [`crate::shared`]).
    pub fn register_shared(&mut self, s: &crate::shared::Shared) {
        self.registry.register(
            "shared_fallbacks",
            "Calls to the shared Redis (limits.shared_url) that went without it: each process limited alone",
            s.fallbacks.clone(),
        );
    }

    /// Counts one resolution's trace.
    pub fn observe(&self, trace: &Trace) {
        if trace.cached {
            return self.cache_hit(trace.outcome);
        }
        self.count_outcome(trace.outcome);
        for hop in &trace.hops {
            self.hops
                .get_or_create(&ViaLabel {
                    via: hop.via.as_str(),
                })
                .inc();
            if hop.blocked {
                self.blocked_hops.inc();
            }
            if hop.via == Via::Javascript {
                self.browser_hops.inc();
            }
            self.blocked_browser_requests
                .inc_by(hop.blocked_requests.len() as u64);
        }
        if let Some(ms) = trace.elapsed_ms {
            self.resolution_seconds.observe(ms as f64 / 1000.0);
        }
    }

    /// Counts one answer from the cache.
    pub fn cache_hit(&self, outcome: Outcome) {
        self.count_outcome(outcome);
        self.cache_hits.inc();
    }

    fn count_outcome(&self, outcome: Outcome) {
        self.resolutions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn request(&self, route: Route, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabel {
                route: route.clone(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let (emulated, deferred) = crate::script::counts();
        catch_up(&self.script_emulated, emulated);
        for (reason, n) in deferred {
            let label = ReasonLabel {
                reason: reason.as_str(),
            };
            catch_up(&self.script_deferred.get_or_create(&label), n);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Brings a counter up to a total counted elsewhere.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
