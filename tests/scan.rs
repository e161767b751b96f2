//! `hoptrace scan` and `hoptrace campaigns` (the real binary) over the synthetic Docker Hub
//! dump (tests/fixtures/hub), its hosts served on loopback: verdicts, provenance, resuming an
//! interrupted scan, clusters, and the same through `POST /v1/scan` and `GET /v1/campaigns`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn hoptrace(args: &[&str], config: &Path) -> (String, String, bool) {
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    run_hoptrace(&all)
}

/// A test environment, the synthetic hub's internet, and a config that does not slow it.
async fn hub_env() -> (TestEnv, HubInternet, std::path::PathBuf) {
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let cfg = env.write_config("[limits]\nper_host_per_second = 1000.0\n");
    (env, hub, cfg)
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_dump_is_judged_resumed_and_clustered() {
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let dump = hub.dump();
    let repos: Vec<Value> = jsonl(&dump);
    let name = |r: &Value| {
        format!(
            "{}/{}",
            r["namespace"].as_str().unwrap(),
            r["name"].as_str().unwrap()
        )
    };
    let cfg = env.write_config("[limits]\nper_host_per_second = 1000.0\n");
    let dir = env.dir.path();
    let (first, all) = (dir.join("first.jsonl"), dir.join("all.jsonl"));
    let cut = 150;
    std::fs::write(
        &first,
        dump.lines().take(cut).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    std::fs::write(&all, &dump).unwrap();

    // An interrupted scan: the first part only.
    let (out, err, ok) = hoptrace(&["scan", "--json", first.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    let part = jsonl(&out);
    assert_eq!(part.len(), cut);
    let first_inputs: HashSet<String> = part
        .iter()
        .flat_map(|s| s["links"].as_array().unwrap().clone())
        .map(|l| {
            let u = url::Url::parse(l["hops"][0]["url"].as_str().unwrap()).unwrap();
            format!("{} {}", u.host_str().unwrap(), u.path())
        })
        .collect();
    let requests_before = hub.log.lock().unwrap().len();

    // Run again over everything: the finished part comes from the store.
    let (out, err, ok) = hoptrace(&["scan", "--json", all.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("scanned {} repositories", repos.len())),
        "{err}"
    );
    assert!(
        err.contains(&format!("({cut} from an earlier scan)")),
        "{err}"
    );
    let scanned = jsonl(&out);
    assert_eq!(scanned.len(), repos.len());
    let new_requests: Vec<String> = hub.log.lock().unwrap()[requests_before..].to_vec();
    assert!(!new_requests.is_empty());
    for r in &new_requests {
        assert!(!first_inputs.contains(r), "{r} was resolved again");
    }

    let mut forms = BTreeSet::new();
    for (i, (s, r)) in scanned.iter().zip(&repos).enumerate() {
        assert_eq!(s["repository"], name(r), "input order");
        assert_eq!(
            s["verdict"],
            r["_expect"],
            "{}: {:#}",
            name(r),
            s["reasons"]
        );
        assert_eq!(s["resumed"].as_bool().unwrap_or(false), i < cut);
        assert!(!s["links"].as_array().unwrap().is_empty(), "{}", name(r));
        if s["verdict"] != "clean" {
            assert!(!s["reasons"].as_array().unwrap().is_empty());
        }
        for l in s["links"].as_array().unwrap() {
            for p in l["found_in"].as_array().unwrap() {
                forms.insert(p["form"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(
        forms,
        ["bare", "defanged", "html", "markdown"]
            .map(String::from)
            .into()
    );
    // One downloader repository in detail: the fake shortener, the payload host, the file.
    let d = &scanned[0];
    let link = &d["links"][0];
    assert_eq!(
        link["found_in"],
        json!([{"field": "full_description", "form": "markdown", "written": format!("http://blltly.com:{}/d21-000", hub.server.port())}])
    );
    assert_eq!(link["outcome"], "download");
    assert_eq!(link["final_host"], "totrakto.com");
    let why: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["why"].as_str().unwrap())
        .collect();
    assert!(
        why.contains(&"passes through blltly.com (fake-shortener imitating bitly.com)"),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.starts_with("downloads a file of type application/zip")),
        "{why:?}"
    );

    // Campaigns: exactly the fixture's groups.
    let (out, err, ok) = hoptrace(&["campaigns", "--json"], &cfg);
    assert!(ok, "{err}");
    let campaigns: Value = serde_json::from_str(&out).unwrap();
    let campaigns = campaigns["campaigns"].as_array().unwrap().clone();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &repos {
        if r["_campaign"] != "none" {
            want.entry(r["_campaign"].as_str().unwrap().into())
                .or_default()
                .insert(name(r));
        }
    }
    // Every member, streamed: a campaign's summary lists only its first 100 repositories.
    let (out, err, ok) = hoptrace(&["campaigns", "--members", "all"], &cfg);
    assert!(ok, "{err}");
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut campaign_of: BTreeMap<String, String> = BTreeMap::new();
    for m in jsonl(&out) {
        let (c, r) = (
            m["campaign"].as_str().unwrap(),
            m["repository"].as_str().unwrap(),
        );
        members.entry(c.into()).or_default().insert(r.into());
        campaign_of.insert(r.into(), c.into());
    }
    let got: BTreeSet<BTreeSet<String>> = members.values().cloned().collect();
    assert_eq!(got, want.values().cloned().collect(), "clusters");
    for c in &campaigns {
        let all = &members[c["id"].as_str().unwrap()];
        assert_eq!(c["repository_count"], all.len());
        let sample: Vec<&String> = all.iter().take(100).collect();
        assert_eq!(c["repositories"], json!(sample));
        assert_eq!(c["truncated"], all.len() > 100);
    }
    let by_group = |group: &str| {
        let id = &campaign_of[want[group].iter().next().unwrap()];
        campaigns.iter().find(|c| &c["id"] == id).unwrap().clone()
    };
    let dl = by_group("downloader");
    assert_eq!(dl["landing_hosts"], json!(["totrakto.com"]));
    assert_eq!(dl["first_seen"], "2021-01-01T10:00:00Z");
    assert_eq!(dl["last_seen"], "2023-09-15T08:30:00Z");
    assert_eq!(dl["user_count"], 14);
    for key in [
        "landing:totrakto.com",
        "redirector:failhostingpolp.ru",
        "redirector:gts794.com",
        "fake-shortener:blltly.com",
        "fake-shortener:tinurll.com",
    ] {
        assert!(
            dl["infrastructure"]
                .as_array()
                .unwrap()
                .contains(&json!(key)),
            "{key}: {:#}",
            dl["infrastructure"]
        );
    }
    let ebook = by_group("ebook");
    assert_eq!(
        ebook["landing_hosts"],
        json!([
            "billing-verify.net",
            "premium-access.org",
            "secure-card-check.com"
        ])
    );
    assert!(ebook["labels"]
        .as_array()
        .unwrap()
        .contains(&json!("phishing")));
    assert_eq!(by_group("website-seo")["user_count"], 60);
    assert_eq!(by_group("lookalike")["malicious"], 12);

    // The readable table names every campaign.
    let (table, _, ok) = hoptrace(&["campaigns"], &cfg);
    assert!(ok);
    for c in &campaigns {
        assert!(table.contains(c["id"].as_str().unwrap()), "{table}");
    }

    // The service answers the same, and a repository scanned through it joins its campaign.
    let (child, a) = serve_binary(&cfg);
    let r = get(a, "/v1/campaigns", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["campaigns"], Value::Array(campaigns.clone()));
    assert_eq!(r.body["total"], campaigns.len());
    let page = get(a, "/v1/campaigns?limit=1&offset=1", None).await;
    assert_eq!(page.body["campaigns"], json!([campaigns[1]]));
    assert_eq!(page.body["next_offset"], 2);
    // The same page by the cursor the first one gives.
    let first = get(a, "/v1/campaigns?limit=1", None).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let by_cursor = get(a, &format!("/v1/campaigns?limit=1&cursor={cursor}"), None).await;
    assert_eq!(by_cursor.body["campaigns"], page.body["campaigns"]);
    assert_eq!(by_cursor.body["next_cursor"], page.body["next_cursor"]);
    let bad = get(a, "/v1/campaigns?cursor=zz", None).await;
    assert_eq!((bad.status, error_code(&bad)), (400, "bad_request"));
    let domains = get(a, "/v1/domains?limit=1", None).await;
    let next = domains.body["next_cursor"].as_str().unwrap();
    let second = get(a, &format!("/v1/domains?limit=1&cursor={next}"), None).await;
    let by_offset = get(a, "/v1/domains?limit=1&offset=1", None).await;
    assert_eq!(second.body["domains"], by_offset.body["domains"]);
    let p = hub.server.port();
    let fresh = json!({"repository": {
        "namespace": "latecomer", "name": "photoshop-free",
        "description": format!("free: hxxp://tinurll[.]com:{p}/late-1"),
        "full_description": format!("<a href=\"http://tinurll.com:{p}/late-1\">x</a>"),
    }});
    let r = post(a, "/v1/scan", fresh, None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["verdict"], "malicious");
    assert_eq!(r.body["repository"], "latecomer/photoshop-free");
    let found: Vec<(&str, &str)> = r.body["links"][0]["found_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["field"].as_str().unwrap(), p["form"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        vec![("description", "defanged"), ("full_description", "html")]
    );
    let r = get(a, "/v1/campaigns", None).await;
    let dl_id = dl["id"].as_str().unwrap();
    let dl_now = r.body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == dl_id)
        .unwrap()
        .clone();
    assert_eq!(
        dl_now["repository_count"],
        dl["repository_count"].as_u64().unwrap() + 1,
        "latecomer/photoshop-free joined"
    );
    let r = post(a, "/v1/scan", json!({"text": "x", "repository": {}}), None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    let r = get(a, "/v1/campaigns?limit=5000", None).await;
    assert_eq!((r.status, error_code(&r)), (400, "bad_request"));
    drop(child);
}

/// As the report grouped: an account that published campaign repositories carries its
/// linkless one into the campaign with a `publisher` reason; a link the egress policy refuses
/// (the metadata address) is no landing; the timeline counts repositories per day created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_carry_their_repositories_and_blocked_chains_land_nowhere() {
    let (env, hub, cfg) = hub_env().await;
    let p = hub.server.port();
    let line = |ns: &str, name: &str, text: String, day: &str| {
        json!({"namespace": ns, "name": name, "description": text,
               "date_registered": format!("{day}T00:00:00Z")})
        .to_string()
    };
    let lines = [
        line(
            "dlacct1",
            "crack-a",
            format!("get it http://blltly.com:{p}/a1 or http://169.254.169.254/latest/meta-data"),
            "2023-01-01",
        ),
        line(
            "dlacct2",
            "crack-b",
            format!("http://tinurll.com:{p}/b1"),
            "2023-01-02",
        ),
        line("dlacct1", "readme", "no link at all".into(), "2023-01-03"),
        line("bystander", "tool", "no link either".into(), "2023-01-03"),
    ];
    let input = env.dir.path().join("repos.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (out, err, ok) = hoptrace(&["scan", "--json", input.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    let scanned = jsonl(&out);
    assert_eq!(scanned[2]["verdict"], "clean", "its own text shows nothing");
    assert!(
        scanned[0]["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["outcome"] == "blocked"),
        "{out}"
    );

    let (out, err, ok) = hoptrace(&["campaigns", "--json"], &cfg);
    assert!(ok, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    let campaigns = all["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{out}");
    let c = &campaigns[0];
    assert_eq!(
        c["repositories"],
        json!(["dlacct1/crack-a", "dlacct1/readme", "dlacct2/crack-b"])
    );
    assert_eq!(c["publisher_repositories"], 1);
    assert_eq!(c["landing_hosts"], json!(["totrakto.com"]), "{c:#}");
    let id = c["id"].as_str().unwrap();

    let (out, err, ok) = hoptrace(&["campaigns", "--members", id], &cfg);
    assert!(ok, "{err}");
    let members = jsonl(&out);
    assert_eq!(members.len(), 3);
    let readme = members
        .iter()
        .find(|m| m["repository"] == "dlacct1/readme")
        .unwrap();
    assert_eq!(readme["joined"], "publisher");
    assert_eq!(readme["verdict"], "suspicious");
    let reasons = readme["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0]["kind"], "publisher");
    assert_eq!(reasons[0]["account"], "dlacct1");
    let crack = members
        .iter()
        .find(|m| m["repository"] == "dlacct1/crack-a")
        .unwrap();
    assert_eq!(crack["joined"], "links");
    assert!(crack["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["kind"] == "link"));

    let (out, err, ok) = hoptrace(&["campaigns", "--timeline", "--json"], &cfg);
    assert!(ok, "{err}");
    let t = jsonl(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["campaign"], id);
    let days: Vec<(&str, u64)> = t[0]["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap(),
                d["repositories"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [("2023-01-01", 1), ("2023-01-02", 1), ("2023-01-03", 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_and_bad_lines() {
    let (env, hub, cfg) = hub_env().await;
    let p = hub.server.port();
    let notes = env.dir.path().join("notes.md");
    std::fs::write(
        &notes,
        format!("Seen in a description:\n\n- hxxp://blltly[.]com:{p}/n1\n- docs at http://docs.docker.com:{p}/x.\n"),
    )
    .unwrap();
    let (out, err, ok) = hoptrace(&["scan", notes.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    let head = out.lines().next().unwrap();
    assert!(
        head.starts_with("MALICIOUS") && head.ends_with("notes.md  (2 links)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("http://blltly.com:{p}/n1: passes through blltly.com (fake-shortener imitating bitly.com)")),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colour when not a terminal");

    // Bad lines are reported and skipped; the rest is scanned.
    let mixed = env.dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        format!("{{\"namespace\":\"a\",\"name\":\"b\",\"description\":\"http://github.com:{p}/a/b\"}}\n{{\"name\":\"no-namespace\"}}\nnot json\n"),
    )
    .unwrap();
    let (out, err, ok) = hoptrace(&["scan", "--json", mixed.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    assert_eq!(jsonl(&out).len(), 1);
    assert_eq!(jsonl(&out)[0]["verdict"], "clean");
    assert!(err.contains("line 2: no `namespace` and `name`"), "{err}");
    assert!(err.contains("line 3: not JSON"), "{err}");
    // Again: from the store; with --rescan: resolved again.
    let (out, _, _) = hoptrace(&["scan", "--json", mixed.to_str().unwrap()], &cfg);
    assert_eq!(jsonl(&out)[0]["resumed"], true);
    let (out, _, _) = hoptrace(
        &["scan", "--json", "--rescan", mixed.to_str().unwrap()],
        &cfg,
    );
    assert_eq!(jsonl(&out)[0].get("resumed"), None);

    let (_, err, ok) = hoptrace(&["scan", "/nonexistent/file"], &cfg);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/file"), "{err}");
}

/// An installer behind many extra response headers: within the reading limits it is a
/// download like any other; beyond them the hop says so and the verdict is not `clean`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_behind_many_headers_is_not_clean() {
    let env = TestEnv::new().await;
    let server = Server::start("127.0.0.1", |req| async move {
        let extra = match req.uri().path() {
            "/setup.exe" => 100,
            _ => 5000,
        };
        let mut b = hyper::Response::builder()
            .header("content-type", "application/x-msdownload")
            .header("content-disposition", "attachment; filename=setup.exe");
        for i in 0..extra {
            b = b.header(format!("x-pad-{i}"), "padding");
        }
        b.body(body("MZ")).unwrap()
    })
    .await;
    let p = server.port();

    let t = resolve(&env, &format!("http://127.0.0.1:{p}/setup.exe")).await;
    assert_eq!(t.outcome.as_str(), "download", "{t:?}");

    let cfg = env.write_config("");
    let links = env.dir.path().join("links.txt");
    std::fs::write(&links, format!("get it at http://127.0.0.1:{p}/huge.exe\n")).unwrap();
    let (out, err, ok) = hoptrace(&["scan", "--json", links.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    let scanned = &jsonl(&out)[0];
    assert_eq!(scanned["verdict"], "suspicious", "{scanned:#}");
    let trace = &scanned["links"][0];
    assert_eq!(trace["error"]["kind"], "http", "{trace:#}");
    assert!(
        trace["labels"]
            .as_array()
            .unwrap()
            .contains(&json!("oversized-head")),
        "{trace:#}"
    );
}

/// A damaged repository record in the store is scanned again and replaced: resuming does not
/// skip that repository with the read's error on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stored_record_is_scanned_again() {
    let (env, hub, cfg) = hub_env().await;
    let p = hub.server.port();
    let input = env.dir.path().join("one.jsonl");
    std::fs::write(
        &input,
        format!("{{\"namespace\":\"a\",\"name\":\"b\",\"description\":\"http://github.com:{p}/a/b\"}}\n"),
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let (_, err, ok) = hoptrace(&["scan", "--json", input], &cfg);
    assert!(ok, "{err}");
    {
        let db = sled::open(env.dir.path().join("db")).unwrap();
        let tree = db.open_tree("repositories").unwrap();
        tree.insert("a/b", &b"{\"repository\": 7"[..]).unwrap();
        db.flush().unwrap();
    }
    let (out, err, ok) = hoptrace(&["scan", "--json", input], &cfg);
    assert!(ok, "{err}");
    assert!(!err.contains("skipped"), "{err}");
    let lines = jsonl(&out);
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(lines[0]["repository"], "a/b");
    assert_eq!(lines[0].get("resumed"), None);
    let (out, _, _) = hoptrace(&["scan", "--json", input], &cfg);
    assert_eq!(jsonl(&out)[0]["resumed"], true);
}

/// A scan killed while one repository's link hangs: every line it printed before the kill was
/// on disk (its group's Traces and records were flushed before the group was printed), so the
/// scan run again answers each of them from the store; the repository that hung, never
/// printed, is scanned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scan_resumes_every_printed_line() {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = TestEnv::new().await;
    let hang = std::sync::Arc::new(AtomicBool::new(true));
    let h = hang.clone();
    let pages = Server::start("127.0.0.1", move |req| {
        let hangs = req.uri().path() == "/hang" && h.load(Ordering::SeqCst);
        async move {
            if hangs {
                std::future::pending::<()>().await;
            }
            html("<html><title>a page</title></html>")
        }
    })
    .await;
    let p = pages.port();
    let (printed, after) = (40, 10);
    let line = |name: String, path: String| {
        format!("{{\"namespace\":\"u\",\"name\":\"{name}\",\"description\":\"http://127.0.0.1:{p}/{path}\"}}\n")
    };
    let mut input = String::new();
    for i in 0..printed {
        input += &line(format!("r{i:03}"), format!("p{i}"));
    }
    input += &line("stuck".into(), "hang".into());
    for i in 0..after {
        input += &line(format!("s{i:03}"), format!("q{i}"));
    }
    let path = env.dir.path().join("repos.jsonl");
    std::fs::write(&path, &input).unwrap();
    let path = path.to_str().unwrap().to_string();
    // The hanging link outlasts the test rather than timing out while lines are read.
    let cfg = env.write_config("[limits]\nhop_timeout_ms = 600000\ntotal_timeout_ms = 600000\n");

    let mut child = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
            .args(["scan", "--json", &path, "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .take(printed)
            .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), printed, "the lines before the hanging one");
    child.kill().unwrap();
    child.wait().unwrap();

    hang.store(false, Ordering::SeqCst);
    let (out, err, ok) = hoptrace(&["scan", "--json", &path], &cfg);
    assert!(ok, "{err}");
    let lines = jsonl(&out);
    assert_eq!(lines.len(), printed + 1 + after, "{err}");
    for (i, l) in lines.iter().take(printed).enumerate() {
        assert_eq!(l["repository"], seen[i]["repository"]);
        assert_eq!(l["resumed"], true, "printed before the kill: {l}");
        let (link, was) = (&l["links"][0], &seen[i]["links"][0]);
        assert_eq!(link["cached"], true, "answered from the store: {link}");
        assert_eq!(link["resolved_at"], was["resolved_at"]);
        assert_eq!(link["final_url"], was["final_url"]);
    }
    assert_eq!(lines[printed]["repository"], "u/stuck");
    assert_eq!(
        lines[printed].get("resumed"),
        None,
        "never printed: scanned again"
    );
    assert_eq!(lines[printed]["links"][0]["outcome"], "landed");
}
