//! Wrong tokens, throttled per client address **before** any token is compared: the API's
//! bearer tokens and the web view's login form alike. Each wrong token takes a turn from the
//! address's allowance (`server.auth_failures_burst`, back at
//! `server.auth_failures_per_minute`; the same [`RateLimit`] as the per-client limit, shared
//! through Redis with `limits.shared_url`). A wrong token past the allowance is 429, and the
//! address then cools down: until its next turn is due every call from it that carries a
//! token is 429 with `Retry-After`, the right token too, so the answer tells a guesser
//! nothing about its guess.
//!
//! An IPv6 client counts by its /64 (one host usually holds the whole prefix). The addresses
//! cooling down are kept in this process, at most [`MAX_COOLING`] (expired ones are dropped
//! first); with replicas each learns of an address at its first refused guess.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::ApiError;
use crate::config;
use crate::shared::limit::RateLimit;
use crate::shared::Shared;

/// Addresses remembered as cooling down at most (a few MB).
pub const MAX_COOLING: usize = 65_536;

pub struct Lockout {
    failures: RateLimit,
    /// Address -> when it may try again.
    cooling: Mutex<HashMap<IpAddr, Instant>>,
    /// `cooling`'s size, read without the lock: with nobody cooling down (the usual case) a
    /// call costs one atomic load.
    count: AtomicUsize,
}

impl Lockout {
    pub fn new(s: &config::Server, shared: Option<Arc<Shared>>) -> Lockout {
        Lockout {
            failures: RateLimit::new(
                f64::from(s.auth_failures_per_minute) / 60.0,
                s.auth_failures_burst,
                shared,
                "auth-failures:",
            ),
            cooling: Mutex::default(),
            count: AtomicUsize::new(0),
        }
    }

    /// Refused (429) while `peer` cools down.
    pub fn check(&self, peer: IpAddr) -> Result<(), ApiError> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let peer = net_of(peer);
        let now = Instant::now();
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        match cooling.get(&peer) {
            Some(until) if *until > now => Err(locked_out(*until - now)),
            Some(_) => {
                cooling.remove(&peer);
                self.count.store(cooling.len(), Ordering::Relaxed);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a wrong token from `peer`: `refused` (the 401) while its allowance lasts, 429
    /// once it is spent (and the address cools down).
    pub async fn failed(&self, peer: IpAddr, refused: ApiError) -> ApiError {
        let over = self.failures.check(&net_of(peer).to_string()).await;
        self.judge(peer, over, refused)
    }

    /// [`Lockout::failed`] without waiting, when the allowance is kept in this process;
    /// `Err(refused)` back when Redis must be asked.
    pub fn failed_now(&self, peer: IpAddr, refused: ApiError) -> Result<ApiError, ApiError> {
        match self.failures.check_unshared(&net_of(peer).to_string()) {
            Some(over) => Ok(self.judge(peer, over, refused)),
            None => Err(refused),
        }
    }

    fn judge(&self, peer: IpAddr, over: Result<(), Duration>, refused: ApiError) -> ApiError {
        let Err(wait) = over else {
            return refused;
        };
        let now = Instant::now();
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        if cooling.len() >= MAX_COOLING {
            cooling.retain(|_, until| *until > now);
        }
        if cooling.len() < MAX_COOLING {
            cooling.insert(net_of(peer), now + wait);
        }
        self.count.store(cooling.len(), Ordering::Relaxed);
        locked_out(wait)
    }
}

/// What a client is counted as: its address, or an IPv6 address's /64.
fn net_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        },
        v4 => v4,
    }
}

fn locked_out(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!(
            "too many wrong tokens from this address (server.auth_failures_burst); \
             retry in {secs} s"
        ),
    )
    .retry_after(secs)
}
