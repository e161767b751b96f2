//! Evidence an analyst can look at: the landing page's screenshot, taken in the sandboxed
//! browser (same proxy, limits and identity), kept with the Trace and absent for a download;
//! the chain's HTTP records as HAR (validated by a HAR reader in tests/tls.rs and here).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hoptrace::browser::Driver;
use hoptrace::chain::Resolver;
use hoptrace::trace::Outcome;

const LANDING: &str = r#"<!doctype html><html><head><title>Sign in &amp; verify</title></head>
<body style="background:#1d4ed8;color:white;font:32px sans-serif">
<h1>Microsoft account</h1><p>Enter your password</p>
<img src="/payload.exe" width="10" height="10">
<script>fetch('/payload.exe').catch(function(){});</script>
</body></html>"#;

/// The PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A landed page has its screenshot (in the Trace's evidence, in the store, as the visitor's
/// viewport), taken through the page's proxy: the payload its page pulls is refused before
/// its body. A download, and a page answered 404, have none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landed_page_has_its_screenshot_and_a_download_none() {
    capture_logs();
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.browser.screenshots = true;
    env.config.browser.max_page_bytes = 1 << 20;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(10_000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(30_000);
    env.dns.set("login.test", &["127.0.0.1"]);
    let sent = Arc::new(AtomicU64::new(0));
    let s = sent.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        let s = s.clone();
        async move {
            match path.as_str() {
                "/start" => redirect(302, b"/landing"),
                "/landing" => html(LANDING),
                "/payload.exe" | "/file.exe" => {
                    let mut r = endless("application/octet-stream", s);
                    r.headers_mut().insert(
                        "content-disposition",
                        "attachment; filename=\"setup.exe\"".parse().unwrap(),
                    );
                    r
                }
                _ => {
                    let mut r = html("<title>gone</title>");
                    *r.status_mut() = http::StatusCode::NOT_FOUND;
                    r
                }
            }
        }
    })
    .await;
    let store = hoptrace::store::Store::open_sled(env.config.storage.sled_path().unwrap()).unwrap();
    let r = Resolver::with_driver(
        &env.config,
        Some(store.clone()),
        Some(shared_browser() as Arc<dyn Driver>),
    )
    .unwrap();
    let base = format!("http://login.test:{}", srv.port());
    let t = tokio::time::timeout(
        Duration::from_secs(60),
        r.resolve(&format!("{base}/start"), false),
    )
    .await
    .unwrap();
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    let e = t.evidence.as_ref().expect("a landed chain has evidence");
    assert_eq!(e.title.as_deref(), Some("Sign in & verify"));
    assert_eq!(
        e.body_sha256.as_deref(),
        Some(hoptrace::record::sha256_hex(LANDING.as_bytes()).as_str())
    );
    let png = t.screenshot.clone().expect("the landing page's screenshot");
    let (width, height) = png_size(&png);
    assert_eq!(width, 1366, "the visitor's viewport");
    assert!((600..=768).contains(&height), "{height}");
    if let Some(dir) = std::env::var_os("HOPTRACE_KEEP_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join("landing.png"), &png).unwrap();
    }
    assert!(png.len() as u64 <= env.config.browser.max_screenshot_bytes);
    assert_eq!(e.screenshot_bytes, Some(png.len() as u64));
    assert_eq!(
        e.screenshot_sha256.as_deref(),
        Some(hoptrace::record::sha256_hex(&png).as_str())
    );
    // Taken through the gate: the page's pull of the payload was refused at its headers.
    let landing = t.hops.last().unwrap();
    assert!(
        landing
            .blocked_requests
            .iter()
            .map(ToString::to_string)
            .any(|b| b.contains("/payload.exe") && b.contains("download refused")),
        "{:?}",
        landing.blocked_requests
    );
    // (What its server wrote into socket buffers before the refusal is not what the page
    // got: tests/browser.rs has the page report what its script received, which is nothing.)
    assert!(sent.load(Ordering::SeqCst) > 0, "the payload was asked for");
    // Kept with the Trace.
    let (stored, _) = store
        .latest(&format!("{base}/start"))
        .await
        .unwrap()
        .unwrap();
    let sha = stored.evidence.unwrap().screenshot_sha256.unwrap();
    assert_eq!(
        store.screenshot(&sha).await.unwrap().as_deref(),
        Some(&png[..])
    );

    // A download: known from its headers, never opened in the browser, no screenshot.
    let d = r.resolve(&format!("{base}/file.exe"), false).await;
    assert_eq!(d.outcome, Outcome::Download, "{d:#?}");
    assert!(d.screenshot.is_none() && d.evidence.is_none(), "{d:#?}");
    // An error page is where the chain ended, but not a page worth a picture.
    let gone = r.resolve(&format!("{base}/nothing"), false).await;
    assert!(gone.screenshot.is_none(), "{gone:#?}");
}

/// `hoptrace resolve --screenshot DIR --har FILE`: the landing page's picture in DIR, the
/// chains' records in FILE (a page per link), whatever `browser.screenshots` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_writes_screenshots_and_a_har() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(10_000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(30_000);
    env.dns.set("login.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/start" => redirect(302, b"/landing"),
            _ => html(LANDING),
        }
    })
    .await;
    let cfg = env.write_config("");
    let dir = env.dir.path().join("shots");
    let har = env.dir.path().join("chains.har");
    let start = format!("http://login.test:{}/start", srv.port());
    let other = format!("http://login.test:{}/other", srv.port());
    let (out, err, ok) = run_hoptrace(&[
        "resolve",
        "--config",
        cfg.to_str().unwrap(),
        "--screenshot",
        dir.to_str().unwrap(),
        "--har",
        har.to_str().unwrap(),
        &start,
        &other,
    ]);
    assert!(ok, "{out}\n{err}");
    let shots: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Both links land on the same page: one picture, named by its host and hash, twice said.
    assert_eq!(shots.len(), 1, "{shots:?}\n{err}");
    let name = shots[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with("login.test-") && name.ends_with(".png"),
        "{name}"
    );
    assert_eq!(png_size(&std::fs::read(&shots[0]).unwrap()).0, 1366);
    assert_eq!(err.matches("screenshot of").count(), 2, "{err}");
    let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = common::tools::check_har(&har);
    assert_eq!(
        entries,
        vec![
            format!("page_1 {start} 302"),
            format!("page_1 http://login.test:{}/landing 200", srv.port()),
            format!("page_2 {other} 200"),
        ]
    );
}

/// The children of `pid` whose command line mentions `what`.
fn children(pid: u32, what: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            let ppid = status.lines().find(|l| l.starts_with("PPid:"));
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            ppid.and_then(|l| l.split_whitespace().nth(1)) == Some(&pid.to_string())
                && String::from_utf8_lossy(&cmd).contains(what)
        })
        .collect()
}

/// Chromium goes with hoptrace however hoptrace goes: `serve` killed with SIGKILL (no
/// destructor runs) leaves no browser behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_no_browser_behind() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.browser.screenshots = true;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(10_000);
    env.dns.set("login.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html(LANDING) }).await;
    let cfg = env.write_config("");
    let (mut serving, addr) = serve_binary(&cfg);
    let url = format!("http://login.test:{}/", srv.port());
    let r = post(addr, "/v1/resolve", serde_json::json!({ "url": url }), None).await;
    assert_eq!(r.status, 200);
    let browsers = children(serving.id(), "chromium");
    assert_eq!(browsers.len(), 1, "the server's Chromium");
    serving.0.kill().unwrap();
    serving.0.wait().unwrap();
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    for _ in 0..50 {
        if gone(browsers[0]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Chromium {} outlived its server", browsers[0]);
}
