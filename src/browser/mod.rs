//! The browser stage: pages whose next hop only appears when their script runs (the 2023
//! blogger trick builds `https://gohhs.com/ + el` at run time) are first run in the embedded
//! script engine ([`crate::script`], with `browser.script_engine = "auto"`); what it cannot
//! decide for sure is opened in headless Chromium, and the navigation the script causes is recorded as a hop — as soon as the
//! request is seen, without loading the next page. The chain then continues over HTTP: the
//! browser only reveals hops.
//!
//! The browser reaches the network only through a [`JobProxy`] per resolution, which applies
//! the same egress gate as the HTTP client, within a byte budget per visit; it resolves no
//! names and sends no UDP of its own ([`cdp::flags`]), and refuses every response that is a
//! download before its body ([`oxide`]). The driver sits behind [`Driver`] so it can be
//! swapped or faked: [`pool::Pool`] keeps one warm Chromium, [`oxide::Oxide`] drives it with
//! chromiumoxide, and `cdp` holds what is not tied to the CDP crate (flags, identity, the
//! watch loop).

mod bridge;
mod cdp;
mod emulation;
mod events;
mod identity;
pub mod launch;
pub mod oxide;
pub mod pool;
mod profile;

pub use cdp::{find_chromium, Broken, Unavailable};
pub use identity::Identity;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::discover::{resolve_navigation, FinderFuture, Finding, NextHopFinder, Page};
use crate::egress::proxy::JobProxy;
use crate::egress::Egress;
use crate::script::{Defer, ScriptEngine, Verdict};
use crate::trace::{BlockedRequest, Engine, FinderNote, TraceError, Via};

/// What a visit revealed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visit {
    /// The URL the page navigated to and how (script, or a refresh the browser ran).
    pub navigation: Option<(String, Via)>,
    /// The form body the navigation POSTs (`None`: a GET).
    pub post: Option<String>,
    /// A remark for the Trace (e.g. the page was cut at its time limit).
    pub note: Option<FinderNote>,
    /// Real time from the page's commit to the captured navigation (for measurement).
    pub load_to_capture: Option<Duration>,
    /// Sub-requests the browser refused (downloads known from their headers).
    pub refused: Vec<RefusedDownload>,
    /// The page as it settled (PNG), when [`Timing::screenshot_bytes`] asked for one and the
    /// page stayed where it was.
    pub screenshot: Option<Vec<u8>>,
    /// The browser could not load the page (a certificate it does not trust, say).
    pub error: Option<TraceError>,
}

/// A sub-request whose response the browser refused before its body: a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDownload {
    pub url: String,
    /// What in its headers made it a download.
    pub why: String,
}

impl From<RefusedDownload> for BlockedRequest {
    fn from(r: RefusedDownload) -> BlockedRequest {
        BlockedRequest {
            url: r.url,
            why: format!("download refused before its body ({})", r.why),
        }
    }
}

/// A page made ready ahead of time by [`Driver::prepare`]; only its driver knows what is
/// inside.
pub type PreparedPage = Box<dyn std::any::Any + Send>;

/// The clocks of one visit. Starting Chromium and preparing a page have their own limit; the
/// visit's own time starts when its page starts loading; the resolution's end bounds both.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Page time (virtual) the page's timers get after it loads.
    pub settle: Duration,
    /// Real time the visit may take once its page starts loading (`limits.hop_timeout_ms`).
    pub budget: Duration,
    /// Launching Chromium and preparing a page, each time one is needed
    /// (`browser.launch_timeout_ms`): a browser replaced mid-visit gets it again.
    pub launch: Duration,
    /// Nothing goes past this (what is left of `limits.total_timeout_ms`).
    pub end: Instant,
    /// Capture a page that settles without navigating (a landing page) as a PNG of at most
    /// this many bytes (`browser.max_screenshot_bytes`); `None`: no screenshot.
    pub screenshot_bytes: Option<usize>,
}

impl Timing {
    /// The visit's deadline, counted from now (when its page starts loading).
    pub fn visit_deadline(&self) -> Instant {
        (Instant::now() + self.budget).min(self.end)
    }

    /// When preparing a page that starts now (launching first, if need be) must give up.
    pub fn prepare_deadline(&self) -> Instant {
        (Instant::now() + self.launch).min(self.end)
    }
}

/// The page's script sees what the browser would present.
impl From<&Identity> for crate::script::Visitor {
    fn from(identity: &Identity) -> Self {
        crate::script::Visitor {
            user_agent: identity.user_agent.clone(),
            platform: identity.platform.clone(),
            languages: identity
                .languages()
                .split(',')
                .map(str::to_string)
                .collect(),
            screen: identity.screen,
            viewport: identity.viewport,
            mobile: identity.mobile,
        }
    }
}

/// Why a visit failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// No browser can run here (missing, disabled or failing to start).
    #[error("browser unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// The browser failed during the visit, and a restart did not help.
    #[error("browser failed: {0}")]
    Failed(#[from] Broken),
}

/// Something that opens a page through a proxy and reports where its script leads.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// `Err` when no browser can be had at all (missing, disabled).
    fn available(&self) -> Result<(), Unavailable>;
    /// Makes a fresh, isolated page whose traffic goes to `proxy`, ready for one visit, so
    /// that the set-up cost is paid before a resolution needs it.
    async fn prepare(&self, proxy: SocketAddr) -> Result<PreparedPage, DriverError>;
    /// Opens `url` as `identity` in `page` (or in a new one when `None`, no longer usable, or
    /// prepared for another identity) and watches it within `timing`.
    async fn visit(
        &self,
        page: Option<PreparedPage>,
        url: &str,
        proxy: SocketAddr,
        identity: &Identity,
        timing: Timing,
    ) -> Result<Visit, DriverError>;
}

/// The driver `config` asks for (`None` with the browser stage off). The browser itself
/// starts on first use.
pub fn configured_driver(config: &crate::config::Config) -> Option<Arc<dyn Driver>> {
    let b = &config.browser;
    if !b.enabled {
        return None;
    }
    match b.driver {
        // Pages are made ready as the default profile (a configured one may redefine it).
        crate::config::DriverKind::Chromiumoxide => Some(Arc::new(oxide::Oxide::trusting(
            b.chrome_path.as_deref(),
            Identity::of(crate::profile::Profiles::from_config(config).default_profile()),
            config.tls.extra_ca_files.clone(),
        ))),
    }
}

/// The stage as the chain sees it: a [`NextHopFinder`] for pages with script.
pub struct BrowserStage {
    ready: Arc<Ready>,
    tabs: Arc<Semaphore>,
    settle: Duration,
    launch_timeout: Duration,
    /// `browser.max_screenshot_bytes` when `browser.screenshots` is on.
    screenshot_bytes: Option<usize>,
    warned: AtomicBool,
    /// The engine in front of Chromium (`browser.script_engine = "auto"`).
    script: Option<ScriptEngine>,
}

/// Pages prepared ahead (each with its own fresh proxy), so a resolution does not wait for
/// context and tab set-up. Each is used once. A prepared page is a renderer started (a few
/// hundred ms of CPU) and kept: only as many are kept as visits have shown they need.
struct Ready {
    driver: Arc<dyn Driver>,
    egress: Arc<Egress>,
    page_bytes: u64,
    slots: Mutex<Vec<Slot>>,
    /// Slots kept ready (and being made ready) at most.
    keep: usize,
    /// Slots kept ready now: one more each time a visit found none ready, up to `keep`.
    wanted: AtomicUsize,
    making: AtomicUsize,
}

struct Slot {
    proxy: JobProxy,
    page: Option<PreparedPage>,
}

impl Ready {
    fn take(&self) -> Option<Slot> {
        let slot = self.slots.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if slot.is_none() {
            // Visits outrun what is kept ready: keep one more.
            let _ = self
                .wanted
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                    (w < self.keep).then_some(w + 1)
                });
        }
        slot
    }

    /// Tops the ready slots up to `wanted` in the background: one worker, preparing one
    /// page at a time, so a resolution that must prepare its own page waits behind at most
    /// one.
    fn refill(self: &Arc<Self>) {
        if self.making.swap(1, Ordering::SeqCst) == 1 {
            return; // a worker is already at it
        }
        let me = self.clone();
        tokio::spawn(async move {
            while me.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
                < me.wanted.load(Ordering::SeqCst)
            {
                let Ok(proxy) = JobProxy::start(me.egress.clone(), me.page_bytes).await else {
                    break;
                };
                match me.driver.prepare(proxy.addr).await {
                    Ok(page) => me
                        .slots
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Slot {
                            proxy,
                            page: Some(page),
                        }),
                    _ => break, // the browser is unwell; visits will restart it
                }
            }
            me.making.store(0, Ordering::SeqCst);
        });
    }
}

/// How the stage is set up (from `[browser]` and `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct StageLimits {
    pub max_tabs: usize,
    pub settle: Duration,
    pub launch_timeout: Duration,
    pub page_bytes: u64,
    pub screenshot_bytes: Option<usize>,
}

impl StageLimits {
    pub fn from_config(config: &crate::config::Config) -> StageLimits {
        StageLimits {
            max_tabs: config.browser.max_tabs as usize,
            settle: config.browser.settle,
            launch_timeout: config.browser.launch_timeout,
            page_bytes: config.browser.max_page_bytes,
            screenshot_bytes: config
                .browser
                .screenshots
                .then_some(config.browser.max_screenshot_bytes as usize),
        }
    }
}

impl BrowserStage {
    pub fn new(driver: Arc<dyn Driver>, egress: Arc<Egress>, limits: StageLimits) -> BrowserStage {
        BrowserStage {
            ready: Arc::new(Ready {
                driver,
                egress,
                page_bytes: limits.page_bytes,
                slots: Mutex::new(Vec::new()),
                keep: (limits.max_tabs * 2).clamp(2, 4),
                wanted: AtomicUsize::new(0),
                making: AtomicUsize::new(0),
            }),
            tabs: Arc::new(Semaphore::new(limits.max_tabs.max(1))),
            settle: limits.settle,
            launch_timeout: limits.launch_timeout,
            screenshot_bytes: limits.screenshot_bytes,
            warned: AtomicBool::new(false),
            script: None,
        }
    }

    /// Puts `engine` in front of Chromium: the pages it decides never reach the browser.
    pub fn with_script_engine(mut self, engine: ScriptEngine) -> BrowserStage {
        self.script = Some(engine);
        self
    }

    /// The engine's answer for a page with script, when it is sure of one.
    async fn emulate(&self, page: &Page<'_>) -> Option<Finding> {
        let engine = self.script.as_ref()?;
        let run = crate::script::Page {
            url: page.url,
            response: page.response,
            profile: page.profile,
            visitor: crate::script::Visitor::from(&Identity::of(page.profile)),
            settle: self.settle,
        };
        let verdict = engine.judge(run, page.budget).await;
        let next = match verdict {
            Verdict::Navigates { target, via, post } => {
                Some(resolve_navigation(page.url, &target, via, post))
            }
            Verdict::Stays if self.screenshot_bytes.is_some() && page.landing_evidence => {
                crate::script::count_deferral(Defer::Screenshot);
                return None;
            }
            Verdict::Stays => None,
            Verdict::Defer(why) => {
                tracing::debug!("{}: left to Chromium ({why})", page.url);
                return None;
            }
        };
        Some(Finding {
            next,
            engine: Some(Engine::Emulated),
            ..Finding::default()
        })
    }

    fn unavailable(&self, why: Unavailable) -> Finding {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("pages that need a browser are not run: {why}");
        }
        Finding {
            note: Some(FinderNote::NoBrowser(std::sync::Arc::new(why))),
            ..Finding::default()
        }
    }

    async fn run(&self, page: &Page<'_>, script: bool) -> Finding {
        if script {
            if let Some(finding) = self.emulate(page).await {
                return finding;
            }
        }
        if let Err(why) = self.ready.driver.available() {
            return self.unavailable(why);
        }
        let queued = Instant::now();
        let Ok(_tab) = self.tabs.acquire().await else {
            return Finding::nothing();
        };
        // The page's time starts when it gets a tab, not while it waits for one.
        let waited = queued.elapsed();
        let now = Instant::now();
        let timing = Timing {
            settle: self.settle,
            budget: page.budget,
            launch: self.launch_timeout,
            end: now + page.remaining,
            screenshot_bytes: self.screenshot_bytes.filter(|_| page.landing_evidence),
        };
        let slot = match self.ready.take() {
            Some(slot) => slot,
            None => match JobProxy::start(self.ready.egress.clone(), self.ready.page_bytes).await {
                Ok(proxy) => Slot { proxy, page: None },
                Err(e) => return failed(format!("cannot start the browser's proxy: {e}")),
            },
        };
        self.ready.refill();
        let Slot {
            proxy,
            page: prepared,
        } = slot;
        let identity = Identity::of(page.profile);
        let visit = self
            .ready
            .driver
            .visit(prepared, page.url.as_str(), proxy.addr, &identity, timing)
            .await;
        let mut blocked_requests: Vec<BlockedRequest> = proxy
            .records()
            .into_iter()
            .filter(|r| r.blocked)
            .map(|r| BlockedRequest {
                url: r.target.to_string(),
                why: r.refused.unwrap_or_default(),
            })
            .collect();
        drop(proxy);
        let mut finding = match visit {
            Ok(v) => {
                blocked_requests.extend(v.refused.into_iter().map(BlockedRequest::from));
                Finding {
                    next: v
                        .navigation
                        .map(|(target, via)| resolve_navigation(page.url, &target, via, v.post)),
                    note: v.note,
                    screenshot: v.screenshot.map(bytes::Bytes::from),
                    error: v.error,
                    engine: script.then_some(Engine::Chromium),
                    ..Finding::default()
                }
            }
            Err(DriverError::Unavailable(why)) => self.unavailable(why),
            Err(e @ DriverError::Failed(_)) => failed(e.to_string()),
        };
        finding.blocked_requests = blocked_requests;
        finding.waited = waited;
        finding
    }
}

fn failed(message: String) -> Finding {
    Finding {
        error: Some(TraceError {
            kind: crate::trace::ErrorKind::Browser,
            message,
        }),
        ..Finding::default()
    }
}

impl NextHopFinder for BrowserStage {
    fn next_hop<'a>(&'a self, page: &'a Page<'a>) -> FinderFuture<'a> {
        Box::pin(async move {
            // A landing page goes to the browser for its screenshot even without script.
            let capture = self.screenshot_bytes.is_some() && page.landing_evidence;
            let script = crate::discover::has_script(page.url, page.response);
            if capture || script {
                self.run(page, script).await
            } else {
                Finding::nothing()
            }
        })
    }
}
