//! What handlers take from a request: a JSON body read within the size and time limits, query
//! parameters, the peer's address. Every refusal is an [`ApiError`], so the client gets the
//! contract's JSON and not axum's plain-text rejections.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::Poll;

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{header, StatusCode};

use super::{Api, ApiError};

/// The client's address, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

impl Peer {
    /// The peer of `req` (unspecified when the request did not come through the accept loop).
    pub fn of<B>(req: &http::Request<B>) -> IpAddr {
        Peer::in_(req.extensions())
    }

    fn in_(extensions: &http::Extensions) -> IpAddr {
        extensions
            .get::<Peer>()
            .map(|p| p.0)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(Peer::in_(&parts.extensions)))
    }
}

/// A JSON body of type `T`: at most `server.max_request_bytes` (413, before reading when the
/// length is declared), whole within `server.body_timeout_ms` (408; a body that stops halfway
/// or a chunked one that never ends), unknown fields refused (400).
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<Api>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> Result<Self, ApiError> {
        let RawBody(body) = RawBody::from_request(req, api).await?;
        JsonBody::parse(&body)
    }
}

impl<T: serde::de::DeserializeOwned> JsonBody<T> {
    /// `body` read as a `T` (400 when it is not one).
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))
    }
}

/// The body as sent, within the same limits as [`JsonBody`], for a handler that looks at its
/// bytes before reading them as JSON.
pub struct RawBody(pub Bytes);

impl FromRequest<Arc<Api>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> Result<Self, ApiError> {
        read_body(req, api.max_body, api.conn_limits.body)
            .await
            .map(RawBody)
    }
}

pub(super) async fn read_body(
    req: Request,
    max: usize,
    limit: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {max} bytes (server.max_request_bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut read = Read::default();
    let mut next = |cx: &mut std::task::Context<'_>| read.poll(&mut body, max, cx);
    // A small body usually comes in the same read as the head, and is whole at the first
    // poll: the timer is only set when it is not (a timer per request was a tenth of an API
    // cache hit's own work).
    let read = match std::future::poll_fn(|cx| Poll::Ready(next(cx))).await {
        Poll::Ready(done) => Ok(done),
        Poll::Pending => tokio::time::timeout(limit, std::future::poll_fn(next)).await,
    };
    match read {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the body did not arrive within {} ms (server.body_timeout_ms)",
                limit.as_millis()
            ),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BodyError::TooLarge)) => Err(too_large()),
        Ok(Err(BodyError::Read(e))) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
    }
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// A body read so far: its one chunk as it came (the usual case, no copy), or its chunks
/// joined.
#[derive(Default)]
struct Read {
    first: Option<Bytes>,
    joined: bytes::BytesMut,
}

impl Read {
    /// Reads `body` on until it ends (its bytes), passes `max` bytes, fails, or waits.
    fn poll(
        &mut self,
        body: &mut axum::body::Body,
        max: usize,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<Bytes, BodyError>> {
        use hyper::body::Body as _;
        loop {
            match std::pin::Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    let whole = match self.first.take() {
                        Some(first) => first,
                        None => std::mem::take(&mut self.joined).freeze(),
                    };
                    return Poll::Ready(Ok(whole));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(BodyError::Read(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not part of the body.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let had = self.first.as_ref().map_or(self.joined.len(), Bytes::len);
                    if had + data.len() > max {
                        return Poll::Ready(Err(BodyError::TooLarge));
                    }
                    match self.first.take() {
                        None if self.joined.is_empty() => self.first = Some(data),
                        first => {
                            self.joined.extend_from_slice(&first.unwrap_or_default());
                            self.joined.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }
}

/// The query string's parameters (`a=1&b=x`), decoded.
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl Params {
    /// Every parameter, in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// A parameter the call cannot do without (400 naming it).
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {name}")))
    }

    /// A number, `default` when absent, at most `max` (400 naming it otherwise).
    pub fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: a number up to {max}"))),
        }
    }
}
