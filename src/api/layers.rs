//! The tower layers every request passes, outermost first: `observe` (metrics and the access
//! log, on every answer including 404s), `catch_panic` (a handler that panics is a JSON 500,
//! not a dropped connection). Client calls then pass `admit` (token, rate limit, time limit).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
