//! Replicas of `hoptrace serve` (the real binary) sharing one PostgreSQL and one Redis, both
//! started by the test: one cache and one domain index, one politeness budget per target
//! host, each watch run by one replica at a time, answers kept through a kill -9, and what
//! happens when Redis or PostgreSQL goes away.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::{Postgres, Redis};
use common::*;
use hoptrace::config::{Backend, Config};
use serde_json::json;

/// Replicas on one database and one Redis.
struct Cluster {
    pg: Postgres,
    redis: Redis,
    env: TestEnv,
    cfg: std::path::PathBuf,
    replicas: Vec<Option<(Serving, SocketAddr)>>,
}

impl Cluster {
    async fn start(n: usize, tweak: impl FnOnce(&mut Config)) -> Cluster {
        let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
        let redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
        let mut env = TestEnv::new().await;
        env.config.storage.backend = Backend::Postgres(hoptrace::config::Postgres {
            connect_timeout: Duration::from_secs(1),
            ..hoptrace::config::Postgres::at(pg.database("hoptrace").await)
        });
        env.config.limits.shared_url = Some(redis.url());
        env.config.server.request_timeout = std::time::Duration::from_millis(60_000);
        env.config.watch.auto = false;
        tweak(&mut env.config);
        let cfg = env.write_config("");
        let mut cluster = Cluster {
            pg,
            redis,
            env,
            cfg,
            replicas: Vec::new(),
        };
        for _ in 0..n {
            let r = cluster.spawn();
            cluster.replicas.push(Some(r));
        }
        cluster
    }

    fn spawn(&self) -> (Serving, SocketAddr) {
        serve_binary(&self.cfg)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.replicas[i].as_ref().expect("replica running").1
    }

    /// kill -9 of replica `i`.
    fn kill(&mut self, i: usize) {
        let (mut child, _) = self.replicas[i].take().expect("replica running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A site on `name` that records when each request arrived, answering after `delay`.
async fn site(env: &TestEnv, name: &str, delay: Duration) -> (Server, Arc<Mutex<Vec<Instant>>>) {
    env.dns.set(name, &["127.0.0.1"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let srv = Server::start("127.0.0.1", move |_| {
        log.lock().unwrap().push(Instant::now());
        async move {
            tokio::time::sleep(delay).await;
            html("<html>a page</html>")
        }
    })
    .await;
    (srv, seen)
}

fn client(addr: SocketAddr) -> hoptrace::client::ApiClient {
    hoptrace::client::ApiClient::new(&addr.to_string())
        .unwrap()
        .with_timeout(Duration::from_secs(90))
}

async fn resolve(addr: SocketAddr, url: &str) -> hoptrace::client::Answer {
    let body = serde_json::to_vec(&json!({ "url": url })).unwrap();
    client(addr)
        .call(http::Method::POST, "/v1/resolve", Some(body))
        .await
        .unwrap()
}

async fn watch_every_second(addr: SocketAddr, url: &str) {
    let r = post(
        addr,
        "/v1/watch",
        json!({"url": url, "every_seconds": 1}),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn metric(addr: SocketAddr, name: &str) -> f64 {
    // Not JSON: the client gives the text as a JSON string.
    let answer = client(addr)
        .call(http::Method::GET, "/metrics", None)
        .await
        .unwrap();
    let text = answer.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cache_one_index_one_visit() {
    let c = Cluster::start(3, |_| {}).await;
    let (srv, _) = site(&c.env, "site.test", Duration::ZERO).await;
    let url = format!("http://site.test:{}/page", srv.port());
    let first = resolve(c.addr(0), &url).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["cached"], false);
    for i in 1..3 {
        let r = resolve(c.addr(i), &url).await;
        assert_eq!(
            (r.status, &r.body["cached"]),
            (200, &json!(true)),
            "replica {i}"
        );
    }
    assert_eq!(srv.requests(), 1, "one visit for three replicas");
    let mut pages = Vec::new();
    for i in 0..3 {
        let r = get(c.addr(i), "/v1/domains", None).await;
        assert_eq!(r.status, 200);
        pages.push(r.body);
    }
    assert_eq!(pages[0]["total"], 1, "{}", pages[0]);
    assert!(pages.iter().all(|p| p == &pages[0]), "{pages:?}");

    // Two replicas asked for one new link at once: one visit, both answered.
    let (slow, _) = site(&c.env, "slow.test", Duration::from_millis(400)).await;
    let url = format!("http://slow.test:{}/once", slow.port());
    let (a, b) = tokio::join!(resolve(c.addr(1), &url), resolve(c.addr(2), &url));
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body["final_url"], b.body["final_url"]);
    assert_eq!(
        slow.requests(),
        1,
        "concurrent requests on two replicas: one visit"
    );
}

/// Three replicas, a 60-URL batch each toward one host: the host never sees more than its
/// limit plus its burst in any second (each replica alone would allow three times that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn politeness_holds_across_replicas() {
    let c = Cluster::start(3, |c| c.limits.per_host_per_second = 5.0).await;
    let (srv, seen) = site(&c.env, "polite.test", Duration::ZERO).await;
    let batches = (0..3).map(|i| {
        let urls: Vec<String> = (0..60)
            .map(|n| format!("http://polite.test:{}/r{i}/{n}", srv.port()))
            .collect();
        let body = serde_json::to_vec(&json!({ "urls": urls })).unwrap();
        let addr = c.addr(i);
        async move {
            client(addr)
                .call(http::Method::POST, "/v1/resolve/batch", Some(body))
                .await
                .unwrap()
        }
    });
    for r in futures_util::future::join_all(batches).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 180);
    let most = times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && **u - *t < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= 5 + 5,
        "{most} requests in one second (limit 5/s, burst 5)"
    );
}

/// A client's rate limit is one budget across replicas (kept in Redis): its burst spent on
/// one replica, its next call on another is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_rate_limit_is_one_budget_across_replicas() {
    let c = Cluster::start(2, |c| {
        c.server.api_tokens = vec!["s3cret".into()];
        c.server.rate_per_second = 1;
        c.server.rate_burst = 2;
    })
    .await;
    for _ in 0..2 {
        let r = get(c.addr(0), "/v1/domains", Some("s3cret")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = get(c.addr(1), "/v1/domains", Some("s3cret")).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    // Without the token: refused before the limit is asked.
    assert_eq!(get(c.addr(1), "/v1/domains", None).await.status, 401);
}

/// Wrong tokens count against one allowance per address across replicas (Redis): past it on
/// one replica, the next replica refuses a wrong token with 429, and then the right one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_one_allowance_across_replicas() {
    let c = Cluster::start(2, |c| {
        c.server.api_tokens = vec!["s3cret".into()];
        c.server.auth_failures_burst = 2;
    })
    .await;
    for guess in ["a", "b"] {
        let r = get(c.addr(0), "/v1/domains", Some(guess)).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = get(c.addr(1), "/v1/domains", Some("c")).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (429, "too_many_failures"),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    let r = get(c.addr(1), "/v1/domains", Some("s3cret")).await;
    assert_eq!(r.status, 429, "the right token too: {}", r.body);
}

/// A logout on one replica ends the session on the others too (noted in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_ends_the_session_on_every_replica() {
    let c = Cluster::start(2, |c| c.server.api_tokens = vec!["s3cret".into()]).await;
    let (status, headers, _) = login(c.addr(0), "token=s3cret").await;
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let with_cookie = [("cookie", cookie.as_str())];
    let page = |i| raw(c.addr(i), "GET", "/ui/", &with_cookie, "");
    let (status, _, home) = page(1).await;
    assert_eq!(status, 200, "one session for every replica");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let csrf = format!("csrf={}", csrf_of(&home));
    let out = raw(
        c.addr(0),
        "POST",
        "/ui/logout",
        &[form, ("cookie", &cookie)],
        &csrf,
    )
    .await;
    assert_eq!(out.0, 303);
    assert_eq!(page(1).await.0, 303, "logged out on the other replica too");
    assert_eq!(page(0).await.0, 303);
}

/// A watch every second, three replicas: it runs about once a second, not three times; after
/// kill -9 of the replica that ran it last, another takes over within the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_runs_once_per_turn_and_outlives_its_replica() {
    let mut c = Cluster::start(3, |c| {
        c.watch.lease = std::time::Duration::from_secs(3);
        c.limits.total_timeout = std::time::Duration::from_millis(2000);
    })
    .await;
    let (srv, seen) = site(&c.env, "watched.test", Duration::ZERO).await;
    let url = format!("http://watched.test:{}/w", srv.port());
    watch_every_second(c.addr(0), &url).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let runs = seen.lock().unwrap().len();
    assert!(
        (6..=14).contains(&runs),
        "{runs} runs in 10 s of a 1-second watch on three replicas"
    );

    // The replica that ran it last: its run counter moved most recently.
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(metric(c.addr(i), "hoptrace_watch_runs_total").await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut runner = 0;
    let mut most = -1.0;
    for (i, b) in before.iter().enumerate() {
        let moved = metric(c.addr(i), "hoptrace_watch_runs_total").await - b;
        if moved > most {
            (runner, most) = (i, moved);
        }
    }
    c.kill(runner);
    let killed_at = seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(3 + 3)).await;
    let after = seen.lock().unwrap().len() - killed_at;
    assert!(
        after >= 2,
        "{after} runs in the 6 s after the runner (replica {runner}) was killed"
    );
}

/// kill -9 of a replica with resolutions under way: every answer it gave is in PostgreSQL,
/// as a restarted replica shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_survive_a_killed_replica() {
    let mut c = Cluster::start(1, |_| {}).await;
    c.env.dns.set("kept.test", &["127.0.0.1"]);
    // Path /N answers after N x 60 ms: answers arrive one by one.
    let srv = Server::start("127.0.0.1", |req| async move {
        tokio::time::sleep(Duration::from_millis(60 * path_number(&req))).await;
        html("kept")
    })
    .await;
    let addr = c.addr(0);
    let answered = Arc::new(Mutex::new(Vec::new()));
    let calls: Vec<_> = (1..=30)
        .map(|n| {
            let url = format!("http://kept.test:{}/{n}", srv.port());
            let answered = answered.clone();
            tokio::spawn(async move {
                let body = serde_json::to_vec(&json!({ "url": url })).unwrap();
                if let Ok(r) = client(addr)
                    .call(http::Method::POST, "/v1/resolve", Some(body))
                    .await
                {
                    if r.status == 200 {
                        answered.lock().unwrap().push(url);
                    }
                }
            })
        })
        .collect();
    // Mid-way: some answered, some not.
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.lock().unwrap().len() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.kill(0);
    for call in calls {
        call.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        (8..30).contains(&answered.len()),
        "killed mid-way: {} of 30 answered",
        answered.len()
    );
    let (_again, addr) = c.spawn();
    for url in &answered {
        let r = get(addr, &format!("/v1/trace?url={}", urlencode(url)), None).await;
        assert_eq!(r.status, 200, "{url} was answered, so it must be stored");
    }
}

/// Redis away: resolutions go on (each replica limits alone), counted in a metric. PostgreSQL
/// away: 503s that say so; back again: answers, without restarting the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_or_postgres_going_away() {
    let mut c = Cluster::start(1, |_| {}).await;
    let (srv, _) = site(&c.env, "away.test", Duration::ZERO).await;
    let url = |n: u32| format!("http://away.test:{}/{n}", srv.port());
    let addr = c.addr(0);
    assert_eq!(resolve(addr, &url(1)).await.status, 200);
    assert_eq!(metric(addr, "hoptrace_shared_fallbacks_total").await, 0.0);

    c.redis.stop();
    for n in 2..5 {
        let r = resolve(addr, &url(n)).await;
        assert_eq!(r.status, 200, "without Redis: {}", r.body);
    }
    assert!(metric(addr, "hoptrace_shared_fallbacks_total").await > 0.0);
    c.redis.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(resolve(addr, &url(5)).await.status, 200);

    c.pg.stop();
    let r = get(addr, &format!("/v1/trace?url={}", urlencode(&url(1))), None).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable"),
        "{}",
        r.body
    );
    let r = resolve(addr, &url(6)).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable"),
        "{}",
        r.body
    );
    assert_eq!(get(addr, "/healthz", None).await.status, 200);

    c.pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(addr, &format!("/v1/trace?url={}", urlencode(&url(1))), None).await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(resolve(addr, &url(7)).await.status, 200);
}

/// Two `hoptrace resolve` processes on one PostgreSQL at once (sled allows one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cli_processes_side_by_side() {
    let c = Cluster::start(0, |_| {}).await;
    let (srv, _) = site(&c.env, "cli.test", Duration::from_millis(200)).await;
    let cfg = c.cfg.to_str().unwrap().to_string();
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let (cfg, port) = (cfg.clone(), srv.port());
            std::thread::spawn(move || {
                let urls: Vec<String> = (0..5)
                    .map(|n| format!("http://cli.test:{port}/p{i}/{n}"))
                    .collect();
                let mut args = vec!["resolve", "--json", "--config", &cfg];
                args.extend(urls.iter().map(String::as_str));
                run_hoptrace(&args)
            })
        })
        .collect();
    for run in runs {
        let (out, err, ok) = run.join().unwrap();
        assert!(ok, "{err}");
        assert_eq!(out.lines().count(), 5, "{out}");
    }
    assert_eq!(srv.requests(), 10);
    let (_r, addr) = c.spawn();
    let r = get(addr, "/v1/domains/cli.test", None).await;
    assert_eq!(r.body["input_count"], 10, "{}", r.body);
}

/// An event raised on whichever replica ran the watch reaches the event streams of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_replica() {
    let c = Cluster::start(2, |c| c.watch.lease = std::time::Duration::from_secs(3)).await;
    let (first, _) = site(&c.env, "first.test", Duration::ZERO).await;
    let (second, _) = site(&c.env, "second.test", Duration::ZERO).await;
    c.env.dns.set("rot.test", &["127.0.0.1"]);
    // The first visit lands on first.test, every later one on second.test.
    let visits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (p1, p2) = (first.port(), second.port());
    let rot = Server::start("127.0.0.1", move |_| {
        let n = visits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let to = match n {
                0 => format!("http://first.test:{p1}/"),
                _ => format!("http://second.test:{p2}/"),
            };
            redirect(302, to.as_bytes())
        }
    })
    .await;
    let streams = [listen(c.addr(0), None).await, listen(c.addr(1), None).await];
    let url = format!("http://rot.test:{}/r", rot.port());
    watch_every_second(c.addr(0), &url).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<bool> = streams
            .iter()
            .map(|s| s.lock().unwrap().contains("event: new-landing-host"))
            .collect();
        if got.iter().all(|g| *g) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "streams that saw the event: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
