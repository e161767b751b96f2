//! The analyst's workbench through the binary and the API: output safe to paste (`--defang`,
//! `[output] defang`, `?defang=true`), automatic watches opt-in and announced, quiet stderr,
//! commands through a running server, and errors that read as sentences.

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// Runs the binary with `args` and `stdin`, `env` set: exit code, stdout, stderr.
fn run_env(args: &[String], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoptrace"));
    cmd.args(args).env("NO_COLOR", "1").env_remove("RUST_LOG");
    for var in ["HOPTRACE_SERVER", "HOPTRACE_TOKEN"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    run_command(cmd, stdin)
}

/// The binary on a blocking thread (the test's servers keep serving).
async fn hoptrace(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (stdin, env): (String, Vec<(String, String)>) = (
        stdin.to_string(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_env(&args, &stdin, &env)
    })
    .await
    .unwrap()
}

/// Nothing in `out` is a live link: no scheme, no name with its dots, nothing defanged twice.
fn assert_defanged(what: &str, out: &str) {
    for live in [
        "http://",
        "https://",
        "blltly.com",
        "www.google.com",
        "failhostingpolp.ru",
        "[[.]]",
    ] {
        assert!(!out.contains(live), "{what}: {live} in\n{out}");
    }
}

/// A Google `/url?q=` link wrapping a fake shortener's, which redirects to a payload host.
async fn wrapped(env: &TestEnv) -> (Server, Server, String) {
    let (short, payload, _) = campaign(env).await;
    let link = format!(
        "https://www.google.com/url?q=http://blltly.com:{}/acad2&sa=D",
        short.port()
    );
    (short, payload, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printing_command_defangs_nested_urls_too() {
    let env = TestEnv::new().await;
    let (_short, _payload, link) = wrapped(&env).await;
    let cfg = env.write_config("");
    let cfg = cfg.to_str().unwrap();
    // Two repositories sharing the link: one campaign.
    let repos: Vec<String> = (0..2)
        .map(|i| {
            json!({"namespace": format!("dlwave00{i}"), "name": "crack",
                   "description": format!("Get it at {link}")})
            .to_string()
        })
        .collect();
    let repos = repos.join("\n") + "\n";
    for json in [false, true] {
        let mut args = vec!["scan", "--defang", "--config", cfg];
        if json {
            args.push("--json");
        }
        args.push("-");
        let (code, out, err) = hoptrace(&args, &repos, &[]).await;
        assert_eq!(code, 0, "{err}");
        assert_defanged("scan", &out);
        if json {
            assert!(
                out.contains("hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com:"),
                "{out}"
            );
        }
    }
    for json in [&[][..], &["--json"][..]] {
        let mut args = vec!["campaigns", "--defang", "--config", cfg];
        args.extend(json);
        let (code, out, err) = hoptrace(&args, "", &[]).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("blltly[.]com"), "{out}");
        assert_defanged("campaigns", &out);
    }
    for format in ["txt", "csv"] {
        let args = ["export", "--format", format, "--defang", "--config", cfg];
        let (code, out, err) = hoptrace(&args, "", &[]).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com:"),
            "{out}"
        );
        assert_defanged(format, &out);
    }
    let args = [
        "compare",
        "--defang",
        "--json",
        "--profiles",
        "windows-chrome,crawler",
        "--config",
        cfg,
        &link,
    ];
    let (code, out, err) = hoptrace(&args, "", &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com:"));
    assert_defanged("compare", &out);

    // `[output] defang = true`: the same without the flag.
    let cfg = env.write_config("[output]\ndefang = true\n");
    let cfg = cfg.to_str().unwrap();
    for json in [&[][..], &["--json"][..]] {
        let mut args = vec!["resolve", "--config", cfg];
        args.extend(json);
        args.push(&link);
        let (code, out, err) = hoptrace(&args, "", &[]).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("q=hxxp://blltly[.]com:"), "{out}");
        assert_defanged("resolve with output.defang", &out);
    }
    let (code, out, _) = hoptrace(&["export", "--format", "txt", "--config", cfg], "", &[]).await;
    assert_eq!(code, 0);
    assert_defanged("export with output.defang", &out);
}

/// `?defang=true` on every route that returns links, cache hits included; an export that
/// cannot be defanged says so naming the query parameter, not a CLI flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_defangs_on_request_on_every_route_with_links() {
    let env = TestEnv::new().await;
    let (_short, _payload, link) = wrapped(&env).await;
    let cfg = env.write_config("");
    let (_serving, a) = serve_binary(&cfg);
    let plain = post(a, "/v1/resolve", json!({"url": link}), None).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(plain.body.to_string().contains("blltly.com"));
    let wrapped_defanged = "hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com:";
    for path in ["/v1/resolve?defang=true", "/v1/resolve?defang=1"] {
        // The second is answered from the cache: defanged all the same.
        let r = post(a, path, json!({"url": link}), None).await;
        assert_eq!(r.status, 200);
        let body = r.body.to_string();
        assert!(body.contains(wrapped_defanged), "{body}");
        assert_defanged(path, &body);
    }
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/v1/resolve/batch?defang=true".into(),
            Some(json!({"urls": [link]})),
        ),
        (
            "POST",
            "/v1/scan?defang=true".into(),
            Some(json!({"text": format!("see {link}")})),
        ),
        (
            "GET",
            format!("/v1/trace?defang=true&url={}", urlencode(&link)),
            None,
        ),
        ("GET", "/v1/domains?defang=true".into(), None),
    ];
    for (method, path, body) in calls {
        let r = match body {
            Some(body) => post(a, &path, body, None).await,
            None => get(a, &path, None).await,
        };
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let text = r.body.to_string();
        assert!(text.contains("[.]"), "{method} {path}: {text}");
        assert_defanged(&path, &text);
    }
    let r = get(a, "/v1/export?format=stix&defang=true", None).await;
    assert_eq!(r.status, 400);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("defang: "), "{message}");
    assert!(!message.contains("--"), "names a CLI flag: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_watches_are_opt_in_per_source_and_announced() {
    let env = TestEnv::new().await;
    let (short, _payload, _) = campaign(&env).await;
    let link = |path: &str| format!("http://blltly.com:{}/{path}", short.port());
    let watched = |env: &TestEnv| {
        let store = hoptrace::store::Store::open_sled(&env.dir.path().join("db")).unwrap();
        let rt = tokio::runtime::Handle::current();
        let list = tokio::task::block_in_place(|| rt.block_on(store.watches())).unwrap();
        list.into_iter().map(|w| w.url).collect::<Vec<_>>()
    };
    // By default no run adds a watch.
    let cfg = env.write_config("");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let (code, out, err) = hoptrace(
        &["resolve", "--json", "--config", &cfg_s, &link("a")],
        "",
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("watch_added") && !err.contains("watching"),
        "{out}{err}"
    );
    let doc = json!({"namespace": "ns", "name": "r", "description": link("b")}).to_string();
    let (code, out, err) = hoptrace(&["scan", "--json", "--config", &cfg_s, "-"], &doc, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("watch_added") && !err.contains("watching"),
        "{out}{err}"
    );
    assert_eq!(watched(&env), Vec::<String>::new());

    // Opted in for `resolve` only: resolve watches and says so; scan does not.
    let cfg = env.write_config("[watch]\nauto_from = [\"resolve\"]\n");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let (code, out, err) = hoptrace(
        &["resolve", "--json", "--config", &cfg_s, &link("c")],
        "",
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["watch_added"]["url"], link("c"), "{out}");
    assert!(
        err.contains(&format!("now watching {} every 21600 s", link("c"))),
        "{err}"
    );
    let (_, out, err) = hoptrace(&["resolve", "--config", &cfg_s, &link("d")], "", &[]).await;
    assert!(
        err.contains(&format!("now watching {}", link("d"))),
        "{out}{err}"
    );
    let doc = json!({"namespace": "ns", "name": "r2", "description": link("e")}).to_string();
    let (_, out, err) = hoptrace(&["scan", "--json", "--config", &cfg_s, "-"], &doc, &[]).await;
    assert!(
        !out.contains("watch_added") && !err.contains("watching"),
        "{out}{err}"
    );
    assert_eq!(watched(&env), vec![link("c"), link("d")]);

    // Opted in for `scan`: its JSON line says which link is now watched.
    let cfg = env.write_config("[watch]\nauto_from = [\"scan\"]\n");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let doc = json!({"namespace": "ns", "name": "r3", "description": link("f")}).to_string();
    let (_, out, err) = hoptrace(&["scan", "--json", "--config", &cfg_s, "-"], &doc, &[]).await;
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["links"][0]["watch_added"]["url"], link("f"), "{out}");
    assert!(
        err.contains(&format!("now watching {}", link("f"))),
        "{err}"
    );
    // A bad source is a config error naming the key.
    let text = std::fs::read_to_string(env.write_config("")).unwrap();
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("auto_from = []", "auto_from = [\"cron\"]"),
    )
    .unwrap();
    let (code, _, err) = hoptrace(
        &["resolve", "--config", bad.to_str().unwrap(), "x.example"],
        "",
        &[],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("watch.auto_from"), "{err}");
}

/// Off a terminal stderr carries no colour codes (a warning written to a file is plain text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_to_a_file_is_plain_text() {
    let env = TestEnv::new().await;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |_| async {
        html("<script>setTimeout(function(){ location.href = '/a' + 'b'; }, 10);</script>")
    })
    .await;
    let cfg = env.write_config(
        "[browser]\nenabled = true\nscript_engine = \"chromium\"\nchrome_path = \"/nonexistent/chromium\"\n",
    );
    let log = env.dir.path().join("stderr.txt");
    let (cfg, url, file) = (
        cfg.clone(),
        format!("http://blog.test:{}/1", srv.port()),
        std::fs::File::create(&log).unwrap(),
    );
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hoptrace"))
            .args([
                "resolve",
                "--no-store",
                "--config",
                cfg.to_str().unwrap(),
                &url,
            ])
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("WARN"), "a warning was written: {err}");
    assert!(!err.contains('\x1b'), "colour codes in a file: {err:?}");
    assert!(!err.contains("chromiumoxide"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_export_and_campaigns_through_the_server_holding_the_store() {
    let env = TestEnv::new().await;
    let (_short, _payload, link) = wrapped(&env).await;
    let cfg = env.write_config("[server]\napi_tokens = [\"s3cret-token-1\"]\n");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let (_serving, a) = serve_binary(&cfg);
    let server = format!("http://{a}");

    // Without --server: the store is held, and the error says what to do.
    let (code, _, err) = hoptrace(&["resolve", "--config", &cfg_s, &link], "", &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "hoptrace serve is running: use --server {server} or HOPTRACE_SERVER={server}"
        )),
        "{err}"
    );
    // Without the token: the server's 401.
    let (code, _, err) = hoptrace(&["resolve", "--server", &server, &link], "", &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401"), "{err}");
    // Through the server, the token from the environment.
    let token = [("HOPTRACE_TOKEN", "s3cret-token-1")];
    let (code, out, err) = hoptrace(
        &["resolve", "--json", "--server", &server, &link],
        "",
        &token,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["outcome"], "landed", "{out}");
    assert_eq!(t["final_host"], "failhostingpolp.ru", "{out}");
    let with_env = [
        ("HOPTRACE_TOKEN", "s3cret-token-1"),
        ("HOPTRACE_SERVER", server.as_str()),
    ];
    let (code, out, err) = hoptrace(&["resolve", "--defang", &link], "", &with_env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("=> landed on failhostingpolp[.]ru"), "{out}");
    let (code, out, err) = hoptrace(
        &["export", "--format", "txt", "--server", &server],
        "",
        &token,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("failhostingpolp.ru"), "{out}");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"));
    let (code, out, err) =
        hoptrace(&["campaigns", "--json", "--server", &server], "", &token).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"campaigns\""), "{out}");
    let doc = json!({"namespace": "ns", "name": "r", "description": format!("see {link}")});
    let (code, out, err) = hoptrace(
        &["scan", "--json", "--defang", "--server", &server, "-"],
        &format!("{doc}\n"),
        &token,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (s["repository"].as_str(), s["verdict"].as_str()),
        (Some("ns/r"), Some("malicious")),
        "{out}"
    );
    assert_defanged("scan through the server", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_read_as_sentences() {
    let env = TestEnv::new().await;
    env.dns.set("loop.test", &["127.0.0.9"]);
    let cfg = env.write_config("");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let resolve = |url: &'static str| {
        let cfg_s = cfg_s.clone();
        async move { hoptrace(&["resolve", "--no-store", "--config", &cfg_s, url], "", &[]).await }
    };
    let (_, out, _) = resolve("not a url").await;
    assert!(
        out.contains("\"not a url\" is not a URL: a host name has no spaces"),
        "{out}"
    );
    let (_, out, _) = resolve("http://loop.test/x").await;
    assert!(
        out.contains("loop.test resolves to 127.0.0.9, in the loopback range (127.0.0.0/8), which the egress policy refuses"),
        "{out}"
    );
    let (_, out, _) = resolve("http://127.0.0.9/x").await;
    assert!(
        out.contains("the address 127.0.0.9, in the loopback range"),
        "{out}"
    );
    let (_, out, _) = resolve("javascript:alert(1)").await;
    assert!(!out.contains("at  "), "{out}");
    let missing = env.dir.path().join("missing.toml");
    let (code, _, err) = hoptrace(
        &[
            "resolve",
            "--config",
            missing.to_str().unwrap(),
            "x.example",
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(code, 2);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");

    // The server: `/` is the web view, a 401 names the scheme, the domain page its parameter.
    let cfg = env.write_config("[server]\napi_tokens = [\"t0ken-for-tests\"]\n");
    let (_serving, a) = serve_binary(&cfg);
    let r = raw(a, "GET", "/", &[], "").await;
    assert_eq!(r.0, 303);
    assert_eq!(r.1.get("location").unwrap(), "/ui/");
    let r = raw(a, "GET", "/v1/watch", &[], "").await;
    assert_eq!(r.0, 401);
    assert_eq!(r.1.get("www-authenticate").unwrap(), "Bearer");
    drop(_serving);

    // The domain page names its real parameter, and takes `domain` as people write it.
    let (_serving, a) = serve_binary(&env.write_config(""));
    let (status, _, page) = raw(a, "GET", "/ui/domain?domain=", &[], "").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("missing query parameter d: the landing domain, as in /ui/domain?d="),
        "{page}"
    );
    let (status, _, page) = raw(a, "GET", "/ui/domain?domain=nothing.example", &[], "").await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("nothing landed on nothing"), "{page}");
}
