//! The [`Engine`] for Debian's Chromium through headless_chrome (the chosen stack).
//!
//! Each visit gets a fresh incognito context whose `proxyServer` is that visit's own proxy
//! (with loopback not bypassed), downloads denied, and a new tab. headless_chrome keeps its
//! browser session private, so browser-wide commands (contexts, download policy) go over a
//! second connection to the same browser.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use headless_chrome::browser::transport::Transport;
use headless_chrome::protocol::cdp::types::{Event, Method};
use headless_chrome::protocol::cdp::{Browser as CdpBrowser, Emulation, Page, Target};
use headless_chrome::{Browser, LaunchOptions, Tab};

use super::cdp::{self, Broken, Seen, CALL_TIMEOUT, HEALTH_TIMEOUT};
use super::pool::{Engine, Pool};
use super::Visit;
use crate::trace::Via;

/// Chromium driven by headless_chrome.
pub type Chromium = Pool<HeadlessChrome>;

impl Chromium {
    /// Finds the browser (without starting it: that happens on first use).
    pub fn new(configured: &Path) -> Chromium {
        Pool::with_engine(HeadlessChrome, configured)
    }
}

/// headless_chrome as an [`Engine`].
pub struct HeadlessChrome;

/// A running browser, and a second connection to it for browser-wide commands (contexts,
/// download policy): headless_chrome keeps its own browser session private, and a page's
/// session is not allowed to send them.
pub struct Warm {
    browser: Browser,
    control: Arc<Transport>,
    pid: Option<u32>,
}

impl Engine for HeadlessChrome {
    type Browser = Warm;
    type Page = ChromiumPage;
    /// headless_chrome attaches new tabs one at a time; creating them in parallel only
    /// makes each wait longer.
    const SERIAL_PREPARE: bool = true;

    fn launch(&self, path: &Path, flags: Vec<String>) -> Result<Warm, String> {
        let os_args: Vec<&std::ffi::OsStr> = flags.iter().map(std::ffi::OsStr::new).collect();
        let options = LaunchOptions {
            headless: true,
            sandbox: false,
            path: Some(path.to_path_buf()),
            args: os_args,
            disable_default_args: true,
            // A warm browser waits for work; the default kills it after 30 s idle.
            idle_browser_timeout: Duration::from_secs(365 * 24 * 3600),
            ..LaunchOptions::default()
        };
        let browser = Browser::new(options).map_err(|e| format!("cannot start Chromium: {e:#}"))?;
        let pid = browser.get_process_id();
        let ws = url::Url::parse(&browser.get_ws_url())
            .map_err(|e| format!("Chromium's debugging address: {e}"))?;
        let control = Transport::new(ws, pid, Duration::from_secs(365 * 24 * 3600), None)
            .map_err(|e| format!("Chromium started but does not answer: {e:#}"))?;
        Ok(Warm {
            browser,
            control: Arc::new(control),
            pid,
        })
    }

    fn pid(w: &Warm) -> Option<u32> {
        w.pid
    }

    fn healthy(&self, w: &Warm) -> bool {
        answers(w)
    }

    fn prepare(
        &self,
        warm: &Arc<Warm>,
        proxy: SocketAddr,
        until: Instant,
    ) -> Result<ChromiumPage, Broken> {
        prepare_page(warm, proxy, until)
    }

    fn browser_of(page: &ChromiumPage) -> &Arc<Warm> {
        &page.warm
    }

    fn proxy_of(page: &ChromiumPage) -> SocketAddr {
        page.proxy
    }

    fn run(
        &self,
        page: ChromiumPage,
        url: &str,
        settle: Duration,
        deadline: Instant,
    ) -> Result<Visit, Broken> {
        let t0 = Instant::now();
        let tab = page.tab.clone();
        // A healthy browser answers at once; one that does not is stuck (or the page is).
        let navigate = page_call(
            &tab,
            Page::Navigate {
                url: url.to_string(),
                referrer: None,
                transition_Type: None,
                frame_id: None,
                referrer_policy: None,
            },
            deadline.min(Instant::now() + CALL_TIMEOUT),
        );
        match navigate {
            // Out of time while the page loads: cut, like a page that runs too long.
            Err(_) if Instant::now() >= deadline => return Ok(cdp::cut()),
            Err(e) => return Err(Broken(format!("navigating: {e}"))),
            Ok(_) => tracing::debug!(
                "visit {url}: navigation answered after {} ms",
                t0.elapsed().as_millis()
            ),
        }
        let arm = |budget: Duration| {
            // Timers run in virtual time: a 3 s setTimeout fires at once, and the budget
            // expires only when the page has nothing left to do. Sent without waiting: with
            // fetches pending (or a page spinning) the answer is late, and the watch must go
            // on meanwhile.
            let arm = Emulation::SetVirtualTimePolicy {
                policy: Emulation::VirtualTimePolicy::PauseIfNetworkFetchesPending,
                budget: Some(budget.as_millis() as f64),
                max_virtual_time_task_starvation_count: None,
                initial_virtual_time: None,
            };
            let t = tab.clone();
            std::thread::spawn(move || {
                let _ = t.call_method(arm);
            });
        };
        let warm = page.warm.clone();
        cdp::watch(&page.events, url, settle, deadline, arm, || {
            warm.pid.is_none_or(cdp::process_alive)
        })
    }
}

/// An isolated page ready for one visit: a fresh incognito context whose proxy is one
/// resolution's own, downloads denied, a blank tab already listened to. Dropping it closes
/// the context, and with it everything the page stored.
pub struct ChromiumPage {
    warm: Arc<Warm>,
    proxy: SocketAddr,
    /// Disposes the context when the page goes.
    _ctx: ContextGuard,
    tab: Arc<Tab>,
    events: mpsc::Receiver<Seen>,
}

fn prepare_page(
    warm: &Arc<Warm>,
    proxy: SocketAddr,
    until: Instant,
) -> Result<ChromiumPage, Broken> {
    let control = &warm.control;
    let ctx = browser_call(
        control,
        Target::CreateBrowserContext {
            dispose_on_detach: Some(true),
            proxy_server: Some(format!("http://{proxy}")),
            proxy_bypass_list: Some("<-loopback>".into()),
            origins_with_universal_network_access: None,
        },
    )
    .map_err(|e| Broken(format!("creating a context: {e}")))?
    .browser_context_id;
    // From here on the context is disposed whenever the guard (or the page owning it) goes.
    let guard = ContextGuard(control.clone(), Some(ctx.clone()));
    browser_call(
        control,
        CdpBrowser::SetDownloadBehavior {
            behavior: CdpBrowser::SetDownloadBehaviorBehaviorOption::Deny,
            browser_context_id: Some(ctx.clone()),
            download_path: None,
            events_enabled: Some(true),
        },
    )
    .map_err(|e| Broken(format!("denying downloads: {e}")))?;
    let target_id = browser_call(
        control,
        Target::CreateTarget {
            url: "about:blank".into(),
            left: None,
            top: None,
            width: None,
            height: None,
            window_state: None,
            browser_context_id: Some(ctx.clone()),
            enable_begin_frame_control: None,
            new_window: None,
            background: None,
            for_tab: None,
            hidden: None,
        },
    )
    .map_err(|e| Broken(format!("opening a tab: {e}")))?
    .target_id;
    // Under load headless_chrome attaches tabs slowly (one at a time): wait the full time.
    // (A stopped browser already failed above, at a call's own time limit.)
    let tab = wait_for_tab(warm, &target_id, until)
        .ok_or_else(|| Broken("the new tab never attached".into()))?;

    let (tx, events) = mpsc::channel::<Seen>();
    let main_frame = target_id;
    let listener = Arc::new(move |event: &Event| {
        let seen = match event {
            Event::PageFrameNavigated(e) if e.params.frame.parent_id.is_none() => {
                Seen::Committed(e.params.frame.url.clone())
            }
            Event::PageFrameRequestedNavigation(e) if e.params.frame_id == main_frame => {
                use Page::ClientNavigationReason as R;
                let via = match e.params.reason {
                    R::MetaTagRefresh | R::HttpHeaderRefresh => Via::MetaRefresh,
                    _ => Via::Javascript,
                };
                Seen::Requested(e.params.url.clone(), via)
            }
            Event::PageDownloadWillBegin(e) => Seen::Download(e.params.url.clone()),
            Event::BrowserDownloadWillBegin(e) => Seen::Download(e.params.url.clone()),
            Event::EmulationVirtualTimeBudgetExpired(_) => Seen::BudgetExpired,
            _ => return,
        };
        let _ = tx.send(seen);
    });
    tab.add_event_listener(listener)
        .map_err(|e| Broken(format!("listening to the tab: {e}")))?;
    page_call(
        &tab,
        Page::Enable {
            enable_file_chooser_opened_event: None,
        },
        Instant::now() + CALL_TIMEOUT,
    )
    .map_err(|e| Broken(format!("Page.enable: {e}")))?;
    Ok(ChromiumPage {
        warm: warm.clone(),
        proxy,
        _ctx: guard,
        tab,
        events,
    })
}

/// Owns an incognito context: dropping it disposes the context (and its tab), off the
/// caller's thread, since a context whose page spins can take a while to go.
struct ContextGuard(Arc<Transport>, Option<String>);

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if let Some(ctx) = self.1.take() {
            let control = self.0.clone();
            std::thread::spawn(move || {
                let _ = browser_call(
                    &control,
                    Target::DisposeBrowserContext {
                        browser_context_id: ctx,
                    },
                );
            });
        }
    }
}

/// headless_chrome registers tabs as their targets attach.
/// Whether the browser answers a trivial command within [`HEALTH_TIMEOUT`].
fn answers(w: &Warm) -> bool {
    let control = w.control.clone();
    within(Instant::now() + HEALTH_TIMEOUT, move || {
        control.call_method_on_browser(CdpBrowser::GetVersion(None))
    })
    .is_ok()
}

/// Waits for headless_chrome to attach the new tab, which under load takes seconds. Gives
/// up early when the browser is gone or stops answering (a stopped browser never attaches
/// it, and a visit may be waiting for the lock this preparation holds).
fn wait_for_tab(warm: &Warm, target_id: &str, deadline: Instant) -> Option<Arc<Tab>> {
    let mut next_check = Instant::now() + CALL_TIMEOUT;
    loop {
        if let Some(tab) = warm
            .browser
            .get_tabs()
            .lock()
            .ok()?
            .iter()
            .find(|t| t.get_target_id() == target_id)
        {
            return Some(tab.clone());
        }
        let now = Instant::now();
        if now >= deadline || !warm.pid.is_none_or(cdp::process_alive) {
            return None;
        }
        if now >= next_check {
            if !answers(warm) {
                return None;
            }
            next_check = Instant::now() + CALL_TIMEOUT;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A browser-wide command on the control connection.
fn browser_call<C>(control: &Arc<Transport>, method: C) -> Result<C::ReturnObject, String>
where
    C: Method + serde::Serialize + std::fmt::Debug + Send + 'static,
    C::ReturnObject: Send + 'static,
{
    let control = control.clone();
    within(Instant::now() + CALL_TIMEOUT, move || {
        control.call_method_on_browser(method)
    })
}

/// A command to one page, given up at `deadline`: a page stuck in a loop must not hold the
/// visit.
fn page_call<C>(tab: &Arc<Tab>, method: C, deadline: Instant) -> Result<C::ReturnObject, String>
where
    C: Method + serde::Serialize + std::fmt::Debug + Send + 'static,
    C::ReturnObject: Send + 'static,
{
    let tab = tab.clone();
    within(deadline, move || tab.call_method(method))
}

/// Runs a blocking CDP call on its own thread and waits for it until `deadline`.
fn within<T: Send + 'static>(
    deadline: Instant,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f().map_err(|e| format!("{e:#}")));
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(result) => result,
        Err(_) => Err("no answer in time".into()),
    }
}
