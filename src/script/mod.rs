//! The script engine in front of Chromium: a page's scripts run in an embedded JavaScript
//! engine (boa, memory-safe Rust) against an emulated browser surface (`surface.js`: location,
//! timers on virtual time, atob/btoa, eval, document with its forms and `write`, navigator
//! and screen from the visit's profile, load events). It answers only when it is sure: every
//! script ran to its end within budget, touched nothing the surface does not model (each
//! unknown global or property is a trap), and the page either navigated or provably did not.
//! Anything else is a [`Deferral`], counted by reason, and the page goes to Chromium as before.
//!
//! **Out of process.** The engine runs hostile code. boa's `RuntimeLimits` bound loop
//! iterations, recursion and its value stack, but not the heap: `s += s` thirty times is a
//! 1 GiB string and an allocation failure aborts the process. So the engine runs in worker
//! processes (this same program with [`WORKER_ARG`], kept warm, one page at a time each):
//! an address-space limit (`RLIMIT_AS`) turns an allocation bomb into the death of one
//! worker, a deep parse into a crashed worker, an endless native loop into a kill at the
//! page's time limit; each is a deferral naming why, and the next page gets a fresh worker.
//! The worker has no network of its own: it reads a request on stdin and writes a verdict.

mod page;
mod run;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use run::evaluate;
pub use worker::{serve, WORKER_ARG};

use crate::fetch::Fetcher;
use crate::profile::Profile;
use crate::trace::Via;

/// Why the engine left a page to Chromium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defer {
    /// The script reached something the surface does not model.
    Unmodelled,
    /// A script threw and nothing caught it.
    ScriptError,
    /// A frame (or object/embed): its own document.
    Frame,
    /// `<script src>`: the engine fetches nothing.
    ExternalScript,
    /// A `javascript:` URL or another navigation that runs code.
    ScriptUrl,
    /// More than the engine's timers were set or run.
    Timers,
    /// The page's scripts outran the engine's time limit.
    Time,
    /// The worker ran out of its memory.
    Memory,
    /// Recursion or the engine's stack went past its limit.
    Recursion,
    /// A loop went past its iteration limit.
    Loop,
    /// The page's scripts are larger than the engine takes.
    ScriptSize,
    /// The page's body was cut short: what runs is not what Chromium would run.
    Truncated,
    /// The worker died (a crash) or answered nonsense.
    Crashed,
    /// No worker could be started.
    Unavailable,
    /// A landing page whose screenshot only Chromium can take.
    Screenshot,
}

impl Defer {
    pub const ALL: [Defer; 15] = [
        Defer::Unmodelled,
        Defer::ScriptError,
        Defer::Frame,
        Defer::ExternalScript,
        Defer::ScriptUrl,
        Defer::Timers,
        Defer::Time,
        Defer::Memory,
        Defer::Recursion,
        Defer::Loop,
        Defer::ScriptSize,
        Defer::Truncated,
        Defer::Crashed,
        Defer::Unavailable,
        Defer::Screenshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Defer::Unmodelled => "unmodelled",
            Defer::ScriptError => "script-error",
            Defer::Frame => "frame",
            Defer::ExternalScript => "external-script",
            Defer::ScriptUrl => "script-url",
            Defer::Timers => "timers",
            Defer::Time => "time",
            Defer::Memory => "memory",
            Defer::Recursion => "recursion",
            Defer::Loop => "loop",
            Defer::ScriptSize => "script-size",
            Defer::Truncated => "truncated",
            Defer::Crashed => "crashed",
            Defer::Unavailable => "unavailable",
            Defer::Screenshot => "screenshot",
        }
    }

    fn from_str(s: &str) -> Defer {
        Defer::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .unwrap_or(Defer::Unmodelled)
    }

    pub fn because(self, what: &str) -> Deferral {
        Deferral {
            reason: self,
            what: what.chars().take(200).collect(),
        }
    }
}

/// A page left to Chromium, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    pub reason: Defer,
    /// What the script reached, or what ran out.
    pub what: String,
}

impl std::fmt::Display for Deferral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.what)
    }
}

/// What the engine decided about a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The page's script navigates to `target` (as written: relative to the page), with a
    /// form's body when it POSTs one.
    Navigates {
        target: String,
        via: Via,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        post: Option<String>,
    },
    /// The scripts ran to their end and the page stays within its settle time.
    Stays,
    Defer(Deferral),
}

/// Who visits, as the page's script can see it (the browser's identity for the visit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    pub user_agent: String,
    pub platform: String,
    pub languages: Vec<String>,
    pub screen: (u32, u32),
    pub viewport: (u32, u32),
    pub mobile: bool,
}

/// A same-origin frame's document, fetched for the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    pub url: String,
    pub markup: page::Markup,
}

/// One page for a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub url: String,
    pub markup: page::Markup,
    /// The documents of its `<iframe src>`s, in order.
    #[serde(default)]
    pub frames: Vec<Frame>,
    pub visitor: Visitor,
    /// Virtual page time the timers get (`browser.settle_ms`).
    pub settle_ms: u64,
}

/// Frames of a page the engine runs (a page with more goes to Chromium).
pub const MAX_FRAMES: usize = 4;
/// All the page's inline script text the engine takes (a larger page goes to Chromium).
pub const MAX_SCRIPT_BYTES: usize = 2 << 20;
/// Real time one page may take in the engine at most (less when the hop has less left).
pub const MAX_TIME: Duration = Duration::from_secs(2);

impl Request {
    /// The request for a page, or why the engine cannot take it.
    pub fn new(
        url: &url::Url,
        html: &str,
        visitor: Visitor,
        settle: Duration,
    ) -> Result<Request, Deferral> {
        let request = Request {
            url: url.to_string(),
            markup: page::read(html)?,
            frames: Vec::new(),
            visitor,
            settle_ms: settle.as_millis() as u64,
        };
        request.check_size()?;
        Ok(request)
    }

    fn check_size(&self) -> Result<(), Deferral> {
        let size: usize = std::iter::once(&self.markup)
            .chain(self.frames.iter().map(|f| &f.markup))
            .flat_map(|m| &m.scripts)
            .map(page::Code::len)
            .sum();
        if size > MAX_SCRIPT_BYTES {
            return Err(Defer::ScriptSize.because(&format!(
                "{size} bytes of script (the engine takes {MAX_SCRIPT_BYTES})"
            )));
        }
        Ok(())
    }
}

/// Deferrals by reason, over the process (for `GET /metrics`).
static DEFERRED: [AtomicU64; Defer::ALL.len()] = [const { AtomicU64::new(0) }; Defer::ALL.len()];
/// Pages the engine decided.
static DECIDED: AtomicU64 = AtomicU64::new(0);

fn count(verdict: &Verdict) {
    match verdict {
        Verdict::Defer(d) => {
            let i = Defer::ALL.iter().position(|r| *r == d.reason).unwrap_or(0);
            DEFERRED[i].fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            DECIDED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts a page the stage itself sent on to Chromium (e.g. for its screenshot).
pub fn count_deferral(reason: Defer) {
    count(&Verdict::Defer(reason.because("")));
}

/// Pages decided by the engine, and pages deferred to Chromium by reason, since start.
pub fn counts() -> (u64, Vec<(Defer, u64)>) {
    (
        DECIDED.load(Ordering::Relaxed),
        Defer::ALL
            .iter()
            .zip(DEFERRED.iter())
            .map(|(d, n)| (*d, n.load(Ordering::Relaxed)))
            .collect(),
    )
}

/// The engine as the browser stage uses it: warm workers, one page each at a time.
pub struct ScriptEngine {
    workers: worker::Pool,
    scripts: Option<Scripts>,
}

/// How `<script src>` is fetched: through the chain's own client (the egress gate), within
/// the visit's byte budget.
struct Scripts {
    fetcher: Fetcher,
    max_bytes: u64,
}

/// One page to judge.
pub struct Page<'a> {
    pub url: &'a url::Url,
    pub response: &'a crate::fetch::Response,
    /// Who fetches its external scripts.
    pub profile: &'a Profile,
    /// What its scripts see.
    pub visitor: Visitor,
    /// Virtual page time its timers get (`browser.settle_ms`).
    pub settle: Duration,
}

/// A page the engine can answer for, or why not.
type Ready = Result<Request, Deferral>;

impl ScriptEngine {
    /// Workers run `program` (none: this program), at most `workers` at once. Without
    /// [`ScriptEngine::with_fetcher`] a page with `<script src>` goes to Chromium.
    pub fn new(program: Option<PathBuf>, workers: usize) -> ScriptEngine {
        ScriptEngine {
            workers: worker::Pool::new(program, workers.max(1)),
            scripts: None,
        }
    }

    /// Fetches external scripts with `fetcher`, at most `max_bytes` of them a page.
    pub fn with_fetcher(mut self, fetcher: Fetcher, max_bytes: u64) -> ScriptEngine {
        self.scripts = Some(Scripts { fetcher, max_bytes });
        self
    }

    /// Runs the page's scripts within `time` (real) and says where they lead.
    pub async fn judge(&self, page: Page<'_>, time: Duration) -> Verdict {
        let deadline = Instant::now() + time;
        let verdict = match self.ready(page, deadline).await {
            Ok(request) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.workers.ask(&request, left.min(MAX_TIME)).await
            }
            Err(d) => Verdict::Defer(d),
        };
        count(&verdict);
        verdict
    }

    /// The request for a page, its external scripts and frames fetched.
    async fn ready(&self, page: Page<'_>, deadline: Instant) -> Ready {
        let Page {
            url,
            response,
            profile,
            visitor,
            settle,
        } = page;
        if let Some(note) = response.body_note {
            return Err(Defer::Truncated.because(note));
        }
        let html = String::from_utf8_lossy(&response.body);
        let mut request = Request::new(url, &html, visitor, settle)?;
        let mut pull = Pull {
            profile,
            deadline,
            pulled: 0,
        };
        self.pull_scripts(&mut request.markup, url, &mut pull)
            .await?;
        if request.markup.frames.len() > MAX_FRAMES {
            return Err(Defer::Frame.because(&format!("more than {MAX_FRAMES} frames")));
        }
        for src in std::mem::take(&mut request.markup.frames) {
            let frame = self.pull_frame(url, &src, &mut pull).await?;
            request.frames.push(frame);
        }
        request.check_size()?;
        Ok(request)
    }

    /// Fetches `at` through the chain's client within the visit's bytes: a document or a
    /// script answered 2xx, whole.
    async fn pull(
        &self,
        at: &url::Url,
        pull: &mut Pull<'_>,
        what: Defer,
    ) -> Result<String, Deferral> {
        let Some(scripts) = &self.scripts else {
            return Err(what.because(&format!("{at} not fetched")));
        };
        let left = pull.deadline.saturating_duration_since(Instant::now());
        let fetched = scripts
            .fetcher
            .fetch(at, None, left, pull.profile, false)
            .await
            .map_err(|e| what.because(&format!("{at}: {e}")))?;
        if !(200..300).contains(&fetched.status) || fetched.download.is_some() {
            return Err(what.because(&format!("{at} answered {}", fetched.status)));
        }
        if let Some(note) = fetched.body_note {
            return Err(Defer::Truncated.because(&format!("{at}: {note}")));
        }
        if what == Defer::Frame {
            // A frame the browser would not show runs nothing there.
            let refused = fetched.headers.contains_key("x-frame-options")
                || fetched
                    .headers
                    .get_all("content-security-policy")
                    .iter()
                    .any(|v| {
                        v.to_str()
                            .unwrap_or("frame-ancestors")
                            .contains("frame-ancestors")
                    });
            if refused {
                return Err(what.because(&format!("{at} limits who may frame it")));
            }
        }
        pull.pulled += fetched.body.len() as u64;
        if pull.pulled > scripts.max_bytes {
            return Err(Defer::ScriptSize.because(&format!(
                "external scripts and frames past the visit's {} bytes",
                scripts.max_bytes
            )));
        }
        Ok(String::from_utf8_lossy(&fetched.body).into_owned())
    }

    /// Replaces each `<script src>` of `markup` (a document at `base`) with its text.
    async fn pull_scripts(
        &self,
        markup: &mut page::Markup,
        base: &url::Url,
        pull: &mut Pull<'_>,
    ) -> Result<(), Deferral> {
        for code in &mut markup.scripts {
            let page::Code::External(src) = code else {
                continue;
            };
            let at = base
                .join(src.trim())
                .map_err(|e| Defer::ScriptError.because(&format!("script {src:?}: {e}")))?;
            *code = page::Code::Inline(self.pull(&at, pull, Defer::ExternalScript).await?);
        }
        Ok(())
    }

    /// The document of the frame `src` of the page at `top`, its scripts fetched: only a
    /// same-origin frame without frames of its own.
    async fn pull_frame(
        &self,
        top: &url::Url,
        src: &str,
        pull: &mut Pull<'_>,
    ) -> Result<Frame, Deferral> {
        let at = top
            .join(src)
            .map_err(|e| Defer::Frame.because(&format!("frame {src:?}: {e}")))?;
        if at.origin() != top.origin() {
            return Err(Defer::Frame.because(&format!("cross-origin frame {at}")));
        }
        let html = self.pull(&at, pull, Defer::Frame).await?;
        let mut markup = page::read(&html)?;
        if !markup.frames.is_empty() {
            return Err(Defer::Frame.because(&format!("frames in the frame {at}")));
        }
        self.pull_scripts(&mut markup, &at, pull).await?;
        Ok(Frame {
            url: at.to_string(),
            markup,
        })
    }
}

/// What fetching for one page has used: who fetches, until when, and how many bytes.
struct Pull<'a> {
    profile: &'a Profile,
    deadline: Instant,
    pulled: u64,
}
