//! The `hoptrace` binary as users run it: output formats, stdin, exit codes, every config
//! error, politeness, and what survives `kill -9`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use hoptrace::trace::{Outcome, Trace};

fn hoptrace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoptrace"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

fn run(args: &[&str], stdin: impl AsRef<[u8]>) -> (i32, String, String) {
    let mut cmd = hoptrace();
    cmd.args(args);
    run_command(cmd, stdin)
}

/// Runs the binary on a blocking thread so the test's servers keep serving.
async fn run_async(
    args: Vec<String>,
    stdin: impl AsRef<[u8]> + Send + 'static,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&a, stdin)
    })
    .await
    .unwrap()
}

/// `hoptrace resolve FLAGS --config CFG TARGET` with `stdin`.
async fn resolve_cmd(
    cfg: &std::path::Path,
    flags: &[&str],
    target: &str,
    stdin: String,
) -> (i32, String, String) {
    let mut args: Vec<String> = vec!["resolve".into()];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(["--config".into(), cfg.display().to_string(), target.into()]);
    run_async(args, stdin).await
}

/// `hoptrace resolve --json --config CFG -` started, its stdin and stdout piped.
fn resolving_stdin(cfg: &std::path::Path) -> std::process::Child {
    hoptrace()
        .args(["resolve", "--json", "--config", cfg.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `hoptrace resolve --json --config CFG -` with `stdin`.
async fn json_from_stdin(cfg: &std::path::Path, stdin: String) -> (i32, String, String) {
    resolve_cmd(cfg, &["--json"], "-", stdin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readable_chain_for_a_person() {
    let env = TestEnv::new().await;
    let (short, _payload, target) = campaign(&env).await;
    let cfg = env.write_config("");
    let url = format!("hxxp://blltly[.]com:{}/1w1w1", short.port());
    let cfg_s = cfg.display().to_string();
    let readable = |extra: &'static [&'static str]| {
        let mut args = vec![
            "resolve".to_string(),
            "--config".into(),
            cfg_s.clone(),
            url.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run_async(args, String::new())
    };
    let (code, out, err) = readable(&[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&url), "{out}");
    assert!(out.contains("302  input"), "{out}");
    assert!(
        out.contains("[fake-shortener; imitates bitly.com]"),
        "{out}"
    );
    assert!(out.contains("200  http-redirect"), "{out}");
    assert!(out.contains("[payload-host]"), "{out}");
    assert!(
        out.contains(&format!("=> landed on failhostingpolp.ru  {target}")),
        "{out}"
    );
    assert!(!out.contains("\x1b["), "no colour when not a terminal");

    // The second run is served from the cache and says so; --no-cache goes out again.
    let (_, out, _) = readable(&[]).await;
    assert!(out.contains("(cached)"), "{out}");
    let (_, out, _) = readable(&["--no-cache"]).await;
    assert!(!out.contains("(cached)"), "{out}");
    assert_eq!(short.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_from_stdin_in_input_order() {
    let env = TestEnv::new().await;
    for i in 0..20 {
        env.dns.set(&format!("h{i}.test"), &["127.0.0.1"]);
    }
    // Later inputs answer faster, so completion order differs from input order.
    let srv = Server::start("127.0.0.1", |req| async move {
        let n = path_number(&req);
        tokio::time::sleep(std::time::Duration::from_millis(
            30u64.saturating_sub(n / 10),
        ))
        .await;
        html("ok")
    })
    .await;
    let cfg = env.write_config("[limits]\nconcurrency = 32\nper_host_per_second = 10000.0\n");
    let mut stdin = String::from("# a comment line\n\n");
    let mut inputs = Vec::new();
    for n in 0..300 {
        let u = format!("http://h{}.test:{}/{n}", n % 20, srv.port());
        stdin.push_str(&u);
        stdin.push('\n');
        inputs.push(u);
    }
    inputs.push("not a url at all".into());
    stdin.push_str("not a url at all\n");
    let (code, out, err) = json_from_stdin(&cfg, stdin).await;
    assert_eq!(
        code, 0,
        "traces were produced, whatever their outcome: {err}"
    );
    let traces: Vec<Trace> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        traces.iter().map(|t| t.input.clone()).collect::<Vec<_>>(),
        inputs
    );
    assert!(traces[..300].iter().all(|t| t.outcome == Outcome::Landed));
    assert_eq!(traces[300].outcome, Outcome::Error);
    assert_eq!(traces[300].error.as_ref().unwrap().kind, "input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolutions_run_concurrently_but_each_host_is_paced() {
    let env = TestEnv::new().await;
    for h in ["a.test", "b.test", "c.test", "d.test"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let log: Arc<Mutex<Vec<(String, Instant)>>> = Default::default();
    let l2 = log.clone();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let max_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (f2, m2) = (in_flight.clone(), max_in_flight.clone());
    let srv = Server::start("127.0.0.1", move |req| {
        let host = req.headers()["host"]
            .to_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string();
        l2.lock().unwrap().push((host, Instant::now()));
        let (f, m) = (f2.clone(), m2.clone());
        async move {
            let now = f.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            m.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            f.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            html("ok")
        }
    })
    .await;
    // 4 requests/s per host with a burst of 4: the 5th and 6th request to a.test must wait.
    let cfg = env.write_config("[limits]\nconcurrency = 16\nper_host_per_second = 4.0\n");
    let mut stdin = String::new();
    for h in ["b.test", "c.test", "d.test"] {
        stdin.push_str(&format!("http://{h}:{}/\n", srv.port()));
    }
    for n in 0..6 {
        stdin.push_str(&format!("http://a.test:{}/{n}\n", srv.port()));
    }
    let (code, _, err) = json_from_stdin(&cfg, stdin).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        max_in_flight.load(std::sync::atomic::Ordering::SeqCst) > 1,
        "resolutions overlap"
    );
    let log = log.lock().unwrap();
    let a: Vec<Instant> = log
        .iter()
        .filter(|(h, _)| h == "a.test")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(a.len(), 6);
    // A lower bound only: pacing can make requests later, never earlier. After the burst of
    // 4, two more tokens take at least 2 x 250 ms.
    let span = a[5].duration_since(a[0]);
    assert!(
        span.as_millis() >= 450,
        "6 requests to one host within {span:?} at 4/s"
    );
}

#[tokio::test]
async fn every_config_error_names_its_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("[limits]\nmax_hopz = 3\n", "max_hopz"),
        ("[limits]\nmax_hops = \"many\"\n", "limits.max_hops"),
        ("[limits]\nmax_hops = 0\n", "limits.max_hops"),
        ("[limits]\nhop_timeout_ms = 0\n", "limits.hop_timeout_ms"),
        (
            "[limits]\ntotal_timeout_ms = -1\n",
            "limits.total_timeout_ms",
        ),
        ("[limits]\nmax_body_bytes = 0\n", "limits.max_body_bytes"),
        (
            "[limits]\nper_host_per_second = 0.0\n",
            "limits.per_host_per_second",
        ),
        ("[limits]\nconcurrency = 0\n", "limits.concurrency"),
        ("[dns]\nnameservers = [\"127.0.0.1\"]\n", "dns.nameservers"),
        (
            "[policy]\nallow_cidrs = [\"10.0.0.0/33\"]\n",
            "policy.allow_cidrs",
        ),
        (
            "[storage]\ncache_ttl_seconds = \"soon\"\n",
            "storage.cache_ttl_seconds",
        ),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\napi_tokens = [\"\"]\n", "server.api_tokens"),
        ("[watch]\nwebhook_url = \"ftp://x\"\n", "watch.webhook_url"),
        (
            "[watch]\nwebhook_backoff_ms = \"soon\"\n",
            "watch.webhook_backoff_ms",
        ),
        (
            "[watch]\ndefault_every_seconds = 18446744073709551615\n",
            "watch.default_every_seconds",
        ),
        (
            "[watch]\nmin_every_seconds = 100\ndefault_every_seconds = 10\n",
            "watch.default_every_seconds",
        ),
        ("[browser]\nenabled = \"yes\"\n", "browser.enabled"),
        ("[browser]\ndriver = \"selenium\"\n", "browser.driver"),
        ("[http]\nuser_agent = \"\"\n", "http.user_agent"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[limits\n", "TOML"),
        (
            "[labels]\nextra_files = [\"missing.txt\"]\n",
            "labels.extra_files",
        ),
        // A malformed MISP warninglist (written below): its name and line.
        (
            "[labels]\nextra_files = [\"broken-list.json\"]\n",
            "broken-list.json:3",
        ),
        (
            "[tls]\nextra_ca_files = [\"missing.pem\"]\n",
            "tls.extra_ca_files",
        ),
    ];
    std::fs::write(
        dir.path().join("broken-list.json"),
        "{\"name\": \"x\",\n \"type\": \"hostname\",\n \"list\": [\"a.example\" \"b.example\"]}",
    )
    .unwrap();
    for (i, (toml, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        // [storage] twice would be its own error: add the path to the case's own section.
        let text = if toml.starts_with("[storage]") {
            format!("{}\npath = \"db{i}\"\n", toml.trim_end())
        } else {
            format!("[storage]\npath = \"db{i}\"\n{toml}")
        };
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = run(
            &[
                "resolve",
                "--config",
                path.to_str().unwrap(),
                "http://x.test/",
            ],
            "",
        );
        assert_eq!(code, 2, "{toml:?} should be a config error; stderr: {err}");
        assert!(out.is_empty());
        let err_l = err.to_lowercase();
        assert!(
            err.contains(key) || err_l.contains(&key.to_lowercase()),
            "{toml:?}: stderr should name {key}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = run(
        &[
            "resolve",
            "--config",
            "/nonexistent/hoptrace.toml",
            "http://x.test/",
        ],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read config /nonexistent/hoptrace.toml"),
        "{err}"
    );
    let (code, _, err) = run(&["resolve"], "");
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&["resolve", "--bogus", "x"], "");
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_resolve_against_the_config_folder() {
    let env = TestEnv::new().await;
    env.dns.set("rel.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("x") }).await;
    let sub = env.dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("mine.txt"), "[c2]\nrel[.]test\n").unwrap();
    let cfg = sub.join("h.toml");
    std::fs::write(
        &cfg,
        config_toml(
            &env.config,
            "[storage]\npath = \"data\"\n[labels]\nextra_files = [\"mine.txt\"]\n",
        ),
    )
    .unwrap();
    // Run from elsewhere: the paths follow the config file, not the working directory.
    let url = format!("http://rel.test:{}/", srv.port());
    let (code, out, err) = resolve_cmd(&cfg, &["--json"], &url, String::new()).await;
    assert_eq!(code, 0, "{err}");
    let t: Trace = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t.labels, vec!["c2"]);
    assert!(sub.join("data").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_already_printed_and_a_second_process_is_told_why() {
    let env = TestEnv::new().await;
    env.dns.set("crash.test", &["127.0.0.1"]);
    // /1 never answers, so the process is surely mid-batch when it is killed.
    let srv = Server::start("127.0.0.1", |req| async move {
        if req.uri().path() == "/1" {
            std::future::pending::<()>().await;
        }
        html("x")
    })
    .await;
    let cfg = env.write_config("[limits]\nhop_timeout_ms = 60000\n");
    let mut child = resolving_stdin(&cfg);
    let mut stdin = child.stdin.take().unwrap();
    let urls: Vec<String> = (0..3)
        .map(|n| format!("http://crash.test:{}/{n}", srv.port()))
        .collect();
    for u in &urls {
        writeln!(stdin, "{u}").unwrap();
    }
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || {
        let l = lines.next().unwrap().unwrap();
        (l, lines)
    })
    .await
    .unwrap();
    // Whatever else it is doing, the process dies now.
    let _ = child.kill();
    let _ = child.wait();
    let printed: Trace = serde_json::from_str(&first.0).unwrap();
    let store = hoptrace::store::Store::open_sled(&env.dir.path().join("db")).unwrap();
    let (kept, _) = store
        .latest(&printed.input)
        .await
        .unwrap()
        .expect("a printed trace is on disk");
    assert_eq!(kept.final_url, printed.final_url);
    drop(store);

    // While another process holds the database, a second run says so and exits 1.
    let holder = hoptrace::store::Store::open_sled(&env.dir.path().join("db")).unwrap();
    let (code, _, err) = resolve_cmd(&cfg, &[], &urls[0], String::new()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another hoptrace process"), "{err}");
    // --no-store does not open the database: it resolves, and keeps nothing.
    let fresh = format!("http://crash.test:{}/not-in-the-batch", srv.port());
    let (code, out, err) =
        resolve_cmd(&cfg, &["--json", "--no-store"], &fresh, String::new()).await;
    assert_eq!(code, 0, "{err}");
    let t: Trace = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t.outcome, Outcome::Landed, "{out}");
    assert!(
        holder.latest(&t.input).await.unwrap().is_none(),
        "nothing stored"
    );
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_browser_is_warned_about_once() {
    let env = TestEnv::new().await;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async {
        html("<script>setTimeout(function(){ location.href = '/a' + 'b'; }, 10);</script>")
    })
    .await;
    // write_config turns the browser off; this config turns it on with no Chromium to find,
    // and leaves every page to Chromium (the embedded engine would decide this one).
    let cfg = env.dir.path().join("nobrowser.toml");
    std::fs::write(
        &cfg,
        config_toml(
            &env.config,
            "[browser]\nenabled = true\nscript_engine = \"chromium\"\nchrome_path = \"/nonexistent/chromium\"\n[storage]\npath = \"nb-db\"\n",
        ),
    )
    .unwrap();
    let stdin = format!(
        "http://blog.test:{0}/1\nhttp://blog.test:{0}/2\n",
        srv.port()
    );
    let (code, out, err) = json_from_stdin(&cfg, stdin).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("pages that need a browser are not run").count(),
        1,
        "{err}"
    );
    for line in out.lines() {
        let t: Trace = serde_json::from_str(line).unwrap();
        assert_eq!(t.outcome, Outcome::Landed);
        assert!(t.hops[0]
            .reason
            .to_string()
            .contains("no browser available"));
    }
}

/// A batch over many hosts keeps a connection open per host (keep-alive), more than a soft
/// open-files limit of 256 allows: hoptrace raises its soft limit to the hard one, so every
/// link still lands instead of failing with "too many open files".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_many_hosts_is_not_limited_by_the_soft_open_files_limit() {
    let env = TestEnv::new().await;
    let srv = Server::start("127.0.0.1", |_| async { html("<html>ok</html>") }).await;
    let hosts = 400;
    let mut stdin = String::new();
    for i in 0..hosts {
        env.dns.set(&format!("h{i}.many.test"), &["127.0.0.1"]);
        stdin.push_str(&format!("http://h{i}.many.test:{}/\n", srv.port()));
    }
    let cfg = env.write_config("[limits]\nconcurrency = 32\n");
    let bin = env!("CARGO_BIN_EXE_hoptrace");
    let (_, out, err) = tokio::task::spawn_blocking(move || {
        let mut sh = Command::new("sh");
        // The hard limit stays as it is; only the soft one is lowered.
        sh.arg("-c").arg(format!(
            "ulimit -Sn 256 && exec {bin} resolve --json --no-store --config {} -",
            cfg.display()
        ));
        run_command(sh, &stdin)
    })
    .await
    .unwrap();
    let traces: Vec<Trace> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(traces.len(), hosts, "{err}");
    let failed: Vec<_> = traces
        .iter()
        .filter(|t| t.outcome != Outcome::Landed)
        .map(|t| format!("{}: {:?}", t.input, t.error))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(srv.connections(), hosts, "one connection per host");
}

/// Output is in input order, but a slow first link does not stop the batch: with 2 slots,
/// later links keep being resolved (up to a window of 4x the concurrency) while it hangs, and
/// all lines still come out in input order once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_holds_up_the_printing_not_the_batch() {
    let env = TestEnv::new().await;
    env.dns.set("slow.test", &["127.0.0.1"]);
    let release = Arc::new(tokio::sync::Notify::new());
    let fast = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (r2, f2) = (release.clone(), fast.clone());
    let srv = Server::start("127.0.0.1", move |req| {
        let (release, fast) = (r2.clone(), f2.clone());
        async move {
            if req.uri().path() == "/slow" {
                release.notified().await;
            } else {
                fast.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            html("ok")
        }
    })
    .await;
    let cfg = env.write_config(
        "[limits]\nconcurrency = 2\nhop_timeout_ms = 30000\nper_host_per_second = 1000.0\n",
    );
    let mut stdin = format!("http://slow.test:{}/slow\n", srv.port());
    for n in 0..20 {
        stdin.push_str(&format!("http://slow.test:{}/{n}\n", srv.port()));
    }
    let run = tokio::spawn(async move { json_from_stdin(&cfg, stdin).await });
    // One slot is held by the slow link; the other works through the window (8 in all): 7
    // fast links, where strict order with 2 in flight would allow only 1.
    let t0 = Instant::now();
    while fast.load(std::sync::atomic::Ordering::SeqCst) < 7 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "only {} fast links resolved while the slow one hangs",
            fast.load(std::sync::atomic::Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    release.notify_one();
    let (code, out, err) = run.await.unwrap();
    assert_eq!(code, 0, "{err}");
    let inputs: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Trace>(l).unwrap().input)
        .collect();
    assert_eq!(inputs.len(), 21);
    assert!(inputs[0].ends_with("/slow"));
    for (n, input) in inputs[1..].iter().enumerate() {
        assert!(input.ends_with(&format!("/{n}")), "{input} at {}", n + 1);
    }
}

/// A line on a stdin left open is answered before the next line comes (stdin is read in
/// batches, but a batch ends where reading on would wait), and each line comes out with its
/// own spelling of the link, also when two spellings share one visit and its stored bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_from_an_open_stdin_are_answered_one_by_one_each_with_its_own_spelling() {
    let env = TestEnv::new().await;
    env.dns.set("open.test", &["127.0.0.1"]);
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let r2 = release.clone();
    let srv = Server::start("127.0.0.1", move |req| {
        let release = r2.clone();
        async move {
            if req.uri().path() == "/shared" {
                release.acquire().await.unwrap().forget();
            }
            html("ok")
        }
    })
    .await;
    let cfg = env.write_config("[limits]\nhop_timeout_ms = 30000\n");
    let mut child = resolving_stdin(&cfg);
    let mut stdin = child.stdin.take().unwrap();
    let lines = Arc::new(Mutex::new(
        BufReader::new(child.stdout.take().unwrap()).lines(),
    ));
    // The next printed line (a hang here is the failure: a line waiting for the next one).
    let next_line = || {
        let lines = lines.clone();
        async move {
            let read =
                tokio::task::spawn_blocking(move || lines.lock().unwrap().next().unwrap().unwrap());
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), read)
                .await
                .expect("a line read from an open stdin was not answered")
                .unwrap();
            serde_json::from_str::<Trace>(&line).unwrap()
        }
    };
    let port = srv.port();
    let first = format!("http://open.test:{port}/first");
    writeln!(stdin, "{first}").unwrap();
    stdin.flush().unwrap();
    let t = next_line().await;
    assert_eq!(
        (t.input.as_str(), t.outcome),
        (first.as_str(), Outcome::Landed)
    );

    // Two spellings of one link in one write: the second joins the first's visit (held by
    // the server until both are surely in), yet prints its own spelling.
    let spellings = [
        format!("http://open.test:{port}/shared"),
        format!("HTTP://Open.TEST:{port}/shared"),
    ];
    write!(stdin, "{}\n{}\n", spellings[0], spellings[1]).unwrap();
    stdin.flush().unwrap();
    while srv.requests() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    release.add_permits(2);
    for spelling in &spellings {
        let t = next_line().await;
        assert_eq!(&t.input, spelling);
        assert_eq!(t.outcome, Outcome::Landed);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A stdin line that cannot be a link (not UTF-8, or over 1 MiB) is answered as an input
/// error, in its place, and the lines after it are resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_text_or_too_long_is_answered_and_the_run_goes_on() {
    let env = TestEnv::new().await;
    env.dns.set("lines.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async { html("ok") }).await;
    let cfg = env.write_config("");
    let url = |n: u32| format!("http://lines.test:{}/{n}", srv.port());
    let mut stdin = format!("{}\n", url(1)).into_bytes();
    stdin.extend(b"http://lines.test/\xff\xfe\n");
    stdin.extend(std::iter::repeat_n(b'a', (1 << 20) + 5));
    stdin.extend(format!("\n{}\n", url(2)).as_bytes());
    let cfg_s = cfg.display().to_string();
    let args = ["resolve", "--json", "--config", &cfg_s, "-"].map(String::from);
    let (code, out, err) = run_async(args.to_vec(), stdin).await;
    assert_eq!(code, 0, "{err}");
    let traces: Vec<Trace> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(traces.len(), 4, "{out}");
    assert_eq!(
        (traces[0].input.as_str(), traces[0].outcome),
        (url(1).as_str(), Outcome::Landed)
    );
    assert_eq!(traces[1].input, "http://lines.test/\u{fffd}\u{fffd}");
    assert_eq!(traces[2].input, "a".repeat(200));
    for (t, why) in [
        (&traces[1], "the line is not UTF-8 text"),
        (&traces[2], "the line is longer than 1 MiB"),
    ] {
        let e = t.error.as_ref().unwrap();
        assert_eq!(
            (t.outcome, e.kind.as_str(), e.message.as_str()),
            (Outcome::Error, "input", why)
        );
    }
    assert_eq!(
        (traces[3].input.as_str(), traces[3].outcome),
        (url(2).as_str(), Outcome::Landed)
    );
}

/// What a person reads carries no terminal escape from what others wrote: a line read from
/// stdin with `ESC ]0;` (retitle), `ESC [2J` (clear), a C1 CSI and a bidi override, a link's
/// path with one, a Docker Hub record whose `namespace` and `name` carry them, and an error
/// that echoes a path. Each is shown escaped (`\u{1b}`). JSON output is escaped by its encoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_carries_no_terminal_escape() {
    const RAW: [char; 6] = ['\x1b', '\x07', '\r', '\u{9b}', '\u{7f}', '\u{202e}'];
    let raw_in = |s: &str| s.chars().filter(|c| RAW.contains(c)).collect::<Vec<_>>();
    let env = TestEnv::new().await;
    let page = Server::start("127.0.0.1", |_| async { html("<p>a page</p>") }).await;
    let cfg = env.write_config("");
    let hostile = "\x1b]0;owned\x07\x1b[2J\r\u{9b}31m\u{7f}\u{202e}exe.txt";
    let stdin = format!(
        "http://a.test/{hostile}\nhttp://127.0.0.1:{}/\u{202e}x\n",
        page.port()
    );
    let (code, out, err) = resolve_cmd(&cfg, &[], "-", stdin.clone()).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(raw_in(&out), Vec::<char>::new(), "{out:?}");
    assert_eq!(raw_in(&err), Vec::<char>::new(), "{err:?}");
    assert!(
        out.contains(
            "http://a.test/\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r\\u{9b}31m\\u{7f}\\u{202e}exe.txt"
        ),
        "shown escaped: {out}"
    );
    assert!(out.contains("=> landed on 127.0.0.1"), "{out}");
    // JSON: the encoder escapes C0 controls.
    let (code, out, err) = resolve_cmd(&cfg, &["--json"], "-", stdin).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(['\x1b', '\x07', '\r']), "{out:?}");
    assert!(out.contains("\\u001b]0;owned\\u0007"), "{out}");

    // scan: a Docker Hub record's namespace and name.
    let record = serde_json::json!({
        "namespace": format!("ns{hostile}"),
        "name": "name\x1b[2J",
        "description": format!("see http://127.0.0.1:{}/doc", page.port()),
    });
    let mut args = vec!["scan".to_string(), "--config".into()];
    args.extend([cfg.display().to_string(), "-".into()]);
    let (code, out, err) = run_async(args, format!("{record}\n")).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(raw_in(&out), Vec::<char>::new(), "{out:?}");
    assert_eq!(raw_in(&err), Vec::<char>::new(), "{err:?}");
    assert!(out.contains("ns\\u{1b}]0;owned"), "{out}");
    assert!(out.contains("/name\\u{1b}[2J"), "{out}");

    // An error that echoes what it was given.
    let missing = env.dir.path().join(format!("{hostile}.toml"));
    let args = vec![
        "resolve".to_string(),
        "--config".into(),
        missing.display().to_string(),
        "http://a.test/".into(),
    ];
    let (code, _, err) = run_async(args, String::new()).await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(raw_in(&err), Vec::<char>::new(), "{err:?}");
    assert!(err.contains("\\u{1b}]0;owned"), "{err}");
}

/// `resolve --defang` prints no live link, in either form: not the input, not a hop, not a
/// URL nested in a wrapper's query (Google's `/url?q=` decoded offline), not where it landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_defang_prints_no_live_link() {
    let env = TestEnv::new().await;
    env.dns.set("blltly.com", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_req| async { html("<html>landing</html>") }).await;
    let cfg = env.write_config("");
    let input = format!(
        "https://www.google.com/url?q=http://blltly.com:{}/acad2?next%3Dhttp://x.example/y&sa=D",
        srv.port()
    );
    for json in [false, true] {
        let mut args = vec!["resolve", "--no-store", "--defang", "--config"];
        let cfg = cfg.to_str().unwrap().to_string();
        args.push(&cfg);
        if json {
            args.push("--json");
        }
        args.push(&input);
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let (code, out, err) = run_async(args, "").await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("hxxp://blltly[.]com:"), "{out}");
        assert!(
            out.contains("hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com"),
            "{out}"
        );
        for live in [
            "http://",
            "https://",
            "blltly.com",
            "www.google.com",
            "x.example",
        ] {
            assert!(!out.contains(live), "{live} is live in:\n{out}");
        }
    }
}
