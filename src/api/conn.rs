//! Every connection to the service is bounded, whatever the client does: a request head must
//! arrive within `server.header_timeout_ms` (hyper's own timer), a body within
//! `server.body_timeout_ms` (the handler's), a connection with nothing in flight closes after
//! `server.idle_timeout_ms` without a byte either way, and at most `server.max_connections`
//! are open — past the cap the connection idle the longest makes room, so a flood of silent
//! connections cannot keep a new client out. HTTP/2 gets a stream cap and a header-list cap.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub max_connections: usize,
    pub http2_max_streams: u32,
}

impl ConnLimits {
    pub fn from_config(s: &crate::config::Server) -> ConnLimits {
        ConnLimits {
            header: s.header_timeout,
            body: s.body_timeout,
            idle: s.idle_timeout,
            max_connections: s.max_connections as usize,
            http2_max_streams: s.http2_max_streams,
        }
    }
}

/// One open connection, as the cap and the idle check see it.
pub struct ConnState {
    /// Milliseconds since [`Conns::epoch`] of the last byte read or written.
    last: AtomicU64,
    in_flight: AtomicUsize,
    /// Asks the connection to close (it was chosen to make room).
    pub close: Notify,
    epoch: Instant,
}

impl ConnState {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Resolves once the connection has had nothing in flight and no traffic for `idle`.
    pub async fn idle(&self, idle: Duration) {
        let step = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(step).await;
            if !self.busy() && self.idle_for() >= idle {
                return;
            }
        }
    }
}

/// A request being handled on a connection: while one is, the connection is not idle.
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    pub fn enter(state: &Arc<ConnState>) -> InFlight {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The open connections.
pub struct Conns {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Default for Conns {
    fn default() -> Self {
        Conns {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Conns {
    /// Admits a new connection: `None` when `max` are open and every one of them has a
    /// request in flight. Otherwise, at the cap, the connection idle the longest is asked to
    /// close to make room.
    pub fn admit(&self, max: usize) -> Option<(u64, Arc<ConnState>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            let victim = open
                .values()
                .filter(|c| !c.busy())
                .max_by_key(|c| c.idle_for())?;
            victim.close.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: Notify::new(),
            epoch: self.epoch,
        });
        state.touch();
        open.insert(id, state.clone());
        Some((id, state))
    }

    pub fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An I/O stream that stamps its connection's activity on every read and write.
pub struct Stamped<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> Stamped<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Stamped<T> {
        Stamped { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stamped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stamped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a connection past the cap gets (every open one has a request in flight), in the
/// contract's error shape, before it is closed.
pub fn over_capacity() -> Vec<u8> {
    let body = r#"{"error":{"code":"overloaded","message":"too many open connections (server.max_connections), all busy; try again"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
