//! `hoptrace serve`: the HTTP API other scanners call (hyper 1), to the contract's routes.
//!
//! Every `/v1` call passes, in order: the token check (when `server.api_tokens` is set,
//! compared in constant time), the per-client rate limit (per token, else per peer address;
//! 429 with `Retry-After`), the body limit (413), the route. Resolutions then pass a bounded
//! queue in front of `limits.concurrency` resolver slots (503 when full) and a per-request
//! time limit (504). Every error is `{"error": {"code", "message"}}`.
//!
//! Here: the route table, the checks every call passes, the dispatch; the handlers of each
//! resource in `resolve`, `watch`, `events` and `domains`; the accept loop in `serve` and the
//! connection limits in `conn`.

pub mod conn;
mod domains;
mod events;
pub mod metrics;
mod resolve;
mod serve;
mod watch;

pub use serve::serve;
use watch::watch_error;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::chain::Resolver;
use crate::config::Config;
use crate::store::{DomainRecord, Store};
use crate::trace::Trace;
use metrics::Metrics;
pub use metrics::Route;

/// The OpenAPI 3 document of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: method, path (as the OpenAPI document names them; `{name}` is one segment)
/// and the handler's [`Route`], which is also its metrics label. The one table that matching,
/// 404 against 405, the metrics and the OpenAPI check all read.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("POST", "/v1/resolve", Route::Resolve),
    ("POST", "/v1/resolve/batch", Route::Batch),
    ("POST", "/v1/scan", Route::Scan),
    ("GET", "/v1/trace", Route::Trace),
    ("GET", "/v1/campaigns", Route::Campaigns),
    ("POST", "/v1/watch", Route::Watch),
    ("GET", "/v1/watch", Route::Watch),
    ("DELETE", "/v1/watch", Route::Watch),
    ("GET", "/v1/history", Route::History),
    ("GET", "/v1/events", Route::Events),
    ("GET", "/v1/domains", Route::Domains),
    ("GET", "/v1/domains/{domain}", Route::Domain),
    ("GET", "/healthz", Route::Health),
    ("GET", "/metrics", Route::Metrics),
    ("GET", "/openapi.json", Route::OpenApi),
];

/// Whole answers, or a stream (`/v1/events`).
/// (The stream is `Send`, not `Sync`: it awaits the store, whose futures are only `Send`.)
pub type Body = http_body_util::Either<Full<Bytes>, UnsyncBoxBody<Bytes, std::convert::Infallible>>;

fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Either::Left(Full::new(bytes.into()))
}

/// The service's state, shared by every connection.
pub struct Api {
    resolver: Arc<Resolver>,
    watcher: Arc<crate::watch::Watcher>,
    /// Set when the server stops: event streams end so the graceful shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
    store: Store,
    tokens: Vec<Vec<u8>>,
    max_body: usize,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Admission: resolutions running plus waiting; none left means 503.
    admission: Arc<Semaphore>,
    /// Resolver slots (`limits.concurrency`).
    slots: Arc<Semaphore>,
    request_timeout: Duration,
    max_batch: usize,
    pub metrics: Metrics,
    /// What every connection is held to.
    pub conn_limits: conn::ConnLimits,
}

/// A store that fails is the server's fault: 500, its message for the operator.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

/// An API error: status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    fn into_response(self) -> Response<Body> {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    url: String,
    #[serde(default)]
    refresh: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    urls: Vec<String>,
    #[serde(default)]
    refresh: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchRequest {
    url: String,
    every_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    /// Plain text, or
    text: Option<String>,
    /// a Docker Hub repository object (judged and kept for campaigns).
    repository: Option<serde_json::Value>,
    #[serde(default)]
    refresh: bool,
}

impl Api {
    pub fn new(
        config: &Config,
        resolver: Arc<Resolver>,
        store: Store,
        watcher: Arc<crate::watch::Watcher>,
    ) -> Api {
        let s = &config.server;
        let limiter = NonZeroU32::new(s.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(s.rate_burst).unwrap_or(rate);
            governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let concurrency = config.limits.concurrency.max(1) as usize;
        let mut metrics = Metrics::new();
        metrics.register_watch(&watcher.metrics);
        Api {
            resolver,
            watcher,
            closing: tokio::sync::watch::channel(false).0,
            store,
            tokens: s.api_tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
            max_body: s.max_request_bytes as usize,
            limiter,
            admission: Arc::new(Semaphore::new(concurrency + s.max_queue as usize)),
            slots: Arc::new(Semaphore::new(concurrency)),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            max_batch: s.max_batch as usize,
            metrics,
            conn_limits: conn::ConnLimits::from_config(s),
        }
    }

    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// Answers one request; never fails (errors are JSON answers).
    pub async fn handle<B>(&self, req: Request<B>, peer: IpAddr) -> Response<Body>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let route = route_of(&method, &path);
        let resp = match self.route(req, route.clone(), peer).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let took = started.elapsed();
        self.metrics
            .request(route.unwrap_or(Route::Unknown), status, took.as_secs_f64());
        tracing::info!(
            target: "hoptrace::api",
            %method, %path, status, ms = took.as_secs_f64() * 1000.0, peer = %peer,
            "request"
        );
        resp
    }

    async fn route<B>(
        &self,
        req: Request<B>,
        route: Option<Route>,
        peer: IpAddr,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(route) = route else {
            return Err(
                if ROUTES
                    .iter()
                    .any(|(_, p, _)| path_matches(p, req.uri().path()))
                {
                    ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        format!("{} is not allowed here", req.method()),
                    )
                } else {
                    ApiError::not_found(format!("no route {}", req.uri().path()))
                },
            );
        };
        match route {
            Route::Health => return Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
            Route::Metrics => {
                let mut resp = Response::new(full(self.metrics.render()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return Ok(resp);
            }
            Route::OpenApi => {
                let mut resp = Response::new(full(Bytes::from_static(OPENAPI.as_bytes())));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(resp);
            }
            _ => {}
        }
        let token = self.authorize(&req)?;
        self.rate_limit(token, peer)?;
        let query = req.uri().query().unwrap_or("").to_string();
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if route == Route::Events {
            let after = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| query_param(&query, "last_event_id"));
            let after =
                match after {
                    None => None,
                    Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                        ApiError::bad_request("Last-Event-ID: an event id (a number)")
                    })?),
                };
            return Ok(self.events(after).await);
        }
        let body = self.read_body(req).await?;
        match route {
            Route::Resolve => {
                let r: ResolveRequest = parse_json(&body)?;
                check_url("url", &r.url)?;
                let mut traces = self.resolve_all(vec![r.url], r.refresh).await?;
                Ok(json_response(StatusCode::OK, &traces.remove(0)))
            }
            Route::Batch => {
                let r: BatchRequest = parse_json(&body)?;
                if r.urls.len() > self.max_batch {
                    return Err(ApiError::bad_request(format!(
                        "a batch holds at most {} URLs (server.max_batch); this one has {}",
                        self.max_batch,
                        r.urls.len()
                    )));
                }
                // One bad entry does not fail the batch: it is an `input` error Trace, with
                // the same words a single call's 400 has; the web URLs are resolved.
                let checked: Vec<Result<String, Trace>> = r
                    .urls
                    .into_iter()
                    .map(|u| match crate::input::web_url(&u) {
                        Ok(_) => Ok(u),
                        Err(why) => Err(Trace::input_error(&u, why)),
                    })
                    .collect();
                let good = checked
                    .iter()
                    .filter_map(|c| c.as_ref().ok().cloned())
                    .collect();
                let mut resolved = self.resolve_all(good, r.refresh).await?.into_iter();
                let traces: Vec<Trace> = checked
                    .into_iter()
                    .map(|c| match c {
                        // resolve_all answers one Trace per URL, in order.
                        Ok(u) => resolved
                            .next()
                            .unwrap_or_else(|| Trace::input_error(&u, "not resolved".into())),
                        Err(bad) => bad,
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({"traces": traces})))
            }
            Route::Scan => {
                let r: ScanRequest = parse_json(&body)?;
                let doc =
                    match (r.text, r.repository) {
                        (Some(text), None) => crate::scan::Document::text("text", text),
                        (None, Some(repo)) => crate::scan::Document::from_hub(&repo)
                            .map_err(|e| ApiError::bad_request(format!("repository: {e}")))?,
                        _ => return Err(ApiError::bad_request(
                            "give either `text` or `repository` (a Docker Hub repository object)",
                        )),
                    };
                let max = self.max_batch.min(crate::scan::MAX_LINKS_PER_REPOSITORY);
                let (found, left_out) = crate::scan::links_of(&doc, max);
                let urls = found.iter().map(|l| l.url.clone()).collect();
                let traces = self.resolve_all(urls, r.refresh).await?;
                // Only a named repository is kept: campaigns group repositories.
                let store = (!doc.namespace.is_empty()).then_some(&self.store);
                let scanned = crate::scan::conclude(store, &doc, found, traces, left_out).await?;
                Ok(json_response(StatusCode::OK, &scanned))
            }
            Route::Campaigns => self.campaigns(&query).await,
            Route::Watch => self.watch(&method, &query, &body).await,
            Route::History => {
                let url = query_param(&query, "url")
                    .ok_or_else(|| ApiError::bad_request("missing query parameter url"))?;
                match self.watcher.history(&url).await.map_err(watch_error)? {
                    Some(h) => Ok(json_response(StatusCode::OK, &h)),
                    None => Err(ApiError::not_found(format!("no observations of {url}"))),
                }
            }
            Route::Events => Err(ApiError::not_found("no route")),
            Route::Trace => {
                let url = query_param(&query, "url")
                    .ok_or_else(|| ApiError::bad_request("missing query parameter url"))?;
                let key = crate::input::parse_input(&url)
                    .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
                match self.store.latest(key.as_str()).await {
                    Ok(Some((mut trace, _))) => {
                        trace.cached = true;
                        Ok(json_response(StatusCode::OK, &trace))
                    }
                    Ok(None) => Err(ApiError::not_found(format!("no trace stored for {url}"))),
                    Err(e) => Err(e.into()),
                }
            }
            Route::Domains => self.domains(&query).await,
            Route::Domain => {
                let domain = path.trim_start_matches("/v1/domains/");
                let domain = percent_encoding::percent_decode_str(domain)
                    .decode_utf8_lossy()
                    .to_ascii_lowercase();
                let record = self.store.domain(&domain).await?.ok_or_else(|| {
                    ApiError::not_found(format!("no resolution ever landed on {domain}"))
                })?;
                let inputs = self.store.domain_inputs(&domain).await?;
                let mut value =
                    serde_json::to_value(&record).map_err(|e| ApiError::internal(e.to_string()))?;
                value["input_count"] = value["inputs"].take();
                value["inputs"] = json!(inputs);
                Ok(json_response(StatusCode::OK, &value))
            }
            Route::Health | Route::Metrics | Route::OpenApi | Route::Unknown => {
                Err(ApiError::not_found("no route"))
            }
        }
    }

    /// Checks the token when the server has tokens; answers the caller's token (`None`
    /// without tokens).
    fn authorize<'r, B>(&self, req: &'r Request<B>) -> Result<Option<&'r str>, ApiError> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(given) = given else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs Authorization: Bearer <token>",
            ));
        };
        use subtle::ConstantTimeEq;
        // Every token is compared, so the time taken does not tell which one nearly matched.
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(given.as_bytes());
        }
        if bool::from(ok) {
            Ok(Some(given))
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong token",
            ))
        }
    }

    /// Per client: its token, else its address. (The key is only built with a limit on.)
    fn rate_limit(&self, token: Option<&str>, peer: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let client = match token {
            Some(t) => format!("token:{t}"),
            None => peer.to_string(),
        };
        match limiter.check_key(&client) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                use governor::clock::{Clock, DefaultClock};
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "too many requests from this client (server.rate_per_second); retry in {} ms",
                        wait.as_millis()
                    ),
                );
                e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
                Err(e)
            }
        }
    }

    async fn read_body<B>(&self, req: Request<B>) -> Result<Bytes, ApiError>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is over {} bytes (server.max_request_bytes)",
                    self.max_body
                ),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        // A body that stops halfway, or a chunked one that never ends, gets this long.
        let limit = self.conn_limits.body;
        let read = tokio::time::timeout(
            limit,
            Limited::new(req.into_body(), self.max_body).collect(),
        );
        match read.await {
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {} ms (server.body_timeout_ms)",
                    limit.as_millis()
                ),
            )),
            Ok(Ok(c)) => Ok(c.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Ok(Err(e)) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
        }
    }
}

fn route_of(method: &Method, path: &str) -> Option<Route> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && path_matches(p, path))
        .map(|(_, _, route)| route.clone())
}

/// Whether `path` fits `pattern`, where `{name}` stands for one non-empty segment.
pub fn path_matches(pattern: &str, path: &str) -> bool {
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

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))
}

/// The one check of a URL that starts work (resolve, batch, watch): a web URL after
/// refanging, else 400 naming why. `what` names the field.
fn check_url(what: &str, url: &str) -> Result<(), ApiError> {
    crate::input::web_url(url)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn parse_param<T: std::str::FromStr>(query: &str, name: &str, default: T) -> Result<T, ApiError> {
    match query_param(query, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name} must be a number, not {v:?}"))),
    }
}
