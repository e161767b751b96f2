//! `hoptrace serve`: the HTTP API other scanners call (axum on hyper 1), to the contract's
//! routes.
//!
//! A request passes, in order: the connection's limits (`conn`, `serve`), then the layers in
//! `layers` — metrics and the access log, a panic guard, the `fence` against web pages (the
//! server's own Host names, no cross-site `/v1` call, `/v1` bodies as JSON), on `/v1` calls
//! the token check (when `server.api_tokens` is set; wrong tokens throttled per address by
//! `lockout`) and the per-client rate limit (429 with `Retry-After`),
//! on calls that resolve the time limit (504) — then the handler, which reads its body
//! through `extract` (413, 408, 400). Resolutions pass a bounded queue (503 when full) in
//! front of the resolver's `limits.concurrency` slots, which every visit in the process shares. Every error is `ApiError`, rendered as
//! `{"error": {"code", "message"}}`.
//!
//! Here: the state, the route table and the router built from it. Handlers per resource:
//! `resolve`, `scan`, `compare`, `hub`, `watch`, `events`, `domains`, `ops`.

mod admit;
mod answers;
mod compare;
pub mod conn;
mod domains;
mod error;
mod events;
mod evidence;
mod export;
mod extract;
mod fence;
mod hub;
mod layers;
mod lockout;
pub mod metrics;
mod ops;
mod resolve;
mod scan;
mod search;
mod serve;
pub mod ui;
mod watch;

pub use error::ApiError;
pub use extract::Peer;
pub use metrics::Route;
pub use serve::serve;

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::chain::Resolver;
use crate::config;
use crate::shared::limit::RateLimit;
use crate::store::Store;
use metrics::Metrics;

/// The OpenAPI 3 document of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Which layers a route is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The operator's routes: no token, no rate limit (probes and scrapers).
    Open,
    /// A client's call: token and rate limit.
    Client,
    /// A client's call that starts resolutions: also the request time limit.
    Work,
}

/// One route: method and path (as the OpenAPI document names them; `{name}` is one segment),
/// its metrics label, its layers and its handler.
pub struct RouteDef {
    pub method: &'static str,
    pub path: &'static str,
    pub route: Route,
    pub guard: Guard,
    handler: fn() -> MethodRouter<Arc<Api>>,
}

/// Every route. The one table that the router, the metrics labels and the OpenAPI check read:
/// adding a route is a row here, a handler, and its entry in `openapi.json`.
pub const ROUTES: &[RouteDef] = &[
    row("POST", "/v1/resolve", Route::Resolve, Guard::Work, || {
        post(resolve::one)
    }),
    row(
        "POST",
        "/v1/resolve/batch",
        Route::Batch,
        Guard::Work,
        || post(resolve::batch),
    ),
    row("POST", "/v1/scan", Route::Scan, Guard::Work, || {
        post(scan::scan)
    }),
    row("POST", "/v1/compare", Route::Compare, Guard::Work, || {
        post(compare::compare)
    }),
    // A crawl outlives its request: started here, it answers 202 and runs as a job.
    row("POST", "/v1/hub", Route::Hub, Guard::Client, || {
        post(hub::start)
    }),
    row("GET", "/v1/hub/{id}", Route::Hub, Guard::Client, || {
        get(hub::job)
    }),
    row("GET", "/v1/trace", Route::Trace, Guard::Client, || {
        get(resolve::stored)
    }),
    row("GET", "/v1/export", Route::Export, Guard::Client, || {
        get(export::export)
    }),
    row("GET", "/v1/har", Route::Har, Guard::Client, || {
        get(evidence::har)
    }),
    row(
        "GET",
        "/v1/screenshot",
        Route::Screenshot,
        Guard::Client,
        || get(evidence::screenshot),
    ),
    row("GET", "/v1/html", Route::Html, Guard::Client, || {
        get(evidence::html)
    }),
    row(
        "GET",
        "/v1/campaigns",
        Route::Campaigns,
        Guard::Client,
        || get(domains::campaigns),
    ),
    row("POST", "/v1/watch", Route::Watch, Guard::Client, || {
        post(watch::add)
    }),
    row("GET", "/v1/watch", Route::Watch, Guard::Client, || {
        get(watch::list)
    }),
    row("DELETE", "/v1/watch", Route::Watch, Guard::Client, || {
        delete(watch::remove)
    }),
    row("GET", "/v1/history", Route::History, Guard::Client, || {
        get(watch::history)
    }),
    row("GET", "/v1/events", Route::Events, Guard::Client, || {
        get(events::stream)
    }),
    row("GET", "/v1/domains", Route::Domains, Guard::Client, || {
        get(domains::list)
    }),
    row(
        "GET",
        "/v1/domains/{domain}",
        Route::Domain,
        Guard::Client,
        || get(domains::one),
    ),
    row("GET", "/v1/search", Route::Search, Guard::Client, || {
        get(search::search)
    }),
    row("GET", "/healthz", Route::Health, Guard::Open, || {
        get(ops::health)
    }),
    row("GET", "/metrics", Route::Metrics, Guard::Open, || {
        get(ops::metrics)
    }),
    row("GET", "/openapi.json", Route::OpenApi, Guard::Open, || {
        get(ops::openapi)
    }),
];

const fn row(
    method: &'static str,
    path: &'static str,
    route: Route,
    guard: Guard,
    handler: fn() -> MethodRouter<Arc<Api>>,
) -> RouteDef {
    RouteDef {
        method,
        path,
        route,
        guard,
        handler,
    }
}

/// The service's state, shared by every connection.
pub struct Api {
    resolver: Arc<Resolver>,
    watcher: Arc<crate::watch::Watcher>,
    /// Docker Hub crawls, one at a time (`/v1/hub`).
    crawls: Arc<crate::hub::Crawls>,
    /// Set when the server stops: event streams end so the graceful shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
    store: Store,
    tokens: Vec<Vec<u8>>,
    max_body: usize,
    /// Per client (`server.rate_per_second`); shared across replicas with `limits.shared_url`.
    limiter: Option<RateLimit>,
    /// Wrong tokens per address (`server.auth_failures_*`), for `/v1` and the login form.
    lockout: lockout::Lockout,
    /// The names the server answers to (`server.allowed_hosts`).
    hosts: fence::Hosts,
    /// Admission: resolutions running plus waiting; none left means 503.
    admission: Arc<Semaphore>,
    /// Exports running (`server.max_exports`), each until its document is sent; none left
    /// means 429.
    exports: Arc<Semaphore>,
    max_exports: u32,
    request_timeout: Duration,
    max_batch: usize,
    pub metrics: Metrics,
    /// `/v1/campaigns`, as last computed.
    campaigns: tokio::sync::Mutex<Option<domains::Campaigns>>,
    /// What every connection is held to.
    pub conn_limits: conn::ConnLimits,
    /// The web view's session and CSRF keys (from the tokens).
    ui_keys: ui::session::Keys,
    /// Links already parsed (the cache-hit paths).
    inputs: crate::input::Inputs,
    /// `POST /v1/resolve` hits' answers by request, forgotten as the store writes.
    answers: Arc<answers::Answers>,
}

impl Api {
    /// The API for `[server]`, queueing `server.max_queue` resolutions beyond the resolver's
    /// slots (`limits.concurrency`).
    pub fn new(
        s: &config::Server,
        limits: &config::Limits,
        resolver: Arc<Resolver>,
        store: Store,
        watcher: Arc<crate::watch::Watcher>,
        crawls: Arc<crate::hub::Crawls>,
    ) -> Api {
        let limiter = (s.rate_per_second > 0).then(|| {
            let burst = match s.rate_burst {
                0 => s.rate_per_second,
                b => b,
            };
            RateLimit::new(
                f64::from(s.rate_per_second),
                burst,
                resolver.shared().cloned(),
                "client:",
            )
        });
        let concurrency = limits.concurrency.max(1) as usize;
        let mut metrics = Metrics::new();
        metrics.register_watch(&watcher.metrics);
        if let Some(shared) = resolver.shared() {
            metrics.register_shared(shared);
        }
        let lockout = lockout::Lockout::new(s, resolver.shared().cloned());
        let answers = answers::Answers::new(&store);
        let tokens: Vec<Vec<u8>> = s.api_tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
        Api {
            ui_keys: ui::session::Keys::new(&tokens),
            tokens,
            resolver,
            watcher,
            crawls,
            closing: tokio::sync::watch::channel(false).0,
            store,
            max_body: s.max_request_bytes as usize,
            limiter,
            lockout,
            hosts: fence::Hosts::new(s),
            admission: Arc::new(Semaphore::new(concurrency + s.max_queue as usize)),
            exports: Arc::new(Semaphore::new(s.max_exports.max(1) as usize)),
            max_exports: s.max_exports,
            request_timeout: s.request_timeout,
            max_batch: s.max_batch as usize,
            metrics,
            campaigns: Default::default(),
            conn_limits: conn::ConnLimits::from_config(s),
            inputs: Default::default(),
            answers,
        }
    }

    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// The service: every route of [`ROUTES`] behind its layers, JSON 404 and 405 for the
    /// rest. Requests carry their client's [`Peer`] (the accept loop puts it there).
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = Router::new();
        for r in ROUTES {
            let mut endpoint = (r.handler)();
            endpoint = match r.guard {
                Guard::Work => endpoint.route_layer(admit::Admit::new(self.clone(), true)),
                Guard::Client => endpoint.route_layer(admit::Admit::new(self.clone(), false)),
                Guard::Open => endpoint,
            };
            router = router.route(r.path, endpoint);
        }
        router
            .merge(ui::router(self))
            // A browser that opens the server's address gets the web view.
            .route("/", get(ops::to_ui))
            .fallback(ops::not_found)
            .method_not_allowed_fallback(ops::method_not_allowed)
            .layer(axum::middleware::from_fn(layers::defang))
            .layer(fence::Fence(self.clone()))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                layers::panicked,
            ))
            .layer(layers::Observe(self.clone()))
            .with_state(self.clone())
    }
}

/// The route a request is for (its metrics label), from [`ROUTES`].
fn route_of(method: &Method, path: &str) -> Option<Route> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_str() && path_matches(r.path, path))
        .map(|r| r.route.clone())
}

/// Whether `path` fits `pattern`, where `{name}` stands for one non-empty segment.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    // Most patterns have no `{name}`: one comparison (every request's label is looked up).
    if !pattern.contains('{') {
        return pattern == path;
    }
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.starts_with('{') => {
                if b.is_empty() {
                    return false;
                }
            }
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    raw_json_response(
        status,
        serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// `bytes`, which are JSON already, as the response.
fn raw_json_response(status: StatusCode, bytes: impl Into<bytes::Bytes>) -> Response {
    let mut resp = Response::new(axum::body::Body::from(bytes.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The one check of a URL that starts work (resolve, batch, watch): a web URL after
/// refanging, else 400 naming why. `what` names the field.
fn check_url(what: &str, url: &str) -> Result<(), ApiError> {
    crate::input::web_url(url)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request's metrics label: the row whose method and path fit, where `{name}` is
    /// one non-empty segment.
    #[test]
    fn a_request_is_labelled_by_the_row_it_fits() {
        for (method, path, want) in [
            (Method::POST, "/v1/resolve", Some(Route::Resolve)),
            (Method::GET, "/v1/resolve", None),
            (Method::POST, "/v1/resolve/", None),
            (Method::POST, "/v1/resolve/batch", Some(Route::Batch)),
            (Method::GET, "/healthz", Some(Route::Health)),
            (Method::GET, "/healthz/x", None),
            (Method::GET, "/v1/domains", Some(Route::Domains)),
            (Method::GET, "/v1/domains/x.example", Some(Route::Domain)),
            (Method::GET, "/v1/domains/", None),
            (Method::GET, "/v1/domains/a/b", None),
            (Method::DELETE, "/v1/watch", Some(Route::Watch)),
            (Method::GET, "/", None),
        ] {
            assert_eq!(route_of(&method, path), want, "{method} {path}");
        }
    }
}
