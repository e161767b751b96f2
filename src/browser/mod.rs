//! The browser stage: pages whose next hop only appears when their script runs (the 2023
//! blogger trick builds `https://gohhs.com/ + el` at run time) are opened in headless
//! Chromium, and the navigation the script causes is recorded as a hop — as soon as the
//! request is seen, without loading the next page. The chain then continues over HTTP: the
//! browser only reveals hops.
//!
//! The browser reaches the network only through a [`JobProxy`] per resolution, which applies
//! the same egress gate as the HTTP client. The driver sits behind [`Driver`] so it can be
//! swapped; [`chromium::Chromium`] drives Debian's Chromium with headless_chrome.

pub mod chromium;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::discover::{FinderFuture, Finding, Found, NextHopFinder, Page};
use crate::egress::proxy::JobProxy;
use crate::egress::Egress;
use crate::trace::{TraceError, Via};

/// What a visit revealed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visit {
    /// The URL the page navigated to and how (script, or a refresh the browser ran).
    pub navigation: Option<(String, Via)>,
    /// A remark for the Trace (e.g. the page was cut at its time limit).
    pub note: Option<String>,
}

/// Why a visit failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// No browser can run here (missing, disabled or failing to start).
    #[error("browser unavailable: {0}")]
    Unavailable(String),
    /// The browser failed during the visit, and a restart did not help.
    #[error("browser failed: {0}")]
    Failed(String),
}

/// Something that opens a page through a proxy and reports where its script leads.
/// Blocking: callers run it off the async runtime.
pub trait Driver: Send + Sync {
    /// `Err` when no browser can be had at all (missing, disabled).
    fn available(&self) -> Result<(), String>;
    /// Opens `url` in a fresh, isolated context whose traffic goes to `proxy`; lets timers
    /// run for `settle` of page time; gives up at `deadline` (real time).
    fn visit(
        &self,
        url: &str,
        proxy: SocketAddr,
        settle: Duration,
        deadline: Instant,
    ) -> Result<Visit, DriverError>;
}

/// The stage as the chain sees it: a [`NextHopFinder`] for pages with script.
pub struct BrowserStage {
    driver: Arc<dyn Driver>,
    egress: Arc<Egress>,
    tabs: Arc<Semaphore>,
    settle: Duration,
    relay_cap: u64,
    warned: AtomicBool,
}

impl BrowserStage {
    pub fn new(
        driver: Arc<dyn Driver>,
        egress: Arc<Egress>,
        max_tabs: usize,
        settle: Duration,
        relay_cap: u64,
    ) -> BrowserStage {
        BrowserStage {
            driver,
            egress,
            tabs: Arc::new(Semaphore::new(max_tabs.max(1))),
            settle,
            relay_cap,
            warned: AtomicBool::new(false),
        }
    }

    async fn run(&self, page: &Page<'_>) -> Finding {
        if let Err(why) = self.driver.available() {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("pages that need a browser are not run: {why}");
            }
            return Finding {
                note: Some(format!(
                    "page runs script that may redirect; no browser available ({why})"
                )),
                ..Finding::default()
            };
        }
        let deadline = Instant::now() + page.budget;
        let Ok(_tab) = self.tabs.acquire().await else {
            return Finding::nothing();
        };
        let proxy = match JobProxy::start(self.egress.clone(), self.relay_cap).await {
            Ok(p) => p,
            Err(e) => return failed(format!("cannot start the browser's proxy: {e}")),
        };
        let (driver, url, proxy_addr, settle) = (
            self.driver.clone(),
            page.url.to_string(),
            proxy.addr,
            self.settle,
        );
        let visit =
            tokio::task::spawn_blocking(move || driver.visit(&url, proxy_addr, settle, deadline))
                .await;
        let blocked_requests = proxy
            .records()
            .into_iter()
            .filter(|r| r.blocked)
            .map(|r| format!("{}: {}", r.target, r.refused.unwrap_or_default()))
            .collect();
        drop(proxy);
        let mut finding = match visit {
            Ok(Ok(v)) => Finding {
                next: v.navigation.map(|(target, via)| {
                    page.url
                        .join(&target)
                        .map(|url| Found { url, via })
                        .map_err(|e| crate::discover::BadTarget {
                            via,
                            target,
                            message: e.to_string(),
                        })
                }),
                note: v.note,
                ..Finding::default()
            },
            Ok(Err(DriverError::Unavailable(why))) => Finding {
                note: Some(format!(
                    "page runs script that may redirect; no browser available ({why})"
                )),
                ..Finding::default()
            },
            Ok(Err(e @ DriverError::Failed(_))) => failed(e.to_string()),
            Err(e) => failed(format!("browser task failed: {e}")),
        };
        finding.blocked_requests = blocked_requests;
        finding
    }
}

fn failed(message: String) -> Finding {
    Finding {
        error: Some(TraceError {
            kind: "browser".into(),
            message,
        }),
        ..Finding::default()
    }
}

impl NextHopFinder for BrowserStage {
    fn next_hop<'a>(&'a self, page: &'a Page<'a>) -> FinderFuture<'a> {
        Box::pin(async move {
            if crate::discover::has_script(page.response) {
                self.run(page).await
            } else {
                Finding::nothing()
            }
        })
    }
}
