//! The store, on each backend (sled, and PostgreSQL started by the test): cache hits, misses
//! and expiry; the landing-domain index; watches, observations and events; one process at a
//! time (sled) or many (PostgreSQL); what was written survives reopening.

mod common;

use common::*;
use hoptrace::chain::Resolver;
use hoptrace::store::model::{RepositoryRecord, Verdict};
use hoptrace::store::{Store, StoreError};
use hoptrace::trace::Outcome;

/// The store under test on one backend.
struct Backend {
    name: &'static str,
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// Every backend, empty: sled in a temp folder, PostgreSQL in a fresh database.
async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sled = Store::open_sled(&dir.path().join("db")).unwrap();
    vec![
        Backend {
            name: "sled",
            store: sled,
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            store: postgres_store(&db::fresh_database().await).await,
            _dir: None,
        },
    ]
}

async fn postgres_store(url: &str) -> Store {
    let storage = hoptrace::config::Storage {
        backend: hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(
            url.to_string(),
        )),
        ..Default::default()
    };
    Store::open(&storage).await.unwrap()
}

#[tokio::test]
async fn cache_hit_miss_and_bypass() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        cache_hit_miss_and_bypass_on(b.store).await;
    }
}

async fn cache_hit_miss_and_bypass_on(store: Store) {
    let env = TestEnv::new().await;
    env.dns.set("cached.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("page") }).await;
    let r = Resolver::new(&env.config, Some(store)).unwrap();
    let url = format!("http://cached.test:{}/x", srv.port());

    let first = r.resolve(&url, true).await;
    assert!(!first.cached);
    assert_eq!(srv.requests(), 1);
    // A different spelling of the same URL hits the same entry; the input is echoed as given.
    let spelled = format!("HXXP://CACHED[.]TEST:{}/x#frag", srv.port());
    let second = r.resolve(&spelled, true).await;
    assert!(second.cached, "{second:#?}");
    assert_eq!(second.input, spelled);
    assert_eq!(second.final_url, first.final_url);
    assert_eq!(srv.requests(), 1, "a hit does not touch the network");
    // --no-cache: fetched again, and stored again.
    let third = r.resolve(&url, false).await;
    assert!(!third.cached);
    assert_eq!(srv.requests(), 2);
}

#[tokio::test]
async fn cache_expiry() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        cache_expiry_on(b.store).await;
    }
}

async fn cache_expiry_on(store: Store) {
    let mut env = TestEnv::new().await;
    env.config.storage.cache_ttl = std::time::Duration::from_secs(0);
    env.dns.set("ttl.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("page") }).await;
    let r = Resolver::new(&env.config, Some(store.clone())).unwrap();
    let url = format!("http://ttl.test:{}/", srv.port());
    r.resolve(&url, true).await;
    assert!(
        !r.resolve(&url, true).await.cached,
        "an expired entry is a miss"
    );
    assert_eq!(srv.requests(), 2);

    // The TTL boundary, on the stored entry itself.
    let key = hoptrace::input::parse_input(&url).unwrap().to_string();
    let (stored, at) = store.latest(&key).await.unwrap().unwrap();
    let ttl = std::time::Duration::from_secs(60);
    use hoptrace::chain::servable;
    assert!(servable(stored.outcome, at, ttl, at + 59_999));
    assert!(!servable(stored.outcome, at, ttl, at + 60_000));
    let mut failed = stored.clone();
    failed.outcome = hoptrace::trace::Outcome::Timeout;
    assert!(
        !servable(failed.outcome, at, ttl, at),
        "a failure is never served"
    );
}

#[tokio::test]
async fn failures_are_stored_but_not_served_from_cache() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        failures_are_stored_but_not_served_from_cache_on(b.store).await;
    }
}

async fn failures_are_stored_but_not_served_from_cache_on(store: Store) {
    let env = TestEnv::new().await;
    let r = Resolver::new(&env.config, Some(store.clone())).unwrap();
    let t = r.resolve("http://gone.test/", true).await;
    assert_eq!(t.outcome, Outcome::Error);
    env.dns.set("gone.test", &["127.0.0.1"]);
    // The name resolves now, so the next call must try again rather than replay the error.
    let again = r.resolve("http://gone.test/", true).await;
    assert!(!again.cached, "an error is retried, not replayed");
    assert!(store.latest("http://gone.test/").await.unwrap().is_some());
}

#[tokio::test]
async fn landing_domain_index_counts_distinct_inputs() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        landing_domain_index_counts_distinct_inputs_on(b.store).await;
    }
}

async fn landing_domain_index_counts_distinct_inputs_on(store: Store) {
    let env = TestEnv::new().await;
    env.dns.set("cdn.failhostingpolp.ru", &["127.0.0.1"]);
    env.dns.set("bltlly.com", &["127.0.0.1"]);
    env.dns.set("tinurll.com", &["127.0.0.1"]);
    let payload = Server::start("127.0.0.1", |_| async { html("payload") }).await;
    let p = payload.port();
    let short = Server::start("127.0.0.1", move |req| async move {
        redirect(
            302,
            format!("http://cdn.failhostingpolp.ru:{p}{}", req.uri().path()).as_bytes(),
        )
    })
    .await;
    let r = Resolver::new(&env.config, Some(store.clone())).unwrap();
    let a = format!("http://bltlly.com:{}/a", short.port());
    let b = format!("http://tinurll.com:{}/b", short.port());
    r.resolve(&a, false).await;
    r.resolve(&b, false).await;
    r.resolve(&a, false).await; // the same input again is not a new input

    let rec = store
        .domain("failhostingpolp.ru")
        .await
        .unwrap()
        .expect("registrable landing domain");
    assert_eq!(rec.inputs, 2);
    assert_eq!(rec.labels, vec!["payload-host"]);
    assert!(rec.first_seen.ends_with('Z') && rec.first_seen <= rec.last_seen);
    let mut inputs = store.domain_inputs("failhostingpolp.ru").await.unwrap();
    inputs.sort();
    assert_eq!(inputs, vec![a.clone(), b.clone()]);
    // Only landing domains are indexed, not the hops on the way.
    assert!(store.domain("bltlly.com").await.unwrap().is_none());
    assert_eq!(store.domains().await.unwrap().len(), 1);
}

/// An input that moves between landing domains counts once for each, however often it comes
/// back: after more domains than an input's record keeps (16) too, and across batches.
#[tokio::test]
async fn an_input_is_counted_once_per_domain_however_it_moves() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        let store = b.store;
        let x = "http://rotating.example/x";
        let hosts: Vec<String> = (0..20).map(|i| format!("d{i}.example")).collect();
        let mut at = 1_000;
        for round in 0..2 {
            for host in &hosts {
                at += 1;
                let t = landed_on(x, host);
                match round {
                    0 => store.put(x, &t, at).await.unwrap(),
                    _ => store.put_later(x, &t, at).await.unwrap(),
                }
            }
            store.flush().await.unwrap();
        }
        let y = "http://other.example/y";
        store
            .put(y, &landed_on(y, "d0.example"), at + 1)
            .await
            .unwrap();
        for host in &hosts {
            let rec = store.domain(host).await.unwrap().unwrap();
            let want = if host == "d0.example" { 2 } else { 1 };
            assert_eq!(rec.inputs, want, "{host}");
        }
        let mut inputs = store.domain_inputs("d0.example").await.unwrap();
        inputs.sort();
        assert_eq!(inputs, vec![y.to_string(), x.to_string()]);
        assert_eq!(store.domain_inputs("d19.example").await.unwrap(), vec![x]);
        assert_eq!(
            store.latest(x).await.unwrap().unwrap().0.final_host,
            "d19.example"
        );
    }
}

/// A Trace read (and so kept by sled's cache of hot records) is never answered once a newer
/// one is stored, whether written at once, queued and flushed, or written while reads of it
/// go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_never_answers_an_older_trace_than_the_last_stored() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        let store = b.store;
        let x = "http://hot.example/x";
        let host =
            |t: Option<hoptrace::store::EncodedTrace>| t.unwrap().decode().unwrap().final_host;
        store.put(x, &landed_on(x, "a.example"), 1).await.unwrap();
        assert_eq!(host(store.latest_encoded(x).await.unwrap()), "a.example");
        store.put(x, &landed_on(x, "b.example"), 2).await.unwrap();
        assert_eq!(host(store.latest_encoded(x).await.unwrap()), "b.example");
        store
            .put_later(x, &landed_on(x, "c.example"), 3)
            .await
            .unwrap();
        store.flush().await.unwrap();
        assert_eq!(host(store.latest_encoded(x).await.unwrap()), "c.example");
        // Reads racing writes: once a write has returned, no read started after it answers
        // an older Trace.
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..2_000 {
                    store.latest_encoded(x).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for n in 4..200u64 {
            let want = format!("d{n}.example");
            store.put(x, &landed_on(x, &want), n).await.unwrap();
            assert_eq!(host(store.latest_encoded(x).await.unwrap()), want);
        }
        reader.await.unwrap();
    }
}

/// A sled store written before a Trace was one key (a key per domain and input, records
/// without the domains an input landed on, plain-JSON Traces) is read and kept counting
/// right: an input seen then is not new to its domain now.
#[tokio::test]
async fn a_sled_store_of_the_older_form_is_read_and_counted_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let x = "http://old.example/x";
    let old = landed_on(x, "before.example");
    {
        let db = sled::open(&path).unwrap();
        let traces = db.open_tree("traces").unwrap();
        let record = hoptrace::store::encoded::legacy_record(&old, 500);
        traces.insert(x.as_bytes(), record).unwrap();
        let domain = serde_json::json!({"domain": "before.example", "inputs": 1,
            "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:00Z",
            "labels": []});
        let domains = db.open_tree("domains").unwrap();
        domains
            .insert("before.example", serde_json::to_vec(&domain).unwrap())
            .unwrap();
        let links = db.open_tree("domain_inputs").unwrap();
        links
            .insert(format!("before.example\0{x}"), &[][..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = reopen_sled(&path).await;
    assert_eq!(store.latest(x).await.unwrap().unwrap(), (old.clone(), 500));
    assert_eq!(
        store.domain_inputs("before.example").await.unwrap(),
        vec![x]
    );
    // Away and back: still one input there.
    store
        .put(x, &landed_on(x, "after.example"), 600)
        .await
        .unwrap();
    store
        .put(x, &landed_on(x, "before.example"), 700)
        .await
        .unwrap();
    let y = "http://new.example/y";
    store
        .put(y, &landed_on(y, "before.example"), 800)
        .await
        .unwrap();
    assert_eq!(
        store
            .domain("before.example")
            .await
            .unwrap()
            .unwrap()
            .inputs,
        2
    );
    assert_eq!(
        store.domain("after.example").await.unwrap().unwrap().inputs,
        1
    );
    assert_eq!(
        store.domain_inputs("before.example").await.unwrap(),
        vec![y.to_string(), x.to_string()],
        "in input order"
    );
    assert_eq!(store.latest(x).await.unwrap().unwrap().1, 700);
}

/// A damaged stored Trace is an error to read, never a panic, and does not stop the next
/// Trace of that link (nor the others of its batch) from being kept.
#[tokio::test]
async fn a_damaged_trace_in_sled_is_replaced_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let x = "http://damaged.example/x";
    {
        let db = sled::open(&path).unwrap();
        let traces = db.open_tree("traces").unwrap();
        // A value whose list of landing domains is cut short.
        traces
            .insert(x.as_bytes(), &[3u8, 1, 2, 40, b'a'][..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = reopen_sled(&path).await;
    assert!(matches!(store.latest(x).await, Err(StoreError::Corrupt(_))));
    let y = "http://fine.example/y";
    store
        .put_later(y, &landed_on(y, "d.example"), 1)
        .await
        .unwrap();
    store.put(x, &landed_on(x, "d.example"), 2).await.unwrap();
    assert_eq!(store.latest(x).await.unwrap().unwrap().1, 2);
    assert_eq!(store.latest(y).await.unwrap().unwrap().1, 1);
    assert_eq!(store.domain("d.example").await.unwrap().unwrap().inputs, 2);
}

#[tokio::test]
async fn one_process_at_a_time_and_data_survives_reopening() {
    let env = TestEnv::new().await;
    env.dns.set("keep.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("kept") }).await;
    let url = format!("http://keep.test:{}/", srv.port());
    {
        let store = Store::open_sled(env.config.storage.sled_path().unwrap()).unwrap();
        match Store::open_sled(env.config.storage.sled_path().unwrap()) {
            Err(e @ StoreError::Locked { .. }) => {
                assert!(e.to_string().contains("in use by another hoptrace process"))
            }
            Err(e) => panic!("expected a lock error, got {e}"),
            Ok(_) => panic!("a second open must fail"),
        }
        let r = Resolver::new(&env.config, Some(store)).unwrap();
        r.resolve(&url, false).await;
    }
    let store = reopen_sled(env.config.storage.sled_path().unwrap()).await;
    let (t, _) = store
        .latest(&url)
        .await
        .unwrap()
        .expect("kept across reopen");
    assert_eq!(t.outcome, Outcome::Landed);
    assert!(store.domain("keep.test").await.unwrap().is_some());
}

/// Many writers at once (sled 0.34's concurrent `flush_async` deadlocks; writes must still
/// all complete and all be durable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_complete() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        concurrent_writers_all_complete_on(b.store).await;
    }
}

async fn concurrent_writers_all_complete_on(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let t = landed_on(&format!("http://in{i}.example/"), "x.example");
            store.put(&t.input, &t, 1_000 + i).await.unwrap();
        }));
    }
    let all = futures_util::future::join_all(tasks);
    tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("no deadlock");
    assert_eq!(
        store.domain("x.example").await.unwrap().unwrap().inputs,
        400
    );
}

/// Concurrent cache-using resolutions of one link share one visit (a scan meets the same
/// shortener link in many repositories at once); a refresh does not join them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_link_at_once_is_visited_once() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        one_link_at_once_is_visited_once_on(b.store).await;
    }
}

async fn one_link_at_once_is_visited_once_on(store: Store) {
    let env = TestEnv::new().await;
    env.dns.set("shared.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async {
        // Slow enough that all callers arrive while the first visit is under way.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        html("page")
    })
    .await;
    let r = Resolver::new(&env.config, Some(store)).unwrap();
    let url = format!("http://shared.test:{}/x", srv.port());
    let traces = futures_util::future::join_all((0..8).map(|i| {
        let spelled = if i % 2 == 0 {
            url.clone()
        } else {
            url.replace("http", "hxxp")
        };
        let r = &r;
        async move { (spelled.clone(), r.resolve(&spelled, true).await) }
    }))
    .await;
    assert_eq!(srv.requests(), 1, "one visit for eight callers");
    for (input, t) in &traces {
        assert_eq!(&t.input, input, "each caller gets its own input back");
        assert_eq!(t.outcome, Outcome::Landed);
    }
    let _ = r.resolve(&url, false).await;
    assert_eq!(srv.requests(), 2, "a refresh visits again");
}

/// The watch tables: the due index follows each entry, observations keep the newest, events
/// keep a window of the newest ids.
#[tokio::test]
async fn watches_observations_and_events() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        watches_observations_and_events_on(b.store).await;
    }
}

async fn watches_observations_and_events_on(store: Store) {
    use hoptrace::store::WatchRecord;
    let w = |url: &str, due: u64| WatchRecord {
        url: url.into(),
        every_seconds: 60,
        next_due_ms: due,
        added_ms: 0,
        last_run_ms: None,
        auto: false,
        profiles: vec![],
        via: vec![],
    };
    store.put_watch(&w("http://b/", 200)).await.unwrap();
    store.put_watch(&w("http://a/", 100)).await.unwrap();
    assert_eq!(store.due(150, 10).await.unwrap(), vec!["http://a/"]);
    assert_eq!(store.next_due().await.unwrap(), Some(100));
    store.put_watch(&w("http://a/", 300)).await.unwrap(); // moved, not duplicated
    assert_eq!(store.due(250, 10).await.unwrap(), vec!["http://b/"]);
    assert!(!store.add_watch_if_absent(&w("http://b/", 5)).await.unwrap());
    assert_eq!(
        store.watch("http://b/").await.unwrap().unwrap().next_due_ms,
        200
    );
    // The visitors a watch names are kept, and changed by a later write.
    let mut named = w("http://b/", 200);
    named.profiles = vec!["iphone-safari".into(), "crawler".into()];
    named.via = vec!["nl".into()];
    store.put_watch(&named).await.unwrap();
    assert_eq!(store.watch("http://b/").await.unwrap().unwrap(), named);
    named.via = vec!["us".into(), "nl".into()];
    store.put_watch(&named).await.unwrap();
    assert_eq!(store.watches().await.unwrap()[1], named);
    assert_eq!(
        store.claim_due(250, 10, 1000).await.unwrap()[0].via,
        named.via
    );
    assert!(store.remove_watch("http://b/").await.unwrap());
    assert!(!store.remove_watch("http://b/").await.unwrap());
    assert_eq!(store.due(1000, 10).await.unwrap(), vec!["http://a/"]);

    let observation = |at: u64| hoptrace::store::model::Observation {
        at: at.to_string(),
        final_url: "http://x/".into(),
        final_host: "x".into(),
        outcome: hoptrace::trace::Outcome::Landed,
        labels: vec![],
        hop_hosts: vec![],
        landing_labels: vec![],
        cell: None,
    };
    for at in 1..=5u64 {
        store
            .observe("http://a/", at, &observation(at), 3)
            .await
            .unwrap();
    }
    let kept: Vec<String> = store
        .observations("http://a/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.at)
        .collect();
    assert_eq!(kept, vec!["3", "4", "5"]);
    assert!(
        store.observations("http://a").await.unwrap().is_empty(),
        "a prefix is not a match"
    );
    // One run of a watch naming visitors: an observation per visitor at one time, all kept.
    let cell = |via: &str| hoptrace::store::model::WatchCell {
        profile: "windows-chrome".into(),
        via: via.into(),
    };
    for via in ["nl", "us"] {
        let mut o = observation(9);
        o.cell = Some(cell(via));
        store.observe("http://c/", 9, &o, 4).await.unwrap();
    }
    let cells: Vec<_> = store
        .observations("http://c/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.cell.unwrap().via)
        .collect();
    assert_eq!(cells, vec!["nl", "us"]);

    assert_eq!(store.last_event_id().await.unwrap(), 0);
    let mut ids = Vec::new();
    let event = |n: i32| hoptrace::store::model::Event {
        id: 0,
        event: hoptrace::store::model::EventKind::NewLandingHost,
        url: n.to_string(),
        host: String::new(),
        final_url: String::new(),
        labels: vec![],
        before: vec![],
        at: String::new(),
        cell: (n == 4).then(|| hoptrace::store::model::WatchCell {
            profile: "crawler".into(),
            via: "direct".into(),
        }),
    };
    for n in 0..5 {
        ids.push(store.push_event(3, event(n)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(store.last_event_id().await.unwrap(), ids[4]);
    // Each event is stored with the id it was given, under that id.
    let short = |v: Vec<(u64, hoptrace::store::model::Event)>| -> Vec<(u64, u64, String)> {
        v.into_iter().map(|(k, e)| (k, e.id, e.url)).collect()
    };
    let kept = short(store.events_after(0, 100).await.unwrap());
    assert!(
        kept.len() <= 3 && kept.last().unwrap() == &(ids[4], ids[4], "4".to_string()),
        "{kept:?}"
    );
    let after = store.events_after(ids[3], 100).await.unwrap();
    assert_eq!(after[0].1.cell.as_ref().unwrap().profile, "crawler");
    let after = short(after);
    assert_eq!(after, vec![(ids[4], ids[4], "4".to_string())]);
}

/// `put_later` queues: the write is in the store (and counted once in the domain index, even
/// when the same input is queued twice in one batch) after the next flush, or after the next
/// `put`, which writes the whole queue with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_land_with_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled(&dir.path().join("db")).unwrap();
    let trace = |input: &str| landed_on(input, "q.example");
    let a = trace("http://a.example/");
    store.put_later(&a.input, &a, 1_000).await.unwrap();
    store.put_later(&a.input, &a, 1_001).await.unwrap();
    assert!(
        store.latest(&a.input).await.unwrap().is_none(),
        "not written before a flush"
    );
    store.flush().await.unwrap();
    assert_eq!(
        store.latest(&a.input).await.unwrap().unwrap().1,
        1_001,
        "the later write wins"
    );
    assert_eq!(store.domain("q.example").await.unwrap().unwrap().inputs, 1);

    let b = trace("http://b.example/");
    let c = trace("http://c.example/");
    store.put_later(&b.input, &b, 2_000).await.unwrap();
    store.put(&c.input, &c, 2_001).await.unwrap();
    assert!(
        store.latest(&b.input).await.unwrap().is_some(),
        "written with the next put"
    );
    assert_eq!(store.domain("q.example").await.unwrap().unwrap().inputs, 3);
    drop(store);
    let store = reopen_sled(&dir.path().join("db")).await;
    assert_eq!(store.domain("q.example").await.unwrap().unwrap().inputs, 3);
}

/// Opens a sled store just closed. sled lets go of its lock file a moment after the last
/// handle is dropped (its threads end on their own; seen in loaded full runs): a second.
async fn reopen_sled(path: &std::path::Path) -> Store {
    let mut tries = 0;
    loop {
        match Store::open_sled(path) {
            Err(StoreError::Locked { .. }) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    }
}

/// A Trace of `input` that landed on `host` (no hops: enough for the store).
fn landed_on(input: &str, host: &str) -> hoptrace::trace::Trace {
    let mut t = hoptrace::trace::Trace::from_hops(input, vec![], Outcome::Landed);
    t.final_url = format!("http://{host}/");
    t.final_host = host.into();
    t
}

/// A repository's record as a scan keeps it, with no links.
fn scanned(name: &str, verdict: Verdict) -> RepositoryRecord {
    RepositoryRecord {
        repository: name.into(),
        namespace: name.split('/').next().unwrap().into(),
        digest: "d".into(),
        verdict,
        reasons: vec![],
        links: vec![],
        links_left_out: 0,
        landing_hosts: vec![],
        infrastructure: vec![],
        labels: vec![],
        scanned_at: "2026-12-02T00:00:00Z".into(),
        last_updated: None,
        date_registered: None,
    }
}

/// Every repository write moves the version (what `/v1/campaigns` recomputes on), also when
/// the same repository is written again; reading does not; the paged walk reads them all in
/// name order.
#[tokio::test]
async fn repository_writes_move_the_version() {
    for b in backends().await {
        let record = |name: &str| RepositoryRecord {
            landing_hosts: vec!["payload.example".into()],
            ..scanned(name, Verdict::Malicious)
        };
        let store = &b.store;
        let v0 = store.repositories_version().await.unwrap();
        store.put_repository("a/x", &record("a/x")).await.unwrap();
        let v1 = store.repositories_version().await.unwrap();
        assert_ne!(v0, v1, "{}", b.name);
        store.put_repository("a/x", &record("a/x")).await.unwrap();
        let v2 = store.repositories_version().await.unwrap();
        assert!(v2 != v1 && v2 != v0, "{}: rewritten", b.name);
        let _ = store.repositories().await.unwrap();
        assert_eq!(
            store.repositories_version().await.unwrap(),
            v2,
            "{}",
            b.name
        );
        // The walk campaigns make: in name order, a page at a time, after the name given.
        for name in ["c/z", "b/y"] {
            store.put_repository(name, &record(name)).await.unwrap();
        }
        let names = |page: hoptrace::store::RepositoryPage| -> Vec<String> {
            page.into_iter()
                .map(|(n, r)| {
                    assert_eq!(r.unwrap().repository, n);
                    n
                })
                .collect()
        };
        let first = store.repositories_after(None, 2).await.unwrap();
        assert_eq!(names(first), ["a/x", "b/y"], "{}", b.name);
        let next = store.repositories_after(Some("b/y"), 2).await.unwrap();
        assert_eq!(names(next), ["c/z"], "{}", b.name);
        let end = store.repositories_after(Some("c/z"), 2).await.unwrap();
        assert!(end.is_empty(), "{}", b.name);
    }
}

/// A page of the domain index past its end is empty, however far past (an offset beyond what
/// the database's integers hold included), on both backends.
#[tokio::test]
async fn a_domain_page_past_the_end_is_empty() {
    use hoptrace::store::{DomainQuery, DomainSort};
    for b in backends().await {
        let t = landed_on("http://in.example/", "x.example");
        b.store.put(&t.input, &t, 1_000).await.unwrap();
        for offset in [1, 1000, usize::MAX] {
            let q = DomainQuery {
                sort: DomainSort::Inputs,
                descending: true,
                offset,
                limit: 10,
            };
            let page = b.store.domains_page(&q).await.unwrap();
            assert_eq!(
                (page.domains.len(), page.total),
                (0, 1),
                "{} at {offset}",
                b.name
            );
        }
    }
}

/// A landing page's screenshot is written with its Trace and found by the hash the Trace's
/// evidence names; a Trace without one names none.
#[tokio::test]
async fn a_screenshot_is_kept_with_its_trace() {
    for b in backends().await {
        eprintln!("backend: {}", b.name);
        let mut shot = landed_on("http://a.test/", "landing.test");
        let png = bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\n not really a picture");
        shot.set_screenshot(png.clone());
        b.store.put("http://a.test/", &shot, 1_000).await.unwrap();
        b.store
            .put(
                "http://b.test/",
                &landed_on("http://b.test/", "landing.test"),
                1_000,
            )
            .await
            .unwrap();
        let (stored, _) = b.store.latest("http://a.test/").await.unwrap().unwrap();
        let sha = stored.evidence.unwrap().screenshot_sha256.unwrap();
        assert_eq!(sha, hoptrace::record::sha256_hex(&png));
        assert_eq!(b.store.screenshot(&sha).await.unwrap(), Some(png.clone()));
        assert!(stored.screenshot.is_none(), "never inside the Trace's JSON");
        let (other, _) = b.store.latest("http://b.test/").await.unwrap().unwrap();
        assert!(other.evidence.is_none());
        // The same picture again (another link, same page) is one stored copy, still found.
        b.store.put("http://c.test/", &shot, 2_000).await.unwrap();
        assert_eq!(b.store.screenshot(&sha).await.unwrap(), Some(png));
        assert_eq!(b.store.screenshot("00").await.unwrap(), None);
    }
}

/// Pages of the domain index in every order and direction, walked a few at a time, are the
/// whole index sorted as `DomainQuery::page_of` sorts it (ties by name), on both backends; on
/// sled also after the store is reopened, and for a store written before its orders were
/// kept.
#[tokio::test]
async fn domain_pages_follow_every_order() {
    use hoptrace::store::{DomainQuery, DomainSort};
    for b in backends().await {
        let store = &b.store;
        // Domains reached by 1-3 inputs each, at different times: ties in every order.
        let mut at = 1_000;
        for (i, host) in [
            "b.example",
            "a.example",
            "d.example",
            "c.example",
            "e.example",
        ]
        .iter()
        .enumerate()
        {
            for n in 0..(i % 3 + 1) {
                let t = landed_on(&format!("http://in{i}-{n}.example/"), host);
                store.put(&t.input, &t, at).await.unwrap();
                at += 1_000 * (n as u64 % 2);
            }
        }
        // A domain reached again later: its keys in the orders move.
        let t = landed_on("http://in0-0.example/", "b.example");
        store.put(&t.input, &t, 90_000).await.unwrap();
        let all = store.domains().await.unwrap();
        assert_eq!(all.len(), 5, "{}", b.name);
        let sorts = [
            DomainSort::Inputs,
            DomainSort::LastSeen,
            DomainSort::FirstSeen,
            DomainSort::Domain,
        ];
        for sort in sorts {
            for descending in [true, false] {
                let whole = DomainQuery {
                    sort,
                    descending,
                    offset: 0,
                    limit: 100,
                }
                .page_of(all.clone());
                let mut walked = Vec::new();
                for offset in (0..5).step_by(2) {
                    let q = DomainQuery {
                        sort,
                        descending,
                        offset,
                        limit: 2,
                    };
                    let page = store.domains_page(&q).await.unwrap();
                    assert_eq!(page.total, 5, "{} {sort:?}", b.name);
                    walked.extend(page.domains);
                }
                assert_eq!(walked, whole.domains, "{} {sort:?} {descending}", b.name);
            }
        }
    }
}

/// On sled a page reads only its own domains' records: one damaged record elsewhere in the
/// index does not stop pages that do not hold it, and the one that does names it.
#[tokio::test]
async fn a_damaged_domain_record_spoils_only_its_page() {
    use hoptrace::store::{DomainQuery, DomainSort};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open_sled(&path).unwrap();
        for (i, host) in ["a.example", "b.example", "c.example"].iter().enumerate() {
            let t = landed_on(&format!("http://in{i}.example/"), host);
            store.put(&t.input, &t, 1_000).await.unwrap();
        }
    }
    {
        let db = sled::open(&path).unwrap();
        let domains = db.open_tree("domains").unwrap();
        domains.insert("c.example", &b"{\"domain\": 7"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = reopen_sled(&path).await;
    let q = |offset| DomainQuery {
        sort: DomainSort::Domain,
        descending: false,
        offset,
        limit: 2,
    };
    let first = store.domains_page(&q(0)).await.unwrap();
    let names: Vec<&str> = first.domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!((names, first.total), (vec!["a.example", "b.example"], 3));
    match store.domains_page(&q(2)).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("c.example"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Writes queued with `put_later` and `put_repository_later` are committed together by the
/// next flush, on both backends: on PostgreSQL none is in the database before it (sled reads
/// repository records at once); all are after it, and after reopening.
#[tokio::test]
async fn queued_traces_and_repositories_are_committed_by_the_next_flush() {
    for b in backends().await {
        let store = &b.store;
        for i in 0..50 {
            let t = landed_on(&format!("http://q{i}.example/"), "hot.example");
            store.put_later(&t.input, &t, 1_000 + i).await.unwrap();
            let name = format!("u/r{i:02}");
            store
                .put_repository_later(&name, &scanned(&name, Verdict::Clean))
                .await
                .unwrap();
        }
        if b.name == "postgres" {
            assert!(store.latest("http://q0.example/").await.unwrap().is_none());
            assert!(store.repository("u/r00").await.unwrap().is_none());
        }
        store.flush().await.unwrap();
        assert_eq!(
            store.domain("hot.example").await.unwrap().unwrap().inputs,
            50,
            "{}",
            b.name
        );
        assert!(store.latest("http://q49.example/").await.unwrap().is_some());
        let walked = store.repositories_after(None, 100).await.unwrap();
        assert_eq!(walked.len(), 50, "{}", b.name);
    }
}

/// The log of repository writes after a version, on both backends: oldest first, a rewrite
/// flagged as replacing (and listed once, at its newest write); a walk of the store as it was
/// at a version leaves later writes out, within one account's names or across all.
#[tokio::test]
async fn repository_writes_are_logged_by_version() {
    for b in backends().await {
        let store = &b.store;
        for name in ["ab/1", "a/x", "a/y"] {
            store
                .put_repository(name, &scanned(name, Verdict::Clean))
                .await
                .unwrap();
        }
        let v = store.repositories_version().await.unwrap();
        for name in ["a/z", "a/x", "b/q"] {
            store
                .put_repository(name, &scanned(name, Verdict::Clean))
                .await
                .unwrap();
        }
        let since = store.repositories_since(v, 10).await.unwrap().unwrap();
        let got: Vec<(&str, bool)> = since
            .iter()
            .map(|w| (w.name.as_str(), w.replaced))
            .collect();
        assert_eq!(
            got,
            [("a/z", false), ("a/x", true), ("b/q", false)],
            "{}",
            b.name
        );
        assert!(since.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(
            since[2].version,
            store.repositories_version().await.unwrap()
        );
        let names = |page: hoptrace::store::RepositoryPage| -> Vec<String> {
            page.into_iter().map(|(n, _)| n).collect()
        };
        let a = store.repositories_at(Some("a"), None, v, 10).await.unwrap();
        assert_eq!(names(a), ["a/y"], "{}: a/x was written again after", b.name);
        let all = store.repositories_at(None, None, v, 10).await.unwrap();
        assert_eq!(names(all), ["a/y", "ab/1"], "{}", b.name);
        let now = store.repositories_version().await.unwrap();
        let a = store
            .repositories_at(Some("a"), Some("a/x"), now, 10)
            .await
            .unwrap();
        assert_eq!(names(a), ["a/y", "a/z"], "{}", b.name);
    }
}
