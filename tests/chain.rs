//! The resolution loop against real servers on 127.0.0.1 and a local DNS responder:
//! every `via`, every outcome, odd redirects, limits.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use hoptrace::trace::{Outcome, Trace, Via};

fn vias(t: &Trace) -> Vec<Via> {
    t.hops.iter().map(|h| h.via).collect()
}

#[tokio::test]
async fn campaign_chain_redirect_labels_and_landing() {
    let env = TestEnv::new().await;
    let (short, _payload, target) = campaign(&env).await;

    let t = resolve(&env, &format!("hxxp://blltly[.]com:{}/1w1w1", short.port())).await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(vias(&t), vec![Via::Input, Via::HttpRedirect]);
    assert_eq!(t.hops[0].status, Some(302));
    assert_eq!(t.hops[0].labels, vec!["fake-shortener"]);
    assert_eq!(t.hops[0].imitates.as_deref(), Some("bitly.com"));
    assert_eq!(t.hops[1].status, Some(200));
    assert_eq!(t.hops[1].labels, vec!["payload-host"]);
    assert_eq!(t.hops[1].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(t.final_host, "failhostingpolp.ru");
    assert_eq!(t.final_url, target);
    assert_eq!(t.labels, vec!["fake-shortener", "payload-host"]);
    assert!(t.error.is_none());
    // JSON field names are the contract's.
    let j = serde_json::to_value(&t).unwrap();
    for k in [
        "input",
        "final_url",
        "final_host",
        "outcome",
        "hops",
        "labels",
        "cached",
        "error",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    assert_eq!(j["hops"][1]["via"], "http-redirect");
    assert_eq!(j["outcome"], "landed");
}

#[tokio::test]
async fn meta_refresh_refresh_header_and_literal_javascript() {
    let env = TestEnv::new().await;
    env.dns.set("hops.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/meta" => html(r#"<html><head><META HTTP-EQUIV="Refresh" CONTENT="3; URL='/header'"></head></html>"#),
            "/header" => hyper::Response::builder()
                .header("refresh", "0;url=/js")
                .body(body("wait"))
                .unwrap(),
            "/js" => html("<script>setTimeout(function(){ window.location.replace(\"/end\") }, 500)</script>"),
            _ => html("the end"),
        }
    })
    .await;
    let t = resolve(&env, &format!("http://hops.test:{}/meta", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(
        vias(&t),
        vec![
            Via::Input,
            Via::MetaRefresh,
            Via::MetaRefresh,
            Via::Javascript
        ]
    );
    assert!(t.final_url.ends_with("/end"));
}

#[tokio::test]
async fn script_needing_execution_is_left_for_the_browser() {
    let env = TestEnv::new().await;
    env.dns.set("blog.test", &["127.0.0.1"]);
    // The 2023 blogger trick: the target is built at run time.
    let srv = Server::start("127.0.0.1", |_| async {
        html("<script>var el = new URLSearchParams(location.search).get('el'); setTimeout(function(){ window.location.replace('https://gohhs.com/' + el) }, 500);</script>")
    })
    .await;
    let t = resolve(&env, &format!("http://blog.test:{}/p?el=abc", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Landed);
    assert_eq!(
        t.hops.len(),
        1,
        "no static hop may be guessed from a concatenation"
    );
    assert_eq!(env.dns.all_queries("gohhs.com"), 0);
}

#[tokio::test]
async fn google_url_is_decoded_without_contacting_google() {
    let env = TestEnv::new().await;
    env.dns.set("gts794.com", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("landing") }).await;
    let target = format!("http://gts794.com:{}/dl", srv.port());
    let enc: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let t = resolve(
        &env,
        &format!("https://www.google.com/url?q={enc}&sa=D&sntz=1&usg=AOvVaw1x"),
    )
    .await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(vias(&t), vec![Via::Input, Via::GoogleUrl]);
    assert_eq!(t.hops[0].status, None);
    assert_eq!(t.hops[0].labels, vec!["open-redirect"]);
    assert_eq!(t.hops[0].automatic, Some(true));
    assert_eq!(t.hops[1].labels, vec!["payload-host"]);
    assert_eq!(
        env.dns.all_queries("www.google.com"),
        0,
        "Google must not be contacted"
    );

    // Without usg the hop is still decoded, and says it would not be automatic.
    let t = resolve(&env, &format!("https://www.google.com/url?q={enc}")).await;
    assert_eq!(t.hops[0].automatic, Some(false));
}

#[tokio::test]
async fn nested_wrappers_unwrap_in_turn() {
    let env = TestEnv::new().await;
    env.dns.set("end.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("end") }).await;
    let google = format!(
        "https://www.google.com/url?q=http://end.test:{}/x&usg=1",
        srv.port()
    );
    let enc: String = url::form_urlencoded::byte_serialize(google.as_bytes()).collect();
    let t = resolve(&env, &format!("https://l.facebook.com/l.php?u={enc}&h=AT1")).await;
    assert_eq!(vias(&t), vec![Via::Input, Via::Wrapper, Via::GoogleUrl]);
    assert_eq!(t.outcome, Outcome::Landed);
    assert_eq!(t.hops.iter().filter(|h| h.status.is_some()).count(), 1);
    assert_eq!(env.dns.all_queries("l.facebook.com"), 0);
}

#[tokio::test]
async fn odd_and_relative_locations() {
    let env = TestEnv::new().await;
    env.dns.set("odd.test", &["127.0.0.1"]);
    env.dns.set("other.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        let port = req.uri().port_u16().unwrap_or(0);
        let host = req
            .headers()
            .get("host")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let port = if port == 0 {
            host.rsplit(':').next().unwrap().parse().unwrap()
        } else {
            port
        };
        match req.uri().path_and_query().unwrap().as_str() {
            "/a/b/start" => redirect(301, b"../rel?x=1"),
            "/a/rel?x=1" => redirect(302, format!("//other.test:{port}/abs").as_bytes()),
            "/abs" => redirect(303, b"/with space/caf\xc3\xa9"),
            "/with%20space/caf%C3%A9" => redirect(307, b"  /trimmed  "),
            "/trimmed" => redirect(308, b"?only=query#section"),
            _ => html("done"),
        }
    })
    .await;
    let t = resolve(&env, &format!("http://odd.test:{}/a/b/start", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    let urls: Vec<&str> = t.hops.iter().map(|h| h.url.as_str()).collect();
    let p = srv.port();
    assert_eq!(
        urls,
        vec![
            format!("http://odd.test:{p}/a/b/start"),
            format!("http://odd.test:{p}/a/rel?x=1"),
            format!("http://other.test:{p}/abs"),
            format!("http://other.test:{p}/with%20space/caf%C3%A9"),
            format!("http://other.test:{p}/trimmed"),
            format!("http://other.test:{p}/trimmed?only=query"),
        ]
    );
    assert_eq!(
        t.hops.iter().map(|h| h.status.unwrap()).collect::<Vec<_>>(),
        vec![301, 302, 303, 307, 308, 200]
    );
}

#[tokio::test]
async fn redirect_to_an_unparseable_location_is_an_error() {
    let env = TestEnv::new().await;
    env.dns.set("bad.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { redirect(302, b"http://[::zz]/") }).await;
    let t = resolve(&env, &format!("http://bad.test:{}/", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Error);
    assert_eq!(t.error.unwrap().kind, "http");
}

#[tokio::test]
async fn loop_is_detected() {
    let env = TestEnv::new().await;
    env.dns.set("loop.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        if req.uri().path() == "/a" {
            redirect(302, b"/b")
        } else {
            redirect(302, b"/a")
        }
    })
    .await;
    let t = resolve(&env, &format!("http://loop.test:{}/a", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Loop);
    assert_eq!(t.hops.len(), 3);
    assert_eq!(t.hops[2].url, t.hops[0].url);
    assert!(t.hops[2].reason.to_string().contains("hop 0"));
    assert_eq!(srv.requests(), 2, "the repeated URL is not fetched again");
}

#[tokio::test]
async fn endless_chain_stops_at_max_hops() {
    let mut env = TestEnv::new().await;
    env.config.limits.max_hops = 5;
    env.dns.set("chain.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        let n = path_number(&req);
        redirect(302, format!("/{}", n + 1).as_bytes())
    })
    .await;
    let t = resolve(&env, &format!("http://chain.test:{}/0", srv.port())).await;
    assert_eq!(t.outcome, Outcome::TooManyHops);
    assert_eq!(t.hops.len(), 6, "the input plus max_hops hops");
    assert_eq!(srv.requests(), 6);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let mut env = TestEnv::new().await;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(300);
    env.dns.set("silent.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let t = resolve(&env, &format!("http://silent.test:{}/", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Timeout);
    assert_eq!(t.error.as_ref().unwrap().kind, "timeout");
    assert!(t.error.unwrap().message.contains("hop_timeout_ms"));
    assert_eq!(t.hops[0].status, None);
}

#[tokio::test]
async fn total_timeout_bounds_the_whole_chain() {
    let mut env = TestEnv::new().await;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(2000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(400);
    env.dns.set("slow.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        let n = path_number(&req);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        redirect(302, format!("/{}", n + 1).as_bytes())
    })
    .await;
    let t = resolve(&env, &format!("http://slow.test:{}/0", srv.port())).await;
    assert_eq!(t.outcome, Outcome::Timeout, "{t:#?}");
    assert!(t.error.unwrap().message.contains("total_timeout_ms"));
}

#[tokio::test]
async fn endless_body_is_read_only_up_to_the_limit() {
    let env = TestEnv::new().await; // max_body_bytes = 65536
    env.dns.set("stream.test", &["127.0.0.1"]);
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let srv = Server::start("127.0.0.1", move |_| {
        let sent = s2.clone();
        async move { endless("text/html", sent) }
    })
    .await;
    let t = resolve(&env, &format!("http://stream.test:{}/", srv.port())).await;
    // Landed (not timeout): reading stopped at the limit instead of waiting for an end.
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(
        t.hops[0].reason.text().as_deref(),
        Some("body cut at max_body_bytes")
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let total = sent.load(Ordering::SeqCst);
    // Socket buffers hold a few MB at most; an unbounded reader would have taken far more.
    assert!(total < 32 * 1024 * 1024, "server pushed {total} bytes");
}

#[tokio::test]
async fn downloads_are_known_from_headers_without_reading_the_body() {
    let env = TestEnv::new().await;
    env.dns.set("totrakto.com", &["127.0.0.1"]);
    // Headers, then a body that never comes: reading it would hang until the hop timeout.
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/offer" => redirect(302, b"/CRACK-IDA-Pro.zip"),
            "/CRACK-IDA-Pro.zip" => stall_after_headers("application/zip", None),
            "/setup" => stall_after_headers(
                "text/plain",
                Some("attachment; filename=\"freehtmlvalidator.exe\""),
            ),
            _ => stall_after_headers("application/x-msdownload", None),
        }
    })
    .await;
    for path in ["/offer", "/setup", "/x.exe"] {
        let t = resolve(&env, &format!("http://totrakto.com:{}{path}", srv.port())).await;
        assert_eq!(t.outcome, Outcome::Download, "{path}: {t:#?}");
        let last = t.hops.last().unwrap();
        assert_eq!(last.status, Some(200));
        assert!(last.reason.to_string().contains("body not fetched"));
        assert!(t.labels.iter().any(|l| l == "payload-host"));
    }
}

#[tokio::test]
async fn compressed_pages_are_decoded_for_analysis() {
    use std::io::Write;
    let env = TestEnv::new().await;
    env.dns.set("gz.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        if req.uri().path() == "/next" {
            return html("ok");
        }
        assert!(req.headers()["accept-encoding"]
            .to_str()
            .unwrap()
            .contains("gzip"));
        assert!(req.headers()["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("Mozilla/5.0"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"<meta http-equiv="refresh" content="0;url=/next">"#)
            .unwrap();
        hyper::Response::builder()
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .body(body(gz.finish().unwrap()))
            .unwrap()
    })
    .await;
    let t = resolve(&env, &format!("http://gz.test:{}/", srv.port())).await;
    assert_eq!(vias(&t), vec![Via::Input, Via::MetaRefresh]);
}

#[tokio::test]
async fn network_errors_have_kinds() {
    let env = TestEnv::new().await;
    // NXDOMAIN.
    let t = resolve(&env, "http://nowhere.test/").await;
    assert_eq!(
        (t.outcome, t.error.as_ref().unwrap().kind.as_str()),
        (Outcome::Error, "dns"),
        "{t:#?}"
    );
    // Connection refused: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    env.dns.set("closed.test", &["127.0.0.1"]);
    let t = resolve(&env, &format!("http://closed.test:{port}/")).await;
    assert_eq!(
        (t.outcome, t.error.as_ref().unwrap().kind.as_str()),
        (Outcome::Error, "connect"),
        "{t:#?}"
    );
    // Bad input.
    let t = resolve(&env, "http://").await;
    assert_eq!(
        (t.outcome, t.error.as_ref().unwrap().kind.as_str()),
        (Outcome::Error, "input")
    );
    assert!(t.hops.is_empty());
}

#[tokio::test]
async fn a_nameserver_that_never_answers_times_out() {
    let mut env = TestEnv::new().await;
    // A UDP socket that reads queries and never replies.
    let mute = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = mute.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while mute.recv_from(&mut buf).await.is_ok() {}
    });
    env.config.dns.nameservers = vec![addr];
    env.config.dns.timeout = Some(std::time::Duration::from_millis(300));
    env.config.limits.hop_timeout = std::time::Duration::from_millis(2000);
    let t = resolve(&env, "http://mute.test/").await;
    assert_eq!(t.outcome, Outcome::Timeout, "{t:#?}");
    assert_eq!(t.error.unwrap().kind, "timeout");
}

/// Keep-alive connections are reused for their host: a batch of two-hop chains on one host at
/// concurrency 16 needs about 16 connections, not one per request (with too few idle
/// connections kept, most of them were closed and opened again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_one_host_reuses_its_connections() {
    use futures_util::StreamExt;
    let mut env = TestEnv::new().await;
    env.dns.set("reuse.test", &["127.0.0.1"]);
    env.config.limits.concurrency = 16;
    env.config.limits.per_host_per_second = 1_000_000.0;
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path().strip_prefix("/a/") {
            Some(n) => redirect(302, format!("/b/{n}").as_bytes()),
            None => html("<html>landed</html>"),
        }
    })
    .await;
    let resolver = hoptrace::chain::Resolver::new(&env.config, None).unwrap();
    let port = srv.port();
    let traces: Vec<Trace> = futures_util::stream::iter(0..300)
        .map(|n| {
            let resolver = &resolver;
            async move {
                resolver
                    .resolve(&format!("http://reuse.test:{port}/a/{n}"), false)
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(traces
        .iter()
        .all(|t| t.outcome == Outcome::Landed && t.hops.len() == 2));
    assert_eq!(srv.requests(), 600);
    // 16 in flight at most; hyper may open a few more when a connection is returned just
    // after a new one was started. One connection per request would be 600.
    let opened = srv.connections();
    assert!(opened <= 32, "{opened} connections for 600 requests");
}

/// The most requests `times` holds within any one second.
fn most_in_a_second(times: &[std::time::Instant]) -> usize {
    times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && **u - *t < std::time::Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Politeness is owed to a server, not to a spelling of its name: many names of one
/// address share the address's budget, and `same.test.` is `same.test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_names_of_one_server_share_its_politeness() {
    let mut env = TestEnv::new().await;
    env.config.limits.per_host_per_second = 2.0;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let srv = Server::start("127.0.0.1", move |_| {
        log.lock().unwrap().push(std::time::Instant::now());
        async { html("<html>one server</html>") }
    })
    .await;
    let p = srv.port();
    let mut names = Vec::new();
    for i in 0..10 {
        let name = format!("name-{i}.test");
        env.dns.set(&name, &["127.0.0.1"]);
        names.push(format!("http://{name}:{p}/"));
    }
    env.dns.set("same.test", &["127.0.0.1"]);
    let r = hoptrace::chain::Resolver::new(&env.config, None).unwrap();
    let resolve_all = |urls: Vec<String>| {
        let r = &r;
        async move { futures_util::future::join_all(urls.iter().map(|u| r.resolve(u, false))).await }
    };
    // Limit 2/s with a burst of 2: at most 4 within any second (a generous bound; without a
    // shared budget all 10 arrive at once).
    for t in resolve_all(names).await {
        assert_eq!(t.outcome, Outcome::Landed, "{t:?}");
    }
    let times = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(times.len(), 10);
    assert!(most_in_a_second(&times) <= 4, "{times:?}");

    // One name, spelt with and without its root dot.
    let spellings = (0..8)
        .map(|i| match i % 2 {
            0 => format!("http://same.test.:{p}/{i}"),
            _ => format!("http://SAME.test:{p}/{i}"),
        })
        .collect();
    resolve_all(spellings).await;
    let times = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(times.len(), 8);
    assert!(most_in_a_second(&times) <= 4, "{times:?}");
}

/// The batch engine: answers in input order (an input answered without resolving keeps its
/// place, a slow link holds back the ones after it), never more visits at once than
/// `limits.concurrency` (counted at the fixture), and each group kept by the store before it
/// is handed out (the resolver defers durability, so the cache sees a Trace only once its
/// group was flushed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_in_order_within_the_admission_and_stored() {
    use hoptrace::chain::{Batch, Entry, Lookup, Resolver};
    use hoptrace::input::Link;

    let mut env = TestEnv::new().await;
    env.dns.set("batch.test", &["127.0.0.1"]);
    env.config.limits.concurrency = 2;
    let now = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let (n, m) = (now.clone(), most.clone());
    let srv = Server::start("127.0.0.1", move |req| {
        let (n, m) = (n.clone(), m.clone());
        async move {
            let at = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(at, Ordering::SeqCst);
            // The first link is slow: the others finish first and wait for it.
            if req.uri().path() == "/0" {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            n.fetch_sub(1, Ordering::SeqCst);
            html("<html>landed</html>")
        }
    })
    .await;
    let store = hoptrace::store::Store::open_sled(env.config.storage.sled_path().unwrap()).unwrap();
    let mut resolver = Resolver::new(&env.config, Some(store)).unwrap();
    resolver.defer_durability();
    let resolver = Arc::new(resolver);
    let urls: Vec<String> = (0..8)
        .map(|i| format!("http://batch.test:{}/{i}", srv.port()))
        .collect();
    let mut entries: Vec<Result<Entry, std::convert::Infallible>> =
        urls.iter().map(|u| Ok(Entry::parse(u.clone()))).collect();
    entries.insert(3, Ok(Entry::parse("hxxp://exa mple[.]com/".into())));
    let (profile, via) = (hoptrace::profile::DEFAULT, hoptrace::chain::DIRECT);
    let batch = Batch::new(resolver.clone(), profile, via, Lookup::Refresh).unwrap();
    let mut groups = batch.run(futures_util::stream::iter(entries));
    let mut inputs = Vec::new();
    while let Some(group) = groups.next().await.unwrap() {
        for answer in group {
            if let Ok(link) = Link::parse(answer.trace.input.as_str()) {
                let kept = resolver.cached(&link).await;
                assert!(kept.is_some(), "{} not stored", answer.trace.input);
            }
            inputs.push(answer.trace.input);
        }
    }
    let mut want = urls.clone();
    want.insert(3, "hxxp://exa mple[.]com/".into());
    assert_eq!(inputs, want);
    assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} visits at once");
}
