//! The browser stage's own logic with a scripted fake driver: what a visit's answer becomes in
//! the Trace, the clocks a visit is given, the tab cap. Fast, and says what broke; what only
//! Chromium can show is in tests/browser.rs.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hoptrace::browser::{
    Broken, Driver, DriverError, PreparedPage, RefusedDownload, Timing, Unavailable, Visit,
};
use hoptrace::chain::Resolver;
use hoptrace::config::ScriptEngineKind;
use hoptrace::script::Defer;
use hoptrace::trace::{Engine, FinderNote, Outcome, Via};

/// What the fake answers for a page, by the page's path.
type Script = Box<dyn Fn(&str) -> Result<Visit, DriverError> + Send + Sync>;

/// A driver that answers from a script, records the clocks it was given, and counts pages
/// open at once.
struct Fake {
    script: Script,
    timings: Mutex<Vec<(Instant, Timing)>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
    hold: Duration,
}

impl Fake {
    fn new(script: impl Fn(&str) -> Result<Visit, DriverError> + Send + Sync + 'static) -> Fake {
        Fake {
            script: Box::new(script),
            timings: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            most_open: AtomicUsize::new(0),
            hold: Duration::ZERO,
        }
    }
}

#[async_trait::async_trait]
impl Driver for Fake {
    fn available(&self) -> Result<(), hoptrace::browser::Unavailable> {
        Ok(())
    }

    async fn prepare(&self, _proxy: SocketAddr) -> Result<PreparedPage, DriverError> {
        Ok(Box::new(()))
    }

    async fn visit(
        &self,
        _page: Option<PreparedPage>,
        url: &str,
        _proxy: SocketAddr,
        _identity: &hoptrace::browser::Identity,
        timing: Timing,
    ) -> Result<Visit, DriverError> {
        self.timings.lock().unwrap().push((Instant::now(), timing));
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_open.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.hold).await;
        self.open.fetch_sub(1, Ordering::SeqCst);
        let path = url::Url::parse(url).unwrap().path().to_string();
        (self.script)(&path)
    }
}

fn navigation(to: &str, via: Via) -> Result<Visit, DriverError> {
    Ok(Visit {
        navigation: Some((to.to_string(), via)),
        ..Visit::default()
    })
}

/// Pages with script (so they go to the browser stage) on blog.test, anything else plain.
async fn pages(env: &TestEnv) -> Server {
    env.dns.set("blog.test", &["127.0.0.1"]);
    Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/plain" | "/landing" => html("<html>plain</html>"),
            _ => html("<script>var x = 1;</script>"),
        }
    })
    .await
}

fn resolver(env: &TestEnv, fake: &Arc<Fake>) -> Resolver {
    Resolver::with_driver(&env.config, None, Some(fake.clone() as Arc<dyn Driver>)).unwrap()
}

#[tokio::test]
async fn what_a_visit_says_becomes_the_trace() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    // The fake stands for Chromium: every script page goes to it.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    let srv = pages(&env).await;
    let fake = Arc::new(Fake::new(|path| match path {
        "/to-landing" => navigation("/landing", Via::Javascript),
        "/refresh" => navigation("/landing", Via::MetaRefresh),
        "/refused" => Ok(Visit {
            refused: vec![RefusedDownload {
                url: "http://blog.test/x.exe".into(),
                why: "attachment".into(),
            }],
            ..Visit::default()
        }),
        "/cut" => Ok(Visit {
            note: Some(FinderNote::Cut),
            ..Visit::default()
        }),
        "/broken" => Err(DriverError::Failed(Broken::Exited)),
        "/gone" => Err(DriverError::Unavailable(Unavailable::NotInstalled)),
        _ => Ok(Visit::default()),
    }));
    let r = resolver(&env, &fake);
    let at = |p: &str| format!("http://blog.test:{}{p}", srv.port());

    let t = r.resolve(&at("/to-landing"), false).await;
    assert_eq!(
        t.hops.iter().map(|h| h.via).collect::<Vec<_>>(),
        vec![Via::Input, Via::Javascript]
    );
    assert_eq!(
        t.final_url,
        at("/landing"),
        "relative to the page, then over HTTP"
    );
    assert_eq!(t.hops[1].status, Some(200));

    let t = r.resolve(&at("/refresh"), false).await;
    assert_eq!(t.hops[1].via, Via::MetaRefresh);

    let t = r.resolve(&at("/refused"), false).await;
    assert_eq!(t.outcome, Outcome::Landed);
    assert_eq!(
        t.hops[0]
            .blocked_requests
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["http://blog.test/x.exe: download refused before its body (attachment)"]
    );

    let t = r.resolve(&at("/cut"), false).await;
    assert_eq!(
        t.hops[0].reason.to_string(),
        "page script still running at the time limit; cut"
    );

    let t = r.resolve(&at("/broken"), false).await;
    assert_eq!(t.outcome, Outcome::Error);
    let e = t.error.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("browser", "browser failed: Chromium exited")
    );

    let t = r.resolve(&at("/gone"), false).await;
    assert_eq!(t.outcome, Outcome::Landed);
    assert_eq!(
        t.hops[0].reason.to_string(),
        "page runs script that may redirect; no browser available (Chromium is not installed \
         (apt-get install chromium, or set browser.chrome_path))"
    );

    let before = fake.timings.lock().unwrap().len();
    let t = r.resolve(&at("/plain"), false).await;
    assert_eq!(t.hops.len(), 1);
    assert_eq!(
        fake.timings.lock().unwrap().len(),
        before,
        "no script, no visit"
    );
}

/// The visit's clocks: its own budget is the hop's limit, counted from when its page starts
/// loading; launching and preparing have `browser.launch_timeout_ms`; the resolution's total
/// limit bounds both.
#[tokio::test]
async fn a_visit_gets_the_hop_limit_and_launching_its_own() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    // The fake stands for Chromium: every script page goes to it.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(2000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(9000);
    env.config.browser.launch_timeout = std::time::Duration::from_millis(7000);
    let srv = pages(&env).await;
    let fake = Arc::new(Fake::new(|_| Ok(Visit::default())));
    let r = resolver(&env, &fake);
    r.resolve(&format!("http://blog.test:{}/page", srv.port()), false)
        .await;
    let (at, timing) = fake.timings.lock().unwrap()[0];
    assert_eq!(timing.budget, Duration::from_millis(2000));
    assert_eq!(timing.settle, Duration::from_millis(3000));
    assert_eq!(timing.launch, Duration::from_millis(7000), "launch limit");
    let end = timing.end.duration_since(at);
    assert!(
        end > Duration::from_millis(8000) && end <= Duration::from_millis(9000),
        "what is left of the total {end:?}"
    );
    assert!(timing.prepare_deadline() <= timing.end);
    assert!(timing.visit_deadline() <= timing.end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_pages_at_once_than_max_tabs() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    // The fake stands for Chromium: every script page goes to it.
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    env.config.browser.max_tabs = 2;
    let srv = pages(&env).await;
    let mut fake = Fake::new(|_| Ok(Visit::default()));
    fake.hold = Duration::from_millis(100);
    let fake = Arc::new(fake);
    let r = Arc::new(resolver(&env, &fake));
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (r, u) = (r.clone(), format!("http://blog.test:{}/p{n}", srv.port()));
            tokio::spawn(async move { r.resolve(&u, false).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(fake.timings.lock().unwrap().len(), 8);
    let most = fake.most_open.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "max_tabs 2, {most} open at once");
}

/// Under `auto` the embedded engine answers first: a page it models never reaches the
/// browser, and the hop says it was emulated; a page that touches what it does not model
/// (WebRTC here), a frame that navigates itself, a multipart form, goes to the browser as
/// before, and says so.
#[tokio::test]
async fn the_engine_decides_what_it_models_and_the_browser_the_rest() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        let page = match req.uri().path() {
            "/report" => "<script>var c = location.search.slice(4); function Redirect() { if (c) { window.location.replace('/went/' + c); } } setTimeout('Redirect()', 0);</script>",
            "/stays" => "<script>function never() { location.replace('/never'); }</script>",
            "/rtc" => "<script>new RTCPeerConnection({}); location.href = '/rtc-went';</script>",
            "/frame" => "<iframe src=/report?el=f></iframe><script>var x = 1;</script>",
            "/multipart" => "<form id=f method=post enctype=multipart/form-data action=/posted></form><script>document.getElementById('f').submit();</script>",
            _ => "<html>landing</html>",
        };
        html(page)
    })
    .await;
    let fake = Arc::new(Fake::new(|path| match path {
        "/rtc" => navigation("/from-browser", Via::Javascript),
        _ => Ok(Visit::default()),
    }));
    let r = resolver(&env, &fake);
    let at = |p: &str| format!("http://blog.test:{}{p}", srv.port());

    let t = r.resolve(&at("/report?el=a1"), false).await;
    assert_eq!(t.final_url, at("/went/a1"), "{t:#?}");
    assert_eq!(t.hops[0].engine, Some(Engine::Emulated));
    assert_eq!(t.hops[1].engine, None, "a page without script says nothing");
    let t = r.resolve(&at("/report"), false).await;
    assert_eq!(
        (t.hops.len(), t.hops[0].engine),
        (1, Some(Engine::Emulated))
    );
    let t = r.resolve(&at("/stays"), false).await;
    assert_eq!(
        (t.hops.len(), t.hops[0].engine),
        (1, Some(Engine::Emulated))
    );
    assert_eq!(
        fake.timings.lock().unwrap().len(),
        0,
        "no page reached the browser"
    );

    let t = r.resolve(&at("/rtc"), false).await;
    assert_eq!(t.final_url, at("/from-browser"), "the browser's answer");
    assert_eq!(t.hops[0].engine, Some(Engine::Chromium));
    for path in ["/frame", "/multipart"] {
        let t = r.resolve(&at(path), false).await;
        assert_eq!(t.hops[0].engine, Some(Engine::Chromium), "{path}");
    }
    assert_eq!(fake.timings.lock().unwrap().len(), 3);
    let (_, deferred) = hoptrace::script::counts();
    for reason in [Defer::Unmodelled, Defer::Frame] {
        assert!(
            deferred.iter().any(|(d, n)| *d == reason && *n >= 1),
            "{reason:?} counted: {deferred:?}"
        );
    }
}

/// `<script src>` under `auto`: fetched through the chain's own client and egress gate (a
/// script on an address policy refuses is never connected to, and the page goes to the
/// browser), within the visit's byte budget (`browser.max_page_bytes`).
#[tokio::test]
async fn external_scripts_come_through_the_gate_within_the_visits_bytes() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.browser.max_page_bytes = 65_536;
    env.dns.set("blog.test", &["127.0.0.1"]);
    // An address the policy refuses (only 127.0.0.1 is allowed in tests).
    env.dns.set("inside.test", &["127.0.0.2"]);
    let script_requests = Arc::new(AtomicUsize::new(0));
    let seen = script_requests.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        if path.ends_with(".js") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let filler = format!("var pad = '{}';", "x".repeat(30_000));
            let body = match path.as_str() {
                "/ext" => "<script>var base = '/went-';</script><script src=\"/go.js\"></script>".to_string(),
                "/go.js" => "location.href = base + 'ext';".to_string(),
                "/heavy" => "<script src=/pad.js?1></script><script src=/pad.js?2></script><script src=/pad.js?3></script><script>location.href = '/went-heavy';</script>".to_string(),
                "/pad.js" => filler,
                "/inside" => "<script src=\"http://inside.test/x.js\"></script><script>location.href = '/went-inside';</script>".to_string(),
                _ => "<html>landing</html>".to_string(),
            };
            html(&body)
        }
    })
    .await;
    let fake = Arc::new(Fake::new(|path| match path {
        "/heavy" => navigation("/from-browser", Via::Javascript),
        _ => Ok(Visit::default()),
    }));
    let r = resolver(&env, &fake);
    let at = |p: &str| format!("http://blog.test:{}{p}", srv.port());

    let t = r.resolve(&at("/ext"), false).await;
    assert_eq!(t.final_url, at("/went-ext"), "{t:#?}");
    assert_eq!(t.hops[0].engine, Some(Engine::Emulated));
    assert_eq!(script_requests.load(Ordering::SeqCst), 1);

    // 3 x 30 KB of script is past the visit's 64 KiB: the browser decides.
    let t = r.resolve(&at("/heavy"), false).await;
    assert_eq!(t.final_url, at("/from-browser"), "{t:#?}");
    assert_eq!(t.hops[0].engine, Some(Engine::Chromium));

    let before = script_requests.load(Ordering::SeqCst);
    let t = r.resolve(&at("/inside"), false).await;
    assert_eq!(t.hops[0].engine, Some(Engine::Chromium), "{t:#?}");
    assert_eq!(t.hops.len(), 1, "the fake browser stays: {t:#?}");
    assert_eq!(script_requests.load(Ordering::SeqCst), before);
}

/// A form a script submits with POST is followed as a POST of its form-encoded body, under
/// either engine (the fake stands for Chromium, reporting the body as the browser does); a
/// 303 after it is followed with GET, a 307 repeats the POST, body and all. The hop says
/// `"method": "POST"`; a GET hop says nothing.
#[tokio::test]
async fn a_form_posted_by_script_is_followed_as_a_post() {
    use http_body_util::BodyExt;
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let path = parts.uri.path().to_string();
            log.lock().unwrap().push(format!(
                "{} {path} {}",
                parts.method,
                String::from_utf8_lossy(&body)
            ));
            let posted = parts.method == http::Method::POST;
            match path.as_str() {
                "/form-303" | "/form-307" => html(&format!(
                    "<form id=f method=post action='/posted-{}'><input name=q value='a b'><input name=el value=1></form><script>document.getElementById('f').submit();</script>",
                    &path[6..]
                )),
                "/posted-303" if posted => redirect(303, b"/after"),
                "/posted-307" if posted => redirect(307, b"/again"),
                _ => html("<html>landing</html>"),
            }
        }
    })
    .await;
    let fake = Arc::new(Fake::new(|path| {
        Ok(Visit {
            navigation: Some((format!("/posted-{}", &path[6..]), Via::Javascript)),
            post: Some("q=a+b&el=1".into()),
            ..Visit::default()
        })
    }));
    let at = |p: &str| format!("http://blog.test:{}{p}", srv.port());
    for kind in [ScriptEngineKind::Auto, ScriptEngineKind::Chromium] {
        env.config.browser.script_engine = kind;
        let r = resolver(&env, &fake);

        seen.lock().unwrap().clear();
        let t = r.resolve(&at("/form-303"), false).await;
        let hops: Vec<_> = t
            .hops
            .iter()
            .map(|h| (h.url.as_str(), h.status, h.method.map(|m| m.as_str())))
            .collect();
        assert_eq!(
            hops,
            vec![
                (at("/form-303").as_str(), Some(200), None),
                (at("/posted-303").as_str(), Some(303), Some("POST")),
                (at("/after").as_str(), Some(200), None),
            ],
            "{kind:?}"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                "GET /form-303 ",
                "POST /posted-303 q=a+b&el=1",
                "GET /after "
            ],
            "{kind:?}"
        );
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["hops"][1]["method"], "POST");
        assert!(json["hops"][2].get("method").is_none(), "{kind:?}");
        assert_eq!(t.hops[1].http.as_ref().unwrap().method, "POST");

        seen.lock().unwrap().clear();
        let t = r.resolve(&at("/form-307"), false).await;
        assert_eq!(t.final_url, at("/again"), "{kind:?}: {t:#?}");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                "GET /form-307 ",
                "POST /posted-307 q=a+b&el=1",
                "POST /again q=a+b&el=1"
            ],
            "{kind:?}"
        );
        assert_eq!(t.hops[2].method.map(|m| m.as_str()), Some("POST"));
    }
}

/// A browser that cannot start (its binary is not executable) is named once in the hop's
/// note: what went wrong, after "no browser available", with no second prefix.
#[tokio::test]
async fn a_browser_that_cannot_start_is_named_once() {
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.browser.script_engine = ScriptEngineKind::Chromium;
    let binary = env.dir.path().join("chromium");
    std::fs::write(&binary, "not a program").unwrap(); // no execute bit, even for root
    env.config.browser.chrome_path = Some(binary);
    let srv = pages(&env).await;
    let r = Resolver::new(&env.config, None).unwrap();
    let t = r
        .resolve(&format!("http://blog.test:{}/page", srv.port()), false)
        .await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(
        t.hops[0].reason.to_string(),
        "page runs script that may redirect; no browser available (cannot start Chromium: \
         Permission denied (os error 13))"
    );
}
