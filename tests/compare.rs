//! Client profiles and `compare`: fixtures that cloak by User-Agent, Accept-Language and
//! mobile show each visitor its branch; compare finds every branch and says `cloaked`, and
//! says nothing of the kind for a rotating fake shortener or an ordinary site.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use hoptrace::chain::Resolver;
use hoptrace::compare::compare;
use hoptrace::config::Profile;
use serde_json::json;

/// `cloak.test`: a Windows desktop with a language gets the payload host, a phone the
/// phishing page, anything else (a crawler, a script, a Mac, a Windows UA without a
/// language) a harmless page. Records the Referer of each request.
async fn cloaking_site(env: &TestEnv) -> (Server, Arc<Mutex<Vec<String>>>) {
    for h in ["cloak.test", "cdn.failhostingpolp.ru", "rd.lesac.ru"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let landing = Server::start("127.0.0.1", |_| async { html("<html>page</html>") }).await;
    let port = landing.port();
    let referers = Arc::new(Mutex::new(Vec::new()));
    let seen = referers.clone();
    let site = Server::start("127.0.0.1", move |req| {
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (ua, lang) = (h("user-agent"), h("accept-language"));
        seen.lock().unwrap().push(h("referer"));
        async move {
            if ua.contains("iPhone") || ua.contains("Android") {
                redirect(302, format!("http://rd.lesac.ru:{port}/login").as_bytes())
            } else if ua.contains("Windows") && !lang.is_empty() {
                redirect(
                    302,
                    format!("http://cdn.failhostingpolp.ru:{port}/setup").as_bytes(),
                )
            } else {
                html("<html>nothing to see</html>")
            }
        }
    })
    .await;
    std::mem::forget(landing);
    (site, referers)
}

fn profile(user_agent: &str, accept_language: &str, referer: &str) -> Profile {
    Profile {
        user_agent: user_agent.into(),
        accept_language: Some(accept_language.to_string()).filter(|l| !l.is_empty()),
        platform: None,
        viewport: [1366, 657],
        mobile: false,
        timezone: None,
        referer: Some(referer.to_string()).filter(|r| !r.is_empty()),
    }
}

const WINDOWS_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

#[tokio::test]
async fn every_branch_of_a_cloaking_site() {
    let mut env = TestEnv::new().await;
    // A configured profile: the Windows browser without a language, sent from a search page.
    env.config.profiles.insert(
        "windows-no-language".into(),
        profile(WINDOWS_UA, "", "https://www.google.com/"),
    );
    let (site, referers) = cloaking_site(&env).await;
    let r = Resolver::new(&env.config, None).unwrap();
    let url = format!("http://cloak.test:{}/go", site.port());

    let all = compare(&r, &url, &[], &[]).await.unwrap();
    let end = |name: &str| {
        let cell = all.cells.iter().find(|c| c.profile == name).unwrap();
        (cell.trace.final_host.clone(), cell.via.clone())
    };
    assert_eq!(all.cells.len(), 6, "every built-in profile");
    assert_eq!(end("windows-chrome").0, "cdn.failhostingpolp.ru");
    assert_eq!(end("iphone-safari").0, "rd.lesac.ru");
    assert_eq!(end("android-chrome").0, "rd.lesac.ru");
    for harmless in ["macos-safari", "crawler", "bare"] {
        assert_eq!(end(harmless).0, "cloak.test", "{harmless}");
    }
    assert_eq!(end("bare").1, "direct");
    assert!(all.cloaked);
    assert_eq!(
        all.diverges_at,
        Some(1),
        "all start at the input, part after it"
    );
    assert!(all
        .cells
        .iter()
        .all(|c| c.trace.labels.iter().any(|l| l == "cloaked")));

    // The language alone decides between the payload and the harmless page.
    let two = compare(
        &r,
        &url,
        &["windows-chrome".into(), "windows-no-language".into()],
        &[],
    )
    .await
    .unwrap();
    assert!(two.cloaked);
    assert_eq!(two.cells[1].trace.final_host, "cloak.test");
    // Its Referer went with the first request only.
    let sent = referers.lock().unwrap().clone();
    assert!(
        sent.iter().any(|r| r == "https://www.google.com/"),
        "{sent:?}"
    );

    let e = compare(&r, &url, &["nope".into()], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("windows-chrome"), "{e}");
}

#[tokio::test]
async fn rotation_and_ordinary_sites_are_not_cloaked() {
    let env = TestEnv::new().await;
    for h in ["bltlly.com", "cdn.failhostingpolp.ru", "plain.test"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let payload = Server::start("127.0.0.1", |_| async { html("<html>file page</html>") }).await;
    let p = payload.port();
    // A fake shortener that sends every visit to a new path on its payload host.
    let n = Arc::new(AtomicUsize::new(0));
    let short = Server::start("127.0.0.1", move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        async move {
            redirect(
                302,
                format!("http://cdn.failhostingpolp.ru:{p}/f{i}").as_bytes(),
            )
        }
    })
    .await;
    let plain = Server::start("127.0.0.1", |_| async { html("<html>hello</html>") }).await;
    let r = Resolver::new(&env.config, None).unwrap();

    let rotating = compare(
        &r,
        &format!("http://bltlly.com:{}/x", short.port()),
        &[],
        &[],
    )
    .await
    .unwrap();
    let finals: std::collections::BTreeSet<String> = rotating
        .cells
        .iter()
        .map(|c| c.trace.final_url.clone())
        .collect();
    assert_eq!(finals.len(), 6, "each visit got its own path: {finals:?}");
    assert!(
        !rotating.cloaked,
        "new paths, one domain: rotation, not cloaking"
    );
    assert_eq!(rotating.diverges_at, None, "the same hosts all the way");

    let ordinary = compare(
        &r,
        &format!("http://plain.test:{}/", plain.port()),
        &[],
        &[],
    )
    .await
    .unwrap();
    assert!(!ordinary.cloaked);
    assert_eq!(ordinary.diverges_at, None);
}

/// The command, `--profile` on resolve, and `POST /v1/compare` with its refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_api() {
    let mut env = TestEnv::new().await;
    // Fewer resolver slots than a comparison has cells: it still answers, in time.
    env.config.limits.concurrency = 2;
    env.config.server.request_timeout = std::time::Duration::from_millis(15_000);
    let (site, _) = cloaking_site(&env).await;
    let cfg = env.write_config("");
    let cfg = cfg.to_str().unwrap();
    let url = format!("http://cloak.test:{}/go", site.port());

    let (out, err, ok) = run_hoptrace(&["compare", "--config", cfg, &url]);
    assert!(ok, "{err}");
    assert!(
        out.contains("iphone-safari") && out.contains("cloaked: the chains part at hop 1"),
        "{out}"
    );
    let (out, err, ok) = run_hoptrace(&[
        "compare",
        "--json",
        "--profiles",
        "crawler,bare",
        "--config",
        cfg,
        &url,
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["cells"].as_array().unwrap().len(), &v["cloaked"]),
        (2, &json!(false))
    );

    let (out, err, ok) = run_hoptrace(&[
        "resolve",
        "--json",
        "--no-store",
        "--profile",
        "iphone-safari",
        "--config",
        cfg,
        &url,
    ]);
    assert!(ok, "{err}");
    let t: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["final_host"], "rd.lesac.ru");
    let (_, err, ok) = run_hoptrace(&["resolve", "--profile", "nope", "--config", cfg, &url]);
    assert!(!ok && err.contains("no profile `nope`"), "{err}");

    let (_server, addr) = serve_binary(&env.write_config(""));
    let r = post(
        addr,
        "/v1/compare",
        json!({"url": url, "profiles": ["windows-chrome", "iphone-safari"]}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cloaked"], true);
    assert_eq!(r.body["cells"][1]["trace"]["final_host"], "rd.lesac.ru");
    let r = post(addr, "/v1/compare", json!({"url": url}), None).await;
    assert_eq!(
        (r.status, r.body["cells"].as_array().map(Vec::len)),
        (200, Some(6)),
        "{}",
        r.body
    );
    let many: Vec<&str> = vec!["bare"; 1001];
    let r = post(
        addr,
        "/v1/compare",
        json!({"url": url, "profiles": many}),
        None,
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "bad_request"),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_batch"),
        "{}",
        r.body
    );
    for (body, why) in [
        (json!({"url": url, "via": ["nl-1"]}), "via"),
        (json!({"url": url, "profiles": ["nope"]}), "profiles"),
        (json!({"url": "javascript:alert(1)"}), "url"),
    ] {
        let r = post(addr, "/v1/compare", body, None).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (400, "bad_request"),
            "{why}: {}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(why),
            "{}",
            r.body
        );
    }
}

/// A comparison naming a thousand visitors: a name given twice is one cell, and however many
/// cells there are, no more visits than `limits.concurrency` reach the site at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_comparison_stays_within_the_concurrency_limit() {
    let mut env = TestEnv::new().await;
    env.config.limits.concurrency = 4;
    let mut names: Vec<String> = Vec::new();
    for i in 0..24 {
        let name = format!("visitor-{i}");
        env.config
            .profiles
            .insert(name.clone(), profile(WINDOWS_UA, "en", ""));
        names.push(name);
    }
    names.extend(std::iter::repeat_n("bare".to_string(), 1000));
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let site = Server::start("127.0.0.1", move |_| {
        let (n, m) = (n.clone(), m.clone());
        async move {
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            html("<html>same for all</html>")
        }
    })
    .await;
    let r = Resolver::new(&env.config, None).unwrap();
    let url = format!("http://127.0.0.1:{}/wide", site.port());
    let found = compare(&r, &url, &names, &[]).await.unwrap();
    assert_eq!(found.cells.len(), 25, "repeated names fold into one cell");
    assert_eq!(site.requests(), 25);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 4, "{most} visits at once (limits.concurrency = 4)");
}
