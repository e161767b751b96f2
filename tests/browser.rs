//! The browser stage with real Chromium, real loopback servers and the local DNS responder.
//! One Chromium serves every test of this file (it is the slow part on 2 cores): the tests
//! take turns on it, and each case says which case failed.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::pki::pki;
use common::*;
use hoptrace::browser::Driver;
use hoptrace::chain::Resolver;
use hoptrace::config::{Config, ScriptEngineKind};
use hoptrace::trace::{Engine, Method, Outcome, Trace, Via};

/// A page of the conformance table: its HTML, with `NEXT` standing for
/// `http://next.test:PORT/` (the navigation target is on another host) and `PORT` for the
/// fixture's port.
fn table_page(path: &str) -> Option<String> {
    // Targets are built at run time, so no static finder can see them: only running the
    // script reveals the hop.
    let page = match path {
        "/report" => REPORT.to_string(),
        // The same, with an https target that accepts and never answers.
        "/report-stall" => REPORT.replace("https://gohhs.com/", "https://gohhs.com:STALL/"),
        "/atob" => "<script>setTimeout(function () { window.location.href = atob('B64(NEXT atob)'); }, 1500);</script>".into(),
        "/assign" => "<script>var u = 'NEXT' + 'assign'; location.assign(u);</script>".into(),
        "/window-location" => "<script>var u = 'NEXT' + 'window-location'; setTimeout(function () { window.location = u; }, 200);</script>".into(),
        "/document-location" => "<script>var u = 'NEXT' + 'document-location'; document.location.href = u;</script>".into(),
        "/top-from-iframe" => "<html><body><script>var framed = true;</script><iframe src=\"/frame-top\"></iframe></body></html>".into(),
        "/frame-top" => "<script>top.location = 'NEXT' + 'top-from-iframe';</script>".into(),
        "/document-write-meta" => "<html><head><script>var u = 'NEXT' + 'write-meta'; document.write('<me' + 'ta http-equiv=\"refresh\" content=\"0;url=' + u + '\">');</script></head><body></body></html>".into(),
        "/form-get" => "<form id=f method=GET action='/submitted'><input name=q value=1></form><script>document.getElementById('f').submit();</script>".into(),
        "/form-post" => "<form id=f method=POST action='/posted'><input name=q value=1></form><script>document.getElementById('f').submit();</script>".into(),
        "/form-post-cross" => "<form id=f method=POST action='NEXT posted'><input name=q value=1></form><script>document.getElementById('f').submit();</script>".into(),
        // No script of its own: its same-origin frame's script navigates it.
        "/frame-only" => "<html><body><p>x</p><iframe src=\"/frame-only-in\"></iframe></body></html>".into(),
        "/frame-only-in" => "<script>top.location.href = 'NEXT' + 'frame-only';</script>".into(),
        "/dom-content-loaded" => "<script>document.addEventListener('DOMContentLoaded', function () { location.href = 'NEXT' + 'dcl'; });</script><p>x</p>".into(),
        "/load" => "<script>window.addEventListener('load', function () { location.href = 'NEXT' + 'load'; });</script><p>x</p>".into(),
        "/body-onload" => "<html><head><script>function go() { location.href = 'NEXT' + 'body-onload'; }</script></head><body onload=\"go()\">x</body></html>".into(),
        "/countdown" => "<p id=n>3</p><script>var n = 3; var t = setInterval(function () { n--; document.getElementById('n').textContent = n; if (n <= 0) { clearInterval(t); location.href = 'NEXT' + 'countdown'; } }, 1000);</script>".into(),
        "/eval-atob" => "<script>eval(atob('B64(location.href = \"NEXT\" + \"eval\";)'));</script>".into(),
        "/packed" => r#"<script>eval(function(p,a,c,k,e,d){e=function(c){return c.toString(36)};if(!''.replace(/^/,String)){while(c--){d[c.toString(a)]=k[c]||c.toString(a)}k=[function(e){return d[e]}];e=function(){return'\\w+'};c=1};while(c--){if(k[c]){p=p.replace(new RegExp('\\b'+e(c)+'\\b','g'),k[c])}}return p}('0.1=\'2://3.4:5/6\'',7,7,'location|href|http|next|test|PORT|packed'.split('|'),0,{}))</script>"#.into(),
        "/new-function" => "<script>new Function('u', 'window.location.replace(u)')('NEXT' + 'new-function');</script>".into(),
        "/push-state" => "<script>setTimeout(function () { history.pushState({}, '', '/pushed'); history.replaceState({}, '', '/replaced'); }, 100);</script>".into(),
        "/link-only" => "<a id=a href=\"NEXT never-clicked\">next</a><script>document.getElementById('a').textContent = 'go on';</script>".into(),
        // Redirects written down but never run: a function never called, a branch not taken,
        // a comment.
        "/never-called" => "<script>function go() { location.replace('NEXT never-called'); }\nif (false) { window.location.href = 'NEXT not-taken'; }\n// location.href = 'NEXT commented';\n</script>".into(),
        "/ua-sniff" => "<script>if (/Windows/.test(navigator.userAgent) && navigator.platform == 'Win32') { location.href = 'NEXT' + 'windows'; } else { location.href = 'NEXT' + 'other'; }</script>".into(),
        "/script-src" => "<html><head><script src=\"/redirect.js\"></script></head><body>x</body></html>".into(),
        "/redirect.js" => "location.href = 'NEXT' + 'script-src';".into(),
        "/chain-1" => "<script>location.href = '/chain-' + (1 + 1);</script>".into(),
        // The frame's target is relative to the frame's own URL.
        "/parent-from-iframe" => "<script>var page = 1;</script><iframe src=\"/sub/frame-parent\"></iframe>".into(),
        "/sub/frame-parent" => "<script>setTimeout(function () { parent.location.href = 'from-frame?x=1'; }, 300);</script>".into(),
        "/url-api" => "<script>var u = new URL('/url-target?a=1', location.href); u.searchParams.set('b', 'x y'); location.href = u.href;</script>".into(),
        "/url-params" => "<script>var p = new URLSearchParams(location.search); location.replace('NEXT' + 'params-' + p.get('to'));</script>".into(),
        // A popup is not a navigation of the page: the page learns whether it opened.
        "/popup" => "<script>var w = window.open('NEXT' + 'popup'); setTimeout(function () { location.href = 'NEXT' + (w ? 'popup-opened' : 'popup-blocked'); }, 100);</script>".into(),
        "/document-write-script" => "<script>document.write('<scr' + 'ipt>var to = \"NEXT\" + \"write-script\"; location.href = to;</scr' + 'ipt>');</script>".into(),
        "/chain-2" => "<script>setTimeout(\"location.replace('NEXT' + 'chained')\", 10);</script>".into(),
        _ => return None,
    };
    Some(page)
}

/// One row: the page, and the hop it must give (`None`: it must give none).
struct Row {
    name: &'static str,
    path: &'static str,
    hop: Option<(&'static str, Via)>,
}

const fn row(name: &'static str, path: &'static str, hop: Option<(&'static str, Via)>) -> Row {
    Row { name, path, hop }
}

/// Every row's expected hop, `NEXT` standing for `http://next.test:PORT/` and `HERE` for the
/// page's own origin.
const TABLE: &[Row] = &[
    row(
        "report's form: zero-delay string timers while parsing, location.replace to https + el",
        "/report?el=a1b2c3",
        Some(("https://gohhs.com/a1b2c3", Via::Javascript)),
    ),
    row(
        "report's form without el: only an href changes at 500 ms",
        "/report",
        None,
    ),
    row(
        "report's form, its https target never answering",
        "/report-stall?el=z9",
        Some(("https://gohhs.com:STALL/z9", Via::Javascript)),
    ),
    row(
        "location.href = atob(...) at 1500 ms",
        "/atob",
        Some(("NEXT atob", Via::Javascript)),
    ),
    row(
        "location.assign",
        "/assign",
        Some(("NEXT assign", Via::Javascript)),
    ),
    row(
        "window.location =",
        "/window-location",
        Some(("NEXT window-location", Via::Javascript)),
    ),
    row(
        "document.location.href =",
        "/document-location",
        Some(("NEXT document-location", Via::Javascript)),
    ),
    row(
        "top.location from a same-origin iframe",
        "/top-from-iframe",
        Some(("NEXT top-from-iframe", Via::Javascript)),
    ),
    row(
        "document.write of a meta refresh",
        "/document-write-meta",
        Some(("NEXT write-meta", Via::MetaRefresh)),
    ),
    row(
        "script-submitted form, GET",
        "/form-get",
        Some(("HERE/submitted?q=1", Via::Javascript)),
    ),
    row(
        "script-submitted form, POST",
        "/form-post",
        Some(("HERE/posted", Via::Javascript)),
    ),
    row(
        "navigation from DOMContentLoaded",
        "/dom-content-loaded",
        Some(("NEXT dcl", Via::Javascript)),
    ),
    row(
        "navigation from load",
        "/load",
        Some(("NEXT load", Via::Javascript)),
    ),
    row(
        "navigation from <body onload>",
        "/body-onload",
        Some(("NEXT body-onload", Via::Javascript)),
    ),
    row(
        "setInterval countdown that navigates at zero",
        "/countdown",
        Some(("NEXT countdown", Via::Javascript)),
    ),
    row(
        "eval(atob(...))",
        "/eval-atob",
        Some(("NEXT eval", Via::Javascript)),
    ),
    row(
        "packed code (p,a,c,k,e,d)",
        "/packed",
        Some(("NEXT packed", Via::Javascript)),
    ),
    row(
        "new Function(...)",
        "/new-function",
        Some(("NEXT new-function", Via::Javascript)),
    ),
    row(
        "history.pushState/replaceState: not a hop",
        "/push-state",
        None,
    ),
    row(
        "a link only a click would follow: not a hop",
        "/link-only",
        None,
    ),
    row(
        "redirects defined but never run: not a hop",
        "/never-called",
        None,
    ),
    row(
        "user-agent sniffing: the profile's browser goes its way",
        "/ua-sniff",
        Some(("NEXT windows", Via::Javascript)),
    ),
    row(
        "a script loaded from <script src>",
        "/script-src",
        Some(("NEXT script-src", Via::Javascript)),
    ),
    row(
        "parent.location from a same-origin iframe, relative to the frame",
        "/parent-from-iframe",
        Some(("HERE/sub/from-frame?x=1", Via::Javascript)),
    ),
    row(
        "new URL(rel, base) and its searchParams",
        "/url-api",
        Some(("HERE/url-target?a=1&b=x+y", Via::Javascript)),
    ),
    row(
        "URLSearchParams(location.search).get",
        "/url-params?to=abc",
        Some(("NEXT params-abc", Via::Javascript)),
    ),
    row(
        "window.open: a popup, not a navigation (none opens)",
        "/popup",
        Some(("NEXT popup-blocked", Via::Javascript)),
    ),
    row(
        "document.write of a script, which runs",
        "/document-write-script",
        Some(("NEXT write-script", Via::Javascript)),
    ),
    row(
        "a script-submitted POST form to another origin",
        "/form-post-cross",
        Some(("NEXT posted", Via::Javascript)),
    ),
    row(
        "a page without script whose same-origin frame navigates it",
        "/frame-only",
        Some(("NEXT frame-only", Via::Javascript)),
    ),
    row(
        "two script pages in a row",
        "/chain-1",
        Some(("HERE/chain-2", Via::Javascript)),
    ),
];

/// Rows the embedded engine must decide itself under `auto` (the rest it may leave to
/// Chromium).
const EMULATED: &[&str] = &[
    "/report?el=a1b2c3",
    "/report",
    "/report-stall?el=z9",
    "/atob",
    "/assign",
    "/window-location",
    "/document-location",
    "/document-write-meta",
    "/form-get",
    "/dom-content-loaded",
    "/load",
    "/body-onload",
    "/countdown",
    "/eval-atob",
    "/packed",
    "/new-function",
    "/push-state",
    "/link-only",
    "/never-called",
    "/ua-sniff",
    "/chain-1",
    "/script-src",
    "/form-post",
    "/top-from-iframe",
    "/parent-from-iframe",
    "/url-api",
    "/url-params?to=abc",
    "/popup",
    "/document-write-script",
    "/form-post-cross",
    "/frame-only",
];

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Fills in a page: `NEXT`, `PORT` and `STALL`, then `B64(...)` with the base64 of its
/// contents.
fn fill(page: &str, port: u16) -> String {
    let next = format!("http://next.test:{port}/");
    let mut s = page
        .replace("NEXT ", &next)
        .replace("NEXT", &next)
        .replace("PORT", &port.to_string())
        .replace("STALL", &stall_port().to_string());
    while let Some(start) = s.find("B64(") {
        let end = start + s[start..].find(')').expect("B64( closed");
        let encoded = b64(&s[start + 4..end]);
        s.replace_range(start..=end, &encoded);
    }
    s
}

/// A listener on 127.0.0.1 that accepts connections and never says a word.
fn stall_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        port
    })
}

/// The tests of this file take turns on the one browser.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test environment with the browser on and every fixture name on 127.0.0.1.
async fn browser_env(hosts: &[&str]) -> TestEnv {
    capture_logs();
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(10_000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(30_000);
    for h in hosts {
        env.dns.set(h, &["127.0.0.1"]);
    }
    env
}

fn resolver(config: &Config) -> Resolver {
    Resolver::with_driver(config, None, Some(shared_browser() as Arc<dyn Driver>)).unwrap()
}

async fn resolve_with(r: &Resolver, url: &str) -> Trace {
    tokio::time::timeout(Duration::from_secs(60), r.resolve(url, false))
        .await
        .unwrap_or_else(|_| panic!("{url}: resolution finished"))
}

fn vias(t: &Trace) -> Vec<Via> {
    t.hops.iter().map(|h| h.via).collect()
}

/// Serves the conformance pages on every name; anything else is a plain landing page.
async fn table_server() -> Server {
    page_server(|path, port| match table_page(path) {
        Some(page) => fill(&page, port),
        None => format!("<html>landing {path}</html>"),
    })
    .await
}

/// The table under both script engines: every row gives the same hop under `auto` as under
/// `chromium`, each script page says which engine ran it, and the embedded engine decides the
/// rows it models without Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_conformance_table() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["blog.test", "next.test", "gohhs.com"]).await;
    // The stalling row's chain goes on over HTTP to a target that never answers.
    env.config.limits.hop_timeout = std::time::Duration::from_millis(4000);
    let srv = table_server().await;
    let p = srv.port();
    let here = format!("http://blog.test:{p}");
    let mut failures = Vec::new();
    for kind in [ScriptEngineKind::Auto, ScriptEngineKind::Chromium] {
        env.config.browser.script_engine = kind;
        let r = resolver(&env.config);
        failures.extend(table_rows(&r, &here, p, kind).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        TABLE.len() * 2,
        failures.join("\n")
    );
}

/// Where a row's page POSTs its form, if it does.
fn posted_to(path: &str, here: &str, port: u16) -> Option<String> {
    match path {
        "/form-post" => Some(format!("{here}/posted")),
        "/form-post-cross" => Some(format!("http://next.test:{port}/posted")),
        _ => None,
    }
}

async fn table_rows(r: &Resolver, here: &str, p: u16, kind: ScriptEngineKind) -> Vec<String> {
    let mut failures = Vec::new();
    for row in TABLE {
        let url = format!("{here}{}", row.path);
        let t = resolve_with(r, &url).await;
        let engine = t.hops[0].engine;
        let want_engine = match kind {
            ScriptEngineKind::Auto if EMULATED.contains(&row.path) => Some(Engine::Emulated),
            ScriptEngineKind::Auto => engine,
            ScriptEngineKind::Chromium => Some(Engine::Chromium),
        };
        if engine.is_none() || engine != want_engine {
            failures.push(format!(
                "{kind:?} {}: ran in {engine:?}, wanted {want_engine:?}",
                row.name
            ));
        }
        if row.path == "/chain-1" {
            // The second page's script is run as well: the chain goes on to its target.
            let second = t
                .hops
                .get(2)
                .map(|h| (h.url.as_str(), h.via, t.hops[1].engine));
            let want = format!("http://next.test:{p}/chained");
            let want_engine = match kind {
                ScriptEngineKind::Auto => Engine::Emulated,
                ScriptEngineKind::Chromium => Engine::Chromium,
            };
            if second != Some((want.as_str(), Via::Javascript, Some(want_engine))) {
                failures.push(format!(
                    "{kind:?} {}: second page gave {second:?}",
                    row.name
                ));
            }
        }
        if let Some(posted) = posted_to(row.path, here, p) {
            // Followed as a POST of the form's body with the Origin and Referer a browser
            // sends (strict-origin-when-cross-origin: the page's URL to its own origin, the
            // origin alone elsewhere), which the fixture answers with a 303 to a page naming
            // what it received; that one is a GET.
            let hops: Vec<_> = t.hops.iter().map(|h| (h.url.as_str(), h.method)).collect();
            let referer = if posted.starts_with(here) {
                url.clone()
            } else {
                format!("{here}/")
            };
            let sent = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("origin", here)
                .append_pair("referer", &referer)
                .finish();
            let at = &posted[..posted.rfind('/').unwrap_or(0)];
            let seen = format!("{at}/post-seen?q=1&{sent}");
            let want = vec![
                (url.as_str(), None),
                (posted.as_str(), Some(Method::Post)),
                (seen.as_str(), None),
            ];
            if hops != want {
                failures.push(format!("{kind:?} {}: hops {hops:?}", row.name));
            }
        }
        let got = t.hops.get(1).map(|h| (h.url.clone(), h.via));
        let want = row.hop.map(|(u, via)| {
            let u = if let Some(rest) = u.strip_prefix("NEXT ") {
                format!("http://next.test:{p}/{rest}")
            } else {
                u.replace("HERE", here)
                    .replace("STALL", &stall_port().to_string())
            };
            (u, via)
        });
        if got != want {
            failures.push(format!(
                "{kind:?} {}: wanted {want:?}, got {got:?}; reason {:?}",
                row.name, t.hops[0].reason
            ));
        }
    }
    failures
}

/// The browser presents the HTTP client's identity, to the server and to the page's script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_is_the_same_visitor_as_the_http_client() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["blog.test", "next.test"]).await;
    // What this shows is Chromium's: the embedded engine would answer first.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let s2 = seen.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let headers: HashMap<String, String> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let path = req.uri().path().to_string();
        if path == "/whoami" {
            s2.lock().unwrap().push(headers);
        }
        async move {
            match path.as_str() {
                "/whoami" => html(
                    "<script>var q = 'ua=' + encodeURIComponent(navigator.userAgent) + '&wd=' + navigator.webdriver + '&langs=' + encodeURIComponent(navigator.languages.join(',')) + '&platform=' + encodeURIComponent(navigator.platform) + '&w=' + window.innerWidth + '&h=' + window.innerHeight + '&sw=' + screen.width + '&sh=' + screen.height; setTimeout(function () { location.href = '/seen?' + q; }, 10);</script>",
                ),
                _ => html("<html>seen</html>"),
            }
        }
    })
    .await;
    let r = resolver(&env.config);
    let t = resolve_with(&r, &format!("http://blog.test:{}/whoami", srv.port())).await;
    let hop = t.hops.get(1).unwrap_or_else(|| panic!("a hop: {t:#?}"));
    let url = url::Url::parse(&hop.url).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let http = &env.config.http;
    assert_eq!(q["ua"], http.user_agent, "navigator.userAgent");
    assert!(!q["ua"].contains("Headless"));
    assert_eq!(q["wd"], "false", "navigator.webdriver");
    assert_eq!(q["langs"], "en-US,en", "navigator.languages");
    assert_eq!(q["platform"], "Win32", "navigator.platform");
    assert_eq!(
        (
            q["w"].as_str(),
            q["h"].as_str(),
            q["sw"].as_str(),
            q["sh"].as_str()
        ),
        ("1366", "657", "1366", "768"),
        "a 1366x768 desktop screen, the window inside it"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "fetched over HTTP, then in the browser");
    for h in &requests {
        assert_eq!(h["user-agent"], http.user_agent, "User-Agent header: {h:?}");
        assert_eq!(
            h["accept-language"], http.accept_language,
            "Accept-Language: {h:?}"
        );
    }
}

/// Fetches `WHAT` HOW_MANY times at once, counts the bytes its script receives, then goes to
/// `/got?bytes=N`.
const PULL: &str = "<script>var total = 0, jobs = [];
for (var i = 0; i < HOW_MANY; i++) {
  jobs.push(fetch('WHAT?n=' + i).then(function (r) {
    var reader = r.body.getReader();
    function step() { return reader.read().then(function (c) { if (c.done) { return; } total += c.value.length; return step(); }); }
    return step();
  }).catch(function () {}));
}
Promise.all(jobs).then(function () { location.href = '/got?bytes=' + total; });
</script>";

/// How many requests for `path` the page's hop lists as downloads refused.
fn refused(t: &Trace, path: &str) -> usize {
    t.hops[0]
        .blocked_requests
        .iter()
        .map(ToString::to_string)
        .filter(|r| r.contains(path) && r.contains("download refused"))
        .count()
}

/// What a [`PULL`] page said its script received.
fn got_bytes(t: &Trace) -> u64 {
    let hop = t
        .hops
        .get(1)
        .unwrap_or_else(|| panic!("the page reports: {t:#?}"));
    let url = url::Url::parse(&hop.url).unwrap();
    let bytes = url.query_pairs().find(|(k, _)| k == "bytes");
    bytes.expect("bytes=").1.parse().unwrap()
}

/// The sealed browser's HTTP side: sub-requests to denied addresses (names and every IPv6
/// literal form) are refused and listed; a page's script can pull no payload, however many
/// parallel requests it makes; a main-frame download stays the final hop; a page without
/// script never reaches the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reaches_nothing_past_the_gate() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["blog.test", "next.test"]).await;
    env.dns.set("internal.test", &["127.0.0.2"]);
    env.config.limits.max_body_bytes = 65_536;
    env.config.browser.max_page_bytes = 1 << 20;
    let denied = loop {
        let s = Sentinel::start("127.0.0.2", 0).await.unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", s.addr.port())).is_ok() {
            break s;
        }
    };
    let sp = denied.addr.port();
    let payload_sent = Arc::new(AtomicU64::new(0));
    let big_sent = Arc::new(AtomicU64::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    let (ps, bs, h2) = (payload_sent.clone(), big_sent.clone(), hits.clone());
    let srv = Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        h2.fetch_add(1, Ordering::SeqCst);
        let (ps, bs) = (ps.clone(), bs.clone());
        async move {
            match path.as_str() {
                "/to-denied" => html(&format!(
                    "<script>fetch('http://internal.test:{sp}/beacon').catch(function(){{}}); fetch('http://[::1]:{sp}/v6').catch(function(){{}}); fetch('http://[::ffff:127.0.0.9]:{sp}/mapped').catch(function(){{}}); setTimeout(function(){{ location.href = 'http://127.0.0.' + '2:{sp}/x'; }}, 300);</script>"
                )),
                // The issue's case: 16 parallel fetches of a 50 MiB attachment; the page
                // then says how many bytes its script got.
                "/pull" => html(&PULL.replace("WHAT", "/payload.exe").replace("HOW_MANY", "16")),
                "/payload.exe" => {
                    let mut r = endless("application/octet-stream", ps);
                    r.headers_mut().insert(
                        "content-disposition",
                        "attachment; filename=\"setup.exe\"".parse().unwrap(),
                    );
                    r
                }
                // The same payload behind a head the proxy does not parse (more headers than
                // it reads): only the browser's own hold on responses can refuse it.
                "/pull-odd" => html(&PULL.replace("WHAT", "/odd.exe").replace("HOW_MANY", "1")),
                "/odd.exe" => {
                    let mut r = endless("application/octet-stream", ps);
                    for i in 0..150 {
                        r.headers_mut().append(
                            "x-pad",
                            http::HeaderValue::from_str(&i.to_string()).unwrap(),
                        );
                    }
                    r.headers_mut().insert(
                        "content-disposition",
                        "attachment; filename=\"odd.exe\"".parse().unwrap(),
                    );
                    r
                }
                // Not a download by its headers, but endless: the byte budget stops it.
                "/pull-big" => html(&PULL.replace("WHAT", "/big.txt").replace("HOW_MANY", "8")),
                "/big.txt" => endless("text/plain", bs),
                "/download-page" => html("<script>setTimeout(function(){ location.href = '/setup' + '.zip'; }, 100);</script>"),
                "/setup.zip" => stall_after_headers("application/zip", None),
                "/no-script" => html("<html><body>plain</body></html>"),
                _ => html("<html>landing</html>"),
            }
        }
    })
    .await;
    let p = srv.port();
    let r = resolver(&env.config);

    // Script hops and sub-requests to denied addresses: recorded, blocked, never connected.
    let t = resolve_with(&r, &format!("http://blog.test:{p}/to-denied")).await;
    assert_eq!(t.outcome, Outcome::Blocked, "to denied: {t:#?}");
    assert_eq!(t.hops[1].via, Via::Javascript);
    assert_eq!(t.hops[1].url, format!("http://127.0.0.2:{sp}/x"));
    assert!(t.hops[1].blocked);
    let blocked: Vec<String> = t.hops[0]
        .blocked_requests
        .iter()
        .map(ToString::to_string)
        .collect();
    for (what, needle) in [
        ("a name resolving to a denied address", "internal.test"),
        ("IPv6 loopback", "[::1]"),
        (
            "v4-mapped loopback (the URL spells it in hex)",
            "[::ffff:7f00:9]",
        ),
    ] {
        assert!(
            blocked
                .iter()
                .any(|r| r.contains(needle) && r.contains("loopback")),
            "{what} is listed as blocked: {blocked:?}"
        );
    }
    assert_eq!(
        denied.connections(),
        0,
        "the denied address saw no connection"
    );

    // Payloads pulled by the page's script: refused at their headers, listed; the page's
    // script got none of their bytes.
    let t = resolve_with(&r, &format!("http://blog.test:{p}/pull")).await;
    assert_eq!(
        refused(&t, "/payload.exe"),
        16,
        "every refused download is listed: {t:#?}"
    );
    assert_eq!(got_bytes(&t), 0, "the page's script got no payload byte");
    let sent = payload_sent.load(Ordering::SeqCst);
    assert!(
        sent < 100 << 20,
        "16 x 50 MiB asked for, {sent} bytes handed to the sockets (kernel buffers)"
    );

    // A download whose head the proxy passes on unread: refused by the browser's hold on
    // every response (CDP Fetch at the response stage, as for HTTPS inside a tunnel).
    let t = resolve_with(&r, &format!("http://blog.test:{p}/pull-odd")).await;
    assert_eq!(
        refused(&t, "/odd.exe"),
        1,
        "refused in the browser and listed: {t:#?}"
    );
    assert_eq!(got_bytes(&t), 0, "the page's script got no payload byte");

    // Bodies that are no download but never end: the visit's byte budget cuts them.
    let t = resolve_with(&r, &format!("http://blog.test:{p}/pull-big")).await;
    assert!(
        t.hops[0]
            .blocked_requests
            .iter()
            .any(|r| r.to_string().contains("byte budget")),
        "the spent budget is listed: {t:#?}"
    );
    let got = got_bytes(&t);
    assert!(
        got <= 1 << 20,
        "the page got {got} bytes over 8 endless responses, within its 1 MiB budget"
    );
    assert!(big_sent.load(Ordering::SeqCst) > 0);

    // A main-frame download: the navigation is the final hop, its body never fetched.
    let t = resolve_with(&r, &format!("http://blog.test:{p}/download-page")).await;
    assert_eq!(t.outcome, Outcome::Download, "download page: {t:#?}");
    assert_eq!(vias(&t), vec![Via::Input, Via::Javascript]);

    // A page without script never goes to the browser.
    let before = hits.load(Ordering::SeqCst);
    let t = resolve_with(&r, &format!("http://blog.test:{p}/no-script")).await;
    assert_eq!(t.hops.len(), 1);
    assert_eq!(
        hits.load(Ordering::SeqCst) - before,
        1,
        "fetched once, over HTTP only"
    );
}

/// Pages that misbehave end at their limit and leave the browser serving the next one; a
/// browser that dies or hangs is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pages_and_a_failing_browser_end_cleanly() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["blog.test", "next.test"]).await;
    // What this shows is Chromium's: the embedded engine would answer first.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    // Room for the hang case: a stuck browser is noticed after a few seconds.
    env.config.limits.hop_timeout = std::time::Duration::from_millis(20_000);
    let popups = Arc::new(AtomicUsize::new(0));
    let never_seen = Arc::new(tokio::sync::Notify::new());
    let (pc, nv) = (popups.clone(), never_seen.clone());
    let srv = Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        if path.starts_with("/popup/") {
            pc.fetch_add(1, Ordering::SeqCst);
        }
        let nv = nv.clone();
        async move {
            match path.as_str() {
                "/never" => {
                    nv.notify_one();
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                "/spin" => html("<script>while (true) {}</script>"),
                "/allocate" => html("<script>var a = []; while (true) { a.push(new Array(1000000).fill(a.length)); }</script>"),
                "/popups" => html("<script>for (var i = 0; i < 300; i++) { window.open('/popup/' + i); }</script>"),
                "/slow-fetch" => html("<script>fetch('/never').then(function(){ location.href = '/unre' + 'achable'; });</script>"),
                "/blog" => html(&REPORT.replace("https://gohhs.com/", "/went/")),
                _ => html(&format!("<html>landing {path}</html>")),
            }
        }
    })
    .await;
    let p = srv.port();
    let chromium = shared_browser();
    let r = resolver(&env.config);
    let works = |label: &'static str| {
        let r = &r;
        async move {
            let t = resolve_with(r, &format!("http://blog.test:{p}/blog?el={label}")).await;
            assert!(
                t.final_url.ends_with(&format!("/went/{label}")),
                "{label}: {t:#?}"
            );
        }
    };

    let mut short = env.config.clone();
    short.limits.hop_timeout = std::time::Duration::from_millis(3000);
    let rs = resolver(&short);
    for (page, what) in [
        ("/spin", "an endless loop"),
        ("/allocate", "endless allocation"),
        ("/popups", "300 pop-ups"),
    ] {
        let t = resolve_with(&rs, &format!("http://blog.test:{p}{page}")).await;
        assert_eq!(t.outcome, Outcome::Landed, "{what}: {t:#?}");
        assert_eq!(t.hops.len(), 1, "{what}: no hop");
        works("after-bad-page").await;
    }
    assert_eq!(popups.load(Ordering::SeqCst), 0, "no pop-up was opened");

    // Chromium killed during a resolution: the visit is retried on a new browser and the
    // next resolution works.
    let launches = chromium.launches();
    let slow = {
        let rs = Arc::new(resolver(&env.config));
        let url = format!("http://blog.test:{p}/slow-fetch");
        tokio::spawn(async move { rs.resolve(&url, false).await })
    };
    if tokio::time::timeout(Duration::from_secs(30), never_seen.notified())
        .await
        .is_err()
    {
        panic!("the page never asked for /never: {:#?}", slow.await);
    }
    let pid = chromium.pid().expect("a browser runs");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let t = tokio::time::timeout(Duration::from_secs(60), slow)
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.error.is_none(),
        "the restart succeeded, so no browser error: {t:#?}"
    );
    assert_eq!(chromium.launches(), launches + 1, "one restart: {t:#?}");
    works("after-crash").await;

    // A Chromium that hangs (stopped, still alive) stops answering: it is detected,
    // replaced, and the resolution still gets its hop.
    let launches = chromium.launches();
    let pid = chromium.pid().expect("a browser runs");
    std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    let t = resolve_with(&r, &format!("http://blog.test:{p}/blog?el=after-hang")).await;
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        t.final_url.ends_with("/after-hang"),
        "after the hang: {t:#?}"
    );
    assert_eq!(
        chromium.launches(),
        launches + 1,
        "the hung browser was replaced"
    );
}

/// A one-shot `hoptrace resolve` with a 2 s hop limit on a cold start: Chromium's launch and
/// the page's preparation are not charged to the hop, so the report's page still gives its
/// hop — here even with a Chromium that takes 2.5 s to start (a wrapper that sleeps first, as
/// a loaded machine would), which a launch charged to the hop could never fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_one_shot_resolve_keeps_the_hop_limit_for_the_page() {
    let _turn = TURN.lock().await;
    let env = browser_env(&["blog.test", "gohhs.com"]).await;
    let srv = table_server().await;
    let chromium = hoptrace::browser::find_chromium(None).unwrap();
    let slow = env.dir.path().join("slow-chromium");
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep 2.5\nexec {} \"$@\"\n", chromium.display()),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (name, path) in [
        ("Debian's Chromium", chromium),
        ("a Chromium slow to start", slow),
    ] {
        let cfg = env.dir.path().join("cold.toml");
        let mut config = env.config.clone();
        config.limits.hop_timeout = std::time::Duration::from_millis(2000);
        config.browser.chrome_path = Some(path);
        std::fs::write(&cfg, config_toml(&config, "")).unwrap();
        let url = format!("http://blog.test:{}/report?el=cold", srv.port());
        let cfg_arg = cfg.display().to_string();
        let (out, err, ok) = tokio::task::spawn_blocking(move || {
            run_hoptrace(&[
                "resolve",
                "--json",
                "--no-store",
                "--config",
                &cfg_arg,
                &url,
            ])
        })
        .await
        .unwrap();
        assert!(ok, "{name}: {err}");
        let t: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
        assert_eq!(
            t["hops"][1]["url"], "https://gohhs.com/cold",
            "{name}: the report's hop on a cold start: {t:#}"
        );
        assert_eq!(t["hops"][1]["via"], "javascript");
    }
}

#[tokio::test]
async fn without_chromium_the_trace_says_so() {
    let mut env = TestEnv::new().await;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html(REPORT) }).await;
    env.config.browser.enabled = true;
    env.config.browser.chrome_path = Some("/nonexistent/chromium".into());
    let resolve = |kind: ScriptEngineKind| {
        let mut config = env.config.clone();
        config.browser.script_engine = kind;
        let url = format!("http://blog.test:{}/report?el=x", srv.port());
        async move {
            let r = Resolver::new(&config, None).unwrap();
            r.resolve(&url, false).await
        }
    };
    let t = resolve(ScriptEngineKind::Chromium).await;
    assert_eq!(t.outcome, Outcome::Landed);
    let reason = t.hops[0].reason.to_string();
    assert!(
        reason.contains("no browser available") && reason.contains("/nonexistent/chromium"),
        "{reason}"
    );
    // Under `auto` the embedded engine decides the page without any browser.
    let t = resolve(ScriptEngineKind::Auto).await;
    assert_eq!(t.hops[0].engine, Some(Engine::Emulated), "{t:#?}");
    assert_eq!(t.hops[1].url, "https://gohhs.com/x");
}

/// A fixture whose page at each path is `page(path, its own port)`, as HTML.
async fn page_server(page: impl Fn(&str, u16) -> String + Send + Sync + 'static) -> Server {
    let port = Arc::new(OnceLock::<u16>::new());
    let p = port.clone();
    let page = Arc::new(page);
    let srv = Server::start("127.0.0.1", move |req| {
        let body = page(req.uri().path(), *p.get().unwrap());
        async move {
            // A form's POST is answered with a 303 to a page that names the body it got, and
            // the Origin and Referer it came with.
            if req.method() == http::Method::POST {
                use http_body_util::BodyExt;
                let header = |name| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string()
                };
                let sent = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("origin", &header(http::header::ORIGIN))
                    .append_pair("referer", &header(http::header::REFERER))
                    .finish();
                let got = req.into_body().collect().await.map(|b| b.to_bytes());
                let got = got.unwrap_or_default();
                let seen = [b"/post-seen?".as_slice(), &got, b"&", sent.as_bytes()].concat();
                return redirect(303, &seen);
            }
            html(&body)
        }
    })
    .await;
    port.set(srv.port()).unwrap();
    srv
}

/// A page that cloaks in script, by what the browser shows: a phone (touch, a narrow screen,
/// an iPhone User-Agent) is sent to one page, a visitor in Tokyo's time zone to another, a
/// desktop stays. Each profile's browser visit shows its own branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_is_its_own_visitor_in_the_browser() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["touch.test", "phone.test", "tokyo.test"]).await;
    env.config.profiles.insert(
        "tokyo".into(),
        hoptrace::config::Profile {
            user_agent: env.config.http.user_agent.clone(),
            accept_language: Some("ja-JP,ja;q=0.9".into()),
            platform: None,
            viewport: [1366, 657],
            mobile: false,
            timezone: Some("Asia/Tokyo".into()),
            referer: None,
        },
    );
    let srv = page_server(|path, port| match path {
        "/" => format!(
            r#"<html><script>
                    var phone = navigator.maxTouchPoints > 0 && screen.width < 500
                        && navigator.userAgent.indexOf('iPhone') > 0;
                    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
                    // Built at run time, so only running the page finds the way.
                    var to = function (n) {{ return 'http://' + [n, 'test'].join('.') + ':{port}/'; }};
                    if (phone) location.replace(to('phone'));
                    else if (tz === 'Asia/Tokyo') location.replace(to('tokyo'));
                    </script>desktop</html>"#
        ),
        _ => "<html>branch</html>".into(),
    })
    .await;
    let r = resolver(&env.config);
    let url = format!("http://touch.test:{}/", srv.port());
    let found = tokio::time::timeout(
        Duration::from_secs(90),
        hoptrace::compare::compare(
            &r,
            &url,
            &[
                "windows-chrome".into(),
                "iphone-safari".into(),
                "tokyo".into(),
            ],
            &[],
        ),
    )
    .await
    .expect("compared in time")
    .unwrap();
    let hosts: Vec<&str> = found
        .cells
        .iter()
        .map(|c| c.trace.final_host.as_str())
        .collect();
    assert_eq!(
        hosts,
        ["touch.test", "phone.test", "tokyo.test"],
        "{found:#?}"
    );
    assert_eq!(found.cells[1].trace.hops[1].via, Via::Javascript);
    assert!(found.cloaked);
}

/// The browser's traffic through an egress point: its job proxy dials through the point's
/// SOCKS5 proxy, which is asked for the vetted address of the page and of the hop its script
/// makes — nothing else, and never a name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_goes_out_through_an_egress_point() {
    use common::proxies::{Kind, TestProxy};
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["js.test", "next.test"]).await;
    // What this shows is Chromium's: the embedded engine would answer first.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    let socks = TestProxy::start(Kind::Socks5, "127.0.0.1", "127.0.0.2").await;
    env.config.egress.points.insert(
        "nl".into(),
        hoptrace::config::Point {
            proxy: socks.url(Kind::Socks5),
            country: "NL".into(),
            nameservers: vec![],
        },
    );
    let srv = page_server(|path, port| match path {
        "/" => format!(
            "<html><script>location.replace('http://' + ['next', 'test'].join('.') + ':{port}/end');</script></html>"
        ),
        _ => "<html>end</html>".into(),
    })
    .await;
    let r = resolver(&env.config);
    let url = format!("http://js.test:{}/", srv.port());
    let t = tokio::time::timeout(
        Duration::from_secs(60),
        r.resolve_as(&url, "windows-chrome", "nl", false),
    )
    .await
    .expect("resolved in time")
    .unwrap()
    .trace;
    assert_eq!(t.final_host, "next.test", "{t:#?}");
    assert_eq!(t.hops[1].via, Via::Javascript);
    let asked = socks.asked();
    let fixture = format!("127.0.0.1:{}", srv.port());
    // Two hops fetched by the HTTP client, and at least the page loaded by the browser.
    assert!(
        asked.len() >= 3,
        "the fetcher and the browser both went through it: {asked:?}"
    );
    assert!(asked.iter().all(|a| a == &fixture), "{asked:?}");
}

/// The processes of the tree under `root` (itself included), from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// The TCP ports `pids` listen on (their sockets' inodes matched against /proc/net/tcp*).
fn listening_ports(pids: &[u32]) -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy().into_owned();
                if let Some(inode) = link.strip_prefix("socket:[") {
                    inodes.insert(inode.trim_end_matches(']').to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Column 3 is the state (0A: listening), column 9 the inode.
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                ports.push(cols[1].to_string());
            }
        }
    }
    ports
}

/// Only hoptrace can drive its browser: Chromium is controlled over a pipe and listens on no
/// port that another local user could connect to; its sandbox is on (renderers run under
/// seccomp); and when hoptrace runs as root the browser runs as a user of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_other_local_process_can_drive_the_browser() {
    let _turn = TURN.lock().await;
    let env = browser_env(&["blog.test"]).await;
    let srv = page_server(|path, _| match path {
        "/blog" => REPORT.replace("https://gohhs.com/", "/went/"),
        _ => format!("<html>landing {path}</html>"),
    })
    .await;
    let r = resolver(&env.config);
    let t = resolve_with(&r, &format!("http://blog.test:{}/blog?el=x", srv.port())).await;
    assert!(t.final_url.ends_with("/went/x"), "{t:#?}");
    let pid = shared_browser().pid().expect("the browser runs");

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--remote-debugging-pipe"), "{cmdline}");
    assert!(!cmdline.contains("--remote-debugging-port"), "{cmdline}");
    assert!(!cmdline.contains("--no-sandbox"), "{cmdline}");
    let tree = process_tree(pid);
    let ports = listening_ports(&tree);
    assert!(ports.is_empty(), "the browser listens on {ports:?}");

    let status =
        |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let renderers: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
        })
        .collect();
    assert!(!renderers.is_empty(), "a renderer runs under {pid}");
    for renderer in renderers {
        let s = status(renderer);
        assert!(
            s.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]),
            "renderer {renderer} is not sandboxed:\n{s}"
        );
    }
    let root = status(std::process::id())
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if root {
        let id = hoptrace::browser::launch::BROWSER_ID.to_string();
        let uid = status(pid)
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap();
        assert_eq!(uid, [id.as_str(); 4].join(" "), "the browser's uids");
    }
}

/// One trust for both: the report's page over HTTPS with a private CA (`tls.extra_ca_files`)
/// gives its script hop in the browser as it does in the HTTP client, and the HTTPS landing
/// page gets its screenshot. A browser not given the CA makes that hop a `tls` error, never a
/// landing (nor a screenshot of Chromium's certificate interstitial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_pages_are_trusted_as_the_http_client_trusts_them() {
    let _turn = TURN.lock().await;
    let mut env = browser_env(&["blog.test"]).await;
    let pki = pki(&["blog.test"]);
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    env.config.tls.extra_ca_files = vec![ca.clone()];
    env.config.browser.screenshots = true;
    let srv = Server::start_on(([127, 0, 0, 1], 0).into(), Some(pki.acceptor), |req| {
        let path = req.uri().path().to_string();
        async move {
            match path.as_str() {
                "/blog" => html(&REPORT.replace("https://gohhs.com/", "/went/")),
                _ => html(&format!(
                    "<html><title>landing</title>landing {path}</html>"
                )),
            }
        }
    })
    .await;
    let url = format!("https://blog.test:{}/blog?el=x", srv.port());

    let trusting: Arc<dyn Driver> = Arc::new(hoptrace::browser::oxide::Oxide::trusting(
        None,
        hoptrace::browser::Identity::from_config(&Config::default().http),
        vec![ca],
    ));
    // The script page decided by each engine; the landing page's screenshot by Chromium.
    for kind in [ScriptEngineKind::Auto, ScriptEngineKind::Chromium] {
        env.config.browser.script_engine = kind;
        let r = Resolver::with_driver(&env.config, None, Some(trusting.clone())).unwrap();
        let t = resolve_with(&r, &url).await;
        assert_eq!(t.outcome, Outcome::Landed, "{kind:?}: {t:#?}");
        assert_eq!(vias(&t), [Via::Input, Via::Javascript], "{kind:?}: {t:#?}");
        assert!(t.final_url.starts_with("https://") && t.final_url.ends_with("/went/x"));
        assert!(
            t.screenshot.is_some(),
            "{kind:?}: the HTTPS landing page's screenshot"
        );
    }
    drop(trusting);

    // A browser not given the CA: the script page it must run is a tls error.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    let t = resolve_with(&resolver(&env.config), &url).await;
    assert_eq!(t.outcome, Outcome::Error, "{t:#?}");
    let e = t.error.as_ref().expect("an error");
    assert_eq!(e.kind, hoptrace::trace::ErrorKind::Tls, "{e:?}");
    assert!(e.message.contains("CERT"), "{e:?}");
    assert!(t.screenshot.is_none());
}
