//! The Trace: what one resolution found, in the shape the contract promises to users.

use serde::{Deserialize, Serialize};

use crate::record::HttpRecord;
use crate::wire::wire_enum;

mod label;
mod note;

pub use label::{Builtin, Label};
pub use note::{BlockedRequest, Cause, FinderNote, HopNote, Notes};

wire_enum! {
    /// How the chain ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        /// A page that leads nowhere further.
        Landed = "landed",
        /// A file (attachment or binary content type), known from headers and never fetched.
        Download = "download",
        /// Policy refused a hop; it was never connected to.
        Blocked = "blocked",
        /// The chain came back to a URL it had already visited.
        Loop = "loop",
        /// More than `limits.max_hops` hops.
        TooManyHops = "too-many-hops",
        /// A hop or the whole resolution ran out of time.
        Timeout = "timeout",
        /// Anything else that stopped the chain; see `Trace::error`.
        Error = "error",
    }
}

wire_enum! {
    /// How a hop was reached from the one before it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Via {
        Input = "input",
        HttpRedirect = "http-redirect",
        MetaRefresh = "meta-refresh",
        Javascript = "javascript",
        GoogleUrl = "google-url",
        Wrapper = "wrapper",
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

wire_enum! {
    /// The request method of a hop that was not a plain GET.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Method {
        /// A form submitted with `method=post` (its body form-encoded), or a 307/308 redirect
        /// after one.
        Post = "POST",
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
    pub labels: Vec<Label>,
    /// The real service a fake or lookalike shortener imitates.
    pub imitates: Option<String>,
    pub blocked: bool,
    /// Why the hop was blocked, or notes on how it was handled.
    #[serde(default, skip_serializing_if = "Notes::is_empty")]
    pub reason: Notes,
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
    /// Requests the page made in the browser that policy refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_requests: Vec<BlockedRequest>,
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
            reason: Notes::default(),
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

wire_enum! {
    /// What kind of failure ended a resolution (`error.kind` on the wire).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ErrorKind {
        /// The input (or a hop's URL) is not a URL hoptrace can follow.
        Input = "input",
        /// A name did not resolve.
        Dns = "dns",
        /// No TCP connection to a vetted address.
        Connect = "connect",
        /// The TLS handshake or certificate failed.
        Tls = "tls",
        /// The server broke HTTP (or the chain ended on an HTTP error).
        Http = "http",
        /// A hop's or the resolution's time ran out.
        Timeout = "timeout",
        /// Policy refused a connection (a blocked hop is an outcome, not an error: this kind
        /// is for refusals outside a hop, such as a webhook's).
        Policy = "policy",
        /// The browser failed in a way a restart did not mend.
        Browser = "browser",
        /// More hops than `limits.max_hops`.
        TooManyHops = "too-many-hops",
        /// An egress point's proxy was down or refused the connection.
        Proxy = "proxy",
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
    pub labels: Vec<Label>,
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
        let mut labels: Vec<Label> = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn wire<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    /// Every kind's names as the contract spells them: each serialises as its name and reads
    /// back as itself.
    #[test]
    fn every_kind_keeps_its_wire_name() {
        fn check<T>(all: &[T], names: &[&str])
        where
            T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Copy,
        {
            assert_eq!(all.len(), names.len());
            for (v, name) in all.iter().zip(names) {
                assert_eq!(wire(v), json!(name));
                assert_eq!(serde_json::from_value::<T>(json!(name)).unwrap(), *v);
            }
        }
        check(
            Outcome::ALL,
            &[
                "landed",
                "download",
                "blocked",
                "loop",
                "too-many-hops",
                "timeout",
                "error",
            ],
        );
        check(
            Via::ALL,
            &[
                "input",
                "http-redirect",
                "meta-refresh",
                "javascript",
                "google-url",
                "wrapper",
            ],
        );
        check(
            ErrorKind::ALL,
            &[
                "input",
                "dns",
                "connect",
                "tls",
                "http",
                "timeout",
                "policy",
                "browser",
                "too-many-hops",
                "proxy",
            ],
        );
        check(Method::ALL, &["POST"]);
        check(
            Builtin::ALL,
            &[
                "fake-shortener",
                "lookalike-shortener",
                "shortener",
                "payload-host",
                "phishing",
                "c2",
                "cloaked",
                "oversized-head",
                "open-redirect",
            ],
        );
        let err = serde_json::from_value::<Outcome>(json!("landing")).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `landing`"),
            "{err}"
        );
    }

    #[test]
    fn labels_built_in_or_listed_read_and_write_as_their_names() {
        for b in Builtin::ALL {
            let l: Label = serde_json::from_value(json!(b.as_str())).unwrap();
            assert!(matches!(l, Label::Builtin(x) if x == *b), "{l:?}");
            assert_eq!(wire(&l), json!(b.as_str()));
        }
        let listed: Label = serde_json::from_value(json!("crypto-drainer")).unwrap();
        assert!(matches!(&listed, Label::Listed(s) if s == "crypto-drainer"));
        assert_eq!(wire(&listed), json!("crypto-drainer"));
        assert!(!listed.is_malicious());
        // A list naming a built-in label gives the built-in one.
        assert_eq!(Label::from("c2".to_string()), Builtin::C2);
        let bad: Vec<&str> = Builtin::ALL
            .iter()
            .filter(|b| b.is_malicious())
            .map(|b| b.as_str())
            .collect();
        assert_eq!(
            bad,
            [
                "fake-shortener",
                "lookalike-shortener",
                "payload-host",
                "phishing",
                "c2"
            ]
        );
        // Ordered by name, as the string labels were.
        let mut sorted = vec![Label::from("zz"), Builtin::C2.into(), Label::from("aa")];
        sorted.sort();
        assert_eq!(sorted, ["aa", "c2", "zz"]);
    }

    /// Each hop note says what the string notes said, word for word.
    #[test]
    fn hop_notes_keep_their_text() {
        for (note, text) in [
            (HopNote::Loop { first: 3 }, "already visited at hop 3"),
            (
                HopNote::Decoded("google-url".into()),
                "google-url wrapper decoded without contacting it",
            ),
            (
                HopNote::Download("attachment".into()),
                "download: attachment; body not fetched",
            ),
        ] {
            assert_eq!(note.to_string(), text);
            assert_eq!(HopNote::from(text), note, "{text} reads back as its kind");
        }
        let mut notes = Notes::from(HopNote::Finder(FinderNote::Cut));
        notes.add(HopNote::Favicon("icon x not fetched: no time left".into()));
        assert_eq!(
            wire(&notes),
            json!("page script still running at the time limit; cut; icon x not fetched: no time left")
        );
        assert_eq!(Notes::default().text(), None);
    }

    /// A Trace as stored before the kinds were types reads back and writes out the same.
    #[test]
    fn a_stored_trace_reads_and_writes_unchanged() {
        let stored = json!({
            "input": "https://bltlly.com/x", "final_url": "http://127.0.0.1/",
            "final_host": "127.0.0.1", "outcome": "blocked",
            "hops": [
                {"url": "https://bltlly.com/x", "host": "bltlly.com", "status": 302,
                 "via": "input", "labels": ["fake-shortener", "crypto-drainer"],
                 "imitates": "bitly.com", "blocked": false,
                 "reason": "no browser available; icon x not fetched: no time left",
                 "blocked_requests": ["http://10.0.0.1/a: address 10.0.0.1 is private (egress policy refuses it)",
                                      "http://b.test/x.exe: download refused before its body (attachment)"],
                 "method": "POST"},
                {"url": "https://www.google.com/url?q=x", "host": "www.google.com", "status": null,
                 "via": "http-redirect", "labels": ["open-redirect"], "imitates": null,
                 "blocked": false, "reason": "google-url wrapper decoded without contacting it"},
                {"url": "http://127.0.0.1/", "host": "127.0.0.1", "status": null,
                 "via": "google-url", "labels": [], "imitates": null, "blocked": true,
                 "reason": "address 127.0.0.1 is loopback (egress policy refuses it)"}
            ],
            "labels": ["fake-shortener", "crypto-drainer", "open-redirect"],
            "cached": false,
            "error": {"kind": "too-many-hops", "message": "m"}
        });
        let t: Trace = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(wire(&t), stored);
        assert_eq!(t.hops[0].labels[0], Builtin::FakeShortener);
        assert!(matches!(&t.hops[0].labels[1], Label::Listed(_)));
        assert_eq!(
            t.hops[0].blocked_requests[1],
            BlockedRequest {
                url: "http://b.test/x.exe".into(),
                why: "download refused before its body (attachment)".into(),
            }
        );
        assert_eq!(
            t.hops[1].reason.notes(),
            [HopNote::Decoded("google-url".into())]
        );
        assert_eq!(t.error.as_ref().unwrap().kind, ErrorKind::TooManyHops);
        // `null` where a client wrote one is no note.
        let mut hop = stored["hops"][2].clone();
        hop["reason"] = Value::Null;
        let hop: Hop = serde_json::from_value(hop).unwrap();
        assert!(hop.reason.is_empty() && wire(&hop).get("reason").is_none());
    }
}
