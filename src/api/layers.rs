//! The tower layers a request passes, outermost first: `observe` (metrics and the access log,
//! on every answer including 404s), `catch_panic` (a handler that panics is a JSON 500, not a
//! dropped connection), then on `/v1` calls `admit` (the token, compared in constant time, and
//! the per-client rate limit) — on the calls that start resolutions `admit_in_time`, which
//! adds their time limit.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

use super::extract::Peer;
use super::{route_of, Api, ApiError, Route};

/// Counts and logs every answer under its route's label.
pub async fn observe(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let (method, path, peer) = (
        req.method().clone(),
        req.uri().path().to_string(),
        Peer::of(&req),
    );
    let route = route_of(&method, &path).unwrap_or(match path.starts_with("/ui") {
        true => Route::Ui,
        false => Route::Unknown,
    });
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let took = started.elapsed();
    api.metrics.request(route, status, took.as_secs_f64());
    tracing::info!(
        target: "hoptrace::api",
        %method, %path, status, ms = took.as_secs_f64() * 1000.0, peer = %peer,
        "request"
    );
    resp
}

/// What a panicking handler answers.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("the server failed on this request (a bug: see its log)").into_response()
}

/// The token (when the server has tokens), then the client's rate limit.
pub async fn admit(
    State(api): State<Arc<Api>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    api.admit(&req).await?;
    Ok(next.run(req).await)
}

/// [`admit`], then the time limit of a call that starts resolutions: answered within
/// `server.request_timeout_ms` (504); what it held (queue places, resolver slots) is given
/// back when it is cut.
pub async fn admit_in_time(
    State(api): State<Arc<Api>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    api.admit(&req).await?;
    tokio::time::timeout(api.request_timeout, next.run(req))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "the request took longer than {} ms (server.request_timeout_ms)",
                    api.request_timeout.as_millis()
                ),
            )
        })
}

impl Api {
    /// The token and the rate limit of [`admit`]. (Nothing of the request is held across
    /// the wait: a request is not `Sync`.)
    fn admit(&self, req: &Request) -> impl std::future::Future<Output = Result<(), ApiError>> + '_ {
        let checked = self.authorize(req.headers()).map(|t| (t, Peer::of(req)));
        async move {
            let (token, peer) = checked?;
            self.rate_limit(token.as_deref(), peer).await
        }
    }

    /// Checks the token when the server has tokens; answers the caller's token (`None`
    /// without tokens).
    fn authorize(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let unauthorized = |why| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("this server needs Authorization: Bearer <token>"))?;
        use subtle::ConstantTimeEq;
        // Every token is compared, so the time taken does not tell which one nearly matched.
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(given.as_bytes());
        }
        match bool::from(ok) {
            true => Ok(Some(given.to_string())),
            false => Err(unauthorized("wrong token")),
        }
    }

    /// Per client: its token, else its address. (The key is only built with a limit on.) A
    /// token is known by its SHA-256 alone, so no token is written to a shared Redis.
    pub(super) async fn rate_limit(
        &self,
        token: Option<&str>,
        peer: IpAddr,
    ) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let client = match token {
            Some(t) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
                format!("token:{}", crate::record::hex(&digest.as_ref()[..16]))
            }
            None => peer.to_string(),
        };
        limiter.check(&client).await.map_err(|wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests from this client (server.rate_per_second); retry in {} ms",
                    wait.as_millis()
                ),
            )
            .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A handler that panics answers the contract's JSON 500, and the service goes on.
    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500() {
        let app: axum::Router = axum::Router::new()
            .route("/boom", get(|| async { panic!("a bug") as &'static str }))
            .route("/fine", get(|| async { "ok" }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
        let req = |path: &str| Request::get(path).body(axum::body::Body::empty()).unwrap();
        let resp = app.clone().oneshot(req("/boom")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
        assert_eq!(v["error"]["code"], "internal");
        assert_eq!(
            app.oneshot(req("/fine")).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
