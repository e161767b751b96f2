//! The gate of every client call (`/v1`), as one tower layer: the token (when the server has
//! tokens, compared in constant time, after the address's allowance of wrong tokens:
//! `lockout`), the client's rate limit (429 with `Retry-After`), and on
//! calls that start resolutions the time limit (504; what the call held, queue places and
//! resolver slots, is given back when it is cut).
//!
//! Written as a layer of its own rather than with `axum::middleware::from_fn`: that clones the
//! inner service and boxes two futures per request, a large share of an API cache hit's
//! own work. Here a call admitted at once (no limit shared through Redis) is the handler's
//! own future, and the timer is only set if that future does not finish at its first poll.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt};

use super::extract::Peer;
use super::{Api, ApiError};

/// The layer: `timed` on the calls that start resolutions.
#[derive(Clone)]
pub struct Admit {
    api: Arc<Api>,
    timed: bool,
}

impl Admit {
    pub fn new(api: Arc<Api>, timed: bool) -> Admit {
        Admit { api, timed }
    }
}

impl<S> Layer<S> for Admit {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Admitted<S> {
        Admitted {
            gate: self.clone(),
            inner,
        }
    }
}

/// A route behind [`Admit`].
#[derive(Clone)]
pub struct Admitted<S> {
    gate: Admit,
    inner: S,
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Admitted<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Answer<S::Future> {
        let api = &self.gate.api;
        let peer = Peer::of(&req);
        let token = match api.authorize(req.headers(), peer) {
            Ok(token) => token,
            Err(Denied::Now(refused)) => return Answer::refused(refused),
            // A wrong token counted in Redis: asked first.
            Err(Denied::Wrong(refused)) => {
                let api = api.clone();
                return Answer::Asking {
                    future: Box::pin(async move {
                        Ok(api.lockout.failed(peer, refused).await.into_response())
                    }),
                };
            }
        };
        match api.rate_limit_now(token.as_deref(), peer) {
            Some(Err(refused)) => Answer::refused(refused),
            // `poll_ready` was the inner service's own: it may be called now.
            Some(Ok(())) => Answer::running(self.inner.call(req), self.gate.timer()),
            // A limit shared through Redis: asked first, by a clone of the inner service (the
            // one made ready stays with the call, as tower expects).
            None => {
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                let gate = self.gate.clone();
                Answer::Asking {
                    future: Box::pin(async move {
                        if let Err(refused) = gate.api.rate_limit(token.as_deref(), peer).await {
                            return Ok(refused.into_response());
                        }
                        Answer::running(inner.oneshot(req), gate.timer()).await
                    }),
                }
            }
        }
    }
}

impl Admit {
    /// The time limit of a call that starts now, when it has one.
    fn timer(&self) -> Option<Timer> {
        self.timed.then(|| Timer {
            limit: self.api.request_timeout,
            deadline: tokio::time::Instant::now() + self.api.request_timeout,
            sleep: None,
        })
    }
}

/// The time limit of one call; its `Sleep` is made (and registered with the runtime's timer)
/// only when the call is still pending after a poll.
pub struct Timer {
    limit: Duration,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Timer {
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<ApiError> {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).map(|()| timed_out(self.limit))
    }
}

pin_project! {
    /// What an [`Admitted`] route answers.
    #[project = AnswerProj]
    pub enum Answer<F> {
        /// Refused before the handler ran (401, 429, the fence's refusals).
        Refused { response: Option<Response> },
        /// The handler, within its time limit if it has one.
        Running { #[pin] future: F, timer: Option<Timer> },
        /// Waiting for the shared rate limit, then the handler.
        Asking { future: Boxed },
    }
}

impl<F> Answer<F> {
    pub(super) fn refused(e: ApiError) -> Answer<F> {
        Answer::Refused {
            response: Some(e.into_response()),
        }
    }

    pub(super) fn running(future: F, timer: Option<Timer>) -> Answer<F> {
        Answer::Running { future, timer }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Answer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProj::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            AnswerProj::Running { future, timer } => {
                if let Poll::Ready(done) = future.poll(cx) {
                    return Poll::Ready(done);
                }
                match timer {
                    Some(t) => t.poll_expired(cx).map(|e| Ok(e.into_response())),
                    None => Poll::Pending,
                }
            }
            AnswerProj::Asking { future } => future.as_mut().poll(cx),
        }
    }
}

fn timed_out(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!(
            "the request took longer than {} ms (server.request_timeout_ms)",
            limit.as_millis()
        ),
    )
}

impl Api {
    /// Checks the token when the server has tokens, after the address's allowance of wrong
    /// tokens ([`super::lockout`]); answers the caller's token (`None` without tokens).
    fn authorize(&self, headers: &HeaderMap, peer: IpAddr) -> Result<Option<String>, Denied> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        self.lockout.check(peer).map_err(Denied::Now)?;
        let unauthorized = |why| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Denied::Now(unauthorized(
                    "this server needs Authorization: Bearer <token>",
                ))
            })?;
        use subtle::ConstantTimeEq;
        // Every token is compared, so the time taken does not tell which one nearly matched.
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(given.as_bytes());
        }
        match bool::from(ok) {
            true => Ok(Some(given.to_string())),
            false => Err(
                match self.lockout.failed_now(peer, unauthorized("wrong token")) {
                    Ok(refused) => Denied::Now(refused),
                    Err(refused) => Denied::Wrong(refused),
                },
            ),
        }
    }

    /// The client's rate limit, waiting for Redis when the limit is shared.
    pub(super) async fn rate_limit(
        &self,
        token: Option<&str>,
        peer: IpAddr,
    ) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check(&client_key(token, peer))
            .await
            .map_err(rate_limited)
    }

    /// [`Api::rate_limit`] when it needs no waiting (no limit, or one kept in this process);
    /// `None` when Redis must be asked.
    fn rate_limit_now(&self, token: Option<&str>, peer: IpAddr) -> Option<Result<(), ApiError>> {
        let Some(limiter) = &self.limiter else {
            return Some(Ok(()));
        };
        limiter
            .check_unshared(&client_key(token, peer))
            .map(|r| r.map_err(rate_limited))
    }
}

/// Why a call gets no further than its token.
enum Denied {
    /// The answer, known now (401, or 429 while the address cools down).
    Now(ApiError),
    /// A wrong token whose count is kept in Redis: the 401 unless Redis says it is one too many.
    Wrong(ApiError),
}

/// Whose limit a call counts against: its token, else its address. A token is known by its
/// SHA-256 alone, so no token is written to a shared Redis.
fn client_key(token: Option<&str>, peer: IpAddr) -> String {
    match token {
        Some(t) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
            format!("token:{}", crate::record::hex(&digest.as_ref()[..16]))
        }
        None => peer.to_string(),
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests from this client (server.rate_per_second); retry in {} ms",
            wait.as_millis()
        ),
    )
    .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64)
}
