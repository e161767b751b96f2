//! JavaScript hops with a warm browser against a cold Chromium launch per URL, measured in
//! the same run on local fixtures (loopback servers, local DNS). Ratios are what count on a
//! noisy machine.
//!
//!     cargo bench --bench browser            # or: BENCH_QUICK=1 for a short run
//!
//! Prints a table and writes target/bench/browser.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hoptrace::browser::chromium::Chromium;
use hoptrace::browser::Driver;
use hoptrace::chain::Resolver;
use hoptrace::trace::Via;

/// The blogger trick: the next hop exists only after a 500 ms timer runs.
const PAGE: &str = "<script>var el = location.pathname.slice(3); setTimeout(function(){ location.replace('/landing/' + el); }, 500);</script>";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (overhead_n, batch, cold_n) = if quick { (10, 12, 3) } else { (40, 48, 6) };

    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.limits.hop_timeout_ms = 15000;
    env.config.limits.total_timeout_ms = 60000;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        if req.uri().path().starts_with("/p/") {
            html(PAGE)
        } else {
            html("landing")
        }
    })
    .await;
    let url = |n: usize| format!("http://blog.test:{}/p/{n}", srv.port());
    let egress = hoptrace::egress::Egress::new(&env.config).unwrap();

    // 1. Overhead with a warm browser: one visit (fresh context, tab, load, virtual-time
    //    timers, capture) in real time, the page's own 500 ms timer costing nothing real.
    let warm = Arc::new(Chromium::new(&env.config.browser.chrome_path));
    warm.prewarm().expect("Chromium starts");
    let proxy = hoptrace::egress::proxy::JobProxy::start(egress.clone(), 1 << 24)
        .await
        .unwrap();
    let mut visits = Vec::new();
    let mut overheads = Vec::new();
    for n in 0..overhead_n {
        let (d, u, p) = (warm.clone(), url(n), proxy.addr);
        let v = tokio::task::spawn_blocking(move || {
            // Prepared ahead, as the stage keeps pages ready; the visit itself is timed.
            let page = d.prepare(p).unwrap();
            let t0 = Instant::now();
            let v = d
                .visit(
                    Some(page),
                    &u,
                    p,
                    Duration::from_millis(3000),
                    Instant::now() + Duration::from_secs(15),
                )
                .unwrap();
            (v, t0.elapsed())
        })
        .await
        .unwrap();
        let (v, took) = v;
        assert_eq!(
            v.navigation.as_ref().map(|n| n.1),
            Some(Via::Javascript),
            "visit {n}: {v:?}"
        );
        visits.push(took.as_secs_f64() * 1000.0);
        overheads.push(v.load_to_capture.unwrap().as_secs_f64() * 1000.0);
    }
    drop(proxy);
    visits.sort_by(|a, b| a.partial_cmp(b).unwrap());
    overheads.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (median, p95) = (percentile(&visits, 0.5), percentile(&visits, 0.95));
    let (o_median, o_p95) = (percentile(&overheads, 0.5), percentile(&overheads, 0.95));

    // 2. Whole JS-hop resolutions per second (HTTP fetch, browser visit, next hop over HTTP)
    //    at max_tabs 1/4/8, one warm browser shared.
    let mut rates = Vec::new();
    for tabs in [1u32, 4, 8] {
        let mut cfg = env.config.clone();
        cfg.browser.max_tabs = tabs;
        cfg.limits.concurrency = tabs * 2;
        let r = Arc::new(
            Resolver::with_driver(&cfg, None, Some(warm.clone() as Arc<dyn Driver>)).unwrap(),
        );
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..batch {
            let (r, u) = (r.clone(), url(1000 * tabs as usize + n));
            tasks.push(tokio::spawn(async move { r.resolve(&u, false).await }));
        }
        for t in tasks {
            let t = t.await.unwrap();
            assert_eq!(t.hops.len(), 2, "{t:#?}");
        }
        rates.push((tabs, batch as f64 / t0.elapsed().as_secs_f64()));
    }

    // 3. Baseline: a cold Chromium launch per URL (what a script that starts a browser for
    //    each link does), same page, same proxy, same capture.
    let mut cold_times = Vec::new();
    let proxy = hoptrace::egress::proxy::JobProxy::start(egress.clone(), 1 << 24)
        .await
        .unwrap();
    for n in 0..cold_n {
        let (u, p, path) = (
            url(9000 + n),
            proxy.addr,
            env.config.browser.chrome_path.clone(),
        );
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || {
            let cold = Chromium::new(&path);
            let v = cold
                .visit(
                    None,
                    &u,
                    p,
                    Duration::from_millis(3000),
                    Instant::now() + Duration::from_secs(30),
                )
                .unwrap();
            assert!(v.navigation.is_some());
        })
        .await
        .unwrap();
        cold_times.push(t0.elapsed().as_secs_f64());
    }
    let cold_rate = cold_n as f64 / cold_times.iter().sum::<f64>();
    let best_rate = rates.iter().map(|r| r.1).fold(0.0, f64::max);

    println!(
        "JavaScript hops, warm Chromium vs a cold launch per URL (same run, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  page load (commit) -> captured navigation, page timer 500 ms: median {o_median:.0} ms, p95 {o_p95:.0} ms  (n={overhead_n})");
    println!("  whole visit in a prepared page (navigate + load + timers + capture): median {median:.0} ms, p95 {p95:.0} ms");
    for (tabs, rate) in &rates {
        println!(
            "  warm, max_tabs {tabs}: {rate:.2} JS-hop resolutions/s  ({:.1}x cold)",
            rate / cold_rate
        );
    }
    println!("  cold launch per URL: {cold_rate:.2} resolutions/s (n={cold_n})");
    println!("  best warm / cold: {:.1}x", best_rate / cold_rate);

    let json = serde_json::json!({
        "load_to_capture_ms": {"median": o_median, "p95": o_p95, "n": overhead_n},
        "warm_visit_ms": {"median": median, "p95": p95, "n": overhead_n},
        "rates_per_s": rates.iter().map(|(t, r)| serde_json::json!({"max_tabs": t, "rate": r})).collect::<Vec<_>>(),
        "cold_rate_per_s": cold_rate,
        "best_ratio": best_rate / cold_rate,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("browser.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
