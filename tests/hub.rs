//! `hoptrace hub` against a Docker Hub stand-in on loopback (a hyper server answering the
//! documented shapes, named through the test DNS): paging, imageless repositories told
//! apart, 429 + Retry-After and 5xx, resuming, malformed pages and hostile `next` links.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use hoptrace::hub::{Crawler, HubApi, HubError, HubRecord, Source};
use hoptrace::store::Store;
use hyper::{Request, Response};
use serde_json::{json, Value};

/// What the stand-in answers instead, for requests whose path and query contain `.0`.
enum Fault {
    Status(u16, Option<String>),
    Body(String),
    /// The normal answer, with these headers added.
    Headers(Vec<(&'static str, String)>),
}

#[derive(Default)]
struct State {
    /// Repositories per namespace, newest first.
    repos: Vec<Value>,
    /// The stand-in's own largest page (the Hub's is 100): more pages from fewer repositories.
    page_max: usize,
    /// (when, path and query) of every request.
    log: Vec<(Instant, String)>,
    /// The wall-clock time of each request in `log`.
    walls: Vec<std::time::SystemTime>,
    /// Tags of repositories whose tags are not the default ones, by name.
    tags: std::collections::HashMap<String, Vec<Value>>,
    faults: Vec<(String, VecDeque<Fault>)>,
}

struct Hub {
    server: Server,
    state: Arc<Mutex<State>>,
    env: TestEnv,
}

/// Repository `i`: none of its tags has an image when `i % 3 == 0` (no tag at all) or
/// `i % 6 == 2` (a tag with no image).
fn imageless(i: usize) -> bool {
    i.is_multiple_of(3) || i % 6 == 2
}

fn repo(i: usize) -> Value {
    json!({
        "namespace": "dlwave",
        "name": format!("repo-{i:03}"),
        "description": format!("Repository {i}"),
        "full_description": format!("# Repo {i}\n[Download](http://example.invalid/{i})"),
        "date_registered": "2021-01-01T00:00:00Z",
        "last_updated": format!("2021-02-{:02}T00:00:00Z", 28 - (i % 28)),
        "star_count": 0, "pull_count": i,
    })
}

fn query(uri: &http::Uri, key: &str) -> Option<usize> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn json_reply(v: Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(body(v.to_string()))
        .unwrap()
}

impl Hub {
    async fn start(count: usize) -> Hub {
        let mut env = TestEnv::new().await;
        let state = Arc::new(Mutex::new(State {
            repos: (0..count).map(repo).collect(),
            page_max: 10,
            ..State::default()
        }));
        let shared = state.clone();
        let port = Arc::new(std::sync::OnceLock::<u16>::new());
        let port_in = port.clone();
        let server = Server::start("127.0.0.1", move |req: Request<hyper::body::Incoming>| {
            let state = shared.clone();
            let port = *port_in.get().unwrap();
            async move { answer(&state, port, req.uri()) }
        })
        .await;
        port.set(server.port()).unwrap();
        env.dns.set("hub.test", &["127.0.0.1"]);
        env.config.hub.api_url = format!("http://hub.test:{}", server.port());
        env.config.hub.requests_per_second = 1000.0;
        Hub { server, state, env }
    }

    fn fault(&self, at: &str, faults: Vec<Fault>) {
        let mut s = self.state.lock().unwrap();
        s.faults.push((at.to_string(), faults.into()));
    }

    fn clear(&self) {
        let mut s = self.state.lock().unwrap();
        s.faults.clear();
        s.log.clear();
        s.walls.clear();
    }

    fn log(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().log.clone()
    }

    fn crawler(&self, store: Option<Store>) -> Crawler {
        let egress = hoptrace::egress::Egress::new(&self.env.config).unwrap();
        let api = HubApi::new(&self.env.config, egress, Some("s3cret")).unwrap();
        Crawler::new(api, store, None)
    }
}

fn answer(state: &Mutex<State>, port: u16, uri: &http::Uri) -> Response<Body> {
    let mut s = state.lock().unwrap();
    let at = uri.path_and_query().unwrap().to_string();
    s.log.push((Instant::now(), at.clone()));
    s.walls.push(std::time::SystemTime::now());
    if let Some((_, faults)) = s.faults.iter_mut().find(|(k, _)| at.contains(k.as_str())) {
        if let Some(fault) = faults.pop_front() {
            return match fault {
                Fault::Headers(h) => {
                    drop(s);
                    let mut r = answer(state, port, uri);
                    // The normal answer logged the request a second time.
                    let mut s = state.lock().unwrap();
                    s.log.pop();
                    s.walls.pop();
                    drop(s);
                    for (k, v) in h {
                        r.headers_mut().insert(k, v.parse().unwrap());
                    }
                    r
                }
                Fault::Status(code, retry_after) => {
                    let mut r = Response::builder().status(code);
                    if let Some(ra) = retry_after {
                        r = r.header("retry-after", ra);
                    }
                    r.body(body("")).unwrap()
                }
                Fault::Body(b) => Response::builder()
                    .header("content-type", "application/json")
                    .body(body(b))
                    .unwrap(),
            };
        }
    }
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let find = |name: &str| s.repos.iter().position(|r| r["name"] == name);
    match parts.as_slice() {
        ["v2", "namespaces", "dlwave", "repositories"] => {
            let size = query(uri, "page_size").unwrap_or(10).min(s.page_max);
            let page = query(uri, "page").unwrap_or(1);
            let from = (page - 1) * size;
            let results: Vec<Value> = s
                .repos
                .iter()
                .skip(from)
                .take(size)
                .map(|r| {
                    // The listing carries no full description, as the Hub's does not.
                    let mut r = r.clone();
                    r.as_object_mut().unwrap().remove("full_description");
                    r
                })
                .collect();
            let next = (from + size < s.repos.len()).then(|| {
                format!("http://hub.test:{port}/v2/namespaces/dlwave/repositories?page={}&page_size={size}", page + 1)
            });
            json_reply(
                json!({"count": s.repos.len(), "next": next, "previous": null, "results": results}),
            )
        }
        ["v2", "namespaces", "dlwave", "repositories", name] => match find(name) {
            Some(i) => json_reply(s.repos[i].clone()),
            None => Response::builder().status(404).body(body("")).unwrap(),
        },
        ["v2", "namespaces", "dlwave", "repositories", name, "tags"] => {
            let Some(i) = find(name) else {
                return Response::builder().status(404).body(body("")).unwrap();
            };
            let tags = match (s.tags.get(*name), i) {
                (Some(tags), _) => tags.clone(),
                (None, i) if i.is_multiple_of(3) => vec![],
                (None, i) if i % 6 == 2 => vec![json!({"name": "latest", "images": []})],
                _ => vec![
                    json!({"name": "latest", "images": [{"architecture": "amd64", "digest": "sha256:00"}]}),
                ],
            };
            // Paged as the Hub pages them, at the stand-in's own largest page.
            let size = query(uri, "page_size").unwrap_or(10).min(s.page_max);
            let page = query(uri, "page").unwrap_or(1);
            let from = (page - 1) * size;
            let next = (from + size < tags.len()).then(|| {
                format!(
                    "http://hub.test:{port}{}?page={}&page_size={size}",
                    uri.path(),
                    page + 1
                )
            });
            let results: Vec<Value> = tags.iter().skip(from).take(size).cloned().collect();
            json_reply(json!({"count": tags.len(), "next": next, "results": results}))
        }
        _ => Response::builder().status(404).body(body("")).unwrap(),
    }
}

/// Crawls the namespace, collecting what was handed out.
async fn crawl(crawler: &Crawler) -> (Vec<HubRecord>, Result<hoptrace::hub::Summary, HubError>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let result = crawler
        .crawl(&Source::Namespace("dlwave".into()), |records| {
            sink.lock().unwrap().extend(records);
            async { Ok(()) }
        })
        .await;
    let got = got.lock().unwrap().clone();
    (got, result)
}

fn names(records: &[HubRecord]) -> Vec<String> {
    records.iter().map(|r| r.name.clone()).collect()
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("repo-{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_followed_and_imageless_repositories_told_apart() {
    let hub = Hub::start(35).await;
    let (records, result) = crawl(&hub.crawler(None)).await;
    let summary = result.unwrap();
    assert_eq!(summary.pages, 4);
    assert_eq!(names(&records), expected(0..35));
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.imageless, imageless(i), "{}", r.name);
        assert_eq!(r.tag_count, u64::from(i % 3 != 0), "{}", r.name);
        assert!(r.full_description.contains(&format!("/{i})")), "{}", r.name);
        assert_eq!(r.date_registered.as_deref(), Some("2021-01-01T00:00:00Z"));
    }
    // What it prints is what scan reads.
    let jsonl: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let docs: Vec<_> = hoptrace::scan::documents(std::io::Cursor::new(jsonl), "hub")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 35);
    assert_eq!(docs[7].repository, "dlwave/repo-007");
    assert!(docs[7].fields.iter().any(|(k, _)| k == "full_description"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_honoured_before_any_next_request() {
    let hub = Hub::start(25).await;
    hub.fault("page=2", vec![Fault::Status(429, Some("1".into()))]);
    let (records, result) = crawl(&hub.crawler(None)).await;
    result.unwrap();
    assert_eq!(names(&records), expected(0..25));
    let log = hub.log();
    let refused = log
        .iter()
        .position(|(_, at)| at.contains("page=2"))
        .expect("page 2 asked");
    let (t429, _) = log[refused];
    let after = &log[refused + 1..];
    assert!(
        after[0].1.contains("page=2"),
        "page 2 asked again: {:?}",
        after[0].1
    );
    for (t, at) in after {
        assert!(
            t.duration_since(t429) >= std::time::Duration::from_secs(1),
            "{at} asked {:?} after the 429's Retry-After: 1",
            t.duration_since(t429)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_x_ratelimit_holds_requests_off_until_its_reset() {
    let hub = Hub::start(25).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    hub.fault(
        "page=2",
        vec![Fault::Headers(vec![
            ("x-ratelimit-limit", "180".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", (now + 2).to_string()),
        ])],
    );
    let (records, result) = crawl(&hub.crawler(None)).await;
    result.unwrap();
    assert_eq!(names(&records), expected(0..25));
    let log = hub.log();
    let at = log.iter().position(|(_, a)| a.contains("page=2")).unwrap();
    let (t, _) = log[at];
    for (later, what) in &log[at + 1..] {
        assert!(
            later.duration_since(t) >= std::time::Duration::from_secs(1),
            "{what} asked {:?} after the Hub said none are left for at least 1 s",
            later.duration_since(t)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_reads_only_newer_repositories() {
    let hub = Hub::start(15).await;
    let egress = hoptrace::egress::Egress::new(&hub.env.config).unwrap();
    let api = HubApi::new(&hub.env.config, egress, None).unwrap();
    let since = humantime::parse_rfc3339("2021-02-20T00:00:00Z").unwrap();
    let (records, result) = crawl(&Crawler::new(api, None, Some(since))).await;
    assert_eq!(result.unwrap().older, 7);
    // Repository i was updated on day 28 - i of February.
    assert_eq!(names(&records), expected(0..8));
    assert!(
        !hub.log().iter().any(|(_, at)| at.contains("repo-008")),
        "an older repository costs no request of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried() {
    let hub = Hub::start(15).await;
    hub.fault(
        "repo-012/tags",
        vec![Fault::Status(503, None), Fault::Status(502, None)],
    );
    let (records, result) = crawl(&hub.crawler(None)).await;
    result.unwrap();
    assert_eq!(names(&records), expected(0..15));
    let asked = hub
        .log()
        .iter()
        .filter(|(_, at)| at.contains("repo-012/tags"))
        .count();
    assert_eq!(asked, 3, "two failures, then the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_page_is_named_and_nothing_of_it_is_kept() {
    let hub = Hub::start(35).await;
    let store = Store::open_sled(hub.env.config.storage.sled_path().unwrap()).unwrap();
    // Page 3: nine good repositories and one whose name is not a name.
    let mut results: Vec<Value> = (20..29).map(repo).collect();
    results.push(json!({"namespace": "dlwave", "name": "x\u{1b}[2J/../../evil"}));
    hub.fault(
        "repositories?page=3",
        vec![Fault::Body(
            json!({"count": 35, "next": null, "results": results}).to_string(),
        )],
    );
    let (records, result) = crawl(&hub.crawler(Some(store.clone()))).await;
    let err = result.unwrap_err();
    assert!(matches!(err, HubError::Malformed { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("/v2/namespaces/dlwave/repositories?page=3"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message:?}");
    assert_eq!(names(&records), expected(0..20), "nothing of page 3");
    assert_eq!(store.counter("hub:namespace:dlwave").await.unwrap(), 2);
    assert!(
        !hub.log().iter().any(|(_, at)| at.contains("repo-020")),
        "no repository of the bad page was asked for"
    );

    // Not JSON at all.
    hub.clear();
    hub.fault("repositories?page=3", vec![Fault::Body("<html>".into())]);
    let (records, result) = crawl(&hub.crawler(Some(store.clone()))).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("page=3") && message.contains("not JSON"),
        "{message}"
    );
    assert!(records.is_empty(), "pages 1 and 2 were finished before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_crawl_resumes_without_repeating_finished_pages() {
    let hub = Hub::start(35).await;
    let sled = Store::open_sled(hub.env.config.storage.sled_path().unwrap()).unwrap();
    resumes_on(hub, sled).await;
    // The cursor is a store counter: PostgreSQL keeps it as sled does.
    let storage = hoptrace::config::Storage {
        backend: hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(
            db::fresh_database().await,
        )),
        ..Default::default()
    };
    resumes_on(Hub::start(35).await, Store::open(&storage).await.unwrap()).await;
}

async fn resumes_on(hub: Hub, store: Store) {
    // A repository on page 3 answers garbage for its tags: the crawl stops there.
    hub.fault("repo-025/tags", vec![Fault::Body("{\"count\": 1}".into())]);
    let (first, result) = crawl(&hub.crawler(Some(store.clone()))).await;
    let message = result.unwrap_err().to_string();
    assert!(message.contains("repo-025/tags"), "{message}");
    assert_eq!(
        names(&first),
        expected(0..20),
        "page 3 not handed out in part"
    );

    hub.clear();
    let (rest, result) = crawl(&hub.crawler(Some(store.clone()))).await;
    let summary = result.unwrap();
    assert_eq!(summary.resumed_pages, 2);
    assert_eq!(names(&rest), expected(20..35));
    let log = hub.log();
    assert!(
        log[0].1.contains("page=3"),
        "starts at page 3: {:?}",
        log[0].1
    );
    for (_, at) in &log {
        assert!(!at.contains("page=1&") && !at.contains("page=2&"), "{at}");
        let n: Option<usize> = at
            .split("repo-")
            .nth(1)
            .and_then(|r| r.get(..3))
            .and_then(|n| n.parse().ok());
        assert!(
            n.is_none_or(|n| n >= 20),
            "a finished page's repository asked again: {at}"
        );
    }
    assert_eq!(
        store.counter("hub:namespace:dlwave").await.unwrap(),
        0,
        "finished: starts over next time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_off_the_hub_is_not_followed() {
    let hub = Hub::start(15).await;
    let elsewhere = Server::start("127.0.0.1", |_| async {
        json_reply(json!({"results": []}))
    })
    .await;
    hub.env.dns.set("elsewhere.test", &["127.0.0.1"]);
    let results: Vec<Value> = (0..10).map(repo).collect();
    hub.fault(
        "repositories?page=1",
        vec![Fault::Body(
            json!({"count": 15, "results": results,
                   "next": format!("http://elsewhere.test:{}/v2/namespaces/dlwave/repositories?page=2", elsewhere.port())})
            .to_string(),
        )],
    );
    let (_, result) = crawl(&hub.crawler(None)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, HubError::ForeignNext { .. }), "{err}");
    assert_eq!(elsewhere.requests(), 0);
}

/// `hoptrace ARGS --config` the stand-in's config, with a token in the environment: stdout,
/// stderr (the binary blocks; the stand-in keeps serving on the runtime).
async fn run_hub(hub: &Hub, args: &[&str]) -> (String, String) {
    let cfg = hub.env.write_config("");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
            .args(args)
            .arg("--config")
            .arg(cfg)
            .env("HOPTRACE_HUB_TOKEN", "s3cret-token")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_jsonl_that_scan_reads_without_showing_the_token() {
    let hub = Hub::start(12).await;
    let (stdout, stderr) = run_hub(&hub, &["hub", "--json", "--namespace", "dlwave"]).await;
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    let docs: Vec<_> = hoptrace::scan::documents(std::io::Cursor::new(stdout.to_string()), "hub")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 12);
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    for key in [
        "imageless",
        "tag_count",
        "date_registered",
        "last_updated",
        "full_description",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert!(hub.server.requests() >= 12 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_scans_what_it_lists() {
    let hub = Hub::start(4).await;
    let (stdout, _) = run_hub(&hub, &["hub", "--scan", "--json", "--namespace", "dlwave"]).await;
    let scanned: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let repos: Vec<&str> = scanned
        .iter()
        .map(|s| s["repository"].as_str().unwrap())
        .collect();
    assert_eq!(
        repos,
        [
            "dlwave/repo-000",
            "dlwave/repo-001",
            "dlwave/repo-002",
            "dlwave/repo-003"
        ]
    );
    for (i, s) in scanned.iter().enumerate() {
        let url = s["links"][0]["hops"][0]["url"].as_str().unwrap_or_default();
        assert_eq!(url, format!("http://example.invalid/{i}"), "{s}");
    }
}

/// Not an assertion: the crawl's own rate at a generous limit, for docs/hub.md
/// (`cargo test --release --test hub -- --ignored --nocapture crawl_rate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn crawl_rate() {
    let hub = Hub::start(1000).await;
    hub.state.lock().unwrap().page_max = 100;
    let crawler = hub.crawler(None);
    let t0 = Instant::now();
    let (records, result) = crawl(&crawler).await;
    result.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} repositories in {secs:.2} s: {:.0} repositories/s, {} requests",
        records.len(),
        records.len() as f64 / secs,
        hub.server.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_date_is_honoured_before_any_next_request() {
    let hub = Hub::start(25).await;
    // An IMF-fixdate two to three seconds ahead (the format has whole seconds).
    let date =
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(3));
    let until = httpdate::parse_http_date(&date).unwrap();
    hub.fault("page=2", vec![Fault::Status(429, Some(date.clone()))]);
    let (records, result) = crawl(&hub.crawler(None)).await;
    result.unwrap();
    assert_eq!(names(&records), expected(0..25));
    let (log, walls) = {
        let s = hub.state.lock().unwrap();
        (s.log.clone(), s.walls.clone())
    };
    let refused = log
        .iter()
        .position(|(_, at)| at.contains("page=2"))
        .unwrap();
    assert!(log[refused + 1].1.contains("page=2"), "page 2 asked again");
    for ((_, at), wall) in log.iter().zip(&walls).skip(refused + 1) {
        assert!(
            *wall >= until,
            "{at} asked at {} before the 429's Retry-After: {date}",
            humantime::format_rfc3339_millis(*wall)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_date_a_year_away_stops_the_crawl_naming_the_page() {
    let hub = Hub::start(25).await;
    let year = std::time::Duration::from_secs(365 * 24 * 3600);
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + year);
    hub.fault("page=2", vec![Fault::Status(429, Some(date))]);
    let (records, result) = crawl(&hub.crawler(None)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, HubError::RateLimited { .. }), "{err}");
    assert!(err.to_string().contains("repositories?page=2"), "{err}");
    assert_eq!(names(&records), expected(0..10), "page 1 only");
    assert_eq!(
        hub.log()
            .iter()
            .filter(|(_, at)| at.contains("page=2"))
            .count(),
        1,
        "not asked again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imageless_is_judged_over_every_page_of_tags() {
    let hub = Hub::start(6).await;
    let bare = |i: usize| json!({"name": format!("t{i}"), "images": []});
    let imaged = |i: usize| json!({"name": format!("t{i}"), "images": [{"digest": "sha256:00"}]});
    {
        let mut s = hub.state.lock().unwrap();
        // Fifteen tags over two pages, none with an image.
        s.tags
            .insert("repo-001".into(), (0..15).map(bare).collect());
        // Fifteen tags, the image on the second page.
        s.tags.insert(
            "repo-004".into(),
            (0..15)
                .map(|i| if i == 12 { imaged(i) } else { bare(i) })
                .collect(),
        );
    }
    let (records, result) = crawl(&hub.crawler(None)).await;
    result.unwrap();
    let r = |name: &str| records.iter().find(|r| r.name == name).unwrap().clone();
    assert!(
        r("repo-001").imageless,
        "no tag on either page has an image"
    );
    assert_eq!(r("repo-001").tag_count, 15);
    assert!(!r("repo-004").imageless, "its image is on the second page");
    assert!(r("repo-000").imageless, "no tags at all");
    let asked = |tags: &str| hub.log().iter().filter(|(_, at)| at.contains(tags)).count();
    assert_eq!(asked("repo-001/tags"), 2);
    assert_eq!(asked("repo-004/tags"), 2);
    assert_eq!(
        asked("repo-000/tags"),
        1,
        "an empty first page is the answer"
    );
    assert_eq!(
        asked("repo-005/tags"),
        1,
        "an image on the first page is the answer"
    );
}

/// Polls a crawl job until it is no longer running.
async fn finished_job(addr: std::net::SocketAddr, id: &str) -> Value {
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = get(addr, &format!("/v1/hub/{id}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["status"] != "running" {
            return r.body;
        }
        assert!(Instant::now() < deadline, "still running: {}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_crawls_as_a_job_scans_into_the_store_one_at_a_time() {
    let hub = Hub::start(25).await;
    // Page 2 makes the crawl wait a second: it is running when the second call comes.
    hub.fault("page=2", vec![Fault::Status(429, Some("1".into()))]);
    let srv = start(&hub.env.config).await;
    assert!(hub.log().is_empty(), "nothing crawled unasked");
    let order = json!({"namespaces": ["dlwave"], "scan": true});
    let r = post(srv.addr, "/v1/hub", order.clone(), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.headers.get("location").unwrap().to_str().unwrap(),
        format!("/v1/hub/{id}")
    );
    let busy = post(srv.addr, "/v1/hub", order, None).await;
    assert_eq!(busy.status, 429, "{}", busy.body);
    assert_eq!(error_code(&busy), "busy");
    assert!(busy.headers.get("retry-after").is_some());

    let job = finished_job(srv.addr, &id).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["records_total"], 25);
    assert_eq!(job["imageless"], (0..25).filter(|i| imageless(*i)).count());
    let records = job["records"].as_array().unwrap();
    assert_eq!(records.len(), 25);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i + 1);
        assert_eq!(r["record"]["name"], format!("repo-{i:03}"));
        assert_eq!(r["record"]["imageless"], imageless(i));
        assert_eq!(r["scanned"]["repository"], format!("dlwave/repo-{i:03}"));
        assert_eq!(
            r["scanned"]["links"][0]["hops"][0]["url"],
            format!("http://example.invalid/{i}")
        );
    }
    // What comes after the last record: nothing yet.
    let next = job["next_after"].as_u64().unwrap();
    let after = get(srv.addr, &format!("/v1/hub/{id}?after={next}"), None).await;
    assert_eq!(after.body["records"], json!([]));
    assert_eq!(after.body["missed"], 0);
    let far = get(srv.addr, &format!("/v1/hub/{id}?after={}", u64::MAX), None).await;
    assert_eq!(far.status, 200, "{}", far.body);
    // Stored as a scan's repositories are, for campaigns and exports.
    for i in [0, 13, 24] {
        let name = format!("dlwave/repo-{i:03}");
        assert!(
            srv.store.repository(&name).await.unwrap().is_some(),
            "{name}"
        );
    }
    // Free again; a bad order is a 400, an unknown job a 404.
    let again = post(srv.addr, "/v1/hub", json!({"namespaces": ["dlwave"]}), None).await;
    assert_eq!(again.status, 202, "{}", again.body);
    let bad = post(srv.addr, "/v1/hub", json!({"namespaces": ["../x"]}), None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(get(srv.addr, "/v1/hub/nope", None).await.status, 404);
}

/// Waits until the stand-in's log shows `done`.
async fn wait_for(hub: &Hub, what: &str, done: impl Fn(&[(Instant, String)]) -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while !done(&hub.log()) {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_crawls_when_due_and_reads_only_what_changed() {
    let mut hub = Hub::start(15).await;
    hub.env.config.hub.schedule.namespaces = vec!["dlwave".into()];
    hub.env.config.hub.schedule.every = std::time::Duration::from_secs(1);
    let srv = start(&hub.env.config).await;
    let listings = |log: &[(Instant, String)]| {
        log.iter()
            .filter(|(_, at)| at.contains("repositories?page=1&"))
            .count()
    };
    let details = |log: &[(Instant, String)]| -> Vec<String> {
        log.iter()
            .filter(|(_, at)| at.contains("/repositories/repo-") && !at.contains("/tags"))
            .map(|(_, at)| at.clone())
            .collect()
    };
    // Three runs begun: the first two finished.
    wait_for(&hub, "three runs", |log| listings(log) >= 3).await;
    let log = hub.log();
    assert_eq!(
        details(&log).len(),
        15,
        "the first run reads every repository, the next ones none (none changed)"
    );
    for i in [0, 7, 14] {
        let name = format!("dlwave/repo-{i:03}");
        assert!(
            srv.store.repository(&name).await.unwrap().is_some(),
            "{name} scanned"
        );
    }

    // One repository changes; the next run reads it alone.
    let seen = log.len();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    hub.state.lock().unwrap().repos[3]["last_updated"] =
        json!(humantime::format_rfc3339_seconds(later).to_string());
    wait_for(&hub, "a run after the change", |log| {
        listings(&log[seen..]) >= 2 && !details(&log[seen..]).is_empty()
    })
    .await;
    let after = details(&hub.log()[seen..]);
    assert!(
        after.iter().all(|at| at.contains("repo-003")),
        "only the changed repository: {after:?}"
    );
}
