//! The operator's routes (`/healthz`, `/metrics`, `/openapi.json`) and the answers for a path
//! or method the service does not have.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::json;

use super::{json_response, Api, ApiError, OPENAPI};

pub async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

pub async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let admission = api.resolver.admission();
    api.metrics.queue_depth.set(admission.waiting());
    api.metrics.in_flight.set(admission.running());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /`: 303 to the web view.
pub async fn to_ui() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response()
}

pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {}", req.uri().path()))
}

pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here", req.method()),
    )
}
