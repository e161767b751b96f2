//! Finding the next hop in a fetched response: the `Location` of a redirect, a `Refresh`
//! header or meta refresh, or a literal script redirect that needs no execution.
//!
//! Anything that needs the page to run (the browser stage) plugs in as one more
//! [`NextHopFinder`]; the chain asks each finder in turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use regex::Regex;
use url::Url;

use crate::extract::html_unescape;
use crate::fetch::Response;
use crate::trace::Via;

/// Where a page leads, and how that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub url: Url,
    pub via: Via,
    /// The form body to POST there (`application/x-www-form-urlencoded`); `None`: a GET.
    pub post: Option<String>,
}

/// The largest form body a hop sends (a redirect page's form carries a few fields).
pub const MAX_FORM_BYTES: usize = 64 << 10;

/// Why a next hop was named but cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget {
    pub via: Via,
    pub target: String,
    pub message: String,
}

/// A fetched page, as the finders see it.
pub struct Page<'a> {
    pub url: &'a Url,
    pub response: &'a Response,
    /// Real time a finder may spend on this page once it is loading (the hop's limit).
    pub budget: std::time::Duration,
    /// Real time left for the whole resolution: nothing a finder does may outlast it.
    pub remaining: std::time::Duration,
    /// Who the visitor is (a browser presents the same).
    pub profile: &'a crate::profile::Profile,
    /// The page is a document that may be where the chain lands (an HTML page answered
    /// 2xx): a browser that finds no next hop may take its screenshot.
    pub landing_evidence: bool,
}

/// What a finder learned about a page.
#[derive(Debug, Default)]
pub struct Finding {
    /// The next hop, if it found one (or one it cannot follow).
    pub next: Option<Result<Found, BadTarget>>,
    /// Something the Trace should say about the hop (e.g. that a browser was unavailable).
    pub note: Option<crate::trace::FinderNote>,
    /// Requests the page tried to make that policy refused.
    pub blocked_requests: Vec<crate::trace::BlockedRequest>,
    /// The finder failed in a way that ends the chain.
    pub error: Option<crate::trace::TraceError>,
    /// Time spent queueing (for a browser tab), which the resolution's time limit leaves out
    /// as it does waiting for per-host politeness.
    pub waited: std::time::Duration,
    /// The page as the browser saw it settle (PNG), when it found no next hop.
    pub screenshot: Option<bytes::Bytes>,
    /// Who ran the page's scripts, when they ran.
    pub engine: Option<crate::trace::Engine>,
}

impl Finding {
    pub fn nothing() -> Finding {
        Finding::default()
    }

    fn of(next: Option<Result<Found, BadTarget>>) -> Finding {
        Finding {
            next,
            ..Finding::default()
        }
    }
}

pub type FinderFuture<'a> = Pin<Box<dyn Future<Output = Finding> + Send + 'a>>;

/// One way of finding a page's next hop.
pub trait NextHopFinder: Send + Sync {
    fn next_hop<'a>(&'a self, page: &'a Page<'a>) -> FinderFuture<'a>;
}

/// Finds what the response's headers and text say without running anything.
pub struct StaticFinder {
    /// Also take a literal `location.replace('…')` wherever it stands in a script. Only
    /// without a stage that runs scripts: running settles whether that code runs at all (in
    /// a function never called, a branch not taken, a comment, it is no hop).
    pub literal_scripts: bool,
}

impl NextHopFinder for StaticFinder {
    fn next_hop<'a>(&'a self, page: &'a Page<'a>) -> FinderFuture<'a> {
        Box::pin(async move {
            Finding::of(static_next_hop(
                page.url,
                page.response,
                self.literal_scripts,
            ))
        })
    }
}

/// A page only a browser can see through: HTML (or untyped) at `base` with script in it, or
/// with a frame whose script may navigate it ([`has_own_frame`]).
pub fn has_script(base: &Url, resp: &Response) -> bool {
    if resp.body.is_empty() || resp.is_redirect() || resp.download.is_some() {
        return false;
    }
    let html = resp
        .content_type()
        .is_none_or(|ct| ct.to_ascii_lowercase().contains("html"));
    let has = |tag: &[u8]| {
        resp.body
            .windows(tag.len())
            .any(|w| w.eq_ignore_ascii_case(tag))
    };
    html && (has(b"<script")
        || (has(b"frame") && has_own_frame(base, &String::from_utf8_lossy(&resp.body))))
}

static FRAME_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?is)<i?frame\b[^>]*>").unwrap());

/// Whether the page at `base` has a frame that may navigate it: one of its own origin (its
/// `src`, `srcdoc` or a `javascript:` URL). A frame of another origin may not navigate the
/// page without a visitor's gesture.
fn has_own_frame(base: &Url, html: &str) -> bool {
    FRAME_TAG.find_iter(html).any(|tag| {
        attributes(tag.as_str()).any(|(name, value)| match name.as_str() {
            "srcdoc" => true,
            "src" => {
                let src = html_unescape(value);
                let src = src.trim();
                src.get(..11)
                    .is_some_and(|s| s.eq_ignore_ascii_case("javascript:"))
                    || base.join(src).is_ok_and(|u| u.origin() == base.origin())
            }
            _ => false,
        })
    })
}

/// Redirect, then Refresh header, then meta refresh, then (with `literal_scripts`) literal
/// script, in that order: the order in which a browser would act on them.
pub fn static_next_hop(
    base: &Url,
    resp: &Response,
    literal_scripts: bool,
) -> Option<Result<Found, BadTarget>> {
    if resp.is_redirect() {
        let raw = resp.headers.get(http::header::LOCATION)?.as_bytes();
        return Some(resolve_target(base, &encode_raw(raw), Via::HttpRedirect));
    }
    if let Some(target) = resp
        .headers
        .get("refresh")
        .and_then(|v| refresh_target(&String::from_utf8_lossy(v.as_bytes())))
    {
        return Some(resolve_target(base, &target, Via::MetaRefresh));
    }
    if resp.body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&resp.body);
    if let Some(target) = meta_refresh(&text) {
        return Some(resolve_target(base, &target, Via::MetaRefresh));
    }
    if !literal_scripts {
        return None;
    }
    literal_script_redirect(&text).map(|target| resolve_target(base, &target, Via::Javascript))
}

/// Resolves a target against the page (RFC 3986), percent-encoding what needs it.
pub fn resolve_target(base: &Url, target: &str, via: Via) -> Result<Found, BadTarget> {
    base.join(target.trim())
        .map(|url| Found {
            url,
            via,
            post: None,
        })
        .map_err(|e| BadTarget {
            via,
            target: target.to_string(),
            message: e.to_string(),
        })
}

/// Where a navigation leads, with the form body it POSTs (`Some`), which must be within
/// [`MAX_FORM_BYTES`].
pub fn resolve_navigation(
    base: &Url,
    target: &str,
    via: Via,
    post: Option<String>,
) -> Result<Found, BadTarget> {
    let mut found = resolve_target(base, target, via)?;
    if let Some(body) = &post {
        if body.len() > MAX_FORM_BYTES {
            return Err(BadTarget {
                via,
                target: target.to_string(),
                message: format!(
                    "its form body is larger than the {MAX_FORM_BYTES} bytes a hop sends"
                ),
            });
        }
    }
    found.post = post;
    Ok(found)
}

/// Percent-encodes raw header bytes a URL may not hold as they are (spaces, controls,
/// non-ASCII), so that `Location: /caf\xc3\xa9 menu` still names a followable URL.
fn encode_raw(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b <= 0x20 || b >= 0x7f {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

static META_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?is)<meta\b[^>]*>").unwrap());
static ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)([a-z_:][-a-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#).unwrap()
});

/// A tag's `name=value` attributes (names lower-cased, values as written), in order.
pub(crate) fn attributes(tag: &str) -> impl Iterator<Item = (String, &str)> {
    ATTR.captures_iter(tag).map(|cap| {
        let value = cap
            .get(2)
            .or(cap.get(3))
            .or(cap.get(4))
            .map_or("", |m| m.as_str());
        (cap[1].to_ascii_lowercase(), value)
    })
}

/// The target of `<meta http-equiv="refresh" content="N; url=...">` in any spelling.
pub(crate) fn meta_refresh(html: &str) -> Option<String> {
    META_TAG.find_iter(html).find_map(|tag| {
        let mut is_refresh = false;
        let mut content = None;
        for (name, value) in attributes(tag.as_str()) {
            match name.as_str() {
                "http-equiv" => is_refresh = value.trim().eq_ignore_ascii_case("refresh"),
                "content" => content = Some(html_unescape(value)),
                _ => {}
            }
        }
        if is_refresh {
            refresh_target(&content?)
        } else {
            None
        }
    })
}

/// The URL in a refresh value: `5`, `0;url=x`, `0; URL = 'x'`, `3, x`, `0;x`.
fn refresh_target(content: &str) -> Option<String> {
    let s = content.trim();
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let s = s.trim_start();
    let s = s.strip_prefix([';', ',']).unwrap_or(s).trim_start();
    let s = if s.len() >= 3 && s[..3].eq_ignore_ascii_case("url") {
        let rest = s[3..].trim_start();
        match rest.strip_prefix('=') {
            Some(r) => r.trim_start(),
            None => s,
        }
    } else {
        s
    };
    let s = s.trim();
    let s = match s.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &s[1..];
            &inner[..inner.find(q).unwrap_or(inner.len())]
        }
        _ => s,
    };
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

static SCRIPT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<script\b[^>]*>(.*?)(?:</script\s*>|\z)").unwrap());
const JS_STRING: &str = r#"(?:"((?:\\.|[^"\\\n])*)"|'((?:\\.|[^'\\\n])*)')"#;
static JS_ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:\b(?:window|document|self|top)\s*\.\s*)?\blocation(?:\s*\.\s*href)?\s*=\s*{JS_STRING}\s*(?:[;\n\r}}<]|\z)"
    ))
    .unwrap()
});
static JS_CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\blocation\s*\.\s*(?:replace|assign)\s*\(\s*{JS_STRING}\s*\)"
    ))
    .unwrap()
});

/// `location.replace("…")`, `location.href = '…'`, `window.location = "…"`, with a literal
/// string only: a target built at run time (`'https://x/' + el`) is the browser's job.
fn literal_script_redirect(html: &str) -> Option<String> {
    SCRIPT.captures_iter(html).find_map(|script| {
        let code = script.get(1)?.as_str();
        [&*JS_CALL, &*JS_ASSIGN].iter().find_map(|re| {
            re.captures(code)
                .and_then(|c| c.get(1).or(c.get(2)))
                .map(|m| js_unescape(m.as_str()))
                .filter(|s| !s.trim().is_empty())
        })
    })
}

/// Undoes JavaScript string escapes (`\/`, `\x2f`, `\u002f`, `\\`, quotes).
fn js_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some('n') | Some('r') | Some('t') => {}
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_whose_own_frame_may_navigate_it_goes_to_the_script_stage() {
        let base = Url::parse("http://blog.test/p/page").unwrap();
        for (html, want) in [
            ("<iframe src=\"/frame\"></iframe>", true),
            ("<IFRAME SRC='in/f?a=1&amp;b=2'>", true),
            ("<frameset><frame src=http://blog.test/f></frameset>", true),
            (
                "<iframe srcdoc=\"&lt;script&gt;top.location='x'&lt;/script&gt;\"></iframe>",
                true,
            ),
            (
                "<iframe src=\" JavaScript:top.location='x'\"></iframe>",
                true,
            ),
            ("<iframe src=\"https://blog.test/f\"></iframe>", false),
            (
                "<iframe src=\"http://video.example/embed\"></iframe>",
                false,
            ),
            ("<iframe></iframe><p>no frame here</p>", false),
        ] {
            let resp = Response {
                status: 200,
                headers: http::HeaderMap::new(),
                peer: None,
                body: bytes::Bytes::from(format!("<html><body>{html}</body></html>")),
                body_note: None,
                download: None,
                record: Default::default(),
            };
            assert_eq!(has_script(&base, &resp), want, "{html}");
        }
    }

    #[test]
    fn meta_refresh_spellings() {
        for (html, want) in [
            (
                r#"<meta http-equiv="refresh" content="0; url=http://a.example/x">"#,
                "http://a.example/x",
            ),
            (
                r#"<META HTTP-EQUIV='Refresh' CONTENT='5;URL=/next'>"#,
                "/next",
            ),
            (
                r#"<meta content="3; URL = 'http://b.example/?a=1&amp;b=2'" http-equiv=refresh>"#,
                "http://b.example/?a=1&b=2",
            ),
            (
                r#"<meta http-equiv=refresh content=0;url=c.html>"#,
                "c.html",
            ),
            (
                r#"<meta http-equiv="refresh" content="0;http://d.example/">"#,
                "http://d.example/",
            ),
            (
                r#"<meta http-equiv="refresh" content="2.5, url=&quot;/e&quot;">"#,
                "/e",
            ),
            (
                "<meta\n  http-equiv=\"refresh\"\n  content=\"1;url=/f\" />",
                "/f",
            ),
        ] {
            assert_eq!(meta_refresh(html).as_deref(), Some(want), "{html}");
        }
        assert_eq!(
            meta_refresh(r#"<meta http-equiv="refresh" content="30">"#),
            None
        );
        assert_eq!(
            meta_refresh(r#"<meta name="refresh" content="0;url=/x">"#),
            None
        );
        assert_eq!(meta_refresh(r#"<meta charset="utf-8">"#), None);
    }

    #[test]
    fn literal_script_redirects_only() {
        for (code, want) in [
            (
                r#"location.replace("https://a.example/1")"#,
                "https://a.example/1",
            ),
            (
                r#"window.location.href = 'https://a.example/2';"#,
                "https://a.example/2",
            ),
            (
                r#"window.location="https:\/\/a.example\/3""#,
                "https://a.example/3",
            ),
            (r#"document.location = '/rel'"#, "/rel"),
            (
                r#"setTimeout(function(){ location.assign('\x68ttps://a.example/4') }, 3000);"#,
                "https://a.example/4",
            ),
            (
                "top.location.href='https://a.example/5'\n",
                "https://a.example/5",
            ),
        ] {
            let html = format!("<html><script>{code}</script></html>");
            assert_eq!(
                literal_script_redirect(&html).as_deref(),
                Some(want),
                "{code}"
            );
        }
        for code in [
            r#"window.location.replace('https://gohhs.com/' + el)"#,
            r#"location.href = base + "/x";"#,
            r#"if (location.href == "https://a.example/") {}"#,
            r#"var s = "location.href";"#,
        ] {
            let html = format!("<script>{code}</script>");
            assert_eq!(literal_script_redirect(&html), None, "{code}");
        }
        // Outside a script it is just text.
        assert_eq!(
            literal_script_redirect("<p>location.href = 'https://a.example/'</p>"),
            None
        );
    }

    #[test]
    fn raw_location_bytes_are_encoded() {
        let base = Url::parse("http://h.example/dir/page").unwrap();
        let got = resolve_target(
            &base,
            &encode_raw(b"../caf\xc3\xa9 menu?q=a b"),
            Via::HttpRedirect,
        )
        .unwrap();
        assert_eq!(
            got.url.as_str(),
            "http://h.example/caf%C3%A9%20menu?q=a%20b"
        );
        let got = resolve_target(
            &base,
            &encode_raw(b"//other.example:8080/x"),
            Via::HttpRedirect,
        )
        .unwrap();
        assert_eq!(got.url.as_str(), "http://other.example:8080/x");
    }
}
