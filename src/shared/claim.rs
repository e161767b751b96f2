//! Who is resolving which link, across replicas: the first process to claim a link's key
//! resolves it; another that wants the same link meanwhile waits for that Trace to reach the
//! shared store, so concurrent requests for one link on several replicas cost one visit.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// Deletes the claim only if it is still this process's (it may have expired and been taken).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub struct Claims {
    shared: Arc<Shared>,
    /// This process's name on its claims.
    me: String,
    release: redis::Script,
}

impl Claims {
    pub fn new(shared: Arc<Shared>) -> Claims {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Claims {
            shared,
            me: format!("{}-{nanos}", std::process::id()),
            release: redis::Script::new(RELEASE),
        }
    }

    fn redis_key(key: &str) -> String {
        format!("hoptrace:resolving:{key}")
    }

    /// Claims `key` for at most `ttl`: whether this process should resolve it (also when
    /// Redis does not answer: then each process resolves for itself).
    pub async fn claim(&self, key: &str, ttl: Duration) -> bool {
        let k = Self::redis_key(key);
        let ms = ttl.as_millis().max(1) as u64;
        let got: Option<Option<String>> = self
            .shared
            .call("claim", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&self.me)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            })
            .await;
        // `OK` when set; nil when another process holds it.
        !matches!(got, Some(None))
    }

    /// Whether another process still holds `key` (false when Redis does not answer).
    pub async fn held_elsewhere(&self, key: &str) -> bool {
        let k = Self::redis_key(key);
        let holder: Option<Option<String>> = self
            .shared
            .call("claim check", |mut conn| async move {
                redis::cmd("GET").arg(&k).query_async(&mut conn).await
            })
            .await;
        matches!(holder, Some(Some(h)) if h != self.me)
    }

    /// Gives up this process's claim on `key`.
    pub async fn release(&self, key: &str) {
        let k = Self::redis_key(key);
        let _: Option<i64> = self
            .shared
            .call("claim release", |mut conn| async move {
                self.release
                    .key(k)
                    .arg(&self.me)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
    }
}
