//! `/v1/events`: Server-Sent Events, resumable by `Last-Event-ID`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};

use super::extract::Params;
use super::{Api, ApiError};

/// First the stored events after the client's `Last-Event-ID` (header, or `last_event_id` in
/// the query), then live ones as they happen, with a comment every 15 s to keep proxies from
/// closing an idle stream. Without an id, only new events.
pub async fn stream(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    q: Params,
) -> Result<Response, ApiError> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("last_event_id"));
    let after = match after {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Last-Event-ID: an event id (a number)"))?,
        ),
    };
    Ok(api.events(after).await)
}

impl Api {
    async fn events(&self, after: Option<u64>) -> Response {
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
            /// Since the last frame sent.
            quiet_since: std::time::Instant,
        }
        let state = State {
            live,
            last: start,
            backlog: Default::default(),
            caught_up: false,
            quiet_since: std::time::Instant::now(),
        };
        let shared = store.shared();
        let frames = futures_util::stream::unfold(state, move |mut st| {
            let store = store.clone();
            let mut closing = closing.clone();
            // (`wait_for` looks at the current value first, so a stop before this is seen.)
            async move {
                loop {
                    if let Some(e) = st.backlog.pop_front() {
                        st.last = e.id;
                        st.quiet_since = std::time::Instant::now();
                        return Some((sse_frame(&e), st));
                    }
                    if !st.caught_up {
                        let more: Vec<(u64, Event)> =
                            store.events_after(st.last, 256).await.unwrap_or_default();
                        st.caught_up = more.len() < 256;
                        st.backlog.extend(more.into_iter().map(|(_, e)| e));
                        continue;
                    }
                    // Events raised by other processes on a shared store are read from it
                    // every second; a keep-alive comment goes every 15 s.
                    let wait = match shared {
                        true => Duration::from_secs(1),
                        false => KEEP_ALIVE,
                    };
                    let next = tokio::time::timeout(wait, st.live.recv());
                    tokio::select! {
                        got = next => match got {
                            Ok(Ok(e)) if e.id > st.last => {
                                st.last = e.id;
                                st.quiet_since = std::time::Instant::now();
                                return Some((sse_frame(&e), st));
                            }
                            Ok(Ok(_)) => {}
                            // Fell behind the live channel: read the rest from the store.
                            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                                st.caught_up = false;
                            }
                            Ok(Err(_)) => return None,
                            Err(_) => {
                                st.caught_up = !shared;
                                if st.quiet_since.elapsed() >= KEEP_ALIVE {
                                    st.quiet_since = std::time::Instant::now();
                                    return Some((Bytes::from_static(b": keep-alive\n\n"), st));
                                }
                            }
                        },
                        _ = closing.wait_for(|c| *c) => return None,
                    }
                }
            }
        });
        let body = Body::from_stream(futures_util::StreamExt::map(frames, |b| {
            Ok::<_, std::convert::Infallible>(b)
        }));
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// How long a quiet stream waits before a keep-alive comment (proxies close idle streams).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse_frame(e: &crate::watch::Event) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        e.id, e.event
    ))
}
