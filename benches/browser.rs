//! JavaScript hops with a warm browser against a cold Chromium launch per URL, measured in
//! the same run on local fixtures (loopback servers, local DNS). Ratios are what count on a
//! noisy machine.
//!
//!     cargo bench --bench browser   # BENCH_QUICK=1: a short run
//!
//! The driver (chromiumoxide) is measured against its own baseline: a cold launch per URL.
//!
//! Prints a table and writes target/bench/browser.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hoptrace::browser::oxide::Oxide;
use hoptrace::browser::{Driver, Identity, Timing};
use hoptrace::chain::Resolver;
use hoptrace::config::Config;
use hoptrace::egress::proxy::JobProxy;
use hoptrace::egress::Egress;
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
    env.config.limits.hop_timeout = std::time::Duration::from_millis(15000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(60000);
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
    let sizes = Sizes {
        overhead_n,
        batch,
        cold_n,
    };

    let results = vec![measure("chromiumoxide", &env.config, &egress, &url, &sizes).await];

    // One baseline for every driver: the fastest cold launch per URL measured in this run.
    let cold_rate = results.iter().map(|r| r.cold_rate).fold(0.0, f64::max);
    println!(
        "JavaScript hops, warm Chromium vs a cold launch per URL (same run, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut json = Vec::new();
    for r in &results {
        let best = r.rates.iter().map(|x| x.1).fold(0.0, f64::max);
        println!("{}:", r.name);
        println!("  page load (commit) -> captured navigation, page timer 500 ms: median {:.0} ms, p95 {:.0} ms  (n={overhead_n})", r.overhead.0, r.overhead.1);
        println!("  whole visit in a prepared page (navigate + load + timers + capture): median {:.0} ms, p95 {:.0} ms", r.visit.0, r.visit.1);
        for (tabs, rate, missed) in &r.rates {
            println!(
                "  warm, max_tabs {tabs}: {rate:.2} JS-hop resolutions/s  ({:.1}x cold; {missed} of {batch} missed their hop)",
                rate / cold_rate
            );
        }
        println!(
            "  cold launch per URL: {:.2} resolutions/s, median {:.0} ms from nothing to the captured hop (n={cold_n})",
            r.cold_rate, r.cold_median_ms
        );
        println!("  best warm / baseline cold: {:.1}x", best / cold_rate);
        json.push(serde_json::json!({
            "driver": r.name,
            "load_to_capture_ms": {"median": r.overhead.0, "p95": r.overhead.1, "n": overhead_n},
            "warm_visit_ms": {"median": r.visit.0, "p95": r.visit.1, "n": overhead_n},
            "rates_per_s": r.rates.iter().map(|(t, x, m)| serde_json::json!({"max_tabs": t, "rate": x, "missed": m})).collect::<Vec<_>>(),
            "cold_rate_per_s": r.cold_rate,
            "cold_start_median_ms": r.cold_median_ms,
            "best_ratio": best / cold_rate,
        }));
    }
    println!("  baseline (fastest cold launch per URL): {cold_rate:.2} resolutions/s");
    let json = serde_json::json!({"baseline_cold_rate_per_s": cold_rate, "drivers": json});
    write_bench_json("browser.json", &json);
}

struct Sizes {
    overhead_n: usize,
    batch: usize,
    cold_n: usize,
}

struct Measured {
    name: &'static str,
    /// Load-to-capture (median, p95) in ms.
    overhead: (f64, f64),
    /// Whole visit in a prepared page (median, p95) in ms.
    visit: (f64, f64),
    /// (max_tabs, JS-hop resolutions/s, resolutions that missed their hop)
    rates: Vec<(u32, f64, usize)>,
    cold_rate: f64,
    cold_median_ms: f64,
}

/// A visit's clocks as the stage sets them: the page gets `budget` once it loads.
fn timing(budget: Duration) -> Timing {
    let now = Instant::now();
    Timing {
        settle: Duration::from_millis(3000),
        budget,
        launch: Duration::from_secs(30),
        end: now + Duration::from_secs(60),
        // The bench measures JavaScript hops, not evidence.
        screenshot_bytes: None,
    }
}

fn oxide(config: &Config) -> Oxide {
    Oxide::new(
        config.browser.chrome_path.as_deref(),
        Identity::from_config(&config.http),
    )
}

async fn measure(
    name: &'static str,
    config: &Config,
    egress: &Arc<Egress>,
    url: &dyn Fn(usize) -> String,
    sizes: &Sizes,
) -> Measured {
    // 1. Overhead with a warm browser: one visit (fresh context, tab, load, virtual-time
    //    timers, capture) in real time, the page's own 500 ms timer costing nothing real.
    let warm = Arc::new(oxide(config));
    warm.prewarm().await.expect("Chromium starts");
    let proxy = JobProxy::start(egress.clone(), 1 << 24).await.unwrap();
    let mut visits = Vec::new();
    let mut overheads = Vec::new();
    for n in 0..sizes.overhead_n {
        let (d, u, p) = (warm.clone(), url(n), proxy.addr);
        let id = Identity::from_config(&config.http);
        // Prepared ahead, as the stage keeps pages ready; the visit itself is timed.
        let page = d.prepare(p).await.unwrap();
        let t0 = Instant::now();
        let v = d
            .visit(Some(page), &u, p, &id, timing(Duration::from_secs(15)))
            .await
            .unwrap();
        let took = t0.elapsed();
        assert_eq!(
            v.navigation.as_ref().map(|n| n.1),
            Some(Via::Javascript),
            "{name} visit {n}: {v:?}"
        );
        visits.push(took.as_secs_f64() * 1000.0);
        overheads.push(v.load_to_capture.unwrap().as_secs_f64() * 1000.0);
    }
    drop(proxy);

    // 2. Whole JS-hop resolutions per second (HTTP fetch, browser visit, next hop over HTTP)
    //    at max_tabs 1/4/8, one warm browser shared.
    let mut rates = Vec::new();
    for tabs in [1u32, 4, 8] {
        let mut cfg = config.clone();
        cfg.browser.max_tabs = tabs;
        cfg.limits.concurrency = tabs * 2;
        let r = Arc::new(
            Resolver::with_driver(&cfg, None, Some(warm.clone() as Arc<dyn Driver>)).unwrap(),
        );
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..sizes.batch {
            let (r, u) = (r.clone(), url(1000 * tabs as usize + n));
            tasks.push(tokio::spawn(async move { r.resolve(&u, false).await }));
        }
        let mut missed = 0;
        for t in tasks {
            let t = t.await.unwrap();
            if t.hops.len() != 2 {
                missed += 1;
                eprintln!("{name}, max_tabs {tabs}: no JS hop: {:?}", t.hops[0].reason);
            }
        }
        // Only resolutions that found their hop count towards the rate.
        let found = (sizes.batch - missed) as f64;
        rates.push((tabs, found / t0.elapsed().as_secs_f64(), missed));
    }
    drop(warm);

    // 3. Baseline: a cold Chromium launch per URL (what a script that starts a browser for
    //    each link does), same page, same proxy, same capture.
    let mut cold_times = Vec::new();
    let proxy = JobProxy::start(egress.clone(), 1 << 24).await.unwrap();
    for n in 0..sizes.cold_n {
        let (u, p, cfg) = (url(9000 + n), proxy.addr, config.clone());
        let t0 = Instant::now();
        let cold = oxide(&cfg);
        let v = cold
            .visit(
                None,
                &u,
                p,
                &Identity::from_config(&cfg.http),
                timing(Duration::from_secs(30)),
            )
            .await
            .unwrap();
        assert!(v.navigation.is_some());
        drop(cold);
        cold_times.push(t0.elapsed().as_secs_f64());
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (percentile(&v, 0.5), percentile(&v, 0.95))
    };
    let cold_rate = sizes.cold_n as f64 / cold_times.iter().sum::<f64>();
    Measured {
        name,
        overhead: sorted(overheads),
        visit: sorted(visits),
        rates,
        cold_rate,
        cold_median_ms: sorted(cold_times).0 * 1000.0,
    }
}
