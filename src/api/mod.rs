//! `hoptrace serve`: the HTTP API other scanners call (hyper 1), to the contract's routes.
//!
//! Every `/v1` call passes, in order: the token check (when `server.api_tokens` is set,
//! compared in constant time), the per-client rate limit (per token, else per peer address;
//! 429 with `Retry-After`), the body limit (413), the route. Resolutions then pass a bounded
//! queue in front of `limits.concurrency` resolver slots (503 when full) and a per-request
//! time limit (504). Every error is `{"error": {"code", "message"}}`.

pub mod conn;
pub mod metrics;

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

    /// Resolves `urls` (answers from the cache need no slot), in input order, within the
    /// queue and the request's time limit.
    async fn resolve_all(&self, urls: Vec<String>, refresh: bool) -> Result<Vec<Trace>, ApiError> {
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

    async fn watch(
        &self,
        method: &Method,
        query: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        match *method {
            Method::POST => {
                let r: WatchRequest = parse_json(body)?;
                let (entry, new) = self
                    .watcher
                    .add(&r.url, r.every_seconds)
                    .await
                    .map_err(watch_error)?;
                let status = if new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(json_response(status, &crate::watch::entry_json(&entry)))
            }
            Method::DELETE => {
                let url = query_param(query, "url")
                    .ok_or_else(|| ApiError::bad_request("missing query parameter url"))?;
                if self.watcher.remove(&url).await.map_err(watch_error)? {
                    let mut resp = Response::new(full(Bytes::new()));
                    *resp.status_mut() = StatusCode::NO_CONTENT;
                    Ok(resp)
                } else {
                    Err(ApiError::not_found(format!("{url} is not watched")))
                }
            }
            _ => {
                let list = self.watcher.list().await.map_err(watch_error)?;
                let watches: Vec<_> = list.iter().map(crate::watch::entry_json).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"watches": watches, "total": watches.len()}),
                ))
            }
        }
    }

    /// Server-Sent Events: first the stored events after `after` (a reconnecting client's
    /// `Last-Event-ID`), then live ones as they happen, with a comment every 15 s to keep
    /// proxies from closing an idle stream. Without `after`, only new events.
    async fn events(&self, after: Option<u64>) -> Response<Body> {
        use crate::watch::Event;
        // Subscribed before reading the store, so no event falls between the two.
        let live = self.watcher.subscribe();
        let store = self.watcher.store().clone();
        let closing = self.closing.subscribe();
        let start = match after {
            Some(id) => id,
            None => store.last_event_id().await.unwrap_or(0),
        };
        struct State {
            live: tokio::sync::broadcast::Receiver<Event>,
            last: u64,
            backlog: std::collections::VecDeque<Event>,
            caught_up: bool,
        }
        let state = State {
            live,
            last: start,
            backlog: Default::default(),
            caught_up: false,
        };
        let frames = futures_util::stream::unfold(state, move |mut st| {
            let store = store.clone();
            let mut closing = closing.clone();
            // (`wait_for` looks at the current value first, so a stop before this is seen.)
            async move {
                loop {
                    if let Some(e) = st.backlog.pop_front() {
                        st.last = e.id;
                        return Some((sse_frame(&e), st));
                    }
                    if !st.caught_up {
                        let more: Vec<(u64, Event)> =
                            store.events_after(st.last, 256).await.unwrap_or_default();
                        st.caught_up = more.len() < 256;
                        st.backlog.extend(more.into_iter().map(|(_, e)| e));
                        continue;
                    }
                    let next = tokio::time::timeout(Duration::from_secs(15), st.live.recv());
                    tokio::select! {
                        got = next => match got {
                            Ok(Ok(e)) if e.id > st.last => {
                                st.last = e.id;
                                return Some((sse_frame(&e), st));
                            }
                            Ok(Ok(_)) => {}
                            // Fell behind the live channel: read the rest from the store.
                            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                                st.caught_up = false;
                            }
                            Ok(Err(_)) => return None,
                            Err(_) => return Some((Bytes::from_static(b": keep-alive\n\n"), st)),
                        },
                        _ = closing.wait_for(|c| *c) => return None,
                    }
                }
            }
        });
        let body = http_body_util::StreamBody::new(futures_util::StreamExt::map(frames, |b| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b))
        }));
        let mut resp = Response::new(http_body_util::Either::Right(BodyExt::boxed_unsync(body)));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    /// Campaigns over every scanned repository in the store (computed per call).
    async fn campaigns(&self, query: &str) -> Result<Response<Body>, ApiError> {
        let number = |name: &str, default: usize, max: usize| match query_param(query, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: a number up to {max}"))),
        };
        let min = number("min_repositories", 2, usize::MAX)?;
        let limit = number("limit", 100, 1000)?;
        let offset = number("offset", 0, usize::MAX)?;
        let records = self.store.repositories().await?;
        let all = crate::campaigns::cluster(records, min);
        Ok(page("campaigns", all, offset, limit))
    }

    async fn domains(&self, query: &str) -> Result<Response<Body>, ApiError> {
        let mut all: Vec<DomainRecord> = self.store.domains().await?;
        let sort = query_param(query, "sort").unwrap_or_else(|| "inputs".into());
        let order = query_param(query, "order");
        let limit: usize = parse_param(query, "limit", 100)?;
        let offset: usize = parse_param(query, "offset", 0)?;
        if limit == 0 || limit > 1000 {
            return Err(ApiError::bad_request("limit must be between 1 and 1000"));
        }
        // Ties are broken by domain name so pages are stable.
        match sort.as_str() {
            "inputs" => all.sort_by(|a, b| b.inputs.cmp(&a.inputs).then(a.domain.cmp(&b.domain))),
            "last_seen" => {
                all.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.domain.cmp(&b.domain)))
            }
            "first_seen" => all.sort_by(|a, b| {
                b.first_seen
                    .cmp(&a.first_seen)
                    .then(a.domain.cmp(&b.domain))
            }),
            "domain" => all.sort_by(|a, b| b.domain.cmp(&a.domain)),
            other => {
                return Err(ApiError::bad_request(format!(
                    "sort must be inputs, last_seen, first_seen or domain, not {other:?}"
                )))
            }
        }
        // Counts and times sort largest/newest first by default, names A to Z.
        let descending_default = sort != "domain";
        let descending = match order.as_deref() {
            None => descending_default,
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "order must be asc or desc, not {other:?}"
                )))
            }
        };
        if !descending {
            all.reverse();
        }
        Ok(page("domains", all, offset, limit))
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

/// One page of `all` as `{name: [...], "total", "next_offset"}` (`next_offset` null on the
/// last page).
fn page<T: Serialize>(name: &str, all: Vec<T>, offset: usize, limit: usize) -> Response<Body> {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
    let next = (offset + items.len() < total).then_some(offset + items.len());
    let mut body = json!({"total": total, "next_offset": next});
    body[name] = json!(items);
    json_response(StatusCode::OK, &body)
}

fn sse_frame(e: &crate::watch::Event) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        e.id, e.event
    ))
}

fn watch_error(e: crate::watch::WatchError) -> ApiError {
    use crate::watch::WatchError;
    match e {
        WatchError::Url(_) | WatchError::TooOften { .. } | WatchError::TooRare => {
            ApiError::bad_request(e.to_string())
        }
        WatchError::Store(e) => e.into(),
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

/// Serves `api` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// requests in flight finish (up to `grace`), and returns.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    let limits = api.conn_limits;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(20);
    let conns = Arc::new(conn::Conns::default());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Some((id, state)) = conns.admit(limits.max_connections) else {
                    api.metrics.connections_refused.inc();
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            stream.write_all(&conn::over_capacity()),
                        )
                        .await;
                    });
                    continue;
                };
                let api = api.clone();
                let in_conn = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    let busy = conn::InFlight::enter(&in_conn);
                    async move {
                        let answer = api.handle(req, peer.ip()).await;
                        drop(busy);
                        Ok::<_, std::convert::Infallible>(answer)
                    }
                });
                let io = TokioIo::new(conn::Stamped::new(stream, state.clone()));
                let conn = builder.serve_connection(io, service).into_owned();
                let conn = graceful.watch(conn);
                let conns = conns.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = conn => if let Err(e) = r {
                            tracing::debug!("connection from {peer}: {e}");
                        },
                        _ = state.close.notified() => {
                            tracing::debug!("connection from {peer} closed to make room");
                        }
                        _ = state.idle(limits.idle) => {
                            tracing::debug!("connection from {peer} idle; closed");
                        }
                    }
                    conns.remove(id);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = api.closing.send(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {} s; stopping anyway",
            grace.as_secs()
        );
    }
}
