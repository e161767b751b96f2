//! The browser stage with real Chromium, real loopback servers and the local DNS responder.
//! One Chromium serves every case (it is the slow part on 2 cores), so the cases run in
//! sequence inside one test; each says which case failed.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hoptrace::browser::chromium::Chromium;
use hoptrace::browser::pool::{Engine, Pool};
use hoptrace::browser::Driver;
use hoptrace::chain::Resolver;
use hoptrace::trace::{Outcome, Trace, Via};

const BLOGGER: &str = r#"<html><body><a id="dl">Download</a><script>
var el = new URLSearchParams(window.location.search).get('el');
if (el) {
  setTimeout(function () { window.location.replace('http://gohhs.com:PORT/' + el); }, 500);
} else {
  setTimeout(function () { document.getElementById('dl').href = 'http://gohhs.com:PORT/'; }, 500);
}
</script></body></html>"#;

fn page(port: u16, path: &str, sentinel_port: u16) -> Option<String> {
    let p = port;
    let s = sentinel_port;
    Some(match path {
        "/blog" => BLOGGER.replace("PORT", &p.to_string()),
        // Built at run time, so no static finder can see it; fires after 3 s of page time.
        "/delayed" => "<script>var to = '/arr' + 'ived'; setTimeout(function(){ location.href = to; }, 3000);</script>".into(),
        "/atob" => {
            let target = format!("http://gts794.com:{p}/from-atob");
            let b64 = base64_encode(&target);
            format!("<script>location.assign(atob('{b64}'));</script>")
        }
        "/meta-by-script" => "<html><head></head><script>var m = document.createElement('meta'); m.httpEquiv = 'refresh'; m.content = '2;url=/after-meta'; document.head.appendChild(m);</script></html>".into(),
        "/to-denied" => format!(
            "<script>fetch('http://internal.test:{s}/beacon').catch(function(){{}}); setTimeout(function(){{ location.href = 'http://127.0.0.' + '2:{s}/x'; }}, 200);</script>"
        ),
        "/download-page" => "<script>setTimeout(function(){ location.href = '/setup' + '.zip'; }, 100);</script>".into(),
        "/spin" => "<script>while (true) {}</script>".into(),
        "/slow-fetch" => "<script>fetch('/never').then(function(){ location.href = '/unre' + 'achable'; });</script>".into(),
        "/no-script" => "<html><body>plain</body></html>".into(),
        "/form" => "<form id=f method=GET action='/submitted'><input name=q value=1></form><script>document.getElementById('f').submit();</script>".into(),
        _ => return None,
    })
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn vias(t: &Trace) -> Vec<Via> {
    t.hops.iter().map(|h| h.via).collect()
}

/// Two Chromiums at once on 2 cores would only make both slow: the drivers take turns.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_hops_with_headless_chrome() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    javascript_hops(Chromium::new).await;
}

#[cfg(feature = "chromiumoxide")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_hops_with_chromiumoxide() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    javascript_hops(hoptrace::browser::oxide::Oxide::new).await;
}

/// Every case, on one warm browser driven by `make`'s engine.
async fn javascript_hops<E: Engine>(make: fn(&Path) -> Pool<E>) {
    capture_logs();
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    // Room for the hang case: a stuck call (5 s), a health check (2 s), a restart.
    env.config.limits.hop_timeout_ms = 20000;
    for h in ["blog.test", "gohhs.com", "gts794.com", "internal.test"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    env.dns.set("internal.test", &["127.0.0.2"]);
    let denied = loop {
        let s = Sentinel::start("127.0.0.2", 0).await.unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", s.addr.port())).is_ok() {
            break s;
        }
    };
    let sp = denied.addr.port();
    let never_seen = Arc::new(tokio::sync::Notify::new());
    let nv = never_seen.clone();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let port_cell = Arc::new(std::sync::OnceLock::<u16>::new());
    let pc = port_cell.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        let port = *pc.get().unwrap();
        let nv = nv.clone();
        h2.fetch_add(1, Ordering::SeqCst);
        async move {
            if path == "/never" {
                nv.notify_one();
                std::future::pending::<()>().await;
            }
            if path == "/setup.zip" {
                return stall_after_headers("application/zip", None);
            }
            match page(port, &path, sp) {
                Some(html_text) => html(&html_text),
                None => html(&format!("<html>landing {path}</html>")),
            }
        }
    })
    .await;
    port_cell.set(srv.port()).unwrap();
    let p = srv.port();

    let chromium = Arc::new(make(&env.config.browser.chrome_path));
    chromium
        .available()
        .expect("Chromium is installed (scripts/setup installs it)");
    let driver: Arc<dyn Driver> = chromium.clone();
    let r = Resolver::with_driver(&env.config, None, Some(driver)).unwrap();
    let resolve = |u: String| {
        let r = &r;
        async move {
            tokio::time::timeout(Duration::from_secs(60), r.resolve(&u, false))
                .await
                .expect("resolution finished")
        }
    };

    // 1. The blogger page with `el`: the target is built at run time from the query.
    let t = resolve(format!("http://blog.test:{p}/blog?el=a1b2c3")).await;
    assert_eq!(
        vias(&t),
        vec![Via::Input, Via::Javascript],
        "blogger with el: {t:#?}"
    );
    assert_eq!(t.hops[1].url, format!("http://gohhs.com:{p}/a1b2c3"));
    assert_eq!(t.hops[1].labels, vec!["fake-shortener"], "blogger with el");
    assert_eq!(t.hops[1].status, Some(200), "the chain goes on over HTTP");
    assert_eq!(t.outcome, Outcome::Landed);

    // 2. Without `el` it only sets a link: no navigation, the chain lands on the page.
    let t = resolve(format!("http://blog.test:{p}/blog")).await;
    assert_eq!(t.hops.len(), 1, "blogger without el: {t:#?}");
    assert_eq!(t.outcome, Outcome::Landed);

    // 3. A delayed location.href assignment (3 s of page time; virtual time, no real wait).
    let t = resolve(format!("http://blog.test:{p}/delayed")).await;
    assert_eq!(
        vias(&t),
        vec![Via::Input, Via::Javascript],
        "delayed: {t:#?}"
    );
    assert!(t.final_url.ends_with("/arrived"), "delayed");

    // 4. An atob-built target.
    let t = resolve(format!("http://blog.test:{p}/atob")).await;
    assert_eq!(
        t.hops.get(1).map(|h| h.url.as_str()),
        Some(format!("http://gts794.com:{p}/from-atob").as_str()),
        "atob: {t:#?}"
    );
    assert_eq!(t.hops[1].labels, vec!["payload-host"]);

    // 5. A meta refresh with a delay, added by script and run by the browser.
    let t = resolve(format!("http://blog.test:{p}/meta-by-script")).await;
    assert_eq!(
        vias(&t),
        vec![Via::Input, Via::MetaRefresh],
        "meta by script: {t:#?}"
    );
    assert!(t.final_url.ends_with("/after-meta"));

    // 6. A script-driven hop to a denied address: recorded, blocked, never connected; the
    //    page's own request to a name that resolves to a denied address shows too.
    let t = resolve(format!("http://blog.test:{p}/to-denied")).await;
    assert_eq!(t.outcome, Outcome::Blocked, "to denied: {t:#?}");
    assert_eq!(t.hops[1].via, Via::Javascript);
    assert_eq!(t.hops[1].url, format!("http://127.0.0.2:{sp}/x"));
    assert!(t.hops[1].blocked);
    assert!(
        t.hops[0]
            .blocked_requests
            .iter()
            .any(|r| r.contains("internal.test") && r.contains("127.0.0.2 is loopback")),
        "the page's blocked request is in the trace: {:?}",
        t.hops[0].blocked_requests
    );
    assert_eq!(
        denied.connections(),
        0,
        "the denied address saw no connection"
    );

    // 7. A page that starts a download: the navigation is a hop, the file is known from its
    //    headers over HTTP, and its body never fetched.
    let t = resolve(format!("http://blog.test:{p}/download-page")).await;
    assert_eq!(t.outcome, Outcome::Download, "download page: {t:#?}");
    assert_eq!(vias(&t), vec![Via::Input, Via::Javascript]);

    // 8. An auto-submitted form.
    let t = resolve(format!("http://blog.test:{p}/form")).await;
    assert_eq!(
        t.hops.get(1).map(|h| h.via),
        Some(Via::Javascript),
        "form: {t:#?}"
    );
    assert!(t.final_url.ends_with("/submitted?q=1"));

    // 9. A page without script never goes to the browser.
    let before = hits.load(Ordering::SeqCst);
    let t = resolve(format!("http://blog.test:{p}/no-script")).await;
    assert_eq!(t.hops.len(), 1);
    assert_eq!(
        hits.load(Ordering::SeqCst) - before,
        1,
        "fetched once, over HTTP only"
    );

    // 10. An endless loop: the page is cut at its budget, the resolution still ends.
    let mut short = env.config.clone();
    short.limits.hop_timeout_ms = 4000;
    let spin_driver: Arc<dyn Driver> = chromium.clone();
    let rs = Resolver::with_driver(&short, None, Some(spin_driver)).unwrap();
    let t = tokio::time::timeout(
        Duration::from_secs(60),
        rs.resolve(&format!("http://blog.test:{p}/spin"), false),
    )
    .await
    .expect("the spin page is cut");
    assert_eq!(t.outcome, Outcome::Landed, "spin: {t:#?}");
    assert!(
        t.hops[0].reason.as_deref().unwrap_or("").contains("cut"),
        "spin: {t:#?}"
    );
    // The browser still serves the next page.
    let t = resolve(format!("http://blog.test:{p}/blog?el=after-spin")).await;
    assert!(t.final_url.ends_with("/after-spin"), "after spin: {t:#?}");

    // 11. Chromium killed during a resolution: the visit is retried on a new browser and the
    //     next resolution works.
    let launches = chromium.launches();
    let slow = {
        let rs = Arc::new(
            Resolver::with_driver(&env.config, None, Some(chromium.clone() as Arc<dyn Driver>))
                .unwrap(),
        );
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
    let t = resolve(format!("http://blog.test:{p}/blog?el=after-crash")).await;
    assert!(
        t.final_url.ends_with("/after-crash"),
        "after the crash: {t:#?}"
    );

    // 12. A Chromium that hangs (stopped, still alive) stops answering: it is detected,
    //     replaced, and the resolution still gets its hop.
    let launches = chromium.launches();
    let pid = chromium.pid().expect("a browser runs");
    std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    let t = resolve(format!("http://blog.test:{p}/blog?el=after-hang")).await;
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

#[tokio::test]
async fn without_chromium_the_trace_says_so() {
    let mut env = TestEnv::new().await;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async {
        html(&BLOGGER.replace("PORT", "1"))
    })
    .await;
    env.config.browser.enabled = true;
    env.config.browser.chrome_path = "/nonexistent/chromium".into();
    let r = Resolver::new(&env.config, None).unwrap();
    let t = r
        .resolve(&format!("http://blog.test:{}/blog?el=x", srv.port()), false)
        .await;
    assert_eq!(t.outcome, Outcome::Landed);
    let reason = t.hops[0].reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("no browser available") && reason.contains("/nonexistent/chromium"),
        "{reason}"
    );
}
