//! The Docker Hub API as hoptrace asks it: through the egress gate, at `[hub]
//! requests_per_second`, waiting as long as `429 Retry-After` and `X-RateLimit-*` say (never
//! asking before), retrying `5xx` with a doubling backoff a few times, and only ever on the
//! configured API's scheme, host and port.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::Config;
use crate::egress::Egress;
use crate::fetch::Fetcher;
use crate::shared::limit::RateLimit;

use super::record::RecordError;
use super::{HubError, Retried};

/// Bytes of one answer read at most; a page beyond it is refused (the Hub's own pages are a
/// fraction of this: descriptions are capped at 25 000 characters).
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Attempts at one page when the Hub answers `5xx` or `429`.
const ATTEMPTS: u32 = 5;
/// The first wait after a `5xx`; doubled per retry.
const BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait the Hub may ask for; beyond it the crawl stops with an error (and
/// resumes later from its cursor) rather than sleeping for hours.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Time for one request, connection and body included.
const BUDGET: Duration = Duration::from_secs(30);

/// An API token, kept out of `Debug` and every message.
struct Token(HeaderValue);

/// The Hub's API client.
pub struct HubApi {
    fetcher: Fetcher,
    base: Url,
    token: Option<Token>,
    limit: RateLimit,
    /// No request before this: the Hub asked to wait (`Retry-After`, `X-RateLimit-Reset`).
    not_before: Mutex<Option<Instant>>,
}

impl HubApi {
    /// A client of `[hub] api_url` through `egress`; `token` (from the environment) is sent
    /// as `Authorization: Bearer` and never shown.
    pub fn new(
        config: &Config,
        egress: Arc<Egress>,
        token: Option<&str>,
    ) -> Result<HubApi, HubError> {
        let base = Url::parse(&config.hub.api_url).map_err(HubError::ApiUrl)?;
        let token = match token.filter(|t| !t.is_empty()) {
            Some(t) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| HubError::Token)?;
                v.set_sensitive(true);
                Some(Token(v))
            }
            None => None,
        };
        Ok(HubApi {
            fetcher: Fetcher::new(config, egress).map_err(HubError::Client)?,
            base,
            token,
            limit: RateLimit::new(config.hub.requests_per_second, 1, None, "hub:"),
            not_before: Mutex::new(None),
        })
    }

    /// `path` (with `query`) under the API's base URL.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A page's `next` link, when it stays on the API's own scheme, host and port.
    pub fn next(&self, page: &Url, next: &str) -> Result<Url, HubError> {
        let url = page.join(next).map_err(|_| HubError::ForeignNext {
            page: page.to_string(),
            next: next.escape_debug().take(200).collect(),
        })?;
        let same = url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default();
        if !same {
            return Err(HubError::ForeignNext {
                page: page.to_string(),
                next: next.escape_debug().take(200).collect(),
            });
        }
        Ok(url)
    }

    /// GETs `url` as JSON, politely: an error names the page.
    pub async fn get(&self, url: &Url) -> Result<Value, HubError> {
        let mut backoff = BACKOFF;
        let mut last = Retried::TooManyRequests;
        for _ in 0..ATTEMPTS {
            self.wait_turn().await;
            let mut extra = HeaderMap::new();
            if let Some(Token(t)) = &self.token {
                extra.insert(header::AUTHORIZATION, t.clone());
            }
            let answer = self
                .fetcher
                .get_api(url, extra, BUDGET, MAX_PAGE_BYTES + 1)
                .await
                .map_err(|source| HubError::Request {
                    page: url.to_string(),
                    source: Box::new(source),
                })?;
            self.heed_rate_headers(&answer.headers, url).await?;
            match answer.status {
                200 => {
                    if answer.body.len() > MAX_PAGE_BYTES {
                        return Err(HubError::TooLarge {
                            page: url.to_string(),
                        });
                    }
                    if let Some(why) = answer.cut {
                        return Err(HubError::Cut {
                            page: url.to_string(),
                            why,
                        });
                    }
                    return serde_json::from_slice(&answer.body).map_err(|e| HubError::Malformed {
                        page: url.to_string(),
                        kind: RecordError::NotJson(e),
                    });
                }
                429 => {
                    let wait = retry_after(&answer.headers).unwrap_or(backoff);
                    self.hold_off(wait, url).await?;
                    last = Retried::TooManyRequests;
                }
                s @ 500..=599 => {
                    self.hold_off(backoff, url).await?;
                    backoff *= 2;
                    last = Retried::Status(s);
                }
                404 => {
                    return Err(HubError::NotFound {
                        page: url.to_string(),
                    })
                }
                s => {
                    return Err(HubError::Status {
                        page: url.to_string(),
                        status: s,
                    })
                }
            }
        }
        Err(HubError::GaveUp {
            page: url.to_string(),
            attempts: ATTEMPTS,
            last,
        })
    }

    /// Waits until the Hub's own wait is over, then for a turn of the rate limit.
    async fn wait_turn(&self) {
        let until = *self.not_before.lock().await;
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        self.limit.wait("hub").await;
    }

    /// No request for `wait` from now (or later, if already held off longer).
    async fn hold_off(&self, wait: Duration, url: &Url) -> Result<(), HubError> {
        if wait > MAX_WAIT {
            return Err(HubError::RateLimited {
                page: url.to_string(),
                seconds: wait.as_secs(),
            });
        }
        let until = Instant::now() + wait;
        let mut held = self.not_before.lock().await;
        *held = Some(held.map_or(until, |h| h.max(until)));
        Ok(())
    }

    /// `X-RateLimit-Remaining: 0` holds every request off until `X-RateLimit-Reset` (Unix
    /// seconds).
    async fn heed_rate_headers(&self, headers: &HeaderMap, url: &Url) -> Result<(), HubError> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if number("x-ratelimit-remaining") != Some(0) {
            return Ok(());
        }
        let Some(reset) = number("x-ratelimit-reset") else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.hold_off(Duration::from_secs(reset.saturating_sub(now)), url)
            .await
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110: IMF-fixdate, or the two
/// obsolete forms), as the wait from now (a date past is no wait); garbage is `None`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}
