//! The report's size: a generated Docker Hub in the report's proportions
//! (tests/common/hubmix.rs) scanned, grouped and exported by the release binary as a child
//! process, each step's wall time and peak RSS (the child's `VmHWM`, tests/common/rss.rs).
//!
//!     cargo bench --bench hub
//!     HUB_BENCH_SIZES=100000,1000000 HUB_BENCH_POSTGRES=1 cargo bench --bench hub
//!     HUB_BENCH_SIZES=1000000 HUB_BENCH_POSTGRES=only cargo bench --bench hub
//!
//! Sizes default to 100,000 repositories; sled always, PostgreSQL (a throwaway server, as the
//! tests start one) with `HUB_BENCH_POSTGRES=1`. Prints a table and writes
//! target/bench/hub.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write as _;

use common::hubmix::Mix;
use common::rss::measured;
use common::*;

/// One step's figures.
struct Step {
    name: String,
    seconds: f64,
    rss_mb: f64,
    out_mb: f64,
}

/// Scan, campaigns and each export of a generated hub of `n` repositories in `storage`.
async fn one(n: usize, storage: &str, pg: Option<&db::Postgres>) -> Vec<Step> {
    let env = TestEnv::new().await;
    // Answers cached for five minutes, as real zones' are (the tests' responder answers with
    // TTL 0 so a test can change an answer between hops: every hop would be two queries).
    env.dns.set_ttl(300);
    let hub = HubInternet::start(&env.dns).await;
    let dir = env.dir.path();
    let input = dir.join("hub.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for r in Mix::new(n).repositories(hub.server.port()) {
            writeln!(w, "{}", r.line).unwrap();
        }
    }
    let mut config = env.config.clone();
    config.limits.per_host_per_second = 1_000_000.0;
    config.limits.concurrency = 64;
    config.limits.max_export_chains = 10_000_000;
    if let Some(pg) = pg {
        config.storage.backend = hoptrace::config::Backend::Postgres(
            hoptrace::config::Postgres::at(pg.database(&format!("hub{n}")).await),
        );
    }
    let cfg = dir.join("hoptrace.toml");
    std::fs::write(&cfg, config_toml(&config, "")).unwrap();
    let input = input.to_str().unwrap();
    let mut steps = Vec::new();
    let exports = ["csv", "txt", "stix", "misp"].map(|f| (format!("export {f}"), f));
    let mut plan: Vec<(String, Vec<&str>)> = vec![
        ("scan".into(), vec!["scan", "--json", input]),
        ("campaigns --json".into(), vec!["campaigns", "--json"]),
    ];
    for (name, f) in &exports {
        plan.push((name.clone(), vec!["export", "--format", f]));
    }
    for (name, args) in plan {
        let out = dir.join("out");
        // The server answering the scan runs in this process, on the other core.
        let run = tokio::task::block_in_place(|| measured(&args, &cfg, &out));
        assert!(run.success, "hoptrace {args:?} failed: {}", run.stderr);
        let (seconds, rss_mb) = (run.seconds, run.rss_mb);
        let out_mb = std::fs::metadata(&out).map_or(0, |m| m.len()) as f64 / 1e6;
        eprintln!("{storage} {n}: {name} {seconds:.1} s, {rss_mb:.0} MB peak RSS");
        steps.push(Step {
            name,
            seconds,
            rss_mb,
            out_mb,
        });
    }
    steps
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("HUB_BENCH_SIZES")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("HUB_BENCH_SIZES: sizes, comma-separated")
        })
        .collect();
    let postgres = std::env::var("HUB_BENCH_POSTGRES").is_ok_and(|v| v == "1");
    // `HUB_BENCH_POSTGRES=only`: PostgreSQL alone.
    let postgres_only = std::env::var("HUB_BENCH_POSTGRES").is_ok_and(|v| v == "only");
    let pg = (postgres || postgres_only).then(db::Postgres::start);
    let mut table = Vec::new();
    let mut json = Vec::new();
    for &n in &sizes {
        let mut backends = Vec::new();
        if !postgres_only {
            backends.push(("sled", None));
        }
        if let Some(pg) = &pg {
            backends.push(("postgres", Some(pg)));
        }
        for (storage, pg) in backends {
            for s in one(n, storage, pg).await {
                let rate = match s.name.as_str() {
                    "scan" => format!("{:.0} repos/s", n as f64 / s.seconds),
                    _ => format!("{:.1} MB out", s.out_mb),
                };
                table.push(format!(
                    "| {n} | {storage} | {} | {:.1} s | {:.0} MB | {rate} |",
                    s.name, s.seconds, s.rss_mb
                ));
                json.push(serde_json::json!({
                    "repositories": n, "storage": storage, "step": s.name,
                    "seconds": s.seconds, "peak_rss_mb": s.rss_mb, "output_mb": s.out_mb,
                }));
            }
        }
    }
    println!("| repositories | storage | step | time | peak RSS | rate / output |");
    println!("|---|---|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
    write_bench_json("hub.json", &serde_json::Value::Array(json));
}
