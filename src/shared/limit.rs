//! A rate limit by key (a target host, an API client): GCRA in this process (governor), or in
//! Redis when replicas share one, where one script per request reads and moves the key's
//! theoretical arrival time atomically on Redis's own clock.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Shared;

/// GCRA. KEYS[1]: the key; ARGV: emission interval (µs), burst tolerance (µs), `1` to take a
/// turn even when it is in the future (answering how long to wait for it), `0` to take it
/// only when it is due. Answers the wait in µs (0: go now).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tau - now
if wait > 0 and ARGV[3] == '0' then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
if wait < 0 then wait = 0 end
return wait
";

pub struct RateLimit {
    local: DefaultKeyedRateLimiter<String>,
    calls: AtomicU64,
    shared: Option<Arc<Shared>>,
    /// Redis key prefix (`hoptrace:host:`).
    scope: &'static str,
    interval_us: u64,
    tau_us: u64,
    script: redis::Script,
}

impl RateLimit {
    /// `per_second` on average, `burst` at once, per key; across every process on `shared`.
    pub fn new(
        per_second: f64,
        burst: u32,
        shared: Option<Arc<Shared>>,
        scope: &'static str,
    ) -> RateLimit {
        let period = Duration::from_secs_f64(1.0 / per_second.max(1e-9));
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        let interval_us = (period.as_micros() as u64).max(1);
        RateLimit {
            local: RateLimiter::keyed(quota),
            calls: AtomicU64::new(0),
            shared,
            scope,
            interval_us,
            tau_us: interval_us.saturating_mul(u64::from(burst.get()) - 1),
            script: redis::Script::new(GCRA),
        }
    }

    /// Waits for `key`'s turn (taking it).
    pub async fn wait(&self, key: &str) {
        if let Some(wait_us) = self.shared_turn(key, true).await {
            if wait_us > 0 {
                tokio::time::sleep(Duration::from_micros(wait_us)).await;
            }
            return;
        }
        self.local.until_key_ready(&key.to_string()).await;
        self.tidy();
    }

    /// Takes `key`'s turn if it is due; otherwise how long until it is.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        if let Some(wait_us) = self.shared_turn(key, false).await {
            return match wait_us {
                0 => Ok(()),
                us => Err(Duration::from_micros(us)),
            };
        }
        self.check_here(key)
    }

    /// [`RateLimit::check`] answered without waiting, when the limit is not shared (`None`
    /// when it is: then Redis must be asked).
    pub fn check_unshared(&self, key: &str) -> Option<Result<(), Duration>> {
        self.shared.is_none().then(|| self.check_here(key))
    }

    fn check_here(&self, key: &str) -> Result<(), Duration> {
        self.tidy();
        self.local.check_key(&key.to_string()).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// The shared answer, or `None` without Redis (none configured, or not answering).
    async fn shared_turn(&self, key: &str, reserve: bool) -> Option<u64> {
        let shared = self.shared.as_ref()?;
        let redis_key = format!("hoptrace:{}{key}", self.scope);
        shared
            .call("rate limit", |mut conn| async move {
                self.script
                    .key(redis_key)
                    .arg(self.interval_us)
                    .arg(self.tau_us)
                    .arg(if reserve { "1" } else { "0" })
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|us| us.max(0) as u64)
    }

    /// The per-key map would otherwise grow with every key ever seen.
    fn tidy(&self) {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.local.retain_recent();
            self.local.shrink_to_fit();
        }
    }
}
