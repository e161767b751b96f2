//! The watchlist, scheduler, history and alerts of `hoptrace serve` (the real binary), with
//! a rotating fake shortener on loopback: a new path on every visit, a new payload host
//! after a few. Also the webhook's refusal of a denied address (in process).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// After this many visits the shortener points at the second payload host.
const SWITCH_AFTER: usize = 3;

/// `tinurll.com` (a listed fake shortener) rotating as the threat model describes, and the
/// payload hosts it sends visitors to. Answers (server, shortener visits).
async fn rotating(env: &TestEnv) -> (Server, Arc<AtomicUsize>) {
    let visits = Arc::new(AtomicUsize::new(0));
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let (v, p) = (visits.clone(), port.clone());
    let server = Server::start("127.0.0.1", move |req| {
        let host = req.headers()["host"]
            .to_str()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        let port = *p.get().unwrap();
        let reply = if host == "tinurll.com" {
            let n = v.fetch_add(1, Ordering::SeqCst);
            let payload = if n < SWITCH_AFTER {
                "payload-one.example"
            } else {
                "payload-two.example"
            };
            redirect(
                302,
                format!("http://{payload}:{port}/{n:x}/tk{n}").as_bytes(),
            )
        } else {
            html("<html>offer</html>")
        };
        async move { reply }
    })
    .await;
    port.set(server.port()).unwrap();
    for h in ["tinurll.com", "payload-one.example", "payload-two.example"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    (server, visits)
}

/// A webhook receiver: records each body; answers 500 to the first request (so delivery has
/// to retry), 200 after.
async fn receiver() -> (Server, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Default::default();
    let g = got.clone();
    let server = Server::start("127.0.0.1", move |req| {
        let g = g.clone();
        async move {
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            let mut all = g.lock().unwrap();
            all.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            let status = if all.len() == 1 { 500 } else { 200 };
            hyper::Response::builder()
                .status(status)
                .body(body(""))
                .unwrap()
        }
    })
    .await;
    (server, got)
}

/// Waits up to `secs` for `check` to hold.
async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting {secs} s for: {what}");
}

fn ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn stop(mut child: Serving) {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_watched_alerted_and_kept_across_restarts() {
    let env = TestEnv::new().await;
    let (short, _visits) = rotating(&env).await;
    let (hook, hooked) = receiver().await;
    let cfg = env.write_config(&format!(
        "[limits]\nper_host_per_second = 1000.0\n[watch]\nmin_every_seconds = 1\nauto_from = [\"api\"]\nwebhook_url = \"http://127.0.0.1:{}/hook\"\nwebhook_backoff_ms = 100\n",
        hook.port()
    ));
    let (child, a) = serve_binary(&cfg);
    let events = listen(a, None).await;

    let fast = format!("http://tinurll.com:{}/file-7", short.port());
    let r = post(
        a,
        "/v1/watch",
        json!({"url": fast, "every_seconds": 1}),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    assert_eq!(r.body["url"], fast);
    assert_eq!(r.body["every_seconds"], 1);
    let r = post(
        a,
        "/v1/watch",
        json!({"url": fast, "every_seconds": 1}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "watching again updates");
    let r = post(
        a,
        "/v1/watch",
        json!({"url": fast, "every_seconds": 0}),
        None,
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    let r = post(
        a,
        "/v1/watch",
        json!({"url": fast, "every_seconds": u64::MAX}),
        None,
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "bad_request"),
        "an interval the clock cannot hold"
    );
    let r = post(a, "/v1/watch", json!({"url": "not a url at all"}), None).await;
    assert_eq!(r.status, 400);
    // Visitors: names checked, the product capped.
    let r = post(
        a,
        "/v1/watch",
        json!({"url": fast, "profiles": ["nobody"]}),
        None,
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "bad_request"),
        "{:#}",
        r.body
    );
    let many: Vec<String> = (0..65).map(|_| "bare".to_string()).collect();
    let r = post(a, "/v1/watch", json!({"url": fast, "profiles": many}), None).await;
    assert_eq!(r.status, 400, "more visitors than a watch may have");
    assert_eq!(
        get(a, "/v1/watch", None).await.body["watches"][0]["profiles"],
        json!([])
    );

    // History: the rotation and the host switch.
    let history = format!("/v1/history?url={}", urlencode(&fast));
    eventually(30, "five observations", async || {
        get(a, &history, None).await.body["summary"]["observations"]
            .as_u64()
            .unwrap_or(0)
            >= 5
    })
    .await;
    let h = get(a, &history, None).await.body;
    let s = &h["summary"];
    assert_eq!(s["rotating"], true);
    assert_eq!(s["distinct_final_urls"], s["observations"]);
    assert_eq!(
        s["distinct_final_hosts"],
        json!(["payload-one.example", "payload-two.example"])
    );
    assert_eq!(s["new_hosts"][0]["host"], "payload-two.example");
    let first = &h["observations"][0];
    assert_eq!(
        first["hop_hosts"],
        json!(["tinurll.com", "payload-one.example"])
    );
    assert!(first["labels"]
        .as_array()
        .unwrap()
        .contains(&json!("fake-shortener")));
    assert_eq!(first["outcome"], "landed");

    // The event, on the stream and at the webhook (after one failed delivery).
    eventually(10, "the event on the stream", async || {
        events.lock().unwrap().contains("payload-two.example")
    })
    .await;
    let text = events.lock().unwrap().clone();
    assert!(text.contains("event: new-landing-host\n"), "{text}");
    let id: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    eventually(10, "the webhook", async || {
        hooked
            .lock()
            .unwrap()
            .iter()
            .any(|b| b["host"] == "payload-two.example")
    })
    .await;
    {
        let got = hooked.lock().unwrap();
        assert!(got.len() >= 2, "the first delivery failed and was retried");
        let e = got
            .iter()
            .find(|b| b["host"] == "payload-two.example")
            .unwrap();
        assert_eq!(e["event"], "new-landing-host");
        assert_eq!(e["url"], fast);
        assert_eq!(e["id"], id);
        assert_eq!(e["before"], json!(["payload-one.example"]));
    }

    // A slow entry: one run now, the next in an hour.
    let slow = format!("http://tinurll.com:{}/slow", short.port());
    let r = post(
        a,
        "/v1/watch",
        json!({"url": slow, "every_seconds": 3600}),
        None,
    )
    .await;
    assert_eq!(r.status, 201);
    let slow_history = format!("/v1/history?url={}", urlencode(&slow));
    eventually(10, "the slow entry's first run", async || {
        get(a, &slow_history, None).await.status == 200
    })
    .await;

    // The CLI talks to the same server.
    let server = format!("http://{a}");
    let (out, err, ok) = run_hoptrace(&["watch", "list", "--server", &server]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&fast) && out.contains(&slow) && out.contains("every 3600 s"),
        "{out}"
    );
    let (out, _, ok) = run_hoptrace(&["watch", "history", &fast, "--server", &server]);
    assert!(ok);
    assert!(
        out.contains("(rotating)") && out.contains("new host payload-two.example since"),
        "{out}"
    );
    let (out, _, ok) = run_hoptrace(&["watch", "list", "--json", "--server", &server]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let due_of = |list: &Value, url: &str| {
        list["watches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["url"] == url)
            .unwrap()["next_due"]
            .clone()
    };
    let slow_due = due_of(&listed, &slow);
    let (_, err, ok) = run_hoptrace(&[
        "watch",
        "history",
        "http://never.example/",
        "--server",
        &server,
    ]);
    assert!(!ok && err.contains("404"), "{err}");

    // Restart after more than three missed intervals.
    let before_stop = get(a, &history, None).await.body["observations"].clone();
    stop(child);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (child, a) = serve_binary(&cfg);
    let server = format!("http://{a}");
    let listed = get(a, "/v1/watch", None).await.body;
    assert_eq!(listed["total"], 2, "the watchlist survived");
    assert_eq!(due_of(&listed, &slow), slow_due, "due times survived");
    eventually(10, "two runs after the restart", async || {
        let obs = get(a, &history, None).await.body["observations"].clone();
        obs.as_array()
            .unwrap()
            .iter()
            .filter(|o| ms(o["at"].as_str().unwrap()) >= restarted)
            .count()
            >= 2
    })
    .await;
    let h = get(a, &history, None).await.body;
    let all = h["observations"].as_array().unwrap();
    assert_eq!(
        &all[..before_stop.as_array().unwrap().len()],
        before_stop.as_array().unwrap().as_slice(),
        "history survived"
    );
    let after: Vec<u64> = all
        .iter()
        .map(|o| ms(o["at"].as_str().unwrap()))
        .filter(|t| *t >= restarted)
        .collect();
    // Overdue by three intervals, it ran once, then on its interval (1 s, 10% jitter).
    assert!(
        after[1] - after[0] >= 800,
        "runs after restart at {after:?}"
    );
    assert_eq!(
        get(a, &slow_history, None).await.body["summary"]["observations"],
        1,
        "not due: not run"
    );

    // A stream resumes from the last id it saw: the old event comes again.
    let replay = listen(a, Some(id - 1)).await;
    eventually(5, "the replayed event", async || {
        replay.lock().unwrap().contains(&format!("id: {id}\n"))
    })
    .await;

    // Deleting stops it.
    let r = call(
        a,
        "DELETE",
        &format!("/v1/watch?url={}", urlencode(&fast)),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        a,
        "DELETE",
        &format!("/v1/watch?url={}", urlencode(&fast)),
        None,
        None,
    )
    .await;
    assert_eq!((r.status, error_code(&r)), (404, "not_found"));
    tokio::time::sleep(Duration::from_millis(1500)).await; // a run in flight may finish
    let count = get(a, &history, None).await.body["summary"]["observations"].clone();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        get(a, &history, None).await.body["summary"]["observations"],
        count
    );

    // A resolution through a fake shortener is watched automatically.
    let auto = format!("http://tinurll.com:{}/auto-1", short.port());
    let r = post(a, "/v1/resolve", json!({"url": auto}), None).await;
    assert_eq!(r.status, 200);
    let listed = get(a, "/v1/watch", None).await.body;
    let w = listed["watches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["url"] == auto)
        .cloned();
    assert_eq!(w.expect("auto-watched")["auto"], true);

    let (out, err, ok) = run_hoptrace(&["watch", "remove", &slow, "--server", &server]);
    assert!(ok && out.contains("no longer watching"), "{out} {err}");
    stop(child);
}

/// A webhook on an address the policy denies is never connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_a_denied_address_is_refused() {
    capture_logs();
    let env = TestEnv::new().await;
    let (short, _) = rotating(&env).await;
    let Some(sentinel) = Sentinel::start("127.0.0.2", 0).await else {
        eprintln!("127.0.0.2 not available here; skipped");
        return;
    };
    let mut config = env.config.clone();
    config.storage.backend =
        hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(env.dir.path().join("db2")));
    let hook = format!("http://127.0.0.2:{}/hook", sentinel.addr.port());
    config.watch.webhook_url = Some(hook.parse().unwrap());
    config.watch.webhook_backoff = std::time::Duration::from_millis(10);
    let store = hoptrace::store::Store::open_sled(config.storage.sled_path().unwrap()).unwrap();
    let resolver = Arc::new(hoptrace::chain::Resolver::new(&config, Some(store.clone())).unwrap());
    let watcher =
        hoptrace::watch::Watcher::new(&config.watch, config.limits.concurrency, resolver, store);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = futures_util::FutureExt::shared(async {
        let _ = rx.await;
    });
    tokio::spawn(watcher.clone().run(rx.clone()));
    tokio::spawn(watcher.clone().deliver_webhooks(rx));
    watcher
        .add(
            &format!("http://tinurll.com:{}/x", short.port()),
            Some(1),
            Default::default(),
        )
        .await
        .unwrap();
    let refused = || {
        watcher
            .metrics
            .webhook
            .get_or_create(&hoptrace::watch::ResultLabel {
                result: "refused".into(),
            })
            .get()
    };
    eventually(30, "the refused delivery", async || refused() >= 1).await;
    assert_eq!(sentinel.connections(), 0);
    let _ = tx.send(());
}

/// A clock that moves only when the test moves it.
struct ManualClock(std::sync::atomic::AtomicU64);

impl hoptrace::watch::Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A watcher on `env`'s sled store whose clock the test moves, its scheduler running until
/// `stop` is sent.
struct Clocked {
    store: hoptrace::store::Store,
    clock: Arc<ManualClock>,
    watcher: Arc<hoptrace::watch::Watcher>,
    stop: tokio::sync::oneshot::Sender<()>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Clocked {
    fn start(env: &TestEnv) -> Clocked {
        let store =
            hoptrace::store::Store::open_sled(env.config.storage.sled_path().unwrap()).unwrap();
        let resolver =
            Arc::new(hoptrace::chain::Resolver::new(&env.config, Some(store.clone())).unwrap());
        let clock = Arc::new(ManualClock(1_800_000_000_000.into()));
        let watcher = hoptrace::watch::Watcher::with_clock(
            &env.config.watch,
            env.config.limits.concurrency,
            resolver,
            store.clone(),
            clock.clone(),
        );
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let scheduler = tokio::spawn(watcher.clone().run(async {
            let _ = rx.await;
        }));
        Clocked {
            store,
            clock,
            watcher,
            stop,
            scheduler,
        }
    }
}

/// The scheduler's timing with a clock the test moves: an entry runs at once, not again
/// before its interval (give or take its 10% jitter), again after it, and once (not once per
/// missed interval) when it is long overdue. An hour's interval takes a second of real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_keeps_the_interval_by_its_clock() {
    let env = TestEnv::new().await;
    let (short, visits) = rotating(&env).await;
    let Clocked {
        store,
        clock,
        watcher,
        stop: tx,
        scheduler,
    } = Clocked::start(&env);
    let url = format!("http://tinurll.com:{}/clocked", short.port());
    let key = hoptrace::watch::Watcher::key(&url).unwrap();
    let runs = || {
        let (store, key) = (store.clone(), key.clone());
        async move { store.observations(&key).await.unwrap().len() }
    };
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    let hour = 3_600_000u64;
    let advance = |ms: u64| {
        clock.0.fetch_add(ms, Ordering::SeqCst);
        watcher.wake();
    };

    watcher
        .add(&url, Some(3600), Default::default())
        .await
        .unwrap();
    eventually(10, "the first run, at once", async || runs().await == 1).await;
    advance(hour / 2);
    settle().await;
    assert_eq!(runs().await, 1, "half an interval later: not due");
    advance(hour * 6 / 10); // 1.1 intervals after the first run: past any jitter
    eventually(10, "the second run, one interval on", async || {
        runs().await == 2
    })
    .await;
    advance(10 * hour);
    eventually(10, "one run for ten missed intervals", async || {
        runs().await == 3
    })
    .await;
    settle().await;
    watcher.wake();
    settle().await;
    assert_eq!(runs().await, 3, "not once per missed interval");
    assert_eq!(
        visits.load(Ordering::SeqCst),
        3,
        "the shortener was visited per run"
    );
    let _ = tx.send(());
    let _ = scheduler.await;
}

/// A watch that names egress points keeps each point's branch apart: `geo.test` sends
/// visitors through `nl` (127.0.0.2) to one host and through `us` (127.0.0.3) to another; on
/// the second run `nl`'s branch moves to the host `us` had. That is news for `nl` (an event
/// naming it), though the host was seen before through `us`; the history is not "rotating"
/// (each point saw the same URL until the move) and is cloaked (the points land apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_through_each_point_keeps_each_branch() {
    let mut env = TestEnv::new().await;
    let (_socks, _connect) = common::proxies::two_points(&mut env).await;
    let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let landing = Server::start("127.0.0.1", |_| async { html("<html>page</html>") }).await;
    let port = landing.port();
    let m = moved.clone();
    let site = Server::start("127.0.0.1", move |req| {
        let peer = req.extensions().get::<PeerAddr>().unwrap().0.ip();
        let to = match (peer.to_string().as_str(), m.load(Ordering::SeqCst)) {
            ("127.0.0.2", false) => "rd.lesac.ru",
            ("127.0.0.2", true) | ("127.0.0.3", _) => "cdn.failhostingpolp.ru",
            _ => "geo.test",
        };
        let reply = redirect(302, format!("http://{to}:{port}/").as_bytes());
        async move { reply }
    })
    .await;
    for h in ["geo.test", "rd.lesac.ru", "cdn.failhostingpolp.ru"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let Clocked {
        clock,
        watcher,
        stop: tx,
        scheduler,
        ..
    } = Clocked::start(&env);
    let url = format!("http://geo.test:{}/", site.port());
    let visitors = |via: &[&str]| hoptrace::watch::Visitors {
        profiles: vec![],
        via: via.iter().map(|s| s.to_string()).collect(),
    };
    let refused = watcher.add(&url, Some(3600), visitors(&["mars"])).await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("no egress point `mars`"),
        "an unknown point is refused by name"
    );
    let (entry, _) = watcher
        .add(&url, Some(3600), visitors(&["nl", "us"]))
        .await
        .unwrap();
    assert_eq!(
        hoptrace::watch::entry_json(&entry)["via"],
        json!(["nl", "us"])
    );
    let mut events = watcher.subscribe();
    let history = || async { watcher.history(&url).await.unwrap() };
    eventually(10, "the first run, one observation per point", async || {
        history().await.is_some_and(|h| h.observations.len() == 2)
    })
    .await;
    let h = history().await.unwrap();
    let end = |via: &str| {
        let o = h
            .observations
            .iter()
            .find(|o| o.cell.as_ref().unwrap().via == via);
        o.unwrap().final_host.clone()
    };
    assert_eq!(end("nl"), "rd.lesac.ru");
    assert_eq!(end("us"), "cdn.failhostingpolp.ru");
    assert!(h.summary.cloaked, "{:?}", h.summary);
    assert!(!h.summary.rotating);

    moved.store(true, Ordering::SeqCst);
    clock.0.fetch_add(2 * 3_600_000, Ordering::SeqCst);
    watcher.wake();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event for the point whose branch moved")
        .unwrap();
    assert_eq!(event.event, hoptrace::watch::EventKind::NewLandingHost);
    assert_eq!(event.host, "cdn.failhostingpolp.ru");
    assert_eq!(event.cell.as_ref().unwrap().via, "nl");
    assert_eq!(event.before, vec!["rd.lesac.ru".to_string()]);
    eventually(10, "the second run", async || {
        history().await.is_some_and(|h| h.observations.len() == 4)
    })
    .await;
    let h = history().await.unwrap();
    assert!(!h.summary.cloaked, "both points land on one domain now");
    assert!(h.summary.rotating, "nl's final URL changed");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "us saw nothing new: no event"
    );
    let _ = tx.send(());
    let _ = scheduler.await;
}

/// `limits.concurrency` is one limit for the whole `serve` process: watches falling due and
/// API batches arriving at once never have more resolutions in flight than it says (counted
/// at a slow fixture every one of them reaches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_no_more_resolutions_at_once_than_limits_concurrency() {
    let env = TestEnv::new().await;
    env.dns.set("slow.test", &["127.0.0.1"]);
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (o, m, s) = (open.clone(), most.clone(), seen.clone());
    let slow = Server::start("127.0.0.1", move |_req| {
        let (o, m, s) = (o.clone(), m.clone(), s.clone());
        async move {
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            o.fetch_sub(1, Ordering::SeqCst);
            html("<html>landing</html>")
        }
    })
    .await;
    let cfg = env.write_config(
        "[limits]\nconcurrency = 4\nper_host_per_second = 1000.0\n[browser]\nenabled = false\n[watch]\nmin_every_seconds = 1\nauto = false\n",
    );
    let (_child, a) = serve_binary(&cfg);
    let url = |what: &str, n: usize| format!("http://slow.test:{}/{what}/{n}", slow.port());
    for n in 0..8 {
        let r = post(
            a,
            "/v1/watch",
            json!({"url": url("watch", n), "every_seconds": 1}),
            None,
        )
        .await;
        assert_eq!(r.status, 201, "{:#}", r.body);
    }
    let batch = |from: usize| {
        let urls: Vec<String> = (from..from + 8).map(|n| url("batch", n)).collect();
        post(a, "/v1/resolve/batch", json!({"urls": urls}), None)
    };
    let (first, second) = tokio::join!(batch(0), batch(100));
    assert_eq!((first.status, second.status), (200, 200));
    eventually(30, "the watches ran as well", async || {
        seen.load(Ordering::SeqCst) >= 40
    })
    .await;
    assert!(
        most.load(Ordering::SeqCst) <= 4,
        "{} resolutions were in flight at once (limits.concurrency = 4)",
        most.load(Ordering::SeqCst)
    );
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "the work overlapped at all"
    );
}
