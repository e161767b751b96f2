//! The performance suite (issue 7, first part): HTTP-only two-hop chains on a local fixture
//! server, resolved by the release binary and by curl over the same URLs in the same run:
//! - `xargs -P 64 -n 1 curl -sL` (a process per URL: what a shell script does),
//! - `curl -sL --parallel --parallel-max 64 -K urls.cfg` (libcurl's multi interface: curl's
//!   own best case),
//! - `hoptrace resolve --json -` at concurrency 64, with a fresh store (policy checks,
//!   labels, the Trace and a durable store write per URL: what curl does not do);
//! then hoptrace's scaling with concurrency (1, 8, 64, 256) and batch size (1k, 10k, 100k:
//! time per resolution and peak RSS, read by GNU time).
//!
//!     cargo bench --features chromiumoxide --bench suite      # BENCH_QUICK=1: smaller runs
//!
//! Prints a table and writes target/bench/suite.json. Needs curl and /usr/bin/time (Debian's
//! `curl` and `time` packages).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

struct Run {
    name: String,
    urls: usize,
    secs: f64,
    peak_rss_kb: Option<u64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.urls as f64 / self.secs
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

/// `/a/N` redirects to `/b/N`, which is a small page: a two-hop chain per URL.
async fn fixture() -> Server {
    Server::start("127.0.0.1", |req| async move {
        let path = req.uri().path().to_string();
        match path.strip_prefix("/a/") {
            Some(n) => redirect(302, format!("/b/{n}").as_bytes()),
            None => html("<html><body>landing</body></html>"),
        }
    })
    .await
}

fn urls(port: u16, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://127.0.0.1:{port}/a/{tag}{i}"))
        .collect()
}

/// Runs `shell` (sh -c) under GNU time: wall seconds and the peak RSS (KB) of the largest
/// process in it.
fn timed(shell: &str) -> (f64, Option<u64>) {
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .args(["sh", "-c", shell])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "{shell}");
    let rss = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|s| s.trim().lines().last().and_then(|l| l.trim().parse().ok()));
    (secs, rss)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let server = fixture().await;
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_hoptrace");
    let mut runs: Vec<Run> = Vec::new();

    // ---- curl, a process per URL
    let n = 2_000 / scale;
    let list = dir.path().join("xargs.txt");
    std::fs::write(&list, urls(port, n, "x").join("\n")).unwrap();
    let (secs, _) = timed(&format!(
        "xargs -P 64 -n 1 curl -sL -o /dev/null < {}",
        list.display()
    ));
    runs.push(Run {
        name: "xargs -P 64 -n 1 curl -sL".into(),
        urls: n,
        secs,
        peak_rss_kb: None,
        p50_ms: None,
        p99_ms: None,
    });

    // ---- curl --parallel
    let n = 20_000 / scale;
    let cfg = dir.path().join("curl.cfg");
    let mut f = std::fs::File::create(&cfg).unwrap();
    for u in urls(port, n, "p") {
        writeln!(f, "url = \"{u}\"\noutput = \"/dev/null\"").unwrap();
    }
    drop(f);
    let (secs, rss) = timed(&format!(
        "curl -sL --parallel --parallel-max 64 -K {}",
        cfg.display()
    ));
    runs.push(Run {
        name: "curl -sL --parallel --parallel-max 64".into(),
        urls: n,
        secs,
        peak_rss_kb: rss,
        p50_ms: None,
        p99_ms: None,
    });

    // ---- hoptrace: concurrency, then batch size
    let hoptrace = |name: String, n: usize, concurrency: u32, tag: &str| {
        let db = dir.path().join(format!("db-{tag}"));
        let cfg = dir.path().join(format!("{tag}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[policy]\nallow_cidrs = [\"127.0.0.1/32\"]\n[limits]\nper_host_per_second = 1000000000.0\nconcurrency = {concurrency}\n[browser]\nenabled = false\n[watch]\nauto = false\n[storage]\npath = \"{}\"\n",
                db.display()
            ),
        )
        .unwrap();
        let input = dir.path().join(format!("{tag}.txt"));
        std::fs::write(&input, urls(port, n, tag).join("\n")).unwrap();
        let out = dir.path().join(format!("{tag}.jsonl"));
        let (secs, rss) = timed(&format!(
            "{bin} resolve --json --config {} - < {} > {}",
            cfg.display(),
            input.display(),
            out.display()
        ));
        let mut lat: Vec<f64> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["outcome"], "landed", "{l}");
                v["elapsed_ms"].as_f64().unwrap_or(0.0)
            })
            .collect();
        assert_eq!(lat.len(), n);
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Run {
            name,
            urls: n,
            secs,
            peak_rss_kb: rss,
            p50_ms: Some(percentile(&lat, 0.5)),
            p99_ms: Some(percentile(&lat, 0.99)),
        }
    };
    runs.push(hoptrace(
        "hoptrace resolve, concurrency 64".into(),
        20_000 / scale,
        64,
        "c64",
    ));
    let mut scaling = Vec::new();
    for (c, n) in [(1u32, 1_000), (8, 5_000), (64, 20_000), (256, 20_000)] {
        scaling.push(hoptrace(
            format!("hoptrace, concurrency {c}"),
            n / scale,
            c,
            &format!("s{c}"),
        ));
    }
    let mut batches = Vec::new();
    for n in [1_000usize, 10_000, 100_000] {
        batches.push(hoptrace(
            format!("hoptrace, batch of {n}"),
            n / scale,
            64,
            &format!("b{n}"),
        ));
    }

    let curl_xargs = runs[0].rate();
    let curl_par = runs[1].rate();
    println!("two-hop chains on 127.0.0.1 (URLs/s; ratios against curl in this run)");
    println!(
        "{:<44} {:>8} {:>10} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "", "URLs", "URLs/s", "p50 ms", "p99 ms", "peak RSS", "vs xargs", "vs par."
    );
    let show = |r: &Run| {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<44} {:>8} {:>10.0} {:>8} {:>8} {:>10} {:>8.2}x {:>8.2}x",
            r.name,
            r.urls,
            r.rate(),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.peak_rss_kb
                .map_or("-".into(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
            r.rate() / curl_xargs,
            r.rate() / curl_par,
        );
    };
    runs.iter().chain(&scaling).for_each(show);
    println!("batch size (cost per resolution must stay flat)");
    for r in &batches {
        show(r);
        println!(
            "{:<44} {:>8.1} µs per resolution",
            "",
            r.secs * 1e6 / r.urls as f64
        );
    }

    let json: Vec<serde_json::Value> = runs
        .iter()
        .chain(&scaling)
        .chain(&batches)
        .map(|r| {
            serde_json::json!({
                "name": r.name, "urls": r.urls, "seconds": r.secs, "per_second": r.rate(),
                "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "peak_rss_kb": r.peak_rss_kb,
                "vs_curl_xargs": r.rate() / curl_xargs, "vs_curl_parallel": r.rate() / curl_par,
            })
        })
        .collect();
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write(
        "target/bench/suite.json",
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}
