//! What every Chromium driver shares, whatever crate speaks CDP for it: the flags that keep
//! the browser quiet and proxied, the events that carry the chain, and the loop that watches
//! one visit until its script navigates, its timers run out or its time does.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Visit;
use crate::trace::{ErrorKind, FinderNote, TraceError, Via};

/// Page time allowed beyond `settle` for the load itself, so a timer of exactly `settle`
/// set during the load still fires.
pub(super) const LOAD_MARGIN: Duration = Duration::from_millis(1000);

/// How long one CDP call may take before the browser is thought stuck.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Real time after which virtual time is armed again when the page has said nothing.
const REARM_AFTER: Duration = Duration::from_secs(2);

/// How long a health check may take.
pub(super) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The browser itself failed (died, stopped answering); the visit may be retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Broken {
    #[error("event stream closed")]
    EventsClosed,
    #[error("Chromium exited")]
    Exited,
    #[error("Chromium stopped answering")]
    NotAnswering,
    #[error("the new tab was not ready in time")]
    TabNotReady,
    /// A CDP command failed: what it was doing.
    #[error("{what}: {source}")]
    Command {
        what: &'static str,
        #[source]
        source: std::sync::Arc<chromiumoxide::error::CdpError>,
    },
}

/// What a page's events said, in the order they came.
#[derive(Debug)]
pub(super) enum Seen {
    /// The main frame committed a document at this URL.
    Committed(String),
    /// The main frame asked to go to this URL (script, or a refresh the browser ran).
    /// A navigation of the main frame asked for, with a form's body when it POSTs one.
    Requested(String, Via, Option<String>),
    /// The main frame's next document is a download (from its headers or the browser's
    /// download event); nothing of it was read.
    Download(String),
    /// A sub-request's response was refused before its body.
    Refused(super::RefusedDownload),
    /// The main frame's document could not be loaded (Chromium's error text, such as
    /// `net::ERR_CERT_AUTHORITY_INVALID`).
    Failed(String),
    /// Virtual time ran out: the page has nothing left to do.
    BudgetExpired,
}

/// Chromium's flags: everything the browser does on its own goes to `refuser`; a visit's
/// traffic goes to its context's own proxy. Loopback is proxied too (Chromium bypasses it
/// otherwise). The browser resolves no name itself (every name maps to nothing: through a
/// proxy it needs none) and sends no UDP (WebRTC may only use proxied traffic, and an HTTP
/// proxy carries no UDP). Nothing says "automated": no `--enable-automation`, and
/// `navigator.webdriver` is false. Drivers add only what their crate needs to connect
/// (debugging port, profile directory, headless mode).
pub(super) fn flags(refuser: SocketAddr, identity: &super::Identity) -> Vec<String> {
    let features = [
        "TranslateUI",
        "BlinkGenPropertyTrees",
        "NetworkTimeServiceQuerying",
        "OptimizationHints",
        "MediaRouter",
        "DialMediaRouteProvider",
        "AutofillServerCommunication",
        "CertificateTransparencyComponentUpdater",
        "InterestFeedContentSuggestions",
        // Chromium's own DNS-over-HTTPS and async resolver: no lookups of its own at all.
        "DnsOverHttps",
        "AsyncDns",
        // Cross-site frames in the page's own process, so its response hold sees them too.
        "IsolateOrigins",
        "site-per-process",
    ]
    .join(",");
    let mut flags: Vec<String> = [
        "--disable-background-networking",
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-breakpad",
        "--disable-client-side-phishing-detection",
        "--disable-component-extensions-with-background-pages",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-hang-monitor",
        "--disable-ipc-flooding-protection",
        "--disable-prompt-on-repost",
        "--disable-renderer-backgrounding",
        "--disable-sync",
        "--metrics-recording-only",
        "--no-first-run",
        "--password-store=basic",
        "--use-mock-keychain",
        "--proxy-bypass-list=<-loopback>",
        "--disable-quic",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--no-pings",
        "--dns-prefetch-disable",
        "--disable-gpu",
        "--mute-audio",
        "--no-default-browser-check",
        "--disable-blink-features=AutomationControlled",
        // WebRTC: UDP only through a proxy (an HTTP proxy carries none), so none at all.
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--enforce-webrtc-ip-permission-check",
        // Every name resolves to nothing: requests go to the proxy by address, which owns DNS.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        // Pop-ups and window.open make nothing (a page opening 300 stays one page).
        "--block-new-web-contents",
        "--disable-site-isolation-trials",
        // A page allocating without end dies at this heap size, not at the machine's.
        "--js-flags=--max-old-space-size=512",
    ]
    .map(str::to_string)
    .into();
    flags.push(format!("--proxy-server=http://{refuser}"));
    flags.push(format!("--disable-features={features}"));
    let (w, h) = identity.screen;
    flags.push(format!("--window-size={w},{h}"));
    flags.push(format!("--user-agent={}", identity.user_agent));
    if let Some(lang) = identity.accept_language.split([',', ';']).next() {
        flags.push(format!("--lang={}", lang.trim()));
    }
    flags
}

/// Real time after which a page that has not committed makes us ask whether the browser
/// still answers at all.
const NO_COMMIT_CHECK: Duration = Duration::from_secs(3);

/// How often a visit that hears nothing checks that the browser process still runs.
const ALIVE_CHECK: Duration = Duration::from_millis(500);

/// Watches one visit after its navigation was sent: returns the navigation the page's
/// script (or a refresh) asks for, as soon as it is requested; nothing when the page's
/// virtual time runs out with no navigation; a cut at `deadline`. `arm` starts virtual time
/// with the given budget after the first commit (timers then fire without real waiting);
/// `alive` tells whether the browser process still runs, `responsive` whether it answers.
pub(super) async fn watch<R: Future<Output = bool>>(
    events: &mut mpsc::UnboundedReceiver<Seen>,
    url: &str,
    settle: Duration,
    deadline: Instant,
    arm: impl Fn(Duration),
    alive: impl Fn() -> bool,
    responsive: impl Fn() -> R,
) -> Result<Visit, Broken> {
    let t0 = Instant::now();
    let mut committed: Option<(String, Instant)> = None;
    // A request seen before the commit it follows: the events of one page come over
    // separate streams, and a script that navigates while the page is still being parsed
    // (the report's `setTimeout('Redirect()', 0)`) can be told before its commit.
    let mut early: Option<(String, Via, Option<String>)> = None;
    let mut refused: Vec<super::RefusedDownload> = Vec::new();
    // When virtual time was last armed. A page that should be done in a fraction of a second
    // is armed again if nothing came of it: an arming command can be delayed behind another
    // page's stuck calls (seen after a page spinning in an endless loop).
    let mut armed_at: Option<Instant> = None;
    let mut checked_at = t0;
    let done = |v: Visit, refused: Vec<super::RefusedDownload>| Ok(Visit { refused, ..v });
    loop {
        if Instant::now() >= deadline {
            tracing::debug!("visit {url}: cut after {} ms", t0.elapsed().as_millis());
            return done(cut(), refused);
        }
        // Woken by the page's next event, or by the first check that falls due.
        let mut wake = deadline.min(Instant::now() + ALIVE_CHECK);
        if committed.is_none() {
            wake = wake.min(checked_at + NO_COMMIT_CHECK);
        }
        if let Some(at) = armed_at {
            wake = wake.min(at + REARM_AFTER);
        }
        let seen = tokio::select! {
            seen = events.recv() => match seen {
                Some(seen) => seen,
                None => return Err(Broken::EventsClosed),
            },
            () = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= deadline {
                    continue; // cut at the top
                }
                if !alive() {
                    return Err(Broken::Exited);
                }
                // Nothing committed for a while: a slow page, or a browser that hangs.
                if committed.is_none() && checked_at.elapsed() >= NO_COMMIT_CHECK {
                    if !responsive().await {
                        return Err(Broken::NotAnswering);
                    }
                    checked_at = Instant::now();
                }
                if armed_at.is_some_and(|at| at.elapsed() >= REARM_AFTER) {
                    tracing::debug!(
                        "visit {url}: no word from the page; arming virtual time again"
                    );
                    arm(settle + LOAD_MARGIN);
                    armed_at = Some(Instant::now());
                }
                continue;
            }
        };
        match seen {
            Seen::Failed(why) => return done(failure(url, &why), refused),
            // Chromium's own error page (its certificate interstitial among them) is not the
            // page: the failure it stands for is the visit's answer.
            Seen::Committed(at) if at.starts_with("chrome-error:") => {
                return done(failure(url, "the browser could not load the page"), refused)
            }
            Seen::Committed(at) => match &committed {
                None => {
                    tracing::debug!(
                        "visit {url}: committed {at} after {} ms",
                        t0.elapsed().as_millis()
                    );
                    if let Some((to, via, post)) = early.take() {
                        return done(found(to, via, post, Instant::now()), refused);
                    }
                    committed = Some((at, Instant::now()));
                    // Timers set while the page loads count from then: give them a margin.
                    arm(settle + LOAD_MARGIN);
                    armed_at = Some(Instant::now());
                }
                // A second commit we never saw requested: the page moved on by itself.
                Some((first, since)) if *first != at => {
                    return done(found(at, Via::Javascript, None, *since), refused)
                }
                Some(_) => {}
            },
            Seen::Requested(to, via, post) if to != "about:blank" => match &committed {
                Some((_, since)) => return done(found(to, via, post, *since), refused),
                None => early = Some((to, via, post)),
            },
            Seen::Download(to) => {
                let since = committed.as_ref().map_or(t0, |c| c.1);
                return done(found(to, Via::Javascript, None, since), refused);
            }
            Seen::Refused(what) => refused.push(what),
            Seen::BudgetExpired => return done(Visit::default(), refused),
            Seen::Requested(..) => {}
        }
    }
}

fn found(url: String, via: Via, post: Option<String>, committed_at: Instant) -> Visit {
    Visit {
        navigation: Some((url, via)),
        post,
        note: None,
        load_to_capture: Some(committed_at.elapsed()),
        ..Visit::default()
    }
}

/// The browser could not load `url`: the error kind Chromium's text names.
fn failure(url: &str, why: &str) -> Visit {
    let kind = if why.contains("CERT") || why.contains("SSL") {
        ErrorKind::Tls
    } else if why.contains("NAME_NOT_RESOLVED") {
        ErrorKind::Dns
    } else if why.contains("TIMED_OUT") {
        ErrorKind::Timeout
    } else if why.contains("CONNECTION") || why.contains("TUNNEL") || why.contains("PROXY") {
        ErrorKind::Connect
    } else {
        ErrorKind::Browser
    };
    Visit {
        error: Some(TraceError {
            kind,
            message: format!("the browser could not load {url}: {why}"),
        }),
        ..Visit::default()
    }
}

/// The page's time ran out while it still ran (or loaded).
pub(super) fn cut() -> Visit {
    Visit {
        note: Some(FinderNote::Cut),
        ..Visit::default()
    }
}

/// True while `pid` runs (a killed child stays a zombie until reaped: that counts as dead).
pub(super) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// SIGKILL, through kill(1): no libc dependency (and no `unsafe`) for one call.
pub(super) fn kill_now(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Why no browser can be had: none found, or one that would not start. Cloned into every
/// visit that finds it so, hence the shared sources.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("browser.chrome_path {} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    #[error("Chromium is not installed (apt-get install chromium, or set browser.chrome_path)")]
    NotInstalled,
    /// The proxy a browser's own traffic is sent to, to be refused, did not start.
    #[error("cannot start the refusing proxy: {0}")]
    Refuser(std::sync::Arc<std::io::Error>),
    #[error("cannot start the CDP runtime")]
    Runtime,
    /// The task starting Chromium did not finish (panicked or cancelled).
    #[error("cannot start Chromium: {0}")]
    Spawn(String),
    #[error("{0}")]
    Launch(std::sync::Arc<super::launch::LaunchError>),
    #[error("cannot bridge to Chromium's control pipe: {0}")]
    Bridge(std::sync::Arc<std::io::Error>),
    #[error("cannot connect to Chromium: {0}")]
    Connect(String),
}

/// `browser.chrome_path`, else Debian's binary, else chromium/google-chrome on PATH.
/// (Debian's /usr/bin/chromium is a wrapper script that adds flags; the real binary is used.)
pub fn find_chromium(configured: Option<&Path>) -> Result<PathBuf, Unavailable> {
    if let Some(configured) = configured {
        return if configured.is_file() {
            Ok(configured.to_path_buf())
        } else {
            Err(Unavailable::NoSuchPath(configured.to_path_buf()))
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
    Err(Unavailable::NotInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configured path that is no file is its own kind, named as before.
    #[test]
    fn a_missing_configured_browser_is_a_kind_with_its_message() {
        let err = find_chromium(Some(Path::new("/nonexistent/chromium"))).unwrap_err();
        assert!(
            matches!(&err, Unavailable::NoSuchPath(p) if p == Path::new("/nonexistent/chromium"))
        );
        assert_eq!(
            err.to_string(),
            "browser.chrome_path /nonexistent/chromium does not exist"
        );
    }
}
