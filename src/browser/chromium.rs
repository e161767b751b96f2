//! The [`Driver`] for Debian's Chromium, through headless_chrome.
//!
//! One warm browser is shared by all visits; each visit gets a fresh incognito context whose
//! `proxyServer` is that visit's own proxy (with loopback not bypassed), downloads denied,
//! and a new tab. Timers are run with CDP virtual time, not waited for in real time. A browser
//! that died or stopped answering is replaced and the visit tried once more.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::browser::transport::Transport;
use headless_chrome::protocol::cdp::types::{Event, Method};
use headless_chrome::protocol::cdp::{Browser as CdpBrowser, Emulation, Page, Target};
use headless_chrome::{Browser, LaunchOptions, Tab};

use super::{Driver, DriverError, PreparedPage, Visit};
use crate::egress::proxy::Refuser;
use crate::trace::Via;

/// Page time allowed beyond `settle` for the load itself, so a timer of exactly `settle`
/// set during the load still fires.
const LOAD_MARGIN: Duration = Duration::from_millis(1000);

/// How long a page prepared ahead may take to get its tab (it waits its turn).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one CDP call may take before the browser is thought stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A running browser, and a second connection to it for browser-wide commands (contexts,
/// download policy): headless_chrome keeps its own browser session private, and a page's
/// session is not allowed to send them.
struct Warm {
    browser: Browser,
    control: Arc<Transport>,
    pid: Option<u32>,
}

impl Warm {
    fn alive(&self) -> bool {
        self.pid.is_none_or(process_alive)
    }
}

/// True while `pid` runs (a killed child stays a zombie until reaped: that counts as dead).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Debian's Chromium driven by headless_chrome.
pub struct Chromium {
    path: Result<PathBuf, String>,
    refuser: Result<Refuser, String>,
    warm: Mutex<Option<Arc<Warm>>>,
    launches: AtomicU64,
    /// headless_chrome attaches new tabs one at a time; creating them in parallel only
    /// makes each wait longer, so pages are prepared one at a time.
    preparing: Mutex<()>,
}

impl Chromium {
    /// Finds the browser (without starting it: that happens on first use).
    pub fn new(configured: &Path) -> Chromium {
        Chromium {
            path: find_chromium(configured),
            refuser: Refuser::start().map_err(|e| format!("cannot start the refusing proxy: {e}")),
            warm: Mutex::new(None),
            launches: AtomicU64::new(0),
            preparing: Mutex::new(()),
        }
    }

    /// How many times a browser was started (a restart adds one).
    pub fn launches(&self) -> u64 {
        self.launches.load(Ordering::Relaxed)
    }

    /// The running browser's process id, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|w| w.pid)
    }

    /// Starts the browser now rather than on the first visit.
    pub fn prewarm(&self) -> Result<(), DriverError> {
        self.warm().map(|_| ())
    }

    fn warm(&self) -> Result<Arc<Warm>, DriverError> {
        let mut slot = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = slot.as_ref() {
            if w.alive() {
                return Ok(w.clone());
            }
            tracing::warn!("Chromium (pid {:?}) is gone; starting a new one", w.pid);
        }
        *slot = None;
        let w = Arc::new(self.launch()?);
        *slot = Some(w.clone());
        Ok(w)
    }

    /// Called when something failed on `w`: if the browser is really gone or stuck, it is
    /// killed and forgotten so the next visit starts another. A browser that still answers
    /// is kept: one slow or failed page is not a reason to end every other visit.
    fn discard(&self, w: &Arc<Warm>) {
        if w.alive() && healthy(w) {
            return;
        }
        let mut slot = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, w)) {
            *slot = None;
        }
        drop(slot);
        if let Some(pid) = w.pid {
            // Make sure a hung browser does not linger.
            kill_now(pid);
        }
    }

    fn launch(&self) -> Result<Warm, DriverError> {
        let path = self.path.clone().map_err(DriverError::Unavailable)?;
        let refuser = self
            .refuser
            .as_ref()
            .map_err(|e| DriverError::Unavailable(e.clone()))?;
        // Everything the browser does on its own goes to the refuser; a visit's traffic goes
        // to its context's proxy. Loopback is proxied too (Chromium bypasses it otherwise).
        let proxy = format!("--proxy-server=http://{}", refuser.addr);
        let features = format!(
            "--disable-features={}",
            [
                "TranslateUI",
                "BlinkGenPropertyTrees",
                "NetworkTimeServiceQuerying",
                "OptimizationHints",
                "MediaRouter",
                "DialMediaRouteProvider",
                "AutofillServerCommunication",
                "CertificateTransparencyComponentUpdater",
                "InterestFeedContentSuggestions",
            ]
            .join(",")
        );
        let mut args: Vec<String> = headless_chrome::browser::DEFAULT_ARGS
            .iter()
            .filter(|a| !a.starts_with("--disable-features="))
            .map(|a| a.to_string())
            .collect();
        args.extend(
            [
                proxy.as_str(),
                "--proxy-bypass-list=<-loopback>",
                features.as_str(),
                "--disable-quic",
                "--disable-component-update",
                "--disable-domain-reliability",
                "--disable-background-networking",
                "--disable-sync",
                "--no-pings",
                "--dns-prefetch-disable",
                "--disable-gpu",
                "--mute-audio",
                "--no-default-browser-check",
            ]
            .map(str::to_string),
        );
        let os_args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let options = LaunchOptions {
            headless: true,
            sandbox: false,
            path: Some(path),
            args: os_args,
            disable_default_args: true,
            // A warm browser waits for work; the default kills it after 30 s idle.
            idle_browser_timeout: Duration::from_secs(365 * 24 * 3600),
            ..LaunchOptions::default()
        };
        let browser = Browser::new(options)
            .map_err(|e| DriverError::Unavailable(format!("cannot start Chromium: {e:#}")))?;
        let pid = browser.get_process_id();
        let ws = url::Url::parse(&browser.get_ws_url())
            .map_err(|e| DriverError::Unavailable(format!("Chromium's debugging address: {e}")))?;
        let control =
            Transport::new(ws, pid, Duration::from_secs(365 * 24 * 3600), None).map_err(|e| {
                DriverError::Unavailable(format!("Chromium started but does not answer: {e:#}"))
            })?;
        let control = Arc::new(control);
        self.launches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("Chromium started, pid {pid:?}");
        Ok(Warm {
            browser,
            control,
            pid,
        })
    }
}

impl Drop for Chromium {
    /// The browser goes with its driver, even when something still holds a tab.
    fn drop(&mut self) {
        if let Some(w) = self
            .warm
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if let Some(pid) = w.pid {
                kill_now(pid);
            }
        }
    }
}

impl Chromium {
    /// `page` if it belongs to the browser running now.
    fn current(&self, page: ChromiumPage) -> Option<ChromiumPage> {
        let slot = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let same = slot.as_ref().is_some_and(|w| Arc::ptr_eq(w, &page.warm));
        (same && page.warm.alive()).then_some(page)
    }

    /// A fresh page on the current browser, starting one if needed; `until` bounds the
    /// wait for the new tab.
    fn fresh(
        &self,
        proxy: SocketAddr,
        until: Instant,
    ) -> Result<ChromiumPage, (Option<Arc<Warm>>, String)> {
        let _one_at_a_time = self.preparing.lock().unwrap_or_else(|p| p.into_inner());
        let warm = self.warm().map_err(|e| (None, e.to_string()))?;
        prepare_page(&warm, proxy, until).map_err(|Broken(why)| (Some(warm), why))
    }
}

impl Driver for Chromium {
    fn available(&self) -> Result<(), String> {
        self.path.as_ref().map(|_| ()).map_err(Clone::clone)?;
        self.refuser.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn prepare(&self, proxy: SocketAddr) -> Result<PreparedPage, DriverError> {
        match self.fresh(proxy, Instant::now() + PREPARE_TIMEOUT) {
            Ok(page) => Ok(Box::new(page)),
            Err((warm, why)) => {
                if let Some(w) = warm {
                    self.discard(&w);
                }
                Err(DriverError::Failed(why))
            }
        }
    }

    fn visit(
        &self,
        page: Option<PreparedPage>,
        url: &str,
        proxy: SocketAddr,
        settle: Duration,
        deadline: Instant,
    ) -> Result<Visit, DriverError> {
        let mut ready = page
            .and_then(|p| p.downcast::<ChromiumPage>().ok())
            .map(|p| *p)
            .filter(|p| p.proxy == proxy);
        let mut last = String::new();
        // A browser that dies under a visit is replaced once; the visit then runs again.
        for _ in 0..2 {
            let page = match ready.take().and_then(|p| self.current(p)) {
                Some(p) => p,
                None => match self.fresh(proxy, deadline) {
                    Ok(p) => p,
                    Err((None, why)) => return Err(DriverError::Unavailable(why)),
                    // No page before the page's time ran out: a cut, not a browser failure.
                    Err(_) if Instant::now() >= deadline => {
                        return Ok(Visit {
                            note: Some(
                                "no browser page became ready within the time limit; cut".into(),
                            ),
                            ..Visit::default()
                        })
                    }
                    Err((Some(w), why)) => {
                        self.discard(&w);
                        last = why;
                        continue;
                    }
                },
            };
            let warm = page.warm.clone();
            match run_page(page, url, settle, deadline) {
                Ok(v) => return Ok(v),
                Err(Broken(why)) => {
                    tracing::warn!("a browser visit failed ({why}); checking Chromium");
                    self.discard(&warm);
                    if Instant::now() >= deadline {
                        // The page's time is gone either way: that is a cut, not a failure.
                        return Ok(Visit {
                            navigation: None,
                            note: Some(format!(
                                "browser failed during the visit ({why}); no time left to run the page again"
                            )),
                            ..Visit::default()
                        });
                    }
                    last = why;
                }
            }
        }
        Err(DriverError::Failed(last))
    }
}

/// The browser itself failed (died, stopped answering); the visit may be retried.
struct Broken(String);

/// What the page's events said.
enum Seen {
    Committed(String),
    Requested(String, Via),
    Download(String),
    BudgetExpired,
}

/// An isolated page ready for one visit: a fresh incognito context whose proxy is one
/// resolution's own, downloads denied, a blank tab already listened to. Dropping it closes
/// the context, and with it everything the page stored.
struct ChromiumPage {
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
    let tab = wait_for_tab(&warm.browser, &target_id, until)
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

/// Loads `url` in a prepared page and waits for the navigation its script causes.
fn run_page(
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
        Err(_) if Instant::now() >= deadline => return Ok(cut()),
        Err(e) => return Err(Broken(format!("navigating: {e}"))),
        Ok(_) => {}
    }
    let mut committed: Option<(String, Instant)> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(cut());
        }
        match page
            .events
            .recv_timeout((deadline - now).min(Duration::from_millis(250)))
        {
            Ok(Seen::Committed(at)) => match &committed {
                None => {
                    tracing::debug!(
                        "visit {url}: committed after {} ms",
                        t0.elapsed().as_millis()
                    );
                    committed = Some((at, Instant::now()));
                    // Timers run in virtual time: a 3 s setTimeout fires at once, and the
                    // budget expires only when the page has nothing left to do.
                    let arm = Emulation::SetVirtualTimePolicy {
                        policy: Emulation::VirtualTimePolicy::PauseIfNetworkFetchesPending,
                        // Timers set while the page loads count from then: give them a margin.
                        budget: Some((settle + LOAD_MARGIN).as_millis() as f64),
                        max_virtual_time_task_starvation_count: None,
                        initial_virtual_time: None,
                    };
                    // Sent without waiting: with fetches pending (or a page spinning) the
                    // answer is late, and the loop below must keep watching meanwhile.
                    let t = tab.clone();
                    std::thread::spawn(move || {
                        let _ = t.call_method(arm);
                    });
                }
                // A second commit we never saw requested: the page moved on by itself.
                Some((first, since)) if *first != at => {
                    return Ok(found(at, Via::Javascript, *since))
                }
                Some(_) => {}
            },
            Ok(Seen::Requested(to, via)) if to != "about:blank" => {
                if let Some((_, since)) = &committed {
                    return Ok(found(to, via, *since));
                }
            }
            Ok(Seen::Download(to)) => {
                return Ok(found(
                    to,
                    Via::Javascript,
                    committed.as_ref().map_or(t0, |c| c.1),
                ))
            }
            Ok(Seen::BudgetExpired) => return Ok(Visit::default()),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !page.warm.alive() {
                    return Err(Broken("Chromium exited".into()));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Broken("event stream closed".into()))
            }
        }
    }
}

fn found(url: String, via: Via, committed_at: Instant) -> Visit {
    Visit {
        navigation: Some((url, via)),
        note: None,
        load_to_capture: Some(committed_at.elapsed()),
    }
}

fn cut() -> Visit {
    Visit {
        navigation: None,
        note: Some("page script still running at the time limit; cut".into()),
        load_to_capture: None,
    }
}

/// Whether the browser answers a trivial command promptly.
fn healthy(w: &Warm) -> bool {
    let control = w.control.clone();
    within(Instant::now() + HEALTH_TIMEOUT, move || {
        control.call_method_on_browser(CdpBrowser::GetVersion(None))
    })
    .is_ok()
}

/// headless_chrome registers tabs as their targets attach.
fn wait_for_tab(browser: &Browser, target_id: &str, deadline: Instant) -> Option<Arc<Tab>> {
    loop {
        if let Some(tab) = browser
            .get_tabs()
            .lock()
            .ok()?
            .iter()
            .find(|t| t.get_target_id() == target_id)
        {
            return Some(tab.clone());
        }
        if Instant::now() >= deadline {
            return None;
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

/// SIGKILL, through kill(1): no libc dependency (and no `unsafe`) for one call.
fn kill_now(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `browser.chrome_path`, else Debian's binary, else chromium/google-chrome on PATH.
/// (Debian's /usr/bin/chromium is a wrapper script that adds flags; the real binary is used.)
pub fn find_chromium(configured: &Path) -> Result<PathBuf, String> {
    if !configured.as_os_str().is_empty() {
        return if configured.is_file() {
            Ok(configured.to_path_buf())
        } else {
            Err(format!(
                "browser.chrome_path {} does not exist",
                configured.display()
            ))
        };
    }
    let debian = Path::new("/usr/lib/chromium/chromium");
    if debian.is_file() {
        return Ok(debian.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("Chromium is not installed (apt-get install chromium, or set browser.chrome_path)".into())
}
