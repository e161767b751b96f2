//! The web view at `/ui/`: resolve a link, look at its chain (hops, labels, screenshot,
//! defanged URLs, JSON and HAR), a watched link's history, the landing-domain index and the
//! campaigns. Server-rendered ([`pages`]), usable without script, under a strict
//! Content-Security-Policy with no asset from elsewhere. With API tokens configured, a login
//! form trades a token for a session cookie (HttpOnly, SameSite=Strict; [`session`]; wrong
//! tokens throttled per address, logout revokes the cookie); every
//! form that changes something carries a CSRF token bound to the session, and a POST from
//! another site is refused by its `Origin` / `Sec-Fetch-Site` whatever it carries.

mod graph;
mod pages;
pub mod session;
mod workbench;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::Markup;

use super::extract::{Params, Peer};
use super::{Api, ApiError};
use crate::chain::Entry;
use pages::Ctx;

/// What every page of the view is held to: nothing from elsewhere, no inline script or style,
/// no framing, forms only to itself.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The view's routes (mounted beside the API's).
pub fn router(api: &Arc<Api>) -> Router<Arc<Api>> {
    let gated = Router::new()
        .route("/ui/", get(home))
        .route("/ui/resolve", post(resolve))
        .route("/ui/trace", get(trace))
        .route("/ui/trace.json", get(super::resolve::stored))
        .route("/ui/har", get(super::evidence::har))
        .route("/ui/screenshot", get(super::evidence::screenshot))
        .route("/ui/html", get(super::evidence::html))
        .route("/ui/history", get(history))
        .route("/ui/domains", get(domains))
        .route("/ui/domain", get(domain))
        .route("/ui/campaigns", get(campaigns))
        .route("/ui/campaign", get(campaign))
        .route("/ui/search", get(search))
        .route("/ui/bulk", post(bulk))
        .route("/ui/compare", post(compare))
        .route("/ui/export", get(super::export::export))
        .route("/ui/watches", get(watches))
        .route("/ui/watch", post(watch))
        .route("/ui/logout", post(logout))
        .route_layer(from_fn_with_state(api.clone(), gate));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route(
            "/ui/app.css",
            get(|| asset("text/css", include_str!("assets/app.css"))),
        )
        .route(
            "/ui/app.js",
            get(|| asset("text/javascript", include_str!("assets/app.js"))),
        )
        .merge(gated)
        .layer(from_fn(secure_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(axum::body::Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn secure_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with the view's own forms.
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn now_secs() -> u64 {
    crate::now_ms() / 1000
}

/// The session cookie of a request, if it is a valid one: signed, unexpired, not logged out
/// here nor, with `limits.shared_url`, on another replica.
async fn session_of(api: &Api, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = session::cookie(cookies, session::COOKIE)?;
    if !api.ui_keys.valid(value, now_secs()) {
        return None;
    }
    if let Some(shared) = api.resolver.shared() {
        let key = revoked_key(value);
        let revoked = shared
            .call("session check", |mut conn| async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            })
            .await;
        if revoked == Some(true) {
            return None;
        }
    }
    Some(value.to_string())
}

/// Where replicas note a logged-out session (by its MAC: nothing that would log in).
fn revoked_key(session: &str) -> String {
    format!("hoptrace:session-revoked:{}", session::mac_of(session))
}

/// A page the view answers with its status.
pub struct UiError {
    status: StatusCode,
    message: String,
    ctx: Ctx,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = pages::error(&self.ctx, self.status.as_u16(), &self.message);
        (self.status, html(page)).into_response()
    }
}

fn html(page: Markup) -> Response {
    let mut r = Response::new(axum::body::Body::from(page.into_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Who is looking: the page context (CSRF token, logged in or not) and the session.
pub struct Viewer {
    ctx: Ctx,
}

impl Viewer {
    fn fail(&self, e: ApiError) -> UiError {
        UiError {
            status: e.status,
            message: e.message,
            ctx: Ctx {
                csrf: self.ctx.csrf.clone(),
                logged_in: self.ctx.logged_in,
                nav: true,
            },
        }
    }
}

impl FromRequestParts<Arc<Api>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        let session = session_of(api, &parts.headers).await;
        Ok(Viewer {
            ctx: Ctx {
                csrf: api.ui_keys.csrf(session.as_deref()),
                logged_in: session.is_some(),
                nav: true,
            },
        })
    }
}

/// With tokens configured, nothing but the login page without a session: a page is sent to
/// the login form, anything else is 401.
async fn gate(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let no_ctx = || Ctx {
        csrf: String::new(),
        logged_in: false,
        nav: true,
    };
    if !api.ui_keys.required() || session_of(&api, req.headers()).await.is_some() {
        // The API's per-client limit, by address (a session is not a token).
        if let Err(e) = api.rate_limit(None, super::extract::Peer::of(&req)).await {
            let (status, message) = (e.status, e.message);
            return UiError {
                status,
                message,
                ctx: no_ctx(),
            }
            .into_response();
        }
        return next.run(req).await;
    }
    if req.method() == http::Method::GET && req.uri().path() != "/ui/screenshot" {
        return Redirect::to("/ui/login").into_response();
    }
    let ctx = Ctx {
        csrf: String::new(),
        logged_in: false,
        nav: true,
    };
    UiError {
        status: StatusCode::UNAUTHORIZED,
        message: "log in first".into(),
        ctx,
    }
    .into_response()
}

/// A form POSTed from this site: urlencoded fields read within the API's body limits, the
/// request's origin checked (a browser says where a POST comes from), and — with a login in
/// force — the CSRF field checked against the session.
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl FromRequest<Arc<Api>> for Form {
    type Rejection = UiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> Result<Self, UiError> {
        let forbidden = |message: &str| UiError {
            status: StatusCode::FORBIDDEN,
            message: message.to_string(),
            ctx: Ctx {
                csrf: String::new(),
                logged_in: false,
                nav: true,
            },
        };
        if !super::fence::same_origin(req.headers()) {
            return Err(forbidden("a form from another site is not accepted"));
        }
        let session = session_of(api, req.headers()).await;
        let login = req.uri().path() == "/ui/login";
        let body = super::extract::read_body(req, api.max_body, api.conn_limits.body)
            .await
            .map_err(|e| UiError {
                // Too large (413) or too slow (408), as the API says it.
                status: e.status,
                message: e.message,
                ctx: Ctx {
                    csrf: String::new(),
                    logged_in: false,
                    nav: true,
                },
            })?;
        let form = Form {
            fields: url::form_urlencoded::parse(&body).into_owned().collect(),
        };
        if !login && session.is_some() && !api.ui_keys.csrf_ok(session.as_deref(), form.get("csrf"))
        {
            return Err(forbidden(
                "the form's CSRF token is missing or stale: reload the page",
            ));
        }
        Ok(form)
    }
}

async fn login_form(State(api): State<Arc<Api>>) -> Response {
    match api.ui_keys.required() {
        true => html(pages::login(None)),
        false => Redirect::to("/ui/").into_response(),
    }
}

/// A login: the address's allowance of wrong tokens first (as for the API's bearer tokens:
/// 429 while it cools down, whatever the token), then the token.
async fn login(
    State(api): State<Arc<Api>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let refused = |e: ApiError| {
        let mut r = (e.status, html(pages::login(Some(&e.message)))).into_response();
        if let Some(secs) = e.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    };
    if let Err(e) = api.lockout.check(peer) {
        return refused(e);
    }
    let Some(cookie) = api.ui_keys.login(form.get("token"), now_secs()) else {
        let wrong = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong token");
        return refused(api.lockout.failed(peer, wrong).await);
    };
    let max_age = session::LIFETIME_SECS;
    with_session_cookie(
        Redirect::to("/ui/").into_response(),
        &headers,
        &cookie,
        max_age,
    )
}

/// Ends the session: its cookie is revoked here and, with `limits.shared_url`, for every
/// replica (it would otherwise stay valid until it expires); the browser is told to forget it.
async fn logout(State(api): State<Arc<Api>>, headers: HeaderMap, _form: Form) -> Response {
    if let Some(session) = session_of(&api, &headers).await {
        let now = now_secs();
        api.ui_keys.revoke(&session, now);
        if let (Some(shared), Some(left)) = (api.resolver.shared(), session::left(&session, now)) {
            let key = revoked_key(&session);
            shared
                .call("logout", |mut conn| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("EX")
                        .arg(left)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await;
        }
    }
    with_session_cookie(Redirect::to("/ui/login").into_response(), &headers, "", 0)
}

/// `r` setting the session cookie to `value` for `max_age` seconds (0 clears it). `Secure`
/// when the browser came over HTTPS: the server speaks plain HTTP, so only a TLS proxy in
/// front can say so (`X-Forwarded-Proto: https`, or `Forwarded: proto=https`). Believing
/// the header is safe: a client that sends it falsely only keeps its own cookie off plain
/// HTTP.
fn with_session_cookie(
    mut r: Response,
    headers: &HeaderMap,
    value: &str,
    max_age: u64,
) -> Response {
    let secure = if came_over_https(headers) {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session::COOKIE,
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Whether a proxy in front says the request came over HTTPS (its first hop's protocol).
fn came_over_https(headers: &HeaderMap) -> bool {
    let first = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let forwarded_proto = first(header::HeaderName::from_static("x-forwarded-proto"));
    let forwarded = first(header::FORWARDED).is_some_and(|f| {
        f.split(';')
            .filter_map(|pair| pair.split_once('='))
            .any(|(k, v)| k.trim() == "proto" && v.trim().trim_matches('"') == "https")
    });
    forwarded_proto.as_deref() == Some("https") || forwarded
}

async fn home(v: Viewer) -> Response {
    html(pages::home(&v.ctx, None, ""))
}

/// Resolves the link (defanged accepted; from the cache unless asked afresh) within the API's
/// admission limits, then shows its chain.
async fn resolve(State(api): State<Arc<Api>>, v: Viewer, form: Form) -> Response {
    let url = form.get("url").trim().to_string();
    let link = match crate::input::Link::parse(url.as_str()) {
        Ok(link) => link,
        Err(e) => {
            let page = pages::home(
                &v.ctx,
                Some(&format!("Not a link hoptrace can follow: {e}")),
                &url,
            );
            return (StatusCode::BAD_REQUEST, html(page)).into_response();
        }
    };
    let key = link.key().to_string();
    let fresh = form.get("fresh") == "1";
    let resolving = tokio::time::timeout(
        api.request_timeout,
        api.resolve_all(vec![Entry::Link(link)], fresh),
    );
    match resolving.await {
        Ok(Ok(traces)) => {
            // The page says whether this was a fresh run or the cache's answer.
            let came = match traces.first().is_some_and(|t| t.cached) {
                true => "cache",
                false => "now",
            };
            Redirect::to(&pages::link(
                "/ui/trace",
                &[("url", key.as_str()), ("resolved", came)],
            ))
            .into_response()
        }
        Ok(Err(e)) => v.fail(e).into_response(),
        Err(_) => v
            .fail(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the resolution took longer than server.request_timeout_ms; it may finish in the background: look again",
            ))
            .into_response(),
    }
}

async fn trace(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let t = api.stored_trace(&q).await.map_err(|e| v.fail(e))?;
    let watched = api
        .store
        .watch(&t.input)
        .await
        .map_err(|e| v.fail(e.into()))?
        .is_some();
    let came = match q.get("resolved").as_deref() {
        Some("now") => pages::Came::Resolved,
        Some("cache") => pages::Came::Cached,
        _ => pages::Came::Stored,
    };
    Ok(html(pages::trace(&v.ctx, &t, watched, came)))
}

async fn history(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let url = q.required("url").map_err(|e| v.fail(e))?;
    let h = api
        .watcher
        .history(&url)
        .await
        .map_err(|e| v.fail(e.into()))?
        .ok_or_else(|| v.fail(ApiError::not_found(format!("no observations of {url}"))))?;
    Ok(html(pages::history(&v.ctx, &h)))
}

async fn domains(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let query = super::domains::domain_query(&q, 50).map_err(|e| v.fail(e))?;
    let page = api
        .store
        .domains_page(&query)
        .await
        .map_err(|e| v.fail(e.into()))?;
    let sort = q.get("sort").unwrap_or_else(|| "inputs".into());
    Ok(html(pages::domains(&v.ctx, &page, &query, &sort)))
}

async fn domain(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    // `d`, or `domain` as people write it by hand.
    let d = q
        .get("d")
        .or_else(|| q.get("domain"))
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            v.fail(ApiError::bad_request(
                "missing query parameter d: the landing domain, as in /ui/domain?d=example.com",
            ))
        })?
        .to_ascii_lowercase();
    let fail = |e: crate::store::StoreError| v.fail(e.into());
    let record = api.store.domain(&d).await.map_err(fail)?;
    let record = record.ok_or_else(|| {
        let shown = crate::defang::defang(&d);
        v.fail(ApiError::not_found(format!("nothing landed on {shown}")))
    })?;
    let inputs = api.store.domain_inputs(&d).await.map_err(fail)?;
    Ok(html(pages::domain(&v.ctx, &record, &inputs)))
}

async fn campaigns(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let offset = q.number("offset", 0, usize::MAX).map_err(|e| v.fail(e))?;
    let limit = q.number("limit", 50, 1000).map_err(|e| v.fail(e))?.max(1);
    let all = api.campaigns(2).await.map_err(|e| v.fail(e))?;
    Ok(html(pages::campaigns(
        &v.ctx,
        &all.campaigns,
        offset,
        limit,
    )))
}

async fn watches(State(api): State<Arc<Api>>, v: Viewer) -> Result<Response, UiError> {
    let list = api.watcher.list().await.map_err(|e| v.fail(e.into()))?;
    Ok(html(pages::watches(&v.ctx, &list)))
}

async fn watch(State(api): State<Arc<Api>>, v: Viewer, form: Form) -> Result<Response, UiError> {
    let every = match form.get("every").trim() {
        "" => None,
        n => Some(
            n.parse::<u64>()
                .map_err(|_| v.fail(ApiError::bad_request("every: a number of seconds")))?,
        ),
    };
    api.watcher
        .add(form.get("url"), every, Default::default())
        .await
        .map_err(|e| v.fail(e.into()))?;
    Ok(Redirect::to("/ui/watches").into_response())
}

/// The search form, and with a question, one page of what it finds.
async fn search(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let asked: Vec<(String, String)> = q
        .pairs()
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .cloned()
        .collect();
    if asked.is_empty() {
        return Ok(html(workbench::search(&v.ctx, &asked, None, None)));
    }
    let query = match super::search::query(&q) {
        Ok(query) => query,
        Err(e) => {
            let page = workbench::search(&v.ctx, &asked, None, Some(&e.message));
            return Ok((e.status, html(page)).into_response());
        }
    };
    let page = api.search(&query).await.map_err(|e| v.fail(e))?;
    Ok(html(workbench::search(&v.ctx, &asked, Some(&page), None)))
}

/// Most links one bulk form resolves (and at most `server.max_batch`).
const BULK_MAX: usize = 50;

/// The links of a pasted list or description (the extraction `scan` uses), resolved
/// together within the API's admission limits, as a table.
async fn bulk(State(api): State<Arc<Api>>, v: Viewer, form: Form) -> Result<Response, UiError> {
    let found = crate::extract::links(form.get("text"));
    if found.is_empty() {
        let page = pages::home(&v.ctx, Some("No link found in what was pasted."), "");
        return Ok((StatusCode::BAD_REQUEST, html(page)).into_response());
    }
    let max = BULK_MAX.min(api.max_batch).max(1);
    let left_out = found.len().saturating_sub(max);
    let entries: Vec<Entry> = found.into_iter().take(max).map(Entry::parse).collect();
    let fresh = form.get("fresh") == "1";
    let traces = tokio::time::timeout(api.request_timeout, api.resolve_all(entries, fresh))
        .await
        .map_err(|_| {
            v.fail(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "resolving these links took longer than server.request_timeout_ms; they may finish in the background: look again",
            ))
        })?
        .map_err(|e| v.fail(e))?;
    Ok(html(workbench::bulk(&v.ctx, &traces, left_out)))
}

/// One link as every built-in visitor (as `POST /v1/compare` with no profiles named).
async fn compare(State(api): State<Arc<Api>>, v: Viewer, form: Form) -> Result<Response, UiError> {
    let url = form.get("url").trim().to_string();
    let c = api.compare_default(&url).await.map_err(|e| v.fail(e))?;
    Ok(html(workbench::compare(&v.ctx, &c)))
}

/// One campaign: its picture, its repositories per day charted, its repositories and links.
async fn campaign(State(api): State<Arc<Api>>, v: Viewer, q: Params) -> Result<Response, UiError> {
    let id = q.required("id").map_err(|e| v.fail(e))?;
    let all = api.campaigns(2).await.map_err(|e| v.fail(e))?;
    let i = all
        .campaigns
        .iter()
        .position(|c| c.id == id)
        .ok_or_else(|| v.fail(ApiError::not_found(format!("no campaign {id}"))))?;
    let c = &all.campaigns[i];
    let timeline = crate::campaigns::timeline::timeline(&id, &all.days[i]);
    let mut repos = Vec::new();
    for name in c.repositories.iter().take(200) {
        if let Some(r) = api
            .store
            .repository(name)
            .await
            .map_err(|e| v.fail(e.into()))?
        {
            repos.push(r);
        }
    }
    Ok(html(workbench::campaign(&v.ctx, c, &timeline, &repos)))
}
