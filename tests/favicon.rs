//! The landing page's icon as evidence (`http.favicon`): off by default (no request), when on
//! fetched through the chain's gate, hashed (SHA-256 and Shodan's mmh3) only when it is an
//! image within the cap, never from a blocked address, and searchable on both backends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use hoptrace::chain::Resolver;
use hoptrace::store::{SearchKey, SearchQuery, Store};
use hoptrace::trace::{Outcome, Trace};

/// The icon served: 300 bytes, so its base64 runs over one 76-character line.
fn icon() -> Vec<u8> {
    (0..300u32).map(|i| (i * 7 % 251) as u8).collect()
}
/// Its hashes, computed independently: Python's hashlib, and a pure-Python MurmurHash3 over
/// `codecs.encode(data, "base64")` (checked against mmh3's published `hash("foo")`).
const ICON_SHA256: &str = "6a4239d205133d8402a260719140095ed928157baf8617038b67217d5df2d788";
const ICON_MMH3: i32 = -1_780_372_329;

fn typed(content_type: &str, bytes: Vec<u8>) -> http::Response<Body> {
    http::Response::builder()
        .header("content-type", content_type)
        .body(body(bytes))
        .unwrap()
}

/// A site on `page.test`: pages that link their icon in each way this tests, the icons, and
/// a count of requests for anything icon-like.
async fn site(icon_requests: Arc<AtomicUsize>, inside_port: u16) -> Server {
    Server::start("127.0.0.1", move |req| {
        let path = req.uri().path().to_string();
        let n = icon_requests.clone();
        async move {
            let page = |href: &str| html(&format!("<html><head><title>t</title><link rel=\"icon\" href=\"{href}\"></head><body>hi</body></html>"));
            match path.as_str() {
                "/linked" => page("/i/fav.png"),
                "/plain" => html("<html><head><title>plain</title></head><body>hi</body></html>"),
                "/octet" => page("/i/octet.ico"),
                "/markup" => page("/i/page.ico"),
                "/big" => page("/i/big.png"),
                "/inside" => page(&format!("http://inside.test:{inside_port}/i.png")),
                "/metadata" => page("http://169.254.169.254/latest/meta-data/"),
                _ => {
                    n.fetch_add(1, Ordering::SeqCst);
                    match path.as_str() {
                        "/i/fav.png" => typed("image/png", icon()),
                        "/favicon.ico" => typed("image/x-icon", icon()),
                        "/i/octet.ico" => typed("application/octet-stream", icon()),
                        "/i/page.ico" => html("<title>not an icon</title>"),
                        "/i/big.png" => typed("image/png", vec![7u8; 200 * 1024]),
                        _ => typed("text/plain", b"?".to_vec()),
                    }
                }
            }
        }
    })
    .await
}

async fn env_on(favicon: bool) -> TestEnv {
    let mut env = TestEnv::new().await;
    env.config.http.favicon = favicon;
    env.config.limits.max_body_bytes = 512 * 1024;
    env.dns.set("page.test", &["127.0.0.1"]);
    env.dns.set("inside.test", &["127.0.0.2"]);
    env
}

fn icon_of(t: &Trace) -> (Option<&str>, Option<&str>, Option<i32>) {
    let e = t.evidence.as_ref().expect("a landed page has evidence");
    (
        e.favicon_url.as_deref(),
        e.favicon_sha256.as_deref(),
        e.favicon_mmh3,
    )
}

fn by(key: SearchKey, value: &str) -> SearchQuery {
    SearchQuery {
        terms: vec![key.term(value)],
        limit: 10,
        ..Default::default()
    }
}

async fn inputs(store: &Store, q: &SearchQuery) -> Vec<String> {
    let page = store.search(q).await.unwrap();
    page.hits.into_iter().map(|(_, t, _)| t.input).collect()
}

/// With `http.favicon` on, the icon a page links and a page's `/favicon.ico` are hashed
/// (SHA-256 and Shodan's mmh3, as computed independently), and a search by either value
/// finds the chain on both backends.
#[tokio::test]
async fn a_landed_pages_icon_is_hashed_and_found_by_search() {
    let env = env_on(true).await;
    let srv = site(Arc::new(AtomicUsize::new(0)), 1).await;
    let store = Store::open_sled(env.config.storage.sled_path().unwrap()).unwrap();
    let r = Resolver::new(&env.config, Some(store.clone())).unwrap();
    let base = format!("http://page.test:{}", srv.port());
    let linked = r.resolve(&format!("{base}/linked"), false).await;
    let plain = r.resolve(&format!("{base}/plain"), false).await;
    for (t, path) in [(&linked, "/i/fav.png"), (&plain, "/favicon.ico")] {
        assert_eq!(t.outcome, Outcome::Landed, "{t:?}");
        let want = format!("{base}{path}");
        assert_eq!(
            icon_of(t),
            (Some(want.as_str()), Some(ICON_SHA256), Some(ICON_MMH3))
        );
    }
    let json = serde_json::to_value(&linked).unwrap();
    assert_eq!(json["evidence"]["favicon_mmh3"], ICON_MMH3);

    let pg = Store::open(&hoptrace::config::Storage {
        backend: hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(
            db::fresh_database().await,
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    pg.put(&linked.input, &linked, 1_000).await.unwrap();
    pg.put(&plain.input, &plain, 2_000).await.unwrap();
    for backend in [&store, &pg] {
        for value in [ICON_SHA256.to_string(), ICON_MMH3.to_string()] {
            let mut found = inputs(backend, &by(SearchKey::Favicon, &value)).await;
            found.sort();
            assert_eq!(
                found,
                [linked.input.clone(), plain.input.clone()],
                "{value}"
            );
        }
        assert!(inputs(backend, &by(SearchKey::Favicon, "12345"))
            .await
            .is_empty());
    }
}

/// By default no icon is asked for: the site sees no request for one, the Trace has none.
#[tokio::test]
async fn off_by_default_no_icon_is_requested() {
    let env = env_on(false).await;
    assert!(!hoptrace::config::Config::default().http.favicon);
    let asked = Arc::new(AtomicUsize::new(0));
    let srv = site(asked.clone(), 1).await;
    let base = format!("http://page.test:{}", srv.port());
    for path in ["/linked", "/plain"] {
        let t = resolve(&env, &format!("{base}{path}")).await;
        assert_eq!(t.outcome, Outcome::Landed);
        assert_eq!(icon_of(&t), (None, None, None));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

/// An icon that is not an image (octet-stream, an HTML page) or is over the cap gets no
/// hash, and the landing hop says why.
#[tokio::test]
async fn an_icon_not_an_image_or_too_big_has_no_hash() {
    let env = env_on(true).await;
    let asked = Arc::new(AtomicUsize::new(0));
    let srv = site(asked.clone(), 1).await;
    let base = format!("http://page.test:{}", srv.port());
    for (path, why) in [
        ("/octet", "not an image"),
        ("/markup", "not an image"),
        ("/big", "larger than"),
    ] {
        let t = resolve(&env, &format!("{base}{path}")).await;
        assert_eq!(t.outcome, Outcome::Landed, "{path}");
        assert_eq!(icon_of(&t), (None, None, None), "{path}");
        let reason = t.hops.last().unwrap().reason.to_string();
        assert!(reason.contains(why), "{path}: {reason}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 3, "each icon asked for once");
}

/// An icon on an address the policy refuses (another loopback address, the cloud metadata
/// address) is never connected to and gets no hash.
#[tokio::test]
async fn an_icon_on_a_blocked_address_is_never_connected_to() {
    let Some(inside) = Sentinel::start("127.0.0.2", 0).await else {
        eprintln!("127.0.0.2 not bindable here");
        return;
    };
    let env = env_on(true).await;
    let srv = site(Arc::new(AtomicUsize::new(0)), inside.addr.port()).await;
    let base = format!("http://page.test:{}", srv.port());
    for path in ["/inside", "/metadata"] {
        let t = resolve(&env, &format!("{base}{path}")).await;
        assert_eq!(t.outcome, Outcome::Landed, "{path}");
        assert_eq!(icon_of(&t), (None, None, None), "{path}");
        let reason = t.hops.last().unwrap().reason.to_string();
        assert!(
            reason.starts_with("icon ") && reason.contains("egress policy refuses"),
            "{path}: {reason}"
        );
    }
    assert_eq!(inside.connections(), 0);
}
