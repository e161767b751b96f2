//! The tower layers every request passes, outermost first: `observe` (metrics and the access
//! log, on every answer including 404s), `catch_panic` (a handler that panics is a JSON 500,
//! not a dropped connection), `fence` (what a web page could send: Host, Origin, content
//! type). Client calls then pass `admit` (token, rate limit, time limit).

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::Method;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::extract::Peer;
use super::{route_of, Api, ApiError, Route};

/// The layer that counts and logs every answer under its route's label. A layer of its own
/// rather than `from_fn`, which clones the inner service and boxes two futures per request.
#[derive(Clone)]
pub struct Observe(pub Arc<Api>);

impl<S> Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            api: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Observed<S> {
    api: Arc<Api>,
    inner: S,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Observing<S::Future> {
        let started = Instant::now();
        let path = req.uri().path();
        let route = route_of(req.method(), path).unwrap_or(match path.starts_with("/ui") {
            true => Route::Ui,
            false => Route::Unknown,
        });
        // The access log's fields, copied only when it is written.
        let log = tracing::enabled!(target: "hoptrace::api", tracing::Level::INFO)
            .then(|| (req.method().clone(), path.to_string(), Peer::of(&req)));
        Observing {
            future: self.inner.call(req),
            api: self.api.clone(),
            started,
            route,
            log,
        }
    }
}

pin_project! {
    /// A call being answered, counted and logged when its answer is ready.
    pub struct Observing<F> {
        #[pin]
        future: F,
        api: Arc<Api>,
        started: Instant,
        route: Route,
        log: Option<(Method, String, IpAddr)>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Observing<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match ready!(this.future.poll(cx)) {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let status = resp.status().as_u16();
        let took = this.started.elapsed();
        this.api
            .metrics
            .request(this.route.clone(), status, took.as_secs_f64());
        if let Some((method, path, peer)) = this.log.take() {
            tracing::info!(
                target: "hoptrace::api",
                %method, %path, status, ms = took.as_secs_f64() * 1000.0, peer = %peer,
                "request"
            );
        }
        Poll::Ready(Ok(resp))
    }
}

/// What a panicking handler answers.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("the server failed on this request (a bug: see its log)").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http::StatusCode;
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

/// `?defang=true` (or `=1`) on any route: its JSON answer with every link defanged by
/// [`crate::defang::defang_json`], the one serializer choice for every route that returns
/// links (Traces, batches, scans, comparisons, campaigns, domains, watches, histories). Other
/// answers (an export, which defangs its own text; a page; an event stream) pass unchanged.
pub async fn defang(req: Request, next: axum::middleware::Next) -> Response {
    let asked = req.uri().query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == "defang" && matches!(v.as_ref(), "1" | "true"))
    });
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !asked || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Our own answer, already bounded by what made it (a batch by server.max_batch).
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::internal(format!("the answer failed: {e}")).into_response(),
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    crate::defang::defang_json(&mut value);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let out = serde_json::to_vec(&value).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(out))
}
