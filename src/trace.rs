//! The Trace: what one resolution found, in the shape the contract promises to users.

use serde::{Deserialize, Serialize};

use crate::record::HttpRecord;

/// How the chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A page that leads nowhere further.
    Landed,
    /// A file (attachment or binary content type), known from headers and never fetched.
    Download,
    /// Policy refused a hop; it was never connected to.
    Blocked,
    /// The chain came back to a URL it had already visited.
    Loop,
    /// More than `limits.max_hops` hops.
    TooManyHops,
    /// A hop or the whole resolution ran out of time.
    Timeout,
    /// Anything else that stopped the chain; see `Trace::error`.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Landed => "landed",
            Outcome::Download => "download",
            Outcome::Blocked => "blocked",
            Outcome::Loop => "loop",
            Outcome::TooManyHops => "too-many-hops",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// How a hop was reached from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Input,
    HttpRedirect,
    MetaRefresh,
    Javascript,
    GoogleUrl,
    Wrapper,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Input => "input",
            Via::HttpRedirect => "http-redirect",
            Via::MetaRefresh => "meta-refresh",
            Via::Javascript => "javascript",
            Via::GoogleUrl => "google-url",
            Via::Wrapper => "wrapper",
        }
    }
}

/// Who ran a page's scripts (`browser.script_engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The embedded engine, on its emulated browser surface.
    Emulated,
    Chromium,
}

/// The request method of a hop that was not a plain GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// A form submitted with `method=post` (its body form-encoded), or a 307/308 redirect
    /// after one.
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
        }
    }
}

/// One step of the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub url: String,
    pub host: String,
    /// HTTP status of this hop's response; `None` when it was not fetched.
    pub status: Option<u16>,
    pub via: Via,
    pub labels: Vec<String>,
    /// The real service a fake or lookalike shortener imitates.
    pub imitates: Option<String>,
    pub blocked: bool,
    /// Why the hop was blocked, or a note on how it was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The vetted address this hop was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// For a `google-url` hop: whether the link carried a `usg` signature, which makes Google
    /// redirect without its warning page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// Requests the page made in the browser that policy refused (`url: reason`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_requests: Vec<String>,
    /// The request and response of a fetched hop: headers, timings, TLS certificate, the
    /// body's hash (what HAR is made from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Box<HttpRecord>>,
    /// Which engine ran this page's scripts, and so decided where it leads (or that it
    /// leads nowhere): only on pages whose scripts ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// How this hop was requested, when not with GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// The page's screenshot, on its way to [`Trace::screenshot`] (never serialised).
    #[serde(skip)]
    pub screenshot: Option<bytes::Bytes>,
    /// The landing page's HTML as served (at most [`HTML_KEPT_BYTES`]), on its way to
    /// [`Trace::html`] (never serialised).
    #[serde(skip)]
    pub html: Option<bytes::Bytes>,
    /// The landing page's icon as hashed, on its way to [`Trace::evidence`] (never
    /// serialised).
    #[serde(skip)]
    pub favicon: Option<Favicon>,
}

/// A landing page's icon: where it was fetched and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Favicon {
    pub url: String,
    pub sha256: String,
    /// Shodan's `http.favicon.hash`.
    pub mmh3: i32,
}

impl Hop {
    pub fn new(url: String, host: String, via: Via) -> Hop {
        Hop {
            url,
            host,
            status: None,
            via,
            labels: Vec::new(),
            imitates: None,
            blocked: false,
            reason: None,
            ip: None,
            content_type: None,
            automatic: None,
            elapsed_ms: None,
            blocked_requests: Vec::new(),
            http: None,
            engine: None,
            method: None,
            screenshot: None,
            html: None,
            favicon: None,
        }
    }
}

/// Why a resolution ended with `error` or `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What kind of failure ended a resolution (`error.kind` on the wire, kebab-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The input (or a hop's URL) is not a URL hoptrace can follow.
    Input,
    /// A name did not resolve.
    Dns,
    /// No TCP connection to a vetted address.
    Connect,
    /// The TLS handshake or certificate failed.
    Tls,
    /// The server broke HTTP (or the chain ended on an HTTP error).
    Http,
    /// A hop's or the resolution's time ran out.
    Timeout,
    /// Policy refused a connection (a blocked hop is an outcome, not an error: this kind is
    /// for refusals outside a hop, such as a webhook's).
    Policy,
    /// The browser failed in a way a restart did not mend.
    Browser,
    /// More hops than `limits.max_hops`.
    TooManyHops,
    /// An egress point's proxy was down or refused the connection.
    Proxy,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Http => "http",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Policy => "policy",
            ErrorKind::Browser => "browser",
            ErrorKind::TooManyHops => "too-many-hops",
            ErrorKind::Proxy => "proxy",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the wire name, as users (and tests) read it.
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The result of resolving one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub input: String,
    pub final_url: String,
    pub final_host: String,
    pub outcome: Outcome,
    pub hops: Vec<Hop>,
    pub labels: Vec<String>,
    pub cached: bool,
    pub error: Option<TraceError>,
    /// When the resolution ran (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// What the landing page was: its body's hash, title and screenshot (a landed chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The landing page's screenshot (PNG), kept by the store beside the Trace and served
    /// on its own (`/v1/screenshot`), never inside the JSON.
    #[serde(skip)]
    pub screenshot: Option<bytes::Bytes>,
    /// The watch this very resolution added (`watch.auto_from`): in its answer only, never
    /// stored with the Trace or served from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_added: Option<WatchAdded>,
    /// The landing page's HTML (at most [`HTML_KEPT_BYTES`]), kept by the store beside the
    /// Trace and served on its own as text (`/v1/html`), never inside the JSON.
    #[serde(skip)]
    pub html: Option<bytes::Bytes>,
}

/// A watch added automatically: the link (as the watchlist keys it) and its interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchAdded {
    pub url: String,
    pub every_seconds: u64,
}

/// Most of a landing page's HTML kept as evidence (and never more than
/// `limits.max_body_bytes`, which is all that is read).
pub const HTML_KEPT_BYTES: usize = 512 * 1024;

/// What the landing page of a chain was.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// SHA-256 (hex) of the landing body as read (at most `limits.max_body_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    pub body_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// SHA-256 (hex) of the screenshot PNG, when one was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_bytes: Option<u64>,
    /// SHA-256 (hex) of the landing page's HTML as kept (the body as read, cut to
    /// [`HTML_KEPT_BYTES`]), and how many bytes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_bytes: Option<u64>,
    /// The landing page's icon (`http.favicon`, off by default): its URL, SHA-256 (hex) and
    /// Shodan's hash (MurmurHash3 of its base64, signed), when it was an image within the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favicon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favicon_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favicon_mmh3: Option<i32>,
}

impl Trace {
    /// A Trace of `input` with these hops and outcome, its derived fields filled in.
    /// The Trace of an input that is no URL to follow: `error`, kind `input`, no hops.
    pub fn input_error(input: &str, message: String) -> Trace {
        Trace {
            input: input.to_string(),
            final_url: String::new(),
            final_host: String::new(),
            outcome: Outcome::Error,
            hops: Vec::new(),
            labels: Vec::new(),
            cached: false,
            error: Some(TraceError {
                kind: ErrorKind::Input,
                message,
            }),
            resolved_at: Some(rfc3339(crate::now_ms())),
            elapsed_ms: Some(0),
            evidence: None,
            screenshot: None,
            watch_added: None,
            html: None,
        }
    }

    pub fn from_hops(input: impl Into<String>, hops: Vec<Hop>, outcome: Outcome) -> Trace {
        let mut t = Trace {
            input: input.into(),
            final_url: String::new(),
            final_host: String::new(),
            outcome,
            hops,
            labels: Vec::new(),
            cached: false,
            error: None,
            resolved_at: None,
            elapsed_ms: None,
            evidence: None,
            screenshot: None,
            watch_added: None,
            html: None,
        };
        t.finish();
        t
    }

    /// Recomputes the trace-level fields that derive from the hops.
    pub fn finish(&mut self) {
        let mut labels: Vec<String> = Vec::new();
        for hop in &self.hops {
            for l in &hop.labels {
                if !labels.contains(l) {
                    labels.push(l.clone());
                }
            }
        }
        self.labels = labels;
        if let Some(last) = self.hops.last() {
            self.final_url = last.url.clone();
            self.final_host = last.host.clone();
        }
        let landing = self
            .hops
            .last()
            .and_then(|h| h.http.as_deref())
            .filter(|r| r.body_sha256.is_some() && self.outcome == Outcome::Landed);
        if let Some(r) = landing {
            let e = self.evidence.get_or_insert_with(Evidence::default);
            e.body_sha256 = r.body_sha256.clone();
            e.body_bytes = r.body_bytes;
            e.title = r.title.clone();
        }
    }

    /// Keeps `html` (already cut to [`HTML_KEPT_BYTES`]) as the landing page's HTML, noted
    /// in the evidence.
    pub fn set_html(&mut self, html: bytes::Bytes) {
        let e = self.evidence.get_or_insert_with(Evidence::default);
        e.html_sha256 = Some(crate::record::sha256_hex(&html));
        e.html_bytes = Some(html.len() as u64);
        self.html = Some(html);
    }

    /// Notes the landing page's icon in the evidence.
    pub fn set_favicon(&mut self, icon: Favicon) {
        let e = self.evidence.get_or_insert_with(Evidence::default);
        e.favicon_url = Some(icon.url);
        e.favicon_sha256 = Some(icon.sha256);
        e.favicon_mmh3 = Some(icon.mmh3);
    }

    /// Keeps `png` as the landing page's screenshot, noted in the evidence.
    pub fn set_screenshot(&mut self, png: bytes::Bytes) {
        let e = self.evidence.get_or_insert_with(Evidence::default);
        e.screenshot_sha256 = Some(crate::record::sha256_hex(&png));
        e.screenshot_bytes = Some(png.len() as u64);
        self.screenshot = Some(png);
    }
}

/// Formats a Unix time in milliseconds as an RFC 3339 UTC string with milliseconds (for
/// observations a second apart).
pub fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Formats a Unix time in milliseconds as an RFC 3339 UTC string.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}
