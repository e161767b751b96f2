//! `hoptrace serve` over real HTTP on 127.0.0.1: every call and error, protection, and the
//! process-level guarantees (kill -9, restart, SIGHUP, SIGTERM) with the real binary.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hoptrace::api::ROUTES;
use serde_json::{json, Value};

#[tokio::test]
async fn every_call_and_its_errors() {
    let mut env = TestEnv::new().await;
    env.config.server.max_request_bytes = 4096;
    env.config.server.max_batch = 5;
    let (short, _payload, target) = campaign(&env).await;
    let sp = short.port();
    let srv = start(&env.config).await;
    let a = srv.addr;

    assert_eq!(get(a, "/healthz", None).await.status, 200);

    // resolve, then the same from the cache
    let url = format!("http://blltly.com:{sp}/1w1w1");
    let r = post(a, "/v1/resolve", json!({"url": url}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["final_url"], target.as_str());
    assert_eq!(r.body["hops"][0]["labels"][0], "fake-shortener");
    assert_eq!(r.body["cached"], false);
    let r = post(a, "/v1/resolve", json!({"url": url}), None).await;
    assert_eq!(r.body["cached"], true);
    // A hit answers with the caller's spelling of the link (the stored bytes, spliced).
    let defanged = format!("hxxp://blltly[.]com:{sp}/1w1w1");
    let r = post(a, "/v1/resolve", json!({"url": defanged}), None).await;
    assert_eq!(
        (&r.body["cached"], &r.body["input"]),
        (&json!(true), &json!(defanged))
    );
    assert_eq!(r.body["final_url"], target.as_str());
    let stored = get(a, &format!("/v1/trace?url={}", urlencode(&defanged)), None).await;
    assert_eq!(
        stored.body["input"],
        url.as_str(),
        "the stored Trace keeps its own input"
    );
    assert_eq!(stored.body["cached"], true);
    let r = post(a, "/v1/resolve", json!({"url": url, "refresh": true}), None).await;
    assert_eq!(r.body["cached"], false, "refresh bypasses the cache");
    // defanged input is fine, and a fresh answer names it as given
    let defanged = format!("hxxp://blltly[.]com:{sp}/defanged");
    let r = post(a, "/v1/resolve", json!({"url": defanged}), None).await;
    assert_eq!(r.body["final_url"], target.as_str());
    assert_eq!(
        (&r.body["cached"], &r.body["input"]),
        (&json!(false), &json!(defanged))
    );

    // batch: input order kept, bad entries are error traces, over the cap is a 400
    let urls = vec![
        format!("http://blltly.com:{sp}/b1"),
        "not a url".to_string(),
        format!("http://blltly.com:{sp}/b2"),
    ];
    let r = post(a, "/v1/resolve/batch", json!({"urls": urls}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let traces = r.body["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 3);
    for (t, u) in traces.iter().zip(&urls) {
        assert_eq!(t["input"], u.as_str());
    }
    assert_eq!(traces[1]["outcome"], "error");
    let r = post(
        a,
        "/v1/resolve/batch",
        json!({"urls": vec![url.clone(); 6]}),
        None,
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 5"));

    // scan: links out of text, each resolved
    let text = format!(
        "Download: [here](http://blltly.com:{sp}/scan1). Mirror hxxp://blltly[.]com:{sp}/scan2 ."
    );
    let r = post(a, "/v1/scan", json!({"text": text}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let links = r.body["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{}", r.body);
    assert!(links.iter().all(|t| t["final_url"] == target.as_str()));

    // trace: stored, unknown, missing parameter
    let r = get(a, &format!("/v1/trace?url={}", urlencode(&url)), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["final_url"], target.as_str());
    let r = get(a, "/v1/trace?url=http%3A%2F%2Fnever.example%2F", None).await;
    assert_eq!((r.status, error_code(&r)), (404, "not_found"));
    let r = get(a, "/v1/trace", None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));

    // domains: the landing domain with its distinct inputs, sortable and paged
    let r = get(a, "/v1/domains", None).await;
    assert_eq!(r.status, 200);
    let d = &r.body["domains"][0];
    assert_eq!(d["domain"], "failhostingpolp.ru");
    assert_eq!(d["inputs"], 6, "{}", r.body);
    assert_eq!(r.body["total"], 1);
    let r = get(
        a,
        "/v1/domains?sort=domain&order=asc&limit=1&offset=0",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["next_offset"], Value::Null);
    for bad in ["sort=size", "order=up", "limit=0", "limit=x"] {
        let r = get(a, &format!("/v1/domains?{bad}"), None).await;
        assert_eq!((r.status, error_code(&r)), (400, "bad_request"), "{bad}");
    }
    let r = get(a, "/v1/domains/failhostingpolp.ru", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["inputs"].as_array().unwrap().len(), 6);
    assert_eq!(r.body["input_count"], 6);
    let r = get(a, "/v1/domains/nowhere.example", None).await;
    assert_eq!((r.status, error_code(&r)), (404, "not_found"));

    // bad JSON, bad URL, unknown field, unknown route, wrong method, too large
    let r = call(a, "POST", "/v1/resolve", Some(b"{nope".to_vec()), None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    let r = post(a, "/v1/resolve", json!({"url": "http://"}), None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    // Only web URLs start work: every call refuses another scheme with the same words (a
    // 400 naming why; in a batch, that entry's `input` error Trace).
    for (i, bad) in [
        "ftp://x.example/",
        "javascript:alert(1)",
        "data:text/html,x",
    ]
    .into_iter()
    .enumerate()
    {
        let fresh = format!("http://blltly.com:{sp}/rest{i}");
        for (path, body) in [
            ("/v1/resolve", json!({"url": bad})),
            ("/v1/watch", json!({"url": bad})),
        ] {
            let r = post(a, path, body, None).await;
            assert_eq!(
                (r.status, error_code(&r)),
                (400, "bad_request"),
                "{path} {bad}"
            );
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("only http and https"),
                "{path} {bad}: {message}"
            );
        }
        let r = get(a, &format!("/v1/history?url={}", urlencode(bad)), None).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (400, "bad_request"),
            "history {bad}"
        );
        let r = post(a, "/v1/resolve/batch", json!({"urls": [bad, fresh]}), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t = &r.body["traces"][0];
        assert_eq!(
            (&t["outcome"], &t["error"]["kind"]),
            (&json!("error"), &json!("input"))
        );
        assert!(t["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only http and https"));
        assert_eq!(
            r.body["traces"][1]["final_url"],
            target.as_str(),
            "the rest resolved"
        );
    }
    let r = post(a, "/v1/resolve", json!({"url": url, "extra": 1}), None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    let r = get(a, "/v2/nothing", None).await;
    assert_eq!((r.status, error_code(&r)), (404, "not_found"));
    let r = get(a, "/v1/resolve", None).await;
    assert_eq!((r.status, error_code(&r)), (405, "method_not_allowed"));
    let big = json!({"url": "x".repeat(5000)});
    let r = post(a, "/v1/resolve", big, None).await;
    assert_eq!((r.status, error_code(&r)), (413, "payload_too_large"));

    // metrics count what happened
    let r = get(a, "/metrics", None).await;
    let text = r.body.as_str().unwrap();
    assert!(
        text.contains("hoptrace_resolutions_total{outcome=\"landed\"}"),
        "{text}"
    );
    assert!(text.contains("hoptrace_cache_hits_total 2"), "{text}");
    assert!(text.contains("hoptrace_hops_total{via=\"http-redirect\"}"));
    assert!(text.contains("hoptrace_http_request_seconds_bucket"));
    // each answer under its route's label, 404s included
    for counted in [
        "hoptrace_http_requests_total{route=\"Resolve\",status=\"413\"} 1",
        "hoptrace_http_requests_total{route=\"Unknown\",status=\"404\"} 1",
    ] {
        assert!(text.contains(counted), "{counted}: {text}");
    }
    assert!(text.contains("hoptrace_queue_depth 0"));
}

/// A repeated request is answered from what it was answered before only while that is
/// still the newest fresh Trace: a re-resolution or the cache's age ends it (issue 18 keeps
/// a hit's answer by the request's bytes).
#[tokio::test]
async fn a_repeated_request_gets_the_newest_fresh_trace() {
    let mut env = TestEnv::new().await;
    env.config.storage.cache_ttl = std::time::Duration::from_secs(1);
    // Each visit redirects somewhere new, as a rotating shortener does.
    let visits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = visits.clone();
    let rotating = Server::start("127.0.0.1", move |req| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move {
            match req.uri().path() {
                "/go" => redirect(302, format!("/landing/{n}").as_bytes()),
                _ => html("<html>landing</html>"),
            }
        }
    })
    .await;
    env.dns.set("rotating.test", &["127.0.0.1"]);
    let srv = start(&env.config).await;
    let a = srv.addr;
    let url = format!("http://rotating.test:{}/go", rotating.port());
    let ask = |body: Value| async move {
        let r = post(a, "/v1/resolve", body, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let landing = r.body["final_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        (r.body["cached"].as_bool().unwrap(), landing)
    };
    let plain = json!({"url": url});

    assert_eq!(ask(plain.clone()).await, (false, "1".into()));
    // The second asking is a hit the long way; the third is answered as the second was.
    assert_eq!(ask(plain.clone()).await, (true, "1".into()));
    assert_eq!(ask(plain.clone()).await, (true, "1".into()));
    // Re-resolved: the same request now gets the new Trace, not what it got before.
    assert_eq!(
        ask(json!({"url": url, "refresh": true})).await,
        (false, "3".into())
    );
    assert_eq!(ask(plain.clone()).await, (true, "3".into()));
    assert_eq!(ask(plain.clone()).await, (true, "3".into()));
    // Re-resolved by another route: the answer kept for the request goes with that write too.
    let batch = json!({"urls": [url], "refresh": true});
    let r = post(a, "/v1/resolve/batch", batch, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["traces"][0]["final_url"]
        .as_str()
        .unwrap()
        .ends_with("/5"));
    assert_eq!(ask(plain.clone()).await, (true, "5".into()));
    // Past storage.cache_ttl_seconds the same request resolves again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(plain.clone()).await, (false, "7".into()));
}

#[tokio::test]
async fn tokens_and_rate_limits() {
    let mut env = TestEnv::new().await;
    env.config.server.api_tokens = vec!["s3cret".into(), "other".into()];
    env.config.server.rate_per_second = 1;
    env.config.server.rate_burst = 2;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let path = "/v1/domains";

    let r = get(a, path, None).await;
    assert_eq!((r.status, error_code(&r)), (401, "unauthorized"));
    let r = get(a, path, Some("s3cre")).await;
    assert_eq!((r.status, error_code(&r)), (401, "unauthorized"));
    // health, metrics and the API document need no token
    assert_eq!(get(a, "/healthz", None).await.status, 200);
    assert_eq!(get(a, "/openapi.json", None).await.status, 200);

    // two at once (the burst), then 429 with Retry-After; another token has its own budget
    assert_eq!(get(a, path, Some("s3cret")).await.status, 200);
    assert_eq!(get(a, path, Some("s3cret")).await.status, 200);
    let r = get(a, path, Some("s3cret")).await;
    assert_eq!((r.status, error_code(&r)), (429, "rate_limited"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(get(a, path, Some("other")).await.status, 200);
}

#[tokio::test]
async fn full_queue_is_503_and_slow_requests_504() {
    let mut env = TestEnv::new().await;
    env.config.limits.concurrency = 1;
    env.config.server.max_queue = 1;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(10_000);
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = release.clone();
    let slow = Server::start("127.0.0.1", move |_| {
        let r = r2.clone();
        async move {
            r.notified().await;
            html("late")
        }
    })
    .await;
    env.dns.set("slow.test", &["127.0.0.1"]);
    let srv = start(&env.config).await;
    let a = srv.addr;
    let url = |n: u32| format!("http://slow.test:{}/{n}", slow.port());

    // one running, one waiting: the queue is full
    let first = tokio::spawn(post(a, "/v1/resolve", json!({"url": url(1)}), None));
    let second = tokio::spawn(post(a, "/v1/resolve", json!({"url": url(2)}), None));
    while slow.requests() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = post(a, "/v1/resolve", json!({"url": url(3)}), None).await;
    assert_eq!((r.status, error_code(&r)), (503, "overloaded"));
    assert_eq!(r.headers["retry-after"], "1");
    // cached answers need no slot: still served while the queue is full
    assert_eq!(get(a, "/v1/domains", None).await.status, 200);
    release.notify_waiters();
    for _ in 0..50 {
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if first.is_finished() && second.is_finished() {
            break;
        }
    }
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    drop(srv);

    // a request over its time limit: 504
    env.config.server.request_timeout = std::time::Duration::from_millis(300);
    env.config.storage.backend =
        hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(env.dir.path().join("db2")));
    let srv = start(&env.config).await;
    let r = post(srv.addr, "/v1/resolve", json!({"url": url(4)}), None).await;
    assert_eq!((r.status, error_code(&r)), (504, "timeout"));
    // the work cut at the time limit does not stay counted
    let m = get(srv.addr, "/metrics", None).await.body;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("hoptrace_in_flight 0") && m.contains("hoptrace_queue_depth 0"),
        "{m}"
    );
    release.notify_waiters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let env = TestEnv::new().await;
    let (short, _payload, target) = campaign(&env).await;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let mut tasks = Vec::new();
    for c in 0..40 {
        let (target, sp) = (target.clone(), short.port());
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                // a few distinct URLs, so most calls are cache hits and some resolve
                let url = format!("http://blltly.com:{sp}/{}", (c * 10 + n) % 25);
                let r = post(a, "/v1/resolve", json!({"url": url}), None).await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.body["final_url"], target.as_str());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = get(a, "/v1/domains/failhostingpolp.ru", None).await;
    assert_eq!(r.body["input_count"], 25);
}

/// The OpenAPI document kept in the repo names exactly the routes the server has, and
/// every documented call answers (not 404/405 for want of a route).
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let env = TestEnv::new().await;
    let srv = start(&env.config).await;
    let doc = get(srv.addr, "/openapi.json", None).await.body;
    assert_eq!(doc["openapi"].as_str().unwrap().chars().next(), Some('3'));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    for (method, path) in &routes {
        if path == "/v1/events" {
            continue; // an endless stream: tests/watch.rs reads it
        }
        let concrete = path.replace("{domain}", "example.com");
        let body = (method == "POST").then(|| b"{}".to_vec());
        let r = call(srv.addr, method, &concrete, body, None).await;
        let unrouted = r.status == 404
            && r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("no route");
        assert!(
            error_code(&r) != "method_not_allowed" && !unrouted,
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
}

/// The real binary: answers survive kill -9, SIGHUP reloads the lists, SIGTERM stops it
/// cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_keeps_answers_reloads_lists_and_stops_cleanly() {
    let env = TestEnv::new().await;
    let (short, _payload, target) = campaign(&env).await;
    let sp = short.port();
    env.dns.set("newbad.test", &["127.0.0.1"]);
    let landing = Server::start("127.0.0.1", |_| async { html("<html>plain</html>") }).await;
    let lists = env.dir.path().join("extra.txt");
    std::fs::write(&lists, "[payload-host]\nsomething-else.example\n").unwrap();
    let cfg = env.write_config(&format!(
        "[labels]\nextra_files = [\"{}\"]\n",
        lists.display()
    ));

    let spawn = || serve_binary(&cfg);

    let (mut child, a) = spawn();
    let urls: Vec<String> = (0..20)
        .map(|n| format!("http://blltly.com:{sp}/k{n}"))
        .collect();
    let r = post(a, "/v1/resolve/batch", json!({"urls": urls}), None).await;
    assert_eq!(r.status, 200);
    // answered, then killed without warning
    std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    let (mut child, a) = spawn();
    for u in &urls {
        let r = get(a, &format!("/v1/trace?url={}", urlencode(u)), None).await;
        assert_eq!(r.status, 200, "{u} survived kill -9");
        assert_eq!(r.body["final_url"], target.as_str());
    }
    let r = get(a, "/v1/domains/failhostingpolp.ru", None).await;
    assert_eq!(
        r.body["input_count"], 20,
        "the domain index survived kill -9"
    );

    // SIGHUP: a new list names newbad.test; a fresh resolution carries the label
    let newbad = format!("http://newbad.test:{}/x", landing.port());
    let r = post(a, "/v1/resolve", json!({"url": newbad}), None).await;
    assert_eq!(r.body["labels"], json!([]));
    std::fs::write(&lists, "[payload-host]\nnewbad.test\n").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let mut labelled = false;
    for _ in 0..50 {
        let r = post(
            a,
            "/v1/resolve",
            json!({"url": newbad, "refresh": true}),
            None,
        )
        .await;
        if r.body["labels"] == json!(["payload-host"]) {
            labelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(labelled, "SIGHUP reloaded the lists");

    // `hoptrace health` (the image's HEALTHCHECK) sees it serving
    let health = |addr: SocketAddr| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
            .args(["health", "--server", &addr.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    assert!(health(a).success());

    // SIGTERM: stops by itself, exit status 0
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!health(a).success(), "nothing serves there any more");
}

/// Reads what the server sends until it closes the connection, or `within` passes.
/// Answers the bytes and whether it closed.
async fn until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// A body sent in pieces (chunked) is read whole, and held to `server.max_request_bytes`
/// however it comes.
#[tokio::test]
async fn a_body_in_pieces_is_read_whole_and_held_to_the_limit() {
    use tokio::io::AsyncWriteExt;
    let mut env = TestEnv::new().await;
    env.config.server.max_request_bytes = 4096;
    let srv = start(&env.config).await;
    let chunked = |pieces: &[String]| {
        let mut req = "POST /v1/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
        for p in pieces {
            req += &format!("{:x}\r\n{p}\r\n", p.len());
        }
        req + "0\r\n\r\n"
    };
    let ask = |req: String| async move {
        let mut c = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        until_closed(&mut c, Duration::from_secs(10)).await.0
    };
    // Three pieces of one JSON object: read as one (the link is refused as a link, not the
    // body as JSON).
    let pieces = ["{\"url\"", ": \"ftp://x", ".test/\"}"].map(String::from);
    let got = ask(chunked(&pieces)).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(
        got.contains("url: "),
        "the pieces were read as one body: {got}"
    );
    // Five pieces of 1,000 bytes, no length declared: over 4,096 bytes, 413.
    let got = ask(chunked(&vec!["x".repeat(1000); 5])).await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.contains("\"code\":\"payload_too_large\""), "{got}");
    // Four are under it (and not JSON).
    let got = ask(chunked(&vec!["x".repeat(1000); 4])).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("bad JSON"), "{got}");
}

/// Slow and silent clients are closed within the configured limits, a body that never
/// arrives is a 408 in the contract's JSON, and a flood of silent connections past the cap
/// does not keep a new client out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_closed_within_the_limits() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let mut env = TestEnv::new().await;
    env.config.server.header_timeout = std::time::Duration::from_millis(400);
    env.config.server.body_timeout = std::time::Duration::from_millis(400);
    env.config.server.idle_timeout = std::time::Duration::from_millis(600);
    env.config.server.max_connections = 8;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let limit = Duration::from_secs(5);

    // A request head that never finishes.
    let mut c = TcpStream::connect(a).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = until_closed(&mut c, limit).await;
    assert!(closed, "an unfinished head is closed");

    // A silent connection.
    let mut c = TcpStream::connect(a).await.unwrap();
    assert!(
        until_closed(&mut c, limit).await.1,
        "a silent connection is closed"
    );

    // A body that stops halfway, and a chunked body that never ends: 408, JSON.
    for (what, head, part) in [
        (
            "a body that stops halfway",
            "POST /v1/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            "{\"url\": ",
        ),
        (
            "a chunked body that never ends",
            "POST /v1/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            "8\r\n{\"url\": \r\n",
        ),
    ] {
        let mut c = TcpStream::connect(a).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(part.as_bytes()).await.unwrap();
        let (got, closed) = until_closed(&mut c, limit).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{what}: {got}");
        assert!(got.contains("\"code\":\"request_timeout\""), "{what}: {got}");
        assert!(closed, "{what}: closed after the 408");
    }

    // A keep-alive connection that falls silent after its answer.
    let mut c = TcpStream::connect(a).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = until_closed(&mut c, limit).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed, "an idle keep-alive connection is closed");

    // A flood of silent connections past the cap: a new client is still answered.
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(a).await.unwrap());
    }
    let r = tokio::time::timeout(limit, get(a, "/healthz", None))
        .await
        .expect("a new client is answered during the flood");
    assert_eq!(r.status, 200);
    drop(flood);
}

/// The code of a JSON error body.
fn code_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

/// What a page on another site (or on a rebound DNS name) in the analyst's browser can send
/// to a server without tokens is refused: a JSON body sent as text/plain (what `fetch` with
/// `mode: 'no-cors'` sends), a cross-site Origin or Sec-Fetch-Site, a Host that is not one of
/// the server's names. The same calls from a proper client, or the web view itself, work.
#[tokio::test]
async fn a_web_page_cannot_drive_the_api() {
    let env = TestEnv::new().await;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let own = format!("http://{a}");
    let watch = r#"{"url": "http://watched.test/x"}"#;
    let json = ("content-type", "application/json");

    let (status, _, body) = raw(
        a,
        "POST",
        "/v1/watch",
        &[("content-type", "text/plain")],
        watch,
    )
    .await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (415, "unsupported_media_type"),
        "{body}"
    );
    let (status, _, body) = raw(a, "POST", "/v1/resolve/batch", &[], r#"{"urls": []}"#).await;
    assert_eq!(status, 415, "no content type: {body}");
    for cross in [
        [json, ("origin", "http://evil.example")],
        [json, ("origin", "null")],
        [json, ("sec-fetch-site", "cross-site")],
        [json, ("sec-fetch-site", "same-site")],
    ] {
        let (status, _, body) = raw(a, "POST", "/v1/watch", &cross, watch).await;
        assert_eq!(
            (status, code_of(&body).as_str()),
            (403, "cross_site"),
            "{cross:?}: {body}"
        );
    }
    let (status, _, _) = raw(
        a,
        "GET",
        "/v1/watch",
        &[("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(status, 403, "a cross-site read");
    for path in ["/v1/watch", "/healthz", "/metrics", "/ui/"] {
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
        ] {
            let (status, _, body) = raw(a, "GET", path, &[("host", host)], "").await;
            assert_eq!(
                (status, code_of(&body).as_str()),
                (421, "misdirected_request"),
                "{path} {host}"
            );
            assert!(body.contains("server.allowed_hosts"), "{body}");
        }
    }
    let listed = get(a, "/v1/watch", None).await;
    assert_eq!(listed.body["watches"], json!([]), "nothing was watched");

    // The proper calls: the server's own names, any port; the same origin.
    let (status, _, body) = raw(
        a,
        "POST",
        "/v1/watch",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
        ],
        watch,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for host in ["localhost", "LOCALHOST:1", "[::1]:8080", &a.to_string()] {
        let (status, _, _) = raw(a, "GET", "/v1/watch", &[("host", host)], "").await;
        assert_eq!(status, 200, "{host}");
        assert_eq!(
            raw(a, "GET", "/healthz", &[("host", host)], "").await.0,
            200,
            "{host}"
        );
    }
    let (status, _, _) = raw(a, "GET", "/ui/", &[("sec-fetch-site", "none")], "").await;
    assert_eq!(status, 200, "the web view");
    let (status, _, _) = raw(
        a,
        "POST",
        "/ui/watch",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
        ],
        "url=http%3A%2F%2Fform.test%2F",
    )
    .await;
    assert_eq!(status, 303, "the web view's own form");

    // A name set in server.allowed_hosts (behind a reverse proxy) is one of the server's.
    let mut proxied = env.config.clone();
    proxied.server.allowed_hosts = vec!["hoptrace.example".into()];
    proxied.storage.backend =
        hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(env.dir.path().join("db2")));
    let srv = start(&proxied).await;
    let host = [("host", "hoptrace.example")];
    assert_eq!(raw(srv.addr, "GET", "/v1/watch", &host, "").await.0, 200);
}

/// Without tokens the server listens on loopback only: another address is a start-up error
/// naming the keys, from the config file and from `--listen` alike.
#[tokio::test]
async fn without_tokens_the_server_listens_on_loopback_only() {
    let env = TestEnv::new().await;
    let loopback = env.write_config("");
    let text = std::fs::read_to_string(&loopback).unwrap();
    let exposed = env.dir.path().join("exposed.toml");
    let listen = "listen = \"127.0.0.1:8080\"";
    assert!(text.contains(listen), "{text}");
    std::fs::write(&exposed, text.replace(listen, "listen = \"0.0.0.0:0\"")).unwrap();
    for args in [
        vec!["serve", "--config", exposed.to_str().unwrap()],
        vec![
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--config",
            loopback.to_str().unwrap(),
        ],
    ] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Serving(child);
        // A server that starts prints its address and runs on: it is stopped, and fails here.
        let mut stdout = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
            &mut stdout,
        )
        .unwrap();
        if !stdout.is_empty() {
            let _ = child.0.kill();
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
        let status = child.0.wait().unwrap();
        assert!(stdout.is_empty(), "{args:?} started: {stdout}");
        assert!(!status.success(), "{args:?}");
        assert!(
            stderr.contains("server.listen") && stderr.contains("server.api_tokens"),
            "{args:?}: {stderr}"
        );
    }
}

/// Wrong tokens are throttled per address before any token is compared: past the allowance
/// a wrong token is 429 with Retry-After, and then so is the right one (the answer must not
/// tell a guesser its guess was right) until the address has cooled down; the login form
/// counts against the same allowance. A 401 names its scheme.
#[tokio::test]
async fn wrong_tokens_are_throttled_per_address() {
    let mut env = TestEnv::new().await;
    env.config.server.api_tokens = vec!["s3cret".into()];
    env.config.server.auth_failures_burst = 3;
    env.config.server.auth_failures_per_minute = 60;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let path = "/v1/domains";

    let r = get(a, path, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    for n in 0..3 {
        let r = get(a, path, Some(&format!("guess{n}"))).await;
        assert_eq!(
            (r.status, error_code(&r)),
            (401, "unauthorized"),
            "guess {n}"
        );
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    let r = get(a, path, Some("guess3")).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (429, "too_many_failures"),
        "{:?}",
        r.body
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    let r = get(a, path, Some("s3cret")).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (429, "too_many_failures"),
        "the right token too"
    );
    assert!(r.headers.contains_key("retry-after"));
    let (status, headers, _) = login(a, "token=s3cret").await;
    assert_eq!(status, 429, "the login form too");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        get(a, "/healthz", None).await.status,
        200,
        "no token, no refusal"
    );

    // Cooled down: the right token works again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(get(a, path, Some("s3cret")).await.status, 200);
}

/// Wrong tokens on the login form are throttled the same way, whatever the token.
#[tokio::test]
async fn wrong_logins_are_throttled_per_address() {
    let mut env = TestEnv::new().await;
    env.config.server.api_tokens = vec!["s3cret".into()];
    env.config.server.auth_failures_burst = 2;
    let srv = start(&env.config).await;
    let login = |body| login(srv.addr, body);
    assert_eq!(login("token=a").await.0, 401);
    assert_eq!(login("token=b").await.0, 401);
    let (status, headers, _) = login("token=c").await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(login("token=s3cret").await.0, 429, "the right token too");
    let r = get(srv.addr, "/v1/domains", Some("s3cret")).await;
    assert_eq!(r.status, 429, "and the API's");
}

/// A logout ends the session on the server: the cookie, kept and sent again, is refused.
#[tokio::test]
async fn a_logged_out_session_is_refused() {
    let mut env = TestEnv::new().await;
    env.config.server.api_tokens = vec!["s3cret".into()];
    let srv = start(&env.config).await;
    let a = srv.addr;
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, headers, _) = login(a, "token=s3cret").await;
    assert_eq!(status, 303);
    let set = headers["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, _, page) = raw(a, "GET", "/ui/", &[("cookie", &cookie)], "").await;
    assert_eq!(status, 200, "logged in");
    let csrf = csrf_of(&page);

    let (status, headers, _) = raw(
        a,
        "POST",
        "/ui/logout",
        &[form, ("cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 303);
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    // The same cookie, kept: a page sends to the login form, a form is refused.
    let (status, headers, _) = raw(a, "GET", "/ui/", &[("cookie", &cookie)], "").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login");
    let (status, _, _) = raw(
        a,
        "POST",
        "/ui/watch",
        &[form, ("cookie", &cookie)],
        &format!("url=http%3A%2F%2Fafter.test%2F&csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 401, "a form with the old session");
    // A new login is a new session.
    assert_eq!(login(a, "token=s3cret").await.0, 303);
}

/// An input that is no link (a non-web entry of a batch, a scanned link that does not
/// parse) is answered with an `input` error Trace and counted in the metrics as a resolution
/// that ended in `error`.
#[tokio::test]
async fn inputs_that_are_no_links_are_counted() {
    let env = TestEnv::new().await;
    let srv = start(&env.config).await;
    let a = srv.addr;
    let urls = json!({"urls": ["ftp://files.example/x", "mailto:a@b.example"]});
    let r = post(a, "/v1/resolve/batch", urls, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for t in r.body["traces"].as_array().unwrap() {
        assert_eq!(t["error"]["kind"], "input", "{t}");
    }
    let m = get(a, "/metrics", None).await.body;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("hoptrace_resolutions_total{outcome=\"error\"} 2"),
        "{m}"
    );
}
