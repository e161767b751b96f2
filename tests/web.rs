//! The web view in real headless Chromium against a running `hoptrace serve` (the binary,
//! with tokens, its own sandboxed browser taking screenshots): log in, resolve a fixture
//! link, see its hops and labels, open the screenshot, page through the landing domains,
//! look at a watched link's history; attacker-chosen titles and inputs show as text. The
//! view's CSRF and origin checks, with a plain HTTP client. `HOPTRACE_KEEP_SCREENSHOTS=DIR`
//! keeps a picture of each page.

mod common;

use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use common::view::{client, text, until};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

const TOKEN: &str = "s3cret-token";
/// What the phishing page puts in its title: markup that would run if the view did not
/// escape it.
const EVIL_TITLE: &str =
    r#""><img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Sign in"#;

/// Keeps a full-page picture of `page` as `name.png` when asked to.
async fn keep(page: &Page, name: &str) {
    if let Some(dir) = std::env::var_os("HOPTRACE_KEEP_SCREENSHOTS") {
        let png = page
            .screenshot(ScreenshotParams::builder().full_page(true).build())
            .await
            .unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Fills `field` and submits its form, then waits for the page that answers.
async fn submit(page: &Page, field: &str, value: &str) {
    let js = format!(
        "(() => {{ window.__old = true; const f = document.querySelector('[name={field}]'); f.value = {}; f.form.querySelector('button[type=submit]').click(); return true; }})()",
        serde_json::to_string(value).unwrap()
    );
    page.evaluate(js).await.unwrap();
    until(
        page,
        "window.__old === undefined && document.readyState === 'complete'",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_in_a_browser() {
    let env = TestEnv::new().await;
    for h in ["tinurll.com", "rd.lesac.ru", "one.test", "two.test"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let landing = format!("<html><head><title>{EVIL_TITLE}</title></head><body style=\"background:#fde68a\"><h1>Your parcel</h1></body></html>");
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let p = port.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let reply = match req.uri().path() {
            "/start" => redirect(
                302,
                format!("http://rd.lesac.ru:{}/landing", p.get().unwrap()).as_bytes(),
            ),
            _ => html(&landing),
        };
        async move { reply }
    })
    .await;
    port.set(srv.port()).unwrap();
    let port = srv.port();
    let cfg = env.write_config(&format!(
        "[server]\napi_tokens = [\"{TOKEN}\"]\n[browser]\nenabled = true\nscreenshots = true\n\
         [limits]\nhop_timeout_ms = 10000\ntotal_timeout_ms = 30000\n[watch]\nmin_every_seconds = 1\n"
    ));
    let (_serving, addr) = serve_binary(&cfg);
    let base = format!("http://{addr}");

    // Two more landing domains through the API, for paging.
    for h in ["one.test", "two.test"] {
        let r = post(
            addr,
            "/v1/resolve",
            json!({"url": format!("http://{h}:{port}/landing")}),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status, 200, "{:#}", r.body);
    }
    let watched = format!("http://one.test:{port}/landing");
    let r = post(
        addr,
        "/v1/watch",
        json!({"url": watched, "every_seconds": 3600}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 201);

    let (browser, _driving, _dir) = client().await;
    let page = browser.new_page(format!("{base}/ui/")).await.unwrap();
    until(&page, "location.pathname === '/ui/login'").await;
    keep(&page, "1-login").await;
    submit(&page, "token", "wrong").await;
    let said = text(&page).await;
    assert!(said.contains("wrong token"), "{said}");
    submit(&page, "token", TOKEN).await;
    assert_eq!(page.url().await.unwrap().unwrap(), format!("{base}/ui/"));
    keep(&page, "2-home").await;

    // Resolve a defanged link: its chain, hops, labels, screenshot.
    let link = format!("hxxp://tinurll[.]com:{port}/start");
    submit(&page, "url", &link).await;
    assert!(page
        .url()
        .await
        .unwrap()
        .unwrap()
        .contains("/ui/trace?url="));
    let shown = text(&page).await;
    for want in [
        format!("hxxp://tinurll[.]com:{port}/start"),
        format!("hxxp://rd[.]lesac[.]ru:{port}/landing"),
        "http-redirect".to_string(),
        "fake-shortener".to_string(),
        "tinyurl[.]com".to_string(),
        "phishing".to_string(),
        "302".to_string(),
        "127.0.0.1".to_string(),
        "landed".to_string(),
    ] {
        assert!(shown.contains(&want), "{want} not on the page:\n{shown}");
    }
    // The attacker's title is text on the page, and ran nowhere.
    assert!(
        shown.contains(r#""><img src=x onerror="window.__xss=1"><script>"#),
        "{shown}"
    );
    until(&page, "document.querySelectorAll('img[src=x], main script').length === 0 && window.__xss === undefined").await;
    until(&page, "(() => { const i = document.querySelector('img.shot'); return !!i && i.complete && i.naturalWidth === 1366; })()").await;
    keep(&page, "3-chain").await;
    // The screenshot opens on its own, as an image.
    let shot = page
        .evaluate("document.querySelector('img.shot').src")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    page.goto(shot).await.unwrap();
    until(&page, "document.contentType === 'image/png'").await;

    // Input that is markup: refused, and shown back as text.
    page.goto(format!("{base}/ui/")).await.unwrap();
    submit(&page, "url", r#""><img src=x onerror="window.__xss=3">"#).await;
    assert!(text(&page).await.contains("Not a link"));
    until(&page, "document.querySelectorAll('img[src=x]').length === 0 && window.__xss === undefined && document.querySelector('[name=url]').value.includes('onerror')").await;

    // The landing-domain index, two a page.
    page.goto(format!("{base}/ui/domains?sort=domain&limit=2"))
        .await
        .unwrap();
    let first = text(&page).await;
    assert!(
        first.contains("lesac[.]ru")
            && first.contains("one[.]test")
            && !first.contains("two[.]test"),
        "{first}"
    );
    keep(&page, "4-domains").await;
    page.evaluate("document.querySelector('a[rel=next]').click()")
        .await
        .unwrap();
    until(
        &page,
        "location.search.includes('offset=2') && document.readyState === 'complete'",
    )
    .await;
    assert!(text(&page).await.contains("two[.]test"));
    assert!(text(&page).await.contains("3-3 of 3"));
    // A domain's inputs, each leading to its chain.
    page.evaluate("document.querySelector('a[href*=\"d=two.test\"]').click()")
        .await
        .unwrap();
    until(
        &page,
        "location.pathname === '/ui/domain' && document.readyState === 'complete'",
    )
    .await;
    page.evaluate("document.querySelector('a[href*=\"/ui/trace\"]').click()")
        .await
        .unwrap();
    until(
        &page,
        "location.pathname === '/ui/trace' && document.readyState === 'complete'",
    )
    .await;
    let chain = text(&page).await;
    assert!(
        chain.contains(&format!("hxxp://two[.]test:{port}/landing")),
        "{chain}"
    );

    // The watched link's history.
    page.goto(format!("{base}/ui/watches")).await.unwrap();
    assert!(text(&page)
        .await
        .contains(&format!("hxxp://one[.]test:{port}/landing")));
    page.evaluate("document.querySelector('a[href*=history]').click()")
        .await
        .unwrap();
    until(
        &page,
        "location.pathname === '/ui/history' && document.readyState === 'complete'",
    )
    .await;
    assert!(text(&page).await.contains("observations"));
    keep(&page, "5-history").await;
    page.goto(format!("{base}/ui/campaigns")).await.unwrap();
    keep(&page, "6-campaigns").await;

    // Every page is held to the policy.
    let plain = send(
        addr,
        http::Request::get("/ui/login")
            .header("host", addr.to_string())
            .body(Default::default())
            .unwrap(),
    )
    .await;
    let csp = plain.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    csrf_and_origin(addr).await;

    // The same evidence through the API: the HAR reads in a HAR reader, the screenshot is a
    // PNG, and a link that never landed has none.
    let start = urlencode(&format!("http://tinurll.com:{port}/start"));
    let har = get(addr, &format!("/v1/har?url={start}"), Some(TOKEN)).await;
    assert_eq!(har.status, 200);
    let entries = common::tools::check_har(&har.body);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[1].ends_with("/landing 200"), "{entries:?}");
    let shot = call(
        addr,
        "GET",
        &format!("/v1/screenshot?url={start}"),
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(shot.status, 200);
    assert_eq!(shot.headers["content-type"], "image/png");
    let none = get(
        addr,
        &format!("/v1/screenshot?url={}", urlencode("http://nowhere.test/")),
        Some(TOKEN),
    )
    .await;
    assert_eq!(none.status, 404);
}

/// A form POST: `body` urlencoded, with `cookie` and `origin` when given; the status.
async fn form(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> (u16, hyper::HeaderMap) {
    let mut req = http::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = send(addr, req.body(body.to_string().into()).unwrap()).await;
    let (parts, body) = resp.into_parts();
    let _ = body.collect().await;
    (parts.status.as_u16(), parts.headers)
}

/// Without a session nothing is done; with one, a form needs its CSRF token, and a POST from
/// another origin is refused even with the token.
async fn csrf_and_origin(addr: std::net::SocketAddr) {
    let url = "url=http%3A%2F%2Fone.test%2F";
    assert_eq!(form(addr, "/ui/resolve", url, None, None).await.0, 401);
    // A form body past server.max_request_bytes is refused as too large, before any login.
    let huge = format!("token={}", "x".repeat(2 << 20));
    assert_eq!(form(addr, "/ui/login", &huge, None, None).await.0, 413);
    let (status, headers) = form(addr, "/ui/login", &format!("token={TOKEN}"), None, None).await;
    assert_eq!(status, 303);
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure: {set}");
    // Behind a TLS proxy that says so, the cookie is Secure (logout sets it the same way).
    for (name, value, secure) in [
        ("x-forwarded-proto", "https", true),
        ("x-forwarded-proto", "HTTPS, http", true),
        ("forwarded", "for=192.0.2.1;proto=\"https\"", true),
        ("x-forwarded-proto", "http", false),
        ("forwarded", "proto=http", false),
    ] {
        let req = http::Request::post("/ui/login")
            .header("host", addr.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .header(name, value)
            .body(format!("token={TOKEN}").into())
            .unwrap();
        let resp = send(addr, req).await;
        let set = resp.headers()["set-cookie"].to_str().unwrap();
        assert_eq!(set.ends_with("; Secure"), secure, "{name}: {value}: {set}");
    }
    let cookie = set.split(';').next().unwrap();
    assert_eq!(
        form(addr, "/ui/resolve", url, Some(cookie), None).await.0,
        403,
        "no CSRF token"
    );
    let bad = format!("{url}&csrf=0123456789abcdef0123456789abcdef");
    assert_eq!(
        form(addr, "/ui/resolve", &bad, Some(cookie), None).await.0,
        403,
        "a wrong one"
    );
    // The token from the session's own page.
    let home = send(
        addr,
        http::Request::get("/ui/")
            .header("host", addr.to_string())
            .header("cookie", cookie)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    let page = String::from_utf8(
        home.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let csrf = csrf_of(&page);
    let good = format!("url=not%20a%20url&csrf={csrf}");
    assert_eq!(
        form(addr, "/ui/resolve", &good, Some(cookie), None).await.0,
        400,
        "accepted, and the input refused"
    );
    let evil = form(
        addr,
        "/ui/resolve",
        &good,
        Some(cookie),
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(evil.0, 403, "another origin");
    assert_eq!(
        form(
            addr,
            "/ui/login",
            &format!("token={TOKEN}"),
            None,
            Some("http://evil.example")
        )
        .await
        .0,
        403,
        "a login from elsewhere"
    );
}
