//! The HTTP API under load against the release binary: cached `GET /v1/trace`, `POST
//! /v1/resolve` cache hits, and fresh resolutions of two-hop chains on a local fixture
//! server; each against `GET /healthz` on the same server in the same run (the baseline: what
//! the HTTP layer alone costs here), reported as ratios, since absolute figures on this VM
//! swing more than the differences measured. Latency is measured open-loop with `oha -q`
//! (10,000 requests/s offered whatever the answers take, with its latency correction, so a
//! slow answer is not hidden by the generator waiting for it); throughput flat out with `wrk`.
//! Each kind of call runs in turn with the others, three rounds, and its median is kept.
//! Also the HTTP stack alone (axum on hyper, no hoptrace) answering a POST with the hit's bytes
//! and no work, against its own `/healthz`: the ceiling a POST hit's ratio can reach here.
//! Also server RSS idle and after the load. With taskset and 2+ cores, the generator runs on
//! core 0 and the server on core 1, so they do not take turns on one core.
//!
//!     apt-get install wrk; cargo install oha    # scripts/bench does both
//!     cargo bench --bench api     # BENCH_QUICK=1: 3 s per run
//!     BENCH_BASELINE_BIN=path cargo bench --bench api   # the hits, this build against another
//!
//! Prints a table and writes target/bench/api.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use bytes::Bytes;

use common::*;

struct Run {
    name: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `program` pinned to `cpu` with taskset when there is one and more than one core, so the
/// load generator and the server do not take turns on the same core.
fn pinned(cpu: usize, program: &str) -> Command {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if cores > 1 && taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Runs wrk with `script` (Lua, may be empty) against `addr` + `path`.
fn wrk(
    name: &'static str,
    addr: SocketAddr,
    path: &str,
    script: &str,
    secs: u32,
    connections: u32,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("s.lua");
    std::fs::write(&lua, script).unwrap();
    let out = pinned(0, "wrk")
        .args([
            // Paced runs need one thread only.
            if connections > 16 { "-t2" } else { "-t1" },
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&lua)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    };
    let ms = |v: String| -> f64 {
        let v = v.split_whitespace().next().unwrap_or("0").to_string();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    };
    // Non-2xx answers and socket errors both count as errors.
    let non2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket: u64 = field("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Run {
        name,
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map(ms).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(ms).unwrap_or(f64::NAN),
        errors: non2xx + socket,
    }
}

/// The open-loop load generator: `oha` on PATH, or where scripts/bench installs it.
fn oha_program() -> String {
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/oha");
    match local.exists() {
        true => local.display().to_string(),
        false => "oha".into(),
    }
}

/// `oha` offering `rate` requests/s for `secs` over 64 connections (open loop, latency
/// corrected), `body` POSTed as JSON when given.
fn oha(
    name: &'static str,
    addr: SocketAddr,
    path: &str,
    body: Option<&str>,
    rate: u32,
    secs: u32,
) -> Run {
    let mut cmd = pinned(0, &oha_program());
    cmd.args([
        "-z",
        &format!("{secs}s"),
        "-q",
        &rate.to_string(),
        "-c",
        "64",
    ])
    .args([
        "--latency-correction",
        "--no-tui",
        "--output-format",
        "json",
    ]);
    if let Some(b) = body {
        cmd.args([
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            b,
        ]);
    }
    let out = cmd
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("oha runs (cargo install oha; scripts/bench installs it)");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oha's JSON: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let secs_f = |p: &str| v["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    let all: u64 = v["statusCodeDistribution"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|n| n.as_u64()).sum());
    // Requests cut by the run's end are not errors.
    let errors: u64 = v["errorDistribution"].as_object().map_or(0, |m| {
        m.iter()
            .filter(|(k, _)| !k.contains("deadline"))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    });
    Run {
        name,
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: secs_f("p50"),
        p99_ms: secs_f("p99"),
        errors: errors + (all - ok),
    }
}

/// A tail on a shared VM swings from run to run: three runs, the one with the median p99.
/// The run in the middle of `runs` by `key`.
fn median_by(mut runs: Vec<Run>, key: impl Fn(&Run) -> f64) -> Run {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs.swap_remove(runs.len() / 2)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// `bin serve` on a free loopback port, pinned to core 1, its database in `dir`; a config of
/// only the keys every build since issue 4 reads (so an older build can be the baseline).
fn start_server(bin: &str, dir: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let cfg = dir.join("hoptrace.toml");
    std::fs::write(
        &cfg,
        format!(
            "[policy]\nallow_cidrs = [\"127.0.0.1/32\"]\n[limits]\nper_host_per_second = 1000000.0\nconcurrency = 256\n\
             [browser]\nenabled = false\n[storage]\npath = \"{}\"\n[server]\nrate_per_second = 0\nmax_queue = 100000\n",
            dir.join("db").display()
        ),
    )
    .unwrap();
    let mut cmd = pinned(1, bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn");
    listening(cmd)
}

/// Starts `cmd` and reads the address from its first line (`listening on http://ADDR`).
fn listening(mut cmd: Command) -> (std::process::Child, SocketAddr) {
    let mut server = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("listening on http://")
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (server, addr)
}

/// The HTTP stack alone, as a ceiling: axum on hyper on tokio as hoptrace serves (one worker
/// on core 1), without hoptrace. `GET /healthz` answers what hoptrace's does; `POST /answer`
/// reads its body and answers `answer` (the cache hit's bytes) at once, so a POST hit can be
/// no cheaper than this. Run in a process of its own: this bench re-run with
/// `BENCH_BARE_ANSWER` naming a file of the answer.
fn bare_server(answer: Vec<u8>) {
    use axum::routing::{get, post};
    use http::header::CONTENT_TYPE;
    let answer = Bytes::from(answer);
    let json = || [(CONTENT_TYPE, "application/json")];
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || async move { (json(), r#"{"status":"ok"}"#) }),
        )
        .route(
            "/answer",
            post(move |_body: Bytes| async move { (json(), answer) }),
        );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// The bare server of [`bare_server`] answering `answer`, pinned to core 1.
fn start_bare(answer: &[u8], dir: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let file = dir.join("answer.json");
    std::fs::write(&file, answer).unwrap();
    let mut cmd = pinned(1, std::env::current_exe().unwrap().to_str().unwrap());
    cmd.env("BENCH_BARE_ANSWER", &file);
    listening(cmd)
}

/// The body `POST /v1/resolve` answers for `body` (the cache hit's bytes).
async fn answer_of(addr: SocketAddr, body: &str) -> Bytes {
    use http_body_util::BodyExt;
    let req = http::Request::post("/v1/resolve")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let answer = send(addr, req).await;
    assert_eq!(answer.status(), 200, "the hit answers");
    answer.into_body().collect().await.unwrap().to_bytes()
}

/// Puts the link of `hit` (a wrk script POSTing it) in the server's cache.
fn seed(addr: SocketAddr, hit: &str) {
    let seeded = wrk("seed", addr, "/v1/resolve", hit, 1, 4);
    assert!(seeded.rps > 0.0, "the server answers");
}

/// `BENCH_BASELINE_BIN`: this build's server against another's, side by side on core 1, each
/// kind of hit flat out on one then the other, `rounds` rounds; the medians and their ratio,
/// and each build's hit/`/healthz` ratio per round (measured seconds apart, so the VM's slow
/// spells fall on both alike).
async fn against_baseline(base: &str, trace_path: &str, hit: &str, secs: u32) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers = [
        start_server(env!("CARGO_BIN_EXE_hoptrace"), dirs[0].path()),
        start_server(base, dirs[1].path()),
    ];
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for (_, addr) in &servers {
        seed(*addr, hit);
    }
    let kinds = [
        "GET /healthz",
        "GET /v1/trace (stored)",
        "POST /v1/resolve (hit)",
    ];
    // runs[server][kind][round]: requests/s
    let mut runs = vec![vec![Vec::new(); 3]; 2];
    for _ in 0..5 {
        for (i, (_, addr)) in servers.iter().enumerate() {
            for (k, (path, script)) in [("/healthz", ""), (trace_path, ""), ("/v1/resolve", hit)]
                .into_iter()
                .enumerate()
            {
                runs[i][k].push(wrk(kinds[k], *addr, path, script, secs, 64).rps);
            }
        }
    }
    for (mut child, _) in servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("this build against {base} (flat out, wrk, {secs} s runs, 5 rounds in turn; medians)");
    println!(
        "  {:<26} {:>10} {:>10} {:>7}",
        "call", "this", "baseline", "ratio"
    );
    for (k, kind) in kinds.iter().enumerate() {
        let (a, b) = (median(&runs[0][k]), median(&runs[1][k]));
        println!("  {kind:<26} {a:>10.0} {b:>10.0} {:>6.2}x", a / b);
    }
    for (k, kind) in kinds.iter().enumerate().skip(1) {
        let per_round = |i: usize| -> Vec<f64> {
            runs[i][k]
                .iter()
                .zip(&runs[i][0])
                .map(|(hit, health)| hit / health)
                .collect()
        };
        println!(
            "  {kind} / /healthz, median of the rounds: this {:.2}x, baseline {:.2}x",
            median(&per_round(0)),
            median(&per_round(1))
        );
    }
}

fn main() {
    if let Some(file) = std::env::var_os("BENCH_BARE_ANSWER") {
        return bare_server(std::fs::read(file).unwrap());
    }
    bench();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn bench() {
    let secs = if std::env::var_os("BENCH_QUICK").is_some() {
        3
    } else {
        10
    };
    // Two-hop chains: /r/N redirects to /landing/N.
    let fixture = Server::start("127.0.0.1", |req| async move {
        let path = req.uri().path().to_string();
        match path.strip_prefix("/r/") {
            Some(n) => redirect(302, format!("/landing/{n}").as_bytes()),
            None => html("<html>landing</html>"),
        }
    })
    .await;
    let fp = fixture.port();
    let url = format!("http://127.0.0.1:{fp}/r/seed");
    let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
    let trace_path = format!("/v1/trace?url={encoded}");
    let hit = format!(
        "wrk.method = \"POST\"\nwrk.body = '{{\"url\":\"{url}\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    if let Ok(base) = std::env::var("BENCH_BASELINE_BIN") {
        return against_baseline(&base, &trace_path, &hit, secs).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start_server(env!("CARGO_BIN_EXE_hoptrace"), dir.path());
    let pid = server.id();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let idle_kib = rss_kib(pid, "VmRSS:");
    seed(addr, &hit);
    let body = format!("{{\"url\":\"{url}\"}}");
    let answer = answer_of(addr, &body).await;
    let (mut bare, bare_addr) = start_bare(&answer, dir.path());

    // Flat out and paced (10,000 requests/s offered, the target's load, open loop): each
    // kind of call in turn, three rounds, and each kind's median kept (by throughput, or by
    // p99), so the VM's swings between runs seconds apart fall on all kinds alike rather
    // than on whichever ran during one.
    let mut flat: [Vec<Run>; 3] = Default::default();
    let mut stack: [Vec<Run>; 2] = Default::default();
    let mut paced: [Vec<Run>; 3] = Default::default();
    for _ in 0..3 {
        flat[0].push(wrk(
            "GET /healthz (baseline)",
            addr,
            "/healthz",
            "",
            secs,
            64,
        ));
        flat[1].push(wrk(
            "GET /v1/trace (stored)",
            addr,
            &trace_path,
            "",
            secs,
            64,
        ));
        flat[2].push(wrk(
            "POST /v1/resolve (cache hit)",
            addr,
            "/v1/resolve",
            &hit,
            secs,
            64,
        ));
        stack[0].push(wrk(
            "stack alone: GET /healthz",
            bare_addr,
            "/healthz",
            "",
            secs,
            64,
        ));
        stack[1].push(wrk(
            "stack alone: POST, the hit's bytes",
            bare_addr,
            "/answer",
            &hit,
            secs,
            64,
        ));
    }
    let _ = bare.kill();
    let _ = bare.wait();
    for _ in 0..3 {
        paced[0].push(oha(
            "GET /healthz, paced",
            addr,
            "/healthz",
            None,
            10_000,
            secs,
        ));
        paced[1].push(oha(
            "GET /v1/trace, paced",
            addr,
            &trace_path,
            None,
            10_000,
            secs,
        ));
        paced[2].push(oha(
            "POST /v1/resolve (hit), paced",
            addr,
            "/v1/resolve",
            Some(&body),
            10_000,
            secs,
        ));
    }
    let [h, t, r] = flat.map(|runs| median_by(runs, |r| r.rps));
    let [hp, tp, rp] = paced.map(|runs| median_by(runs, |r| r.p99_ms));
    let [sh, sp] = stack.map(|runs| median_by(runs, |r| r.rps));
    let runs = vec![
        h,
        t,
        r,
        sh,
        sp,
        hp,
        tp,
        rp,
        wrk(
            "POST /v1/resolve (fresh, 2 hops)",
            addr,
            "/v1/resolve",
            &format!(
                "n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"POST\", \"/v1/resolve\", {{[\"Content-Type\"] = \"application/json\"}}, string.format('{{\"url\":\"http://127.0.0.1:{fp}/r/%d-%d\",\"refresh\":true}}', math.random(1000000), n))\nend\n"
            ),
            secs,
            64,
        ),
    ];
    let peak_kib = rss_kib(pid, "VmHWM:");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.wait();

    // Each run against the baseline of its kind (flat out, the stack alone, or paced).
    let base_of = |r: &Run| {
        if r.name.contains("paced") {
            runs[5].rps
        } else if r.name.starts_with("stack alone") {
            runs[3].rps
        } else {
            runs[0].rps
        }
    };
    println!(
        "hoptrace serve (flat out: wrk, 2 threads, 64 connections; paced: oha -q 10000 open loop with latency correction, 64 connections, each kind in turn, 3 rounds, median throughput / p99 kept; {secs} s each; the generator pinned to core 0, the server to core 1, of {})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:<34} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "call", "req/s", "p50 ms", "p99 ms", "vs base", "errors"
    );
    for r in &runs {
        println!(
            "  {:<34} {:>10.0} {:>9.2} {:>9.2} {:>8.2}x {:>7}",
            r.name,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.rps / base_of(r),
            r.errors
        );
    }
    println!(
        "  server RSS: idle {:.1} MB, peak {:.1} MB",
        idle_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    // The targets, as ratios to the baseline measured in this run.
    let p99 = |i: usize| runs[i].p99_ms / runs[5].p99_ms;
    let flat = |i: usize| runs[i].rps / runs[0].rps;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("  targets (ratios to /healthz in this run):");
    for (what, ratio, ok) in [
        ("p99 GET /v1/trace, paced (<= 1.5x)", p99(6), p99(6) <= 1.5),
        (
            "p99 POST /v1/resolve hit, paced (<= 1.5x)",
            p99(7),
            p99(7) <= 1.5,
        ),
        (
            "throughput GET /v1/trace, flat out (>= 0.8x)",
            flat(1),
            flat(1) >= 0.8,
        ),
        (
            "throughput POST /v1/resolve hit, flat out (>= 0.8x)",
            flat(2),
            flat(2) >= 0.8,
        ),
    ] {
        println!("    {what:<52} {ratio:>6.2}x  {}", verdict(ok));
    }
    // What the HTTP stack leaves a POST hit: the stack alone answering the same bytes with no
    // work at all, against its own /healthz.
    let ceiling = runs[4].rps / runs[3].rps;
    println!(
        "  ceiling: a POST answering the hit's {} bytes with no work, stack alone: {ceiling:.2}x its /healthz",
        answer.len()
    );
    let json = serde_json::json!({
        "p99_ratio_trace_paced": p99(6),
        "p99_ratio_resolve_hit_paced": p99(7),
        "throughput_ratio_post_ceiling_stack_alone": ceiling,
        "throughput_ratio_trace": flat(1),
        "throughput_ratio_resolve_hit": flat(2),
        "runs": runs.iter().map(|r| serde_json::json!({
            "call": r.name, "rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
            "ratio_to_baseline": r.rps / base_of(r), "errors": r.errors,
        })).collect::<Vec<_>>(),
        "rss_idle_mb": idle_kib as f64 / 1024.0,
        "rss_peak_mb": peak_kib as f64 / 1024.0,
        "seconds_per_run": secs,
    });
    write_bench_json("api.json", &json);
}
