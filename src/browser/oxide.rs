//! The [`Engine`] for chromiumoxide: pages, proxies and the watch loop over chromiumoxide's
//! async CDP connection (a few ms per call). Each page is a fresh incognito context with the
//! job's proxy, the client's identity, downloads denied, and every response of the page —
//! HTTPS included — held at its headers (CDP `Fetch` at the response stage) so that a
//! download is refused before a byte of its body.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetVirtualTimePolicyParams, VirtualTimePolicy,
};
use chromiumoxide::cdp::browser_protocol::fetch::{
    EnableParams as FetchEnableParams, RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::page::NavigateParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::handler::{Handler, HandlerConfig};
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use super::bridge::Bridge;
use super::cdp::{self, Broken, Seen, CALL_TIMEOUT, HEALTH_TIMEOUT};
use super::emulation::err;
use super::events;
use super::launch::{self, Confinement};
use super::pool::{Engine, Pool};
use super::{Identity, Unavailable, Visit};
use crate::trace::FinderNote;

/// How long a started Chromium may take to answer its first command, and the driver to
/// connect to the bridge.
const LAUNCH_ANSWER: Duration = Duration::from_secs(20);

/// Chromium driven by chromiumoxide.
pub type Oxide = Pool<ChromiumOxide>;

impl Oxide {
    /// Finds the browser (without starting it: that happens on first use).
    pub fn new(configured: Option<&Path>, identity: Identity) -> Oxide {
        Oxide::trusting(configured, identity, Vec::new())
    }

    /// The same, the browser trusting the PEM roots in `trust` beside its own (as the HTTP
    /// client does with `tls.extra_ca_files`).
    pub fn trusting(configured: Option<&Path>, identity: Identity, trust: Vec<PathBuf>) -> Oxide {
        Pool::with_engine(ChromiumOxide::new(trust), configured, identity)
    }
}

/// chromiumoxide as an [`Engine`]. It owns a small runtime for the CDP connection, so the
/// browser's events are read however busy (or blocked) the caller's runtime is.
pub struct ChromiumOxide {
    rt: Option<Runtime>,
    /// PEM roots the browser trusts beside its own (`tls.extra_ca_files`).
    trust: Vec<PathBuf>,
}

impl ChromiumOxide {
    fn new(trust: Vec<PathBuf>) -> ChromiumOxide {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hoptrace-cdp")
            .enable_all()
            .build()
            .ok();
        ChromiumOxide { rt, trust }
    }

    fn rt(&self) -> Result<&Runtime, Unavailable> {
        self.rt.as_ref().ok_or(Unavailable::Runtime)
    }
}

impl Drop for ChromiumOxide {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A running browser, its connection's task, and its throw-away profile directory.
pub struct OxBrowser {
    browser: Browser,
    pid: Option<u32>,
    child: Mutex<Child>,
    handler: tokio::task::JoinHandle<()>,
    profile: PathBuf,
    rt: tokio::runtime::Handle,
}

impl Drop for OxBrowser {
    fn drop(&mut self) {
        self.handler.abort();
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A page ready for one visit (see [`Engine::Page`]).
pub struct OxPage {
    browser: Arc<OxBrowser>,
    proxy: SocketAddr,
    identity: Identity,
    /// Disposes the context when the page goes.
    _ctx: ContextGuard,
    page: Page,
    events: mpsc::UnboundedReceiver<Seen>,
}

/// Owns an incognito context: dropping it disposes the context (and its tab) in the
/// background.
struct ContextGuard(Arc<OxBrowser>, Option<BrowserContextId>);

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let b = self.0.clone();
            b.rt.clone().spawn(async move {
                let _ =
                    tokio::time::timeout(CALL_TIMEOUT, b.browser.dispose_browser_context(id)).await;
            });
        }
    }
}

impl Engine for ChromiumOxide {
    type Browser = OxBrowser;
    type Page = OxPage;
    const SERIAL_PREPARE: bool = false;

    async fn launch(&self, path: &Path, flags: Vec<String>) -> Result<OxBrowser, Unavailable> {
        let rt = self.rt()?.handle().clone();
        // A fresh profile directory per browser, so nothing persists between launches.
        let profile = super::profile::fresh();
        // Started from the CDP runtime's own worker thread, which lives as long as this
        // driver: Chromium's parent-death signal is tied to the thread that started it, and a
        // caller's thread may end while Chromium should not.
        let dir = profile.clone();
        let path = path.to_path_buf();
        let trust = self.trust.clone();
        let connected = rt
            .spawn(async move { connect(&path, &flags, &dir, &trust).await })
            .await
            .map_err(|e| Unavailable::Spawn(e.to_string()))
            .and_then(|c| c);
        let (browser, handler, child, confinement) = match connected {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(e);
            }
        };
        tracing::info!(
            "Chromium started (pid {}): sandbox {}, {}",
            child.id(),
            if confinement.sandboxed { "on" } else { "off" },
            match confinement.as_user {
                Some(id) => format!("as uid {id}"),
                None => "as this user".to_string(),
            }
        );
        let pid = Some(child.id());
        let handler = rt.spawn(async move {
            let mut handler = handler;
            // The connection is driven by polling the handler; a bad message is skipped.
            while handler.next().await.is_some() {}
        });
        Ok(OxBrowser {
            browser,
            pid,
            child: Mutex::new(child),
            handler,
            profile,
            rt,
        })
    }

    fn pid(b: &OxBrowser) -> Option<u32> {
        b.pid
    }

    async fn healthy(&self, b: &OxBrowser) -> bool {
        tokio::time::timeout(HEALTH_TIMEOUT, b.browser.version())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn prepare(
        &self,
        b: &Arc<OxBrowser>,
        proxy: SocketAddr,
        identity: &Identity,
        until: Instant,
    ) -> Result<OxPage, Broken> {
        let until = tokio::time::Instant::from_std(until);
        {
            let preparing = async {
                let ctx = b
                    .browser
                    .create_browser_context(CreateBrowserContextParams {
                        dispose_on_detach: Some(true),
                        proxy_server: Some(format!("http://{proxy}")),
                        proxy_bypass_list: Some("<-loopback>".into()),
                        origins_with_universal_network_access: None,
                    })
                    .await
                    .map_err(err("creating a context"))?;
                // From here on the context is disposed whenever the guard (or its page) goes.
                let guard = ContextGuard(b.clone(), Some(ctx.clone()));
                b.browser
                    .execute(SetDownloadBehaviorParams {
                        behavior: SetDownloadBehaviorBehavior::Deny,
                        browser_context_id: Some(ctx.clone()),
                        download_path: None,
                        events_enabled: Some(true),
                    })
                    .await
                    .map_err(err("denying downloads"))?;
                let mut target = CreateTargetParams::new("about:blank");
                target.browser_context_id = Some(ctx);
                let page = b
                    .browser
                    .new_page(target)
                    .await
                    .map_err(err("opening a tab"))?;
                super::emulation::present(&page, identity).await?;
                let events = events::listen(&b.browser, &b.rt, &page)
                    .await
                    .map_err(err("listening to the tab"))?;
                // Every response is held at its headers: after the listener, so none is missed.
                page.execute(FetchEnableParams {
                    patterns: Some(vec![RequestPattern {
                        url_pattern: Some("*".into()),
                        resource_type: None,
                        request_stage: Some(RequestStage::Response),
                    }]),
                    handle_auth_requests: None,
                })
                .await
                .map_err(err("holding responses"))?;
                Ok(OxPage {
                    browser: b.clone(),
                    proxy,
                    identity: identity.clone(),
                    _ctx: guard,
                    page,
                    events,
                })
            };
            tokio::pin!(preparing);
            // A slow machine may take a while; a stopped browser answers nothing at all.
            // Every CALL_TIMEOUT without a page, ask the browser whether it still answers,
            // so a stuck one is given up early enough for a restart to fit.
            loop {
                let step = until.min(tokio::time::Instant::now() + CALL_TIMEOUT);
                match timeout_at(step, &mut preparing).await {
                    Ok(prepared) => return prepared,
                    Err(_) if tokio::time::Instant::now() >= until => {
                        return Err(Broken::TabNotReady)
                    }
                    Err(_) => {
                        let answers = tokio::time::timeout(HEALTH_TIMEOUT, b.browser.version())
                            .await
                            .is_ok_and(|r| r.is_ok());
                        if !answers {
                            return Err(Broken::NotAnswering);
                        }
                    }
                }
            }
        }
    }

    fn browser_of(page: &OxPage) -> &Arc<OxBrowser> {
        &page.browser
    }

    fn proxy_of(page: &OxPage) -> SocketAddr {
        page.proxy
    }

    fn identity_of(page: &OxPage) -> &Identity {
        &page.identity
    }

    async fn run(
        &self,
        mut page: OxPage,
        url: &str,
        settle: Duration,
        deadline: Instant,
        screenshot_bytes: Option<usize>,
    ) -> Result<Visit, Broken> {
        let rt = page.browser.rt.clone();
        // Sent without waiting for the answer: chromiumoxide answers `Page.navigate` only
        // once the page has loaded, and a page that navigates away while it is still being
        // parsed (the report's zero-delay timer) never finishes loading. The page's events
        // say what happened; the watch loop asks the browser whether it still answers.
        let p = page.page.clone();
        let target = url.to_string();
        rt.spawn(async move {
            if let Ok(Err(e)) =
                tokio::time::timeout(CALL_TIMEOUT, p.execute(NavigateParams::new(target))).await
            {
                tracing::debug!("navigation answered with an error: {e}");
            }
        });
        let arm = |budget: Duration| {
            // Sent without waiting: the answer may be late behind a busy page.
            let mut policy =
                SetVirtualTimePolicyParams::new(VirtualTimePolicy::PauseIfNetworkFetchesPending);
            policy.budget = Some(budget.as_millis() as f64);
            let p = page.page.clone();
            rt.spawn(async move {
                let _ = tokio::time::timeout(CALL_TIMEOUT, p.execute(policy)).await;
            });
        };
        let pid = page.browser.pid;
        let browser = page.browser.clone();
        let mut visit = cdp::watch(
            &mut page.events,
            url,
            settle,
            deadline,
            arm,
            || pid.is_none_or(cdp::process_alive),
            || self.healthy(&browser),
        )
        .await?;
        // Settled where it is (no navigation, not cut): the landing page as a visitor sees it.
        if let Some(max) = screenshot_bytes
            .filter(|_| visit.navigation.is_none() && visit.note.is_none() && visit.error.is_none())
        {
            match screenshot(&page.page, deadline).await {
                Ok(png) if png.len() <= max => visit.screenshot = Some(png),
                Ok(png) => {
                    visit.note = Some(FinderNote::ScreenshotTooBig {
                        bytes: png.len(),
                        max,
                    })
                }
                Err(why) => visit.note = Some(FinderNote::NoScreenshot(Arc::new(why))),
            }
        }
        Ok(visit)
    }
}

/// Starts Chromium confined ([`launch::start`]) and connects chromiumoxide to it through
/// the bridge over its control pipe.
async fn connect(
    path: &Path,
    flags: &[String],
    profile: &Path,
    trust: &[PathBuf],
) -> Result<(Browser, Handler, Child, Confinement), Unavailable> {
    let started = launch::start(path, flags, profile, trust, LAUNCH_ANSWER)
        .await
        .map_err(|e| Unavailable::Launch(Arc::new(e)))?;
    let launch::Started {
        mut child,
        confinement,
        commands,
        answers,
        ..
    } = started;
    let bridge = match Bridge::bind().await {
        Ok(b) => b,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Unavailable::Bridge(Arc::new(e)));
        }
    };
    let url = bridge.url.clone();
    tokio::spawn(bridge.serve(LAUNCH_ANSWER, commands, answers));
    let config = HandlerConfig {
        ignore_https_errors: false,
        viewport: None,
        request_timeout: CALL_TIMEOUT,
        ..HandlerConfig::default()
    };
    match Browser::connect_with_config(url, config).await {
        Ok((browser, handler)) => Ok((browser, handler, child, confinement)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Unavailable::Connect(e.to_string()))
        }
    }
}

/// The page's viewport as a PNG. Virtual time is paused once the page settled; a frame is
/// only drawn while time runs, so it is let run (the page has shown it does nothing more).
async fn screenshot(page: &Page, deadline: Instant) -> Result<Vec<u8>, ShotError> {
    use base64::Engine as _;
    use chromiumoxide::cdp::browser_protocol::page::{
        CaptureScreenshotFormat, CaptureScreenshotParams,
    };
    let until = tokio::time::Instant::from_std(deadline.min(Instant::now() + CALL_TIMEOUT));
    let run = SetVirtualTimePolicyParams::new(VirtualTimePolicy::Advance);
    let _ = timeout_at(until, page.execute(run)).await;
    let params = CaptureScreenshotParams {
        format: Some(CaptureScreenshotFormat::Png),
        capture_beyond_viewport: Some(false),
        ..Default::default()
    };
    let shot = timeout_at(until, page.execute(params))
        .await
        .map_err(|_| ShotError::TooLong)??;
    Ok(
        base64::engine::general_purpose::STANDARD
            .decode(AsRef::<str>::as_ref(&shot.result.data))?,
    )
}

/// Why a landing page has no screenshot.
#[derive(Debug, thiserror::Error)]
enum ShotError {
    #[error("the browser took too long")]
    TooLong,
    #[error(transparent)]
    Cdp(#[from] chromiumoxide::error::CdpError),
    #[error(transparent)]
    Base64(#[from] base64::DecodeError),
}
