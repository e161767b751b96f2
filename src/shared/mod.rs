//! What replicas share through Redis (`limits.shared_url`): the per-host politeness limit and
//! the API's per-client limit ([`limit`]), and who is resolving which link right now
//! ([`claim`]), so that N processes behave toward a target host and a client as one does.
//!
//! **When Redis cannot be reached** each process falls back to what it knows alone: its own
//! limiter (so N replicas may together reach N times a limit) and its own single-flight. It
//! does not stop resolving: a scanner that halts with its coordination service is worse than
//! one that is briefly less polite. Each fallback counts in
//! `hoptrace_shared_fallbacks_total`, is logged (at most once a minute), and after a failure
//! Redis is left alone for a second, so a dead Redis costs one short timeout a second, not
//! one per request.
//!
//! Redis is the operator's service, named in the config: its connection does not pass the
//! egress gate (which guards what untrusted links make hoptrace connect to).

pub mod claim;
pub mod limit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;

/// How long one Redis call may take before the process goes on without it.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after a failed call.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("limits.shared_url: {0}")]
    Url(String),
}

/// A connection to the shared Redis, with the fallback policy above.
pub struct Shared {
    conn: ConnectionManager,
    /// Milliseconds since `epoch` until which Redis is not asked (after a failure).
    resting_until: AtomicU64,
    last_warning: AtomicU64,
    epoch: Instant,
    /// Calls that went without Redis.
    pub fallbacks: Counter,
}

impl Shared {
    /// Connects lazily: a Redis that is down at start is the same as one that goes down later.
    pub fn open(url: &str) -> Result<Shared, SharedError> {
        let client = redis::Client::open(url).map_err(|e| SharedError::Url(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| SharedError::Url(e.to_string()))?;
        Ok(Shared {
            conn,
            resting_until: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            epoch: Instant::now(),
            fallbacks: Counter::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs `call` on Redis within [`CALL_TIMEOUT`]; `None` (counted, logged) when Redis is
    /// resting, failing or slow: the caller then does without it.
    pub async fn call<T, F, Fut>(&self, what: &str, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.resting_until.load(Ordering::Relaxed) {
            self.fallbacks.inc();
            return None;
        }
        let why = match tokio::time::timeout(CALL_TIMEOUT, call(self.conn.clone())).await {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", CALL_TIMEOUT.as_millis()),
        };
        self.fallbacks.inc();
        let now = self.now_ms();
        self.resting_until
            .store(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 60_000)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "shared Redis unavailable ({what}: {why}); each process limits alone until it returns"
            );
        }
        None
    }
}
