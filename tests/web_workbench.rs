//! The analyst's workbench: search over every stored chain (both backends), and the web
//! view's search, pivots, chain graph, bulk paste, compare and campaign drill-down in real
//! headless Chromium against a running `hoptrace serve`; attacker-chosen titles show as text;
//! a form posted from another site is refused. `HOPTRACE_KEEP_SCREENSHOTS=DIR` keeps a
//! picture of each page.

mod common;

use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use common::view::{client, text, until};
use common::*;
use hoptrace::store::{SearchKey, SearchQuery, Store};
use hoptrace::trace::{Evidence, Hop, Outcome, Trace, Via};
use serde_json::json;

// ------------------------------------------------------------------ the store's search

fn chain(input: &str, hosts: &[(&str, &str)], title: &str, body: &str) -> Trace {
    let hops = hosts
        .iter()
        .enumerate()
        .map(|(i, (host, ip))| {
            let via = if i == 0 {
                Via::Input
            } else {
                Via::HttpRedirect
            };
            let mut h = Hop::new(format!("http://{host}/p{i}"), host.to_string(), via);
            h.ip = Some(ip.to_string());
            h
        })
        .collect();
    let mut t = Trace::from_hops(input, hops, Outcome::Landed);
    t.hops[0].labels = vec!["fake-shortener".into()];
    t.finish();
    t.evidence = Some(Evidence {
        title: Some(title.into()),
        body_sha256: Some(body.into()),
        screenshot_sha256: Some(format!("shot-{body}")),
        ..Default::default()
    });
    t
}

fn by(key: SearchKey, value: &str) -> SearchQuery {
    SearchQuery {
        terms: vec![key.term(value)],
        limit: 10,
        ..Default::default()
    }
}

async fn keys(store: &Store, q: &SearchQuery) -> Vec<String> {
    let page = store.search(q).await.unwrap();
    page.hits.into_iter().map(|(k, _, _)| k).collect()
}

async fn search_on(store: Store) {
    let a = chain(
        "http://a.test/",
        &[("a.test", "192.0.2.1"), ("x.land.co.uk", "192.0.2.9")],
        "Sign In",
        "b1",
    );
    let b = chain(
        "http://b.test/",
        &[("b.test", "192.0.2.2"), ("y.land.co.uk", "192.0.2.9")],
        "Sign in",
        "b2",
    );
    let c = chain(
        "http://c.test/",
        &[("c.test", "192.0.2.3"), ("other.test", "192.0.2.8")],
        "Parcel",
        "b1",
    );
    store.put("http://a.test/", &a, 1_000).await.unwrap();
    store.put("http://b.test/", &b, 2_000).await.unwrap();
    store.put("http://c.test/", &c, 3_000).await.unwrap();
    let ab = vec!["http://a.test/".to_string(), "http://b.test/".to_string()];
    assert_eq!(
        keys(&store, &by(SearchKey::Host, "X.LAND.CO.UK")).await,
        ab[..1]
    );
    assert_eq!(keys(&store, &by(SearchKey::Domain, "land.co.uk")).await, ab);
    assert_eq!(keys(&store, &by(SearchKey::Ip, "192.0.2.9")).await, ab);
    assert_eq!(keys(&store, &by(SearchKey::Title, "sign in")).await, ab);
    assert_eq!(
        keys(&store, &by(SearchKey::Label, "fake-shortener"))
            .await
            .len(),
        3
    );
    assert_eq!(
        keys(&store, &by(SearchKey::Body, "b1")).await,
        ["http://a.test/", "http://c.test/"]
    );
    assert_eq!(
        keys(&store, &by(SearchKey::Screenshot, "shot-b2")).await,
        ab[1..]
    );
    // A substring of a URL, and a time range: scanned.
    let url = SearchQuery {
        url: Some("OTHER.test/p1".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(keys(&store, &url).await, ["http://c.test/"]);
    let range = SearchQuery {
        since_ms: Some(1_500),
        until_ms: Some(2_500),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(keys(&store, &range).await, ["http://b.test/"]);
    // Every condition must hold.
    let mut both = by(SearchKey::Domain, "land.co.uk");
    both.since_ms = Some(1_500);
    assert_eq!(keys(&store, &both).await, ["http://b.test/"]);
    // Page by page, one hit a page.
    let mut q = by(SearchKey::Label, "fake-shortener");
    q.limit = 1;
    let mut seen = Vec::new();
    loop {
        let page = store.search(&q).await.unwrap();
        seen.extend(page.hits.into_iter().map(|(k, _, _)| k));
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
        assert!(seen.len() <= 3, "{seen:?}");
    }
    assert_eq!(seen, ["http://a.test/", "http://b.test/", "http://c.test/"]);
    // The landing page's screenshot and HTML are kept beside the chain, each by its hash.
    let mut d = chain("http://d.test/", &[("d.test", "192.0.2.4")], "Kept", "b4");
    d.set_screenshot(bytes::Bytes::from_static(b"PNG"));
    d.set_html(bytes::Bytes::from_static(b"<html>kept</html>"));
    store.put("http://d.test/", &d, 3_500).await.unwrap();
    let e = d.evidence.as_ref().unwrap();
    let shot = store
        .screenshot(e.screenshot_sha256.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(shot.as_deref(), Some(&b"PNG"[..]));
    let html = store.html(e.html_sha256.as_deref().unwrap()).await.unwrap();
    assert_eq!(html.as_deref(), Some(&b"<html>kept</html>"[..]));
    assert_eq!(e.html_bytes, Some(17));
    // A chain stored again no longer answers for what it held before.
    let a2 = chain(
        "http://a.test/",
        &[("a.test", "192.0.2.1"), ("new.test", "192.0.2.7")],
        "Moved",
        "b3",
    );
    store.put("http://a.test/", &a2, 4_000).await.unwrap();
    assert_eq!(
        keys(&store, &by(SearchKey::Domain, "land.co.uk")).await,
        ab[1..]
    );
    assert_eq!(
        keys(&store, &by(SearchKey::Host, "new.test")).await,
        ab[..1]
    );
}

#[tokio::test]
async fn search_by_every_key_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    eprintln!("backend: sled");
    search_on(Store::open_sled(&dir.path().join("db")).unwrap()).await;
    eprintln!("backend: postgres");
    let storage = hoptrace::config::Storage {
        backend: hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(
            db::fresh_database().await,
        )),
        ..Default::default()
    };
    search_on(Store::open(&storage).await.unwrap()).await;
}

/// Waits (bounded) until the search by `host` finds `key`: a store indexes what it held
/// before the index existed on a thread of its own.
async fn found_eventually(store: &Store, host: &str, key: &str) {
    for _ in 0..300 {
        if keys(store, &by(SearchKey::Host, host)).await == [key] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{key} never found by host {host}");
}

/// A store written before the search index existed is searchable after it is opened again
/// (sled: no index tree and no mark; PostgreSQL: before migration 5).
#[tokio::test]
async fn stores_from_before_the_index_are_indexed() {
    let t = chain(
        "http://old.test/",
        &[("old.test", "192.0.2.5")],
        "Old",
        "b5",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open_sled(&path).unwrap();
    store.put("http://old.test/", &t, 1_000).await.unwrap();
    drop(store);
    {
        let db = sled::open(&path).unwrap();
        db.drop_tree("search").unwrap();
        db.open_tree("meta")
            .unwrap()
            .remove("search-indexed")
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open_sled(&path).unwrap();
    found_eventually(&store, "old.test", "http://old.test/").await;

    let url = db::fresh_database().await;
    let storage = hoptrace::config::Storage {
        backend: hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(url.clone())),
        ..Default::default()
    };
    let store = Store::open(&storage).await.unwrap();
    store.put("http://old.test/", &t, 1_000).await.unwrap();
    drop(store);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("DROP TABLE search_terms; DELETE FROM hoptrace_migrations WHERE version = 5")
        .await
        .unwrap();
    let store = Store::open(&storage).await.unwrap();
    found_eventually(&store, "old.test", "http://old.test/").await;
}

// ------------------------------------------------------------------ the web view

/// Markup a phishing page puts in its title, which would run if the view did not escape it.
const EVIL_TITLE: &str =
    r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Parcel"#;

/// Goes to `path` and waits for it to load.
async fn open(page: &Page, base: &str, path: &str) {
    page.goto(format!("{base}{path}")).await.unwrap();
    until(page, "document.readyState === 'complete'").await;
}

/// Clicks the first element `selector` finds and waits for the next page.
async fn click(page: &Page, selector: &str) {
    let js = format!(
        "(() => {{ window.__old = true; document.querySelector({}).click(); return true; }})()",
        serde_json::to_string(selector).unwrap()
    );
    navigate(page, js).await;
}

/// Runs `js` (which marks the page with `window.__old` and leaves it) and waits for the page
/// it leads to.
async fn navigate(page: &Page, js: String) {
    page.evaluate(js).await.unwrap();
    until(
        page,
        "window.__old === undefined && document.readyState === 'complete'",
    )
    .await;
}

/// A full-page picture of `page`, as `name.png`, in HOPTRACE_KEEP_SCREENSHOTS or target/web.
async fn keep(page: &Page, name: &str) {
    let dir = std::env::var_os("HOPTRACE_KEEP_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web"));
    std::fs::create_dir_all(&dir).unwrap();
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(true).build())
        .await
        .unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// A GET of the view without a browser.
async fn plain_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Default::default())
        .unwrap();
    send(addr, req).await
}

/// Nothing from a chain ran or became markup on the page.
async fn inert(page: &Page) {
    until(
        page,
        "document.querySelectorAll('img[src=x], main script').length === 0 && window.__xss === undefined",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_in_a_browser() {
    let env = TestEnv::new().await;
    for h in ["tinurll.com", "rd.lesac.ru", "one.test", "two.test"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let landing = format!(
        "<html><head><title>{EVIL_TITLE}</title></head><body><h1>Your parcel</h1></body></html>"
    );
    let srv = Server::start("127.0.0.1", move |req| {
        let reply = match req.uri().path() {
            "/start" => redirect(302, b"/meta"),
            "/meta" => html(
                r#"<html><head><meta http-equiv="refresh" content="0;url=/landing"></head></html>"#,
            ),
            _ => html(&landing),
        };
        async move { reply }
    })
    .await;
    let port = srv.port();
    let (_short, _payload, _target) = campaign(&env).await;
    let cfg = env.write_config(
        "[browser]\nenabled = false\n[limits]\nhop_timeout_ms = 10000\ntotal_timeout_ms = 30000\n",
    );
    let (_serving, addr) = serve_binary(&cfg);
    let base = format!("http://{addr}");

    let start = format!("http://tinurll.com:{port}/start");
    let r = post(addr, "/v1/resolve", json!({"url": start}), None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let body = r.body["evidence"]["body_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // Two repositories linking the fake shortener: a campaign.
    for (ns, name) in [("actor1", "crack-tool"), ("actor2", "keygen-pro")] {
        let repo = json!({"repository": {
            "namespace": ns, "name": name,
            "description": format!("download: hxxp://blltly[.]com:{}/{name}", _short.port()),
        }});
        let r = post(addr, "/v1/scan", repo, None).await;
        assert_eq!(r.status, 200, "{:#}", r.body);
    }

    let chain_page = format!("/ui/trace?url={}", urlencode(&start));
    let (browser, _driving, _dir) = client().await;
    let page = browser.new_page(format!("{base}/ui/")).await.unwrap();
    until(&page, "document.readyState === 'complete'").await;
    keep(&page, "0-home").await;

    // A pasted description: its links found and resolved together.
    let pasted = format!(
        "Get it at hxxp://one[.]test:{port}/landing and, mirror, <a href=\"http://two.test:{port}/landing\">here</a>"
    );
    let js = format!(
        "(() => {{ window.__old = true; const f = document.querySelector('[name=text]'); f.value = {}; f.form.querySelector('button[type=submit]').click(); return true; }})()",
        serde_json::to_string(&pasted).unwrap()
    );
    navigate(&page, js).await;
    let shown = text(&page).await;
    assert!(shown.contains("2 links resolved"), "{shown}");
    for want in [
        format!("hxxp://one[.]test:{port}/landing"),
        format!("hxxp://two[.]test:{port}/landing"),
    ] {
        assert!(shown.contains(&want), "{want}:\n{shown}");
    }
    assert!(
        shown.contains("CSV") && shown.contains("STIX"),
        "exports: {shown}"
    );
    keep(&page, "1-bulk").await;

    // The chain: a picture with how each hop was reached, the title as text.
    open(&page, &base, &chain_page).await;
    until(
        &page,
        "document.querySelectorAll('svg.graph rect.hop').length === 3",
    )
    .await;
    let svg: String = page
        .evaluate("document.querySelector('svg.graph').textContent")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert!(
        svg.contains("HTTP 302 redirect") && svg.contains("meta refresh"),
        "{svg}"
    );
    assert!(
        svg.contains(&format!("hxxp://tinurll[.]com:{port}/start")),
        "{svg}"
    );
    assert!(
        !svg.contains("http://"),
        "no live URL in the picture: {svg}"
    );
    let shown = text(&page).await;
    assert!(shown.contains(EVIL_TITLE), "{shown}");
    assert!(
        !shown.contains("tinurll.com"),
        "hosts are defanged: {shown}"
    );
    inert(&page).await;
    keep(&page, "2-chain").await;
    // The landing page's HTML, kept: a text download, never rendered.
    let html_link: String = page
        .evaluate("document.querySelector('a[href^=\"/ui/html\"]').getAttribute('href')")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    let kept = plain_get(addr, &html_link).await;
    assert_eq!(kept.status(), 200);
    let h = kept.headers().clone();
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let bytes = http_body_util::BodyExt::collect(kept.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains(&format!("<title>{EVIL_TITLE}</title>")));

    // The resolve form says whether the chain shown was resolved now or came from the cache.
    open(&page, &base, "/ui/").await;
    let resolve = format!(
        "(() => {{ window.__old = true; const f = document.querySelector('[name=url]'); f.value = {}; f.form.querySelector('[name=fresh]').checked = FRESH; f.form.querySelector('button[type=submit]').click(); return true; }})()",
        serde_json::to_string(&start).unwrap()
    );
    navigate(&page, resolve.replace("FRESH", "true")).await;
    let shown = text(&page).await;
    assert!(
        !shown.contains("(stored)")
            && !shown.contains("from the cache")
            && !shown.contains("from the store"),
        "{shown}"
    );
    open(&page, &base, "/ui/").await;
    navigate(&page, resolve.replace("FRESH", "false")).await;
    assert!(text(&page).await.contains("answered from the cache"));

    // Each pivot from the chain leads to every chain that shares the value.
    let start_key = start.clone();
    let one = format!("http://one.test:{port}/landing");
    let two = format!("http://two.test:{port}/landing");
    // (`exact`: nothing else shares it; otherwise the fake shortener's chains may too.)
    for (key, want, exact) in [
        ("title", vec![&start_key, &one, &two], true),
        ("body", vec![&start_key, &one, &two], true),
        ("ip", vec![&start_key, &one, &two], false),
        ("host", vec![&start_key], true),
        ("domain", vec![&start_key], true),
        ("label", vec![&start_key], false),
    ] {
        open(&page, &base, &chain_page).await;
        click(&page, &format!("a[href^=\"/ui/search?{key}=\"]")).await;
        until(&page, "location.pathname === '/ui/search'").await;
        let found: Vec<String> = page
            .evaluate("[...document.querySelectorAll('table.hits a[href^=\"/ui/trace\"]')].map(a => new URL(a.href).searchParams.get('url'))")
            .await
            .unwrap()
            .into_value()
            .unwrap();
        for w in &want {
            assert!(found.contains(w), "pivot by {key}: {w} not in {found:?}");
        }
        if exact {
            assert_eq!(found.len(), want.len(), "pivot by {key}: {found:?}");
        }
        inert(&page).await;
        if key == "title" {
            keep(&page, "3-pivot-title").await;
        }
    }

    // The search form by the keys no pivot covers: a URL substring and a time range.
    open(&page, &base, "/ui/search?url=%2Fmeta").await;
    let shown = text(&page).await;
    assert!(
        shown.contains(&format!("hxxp://tinurll[.]com:{port}/start"))
            && !shown.contains("one[.]test"),
        "{shown}"
    );
    open(&page, &base, "/ui/search?since=2000-01-01&until=2000-01-02").await;
    assert!(text(&page).await.contains("0 shown"));
    open(
        &page,
        &base,
        "/ui/search?since=2000-01-01&label=fake-shortener",
    )
    .await;
    assert!(text(&page)
        .await
        .contains(&format!("hxxp://tinurll[.]com:{port}/start")));
    open(&page, &base, "/ui/search?since=yesterday").await;
    assert!(text(&page).await.contains("since must be a time"));
    keep(&page, "4-search").await;

    // The same as JSON, for scanners.
    let r = get(addr, &format!("/v1/search?body={body}&limit=2"), None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    let next = r.body["next"].as_str().unwrap();
    let r = get(
        addr,
        &format!("/v1/search?body={body}&limit=2&after={}", urlencode(next)),
        None,
    )
    .await;
    assert_eq!(
        r.body["results"].as_array().unwrap().len(),
        1,
        "{:#}",
        r.body
    );
    assert_eq!(get(addr, "/v1/search", None).await.status, 400);

    // A campaign, drilled down: accounts -> repositories -> links -> landing hosts.
    open(&page, &base, "/ui/campaigns").await;
    click(&page, "a[href^=\"/ui/campaign?id=\"]").await;
    let shown = text(&page).await;
    for want in [
        "actor1/crack-tool",
        "actor2/keygen-pro",
        "failhostingpolp[.]ru",
        "blltly[.]com",
    ] {
        assert!(shown.contains(want), "{want}:\n{shown}");
    }
    until(
        &page,
        "document.querySelectorAll('svg.graph rect').length >= 6",
    )
    .await;
    assert!(!shown.contains("failhostingpolp.ru"), "{shown}");
    keep(&page, "5-campaign").await;

    // Compare from the page.
    open(&page, &base, &chain_page).await;
    click(&page, "form[action='/ui/compare'] button").await;
    assert!(text(&page).await.contains("Not cloaked"));
    keep(&page, "6-compare").await;

    // The policy is the view's own, unchanged; a form posted from another site is refused.
    let plain = plain_get(addr, "/ui/search?host=x").await;
    assert_eq!(
        plain.headers()["content-security-policy"],
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let req = http::Request::post("/ui/bulk")
            .header("host", addr.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .header(name, value)
            .body(format!("text={}", urlencode(&one)).into())
            .unwrap();
        assert_eq!(send(addr, req).await.status(), 403, "{name}: {value}");
    }
}
