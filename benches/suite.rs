//! The performance suite (issue 7): HTTP-only two-hop chains on a local fixture internet
//! (Debian's nginx when it is installed, else an in-process hyper server) whose names a local
//! DNS responder answers for hoptrace (curl is given the same addresses with `--resolve`),
//! resolved by the release binary and by curl over the same URLs in the same run:
//! - `xargs -P 64 -n 1 curl -sL` (a process per URL: what a shell script does),
//! - `curl -sL --parallel --parallel-max 64 -K urls.cfg` (libcurl's multi interface: curl's
//!   own best case),
//! - `hoptrace resolve --json -` at concurrency 64, with a fresh store (policy checks,
//!   labels, the Trace and the store: what curl does not do);
//!
//! then hoptrace's scaling with concurrency (1, 8, 64, 256) and batch size (1k, 10k, 100k:
//! time per resolution and peak RSS, read by GNU time). Last, every target of the issue, met
//! or not, with the API and browser figures of `--bench api` / `--bench browser` when they
//! ran just before (`scripts/bench` runs all three).
//!
//!     scripts/bench                                            # all of it, tools installed
//!     cargo bench --bench suite      # BENCH_QUICK=1: smaller runs
//!     BENCH_BASELINE_BIN=path cargo bench --bench suite   # this build against another
//!     BENCH_BACKENDS=1 cargo bench --bench suite          # sled against PostgreSQL
//!     BENCH_WRAP='perf record -g -o /tmp/{tag}.data --' cargo bench --bench suite  # profiles
//!
//! Prints a table and writes target/bench/suite.json. Needs curl and /usr/bin/time (Debian's
//! `curl` and `time` packages); nginx-light for the nginx fixture.

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
    /// User plus system CPU time of the measured process and its children.
    cpu_secs: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.urls as f64 / self.secs
    }
    fn cpu_us_per_url(&self) -> Option<f64> {
        self.cpu_secs.map(|c| c * 1e6 / self.urls as f64)
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

/// Names the fixture answers to; URL i is on `NAMES[i % 8]`, so several connection pools
/// and DNS cache entries are in play, as in a real batch.
const NAMES: usize = 8;

fn host(i: usize) -> String {
    format!("s{}.bench.test", i % NAMES)
}

/// `/a/N` redirects to `/b/N`, which is a small page: a two-hop chain per URL.
enum Fixture {
    Nginx {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    },
    InProcess(Server),
}

impl Fixture {
    async fn start() -> Fixture {
        if std::env::var_os("BENCH_NO_NGINX").is_none() {
            if let Some(f) = Fixture::nginx() {
                return f;
            }
            eprintln!("nginx not found (apt-get install nginx-light): the fixture is in-process");
        }
        Fixture::InProcess(
            Server::start("127.0.0.1", |req| async move {
                let path = req.uri().path().to_string();
                match path.strip_prefix("/a/") {
                    Some(n) => redirect(302, format!("/b/{n}").as_bytes()),
                    None => html("<html><body>landing</body></html>"),
                }
            })
            .await,
        )
    }

    /// nginx, one worker, on a free port of 127.0.0.1; everything it writes in a temp dir.
    fn nginx() -> Option<Fixture> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::tempdir().ok()?;
        let d = dir.path().display();
        let conf = format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
               client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;\n\
               uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location /a/ {{ rewrite ^/a/(.*)$ /b/$1 redirect; }}\n\
                 location /b/ {{ default_type text/html; return 200 \"<html><body>landing</body></html>\"; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).ok()?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Fixture::Nginx {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    fn port(&self) -> u16 {
        match self {
            Fixture::Nginx { port, .. } => *port,
            Fixture::InProcess(s) => s.port(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Fixture::Nginx { .. } => "nginx (one process)",
            Fixture::InProcess(_) => "in-process hyper server",
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Fixture::Nginx { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn urls(port: u16, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://{}:{port}/a/{tag}{i}", host(i)))
        .collect()
}

/// curl's config lines giving it the fixture's address for every name (what the DNS
/// responder tells hoptrace), so neither side pays for a lookup it would not make.
fn curl_resolve(port: u16) -> String {
    (0..NAMES)
        .map(|i| format!("resolve = \"{}:{port}:127.0.0.1\"\n", host(i)))
        .collect()
}

/// Runs `shell` (sh -c) under GNU time: wall seconds and the peak RSS (KB) of the largest
/// process in it.
/// Runs `shell`: its wall time, peak RSS (KB) and CPU time (user plus system, s).
fn timed(shell: &str) -> (f64, Option<u64>, Option<f64>) {
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(rss_file.path())
        .args(["sh", "-c", shell])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "{shell}");
    let report = std::fs::read_to_string(rss_file.path()).unwrap_or_default();
    let fields: Vec<&str> = report
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let rss = fields.first().and_then(|f| f.parse().ok());
    let cpu = match (fields.get(1), fields.get(2)) {
        (Some(u), Some(s)) => u
            .parse::<f64>()
            .ok()
            .zip(s.parse::<f64>().ok())
            .map(|(u, s)| u + s),
        _ => None,
    };
    (secs, rss, cpu)
}

/// The medians of three runs: URLs per second, and CPU µs per URL.
struct Medians {
    rate: f64,
    cpu_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    v[v.len() / 2]
}

/// Runs `a` and `b` in turn, three times each (so the VM's noise hits both alike): the
/// medians of each over `n` URLs.
fn alternating(
    n: usize,
    mut a: impl FnMut(usize) -> Run,
    mut b: impl FnMut(usize) -> Run,
) -> (Medians, Medians) {
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for i in 0..3 {
        ra.push(a(i));
        rb.push(b(i));
    }
    let medians = |runs: Vec<Run>| Medians {
        rate: median(runs.iter().map(|r| n as f64 / r.secs).collect()),
        cpu_us: median(
            runs.iter()
                .map(|r| r.cpu_us_per_url().unwrap_or(f64::NAN))
                .collect(),
        ),
    };
    (medians(ra), medians(rb))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let fixture = Fixture::start().await;
    let port = fixture.port();
    let dns = Dns::start().await;
    for i in 0..NAMES {
        dns.set(&host(i), &["127.0.0.1"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_hoptrace");
    let mut runs: Vec<Run> = Vec::new();

    // `BENCH_COMPARE=1`: what a comparison costs against one resolution: the same links, one
    // process per call, `hoptrace compare` (the six built-in profiles at once) against
    // `hoptrace resolve --no-store`, alternating, three runs each.
    if std::env::var_os("BENCH_COMPARE").is_some() {
        let mut c = hoptrace::config::Config::default();
        c.dns.nameservers = vec![dns.addr];
        c.policy.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.per_host_per_second = 1e9;
        c.browser.enabled = false;
        c.watch.auto = false;
        let cfg = dir.path().join("compare.toml");
        std::fs::write(&cfg, config_toml(&c, "")).unwrap();
        let n = 40;
        let calls = |what: &str, tag: &str, i: usize| {
            let list = urls(port, n, &format!("{tag}{i}")).join(" ");
            let (secs, _, cpu) = timed(&format!(
                "for u in {list}; do {bin} {what} --json --config {} $u > /dev/null || exit 1; done",
                cfg.display()
            ));
            Run {
                name: String::new(),
                urls: n,
                secs,
                peak_rss_kb: None,
                cpu_secs: cpu,
                p50_ms: None,
                p99_ms: None,
            }
        };
        let (resolve, compare) = alternating(
            n,
            |i| calls("resolve --no-store", "r", i),
            |i| calls("compare", "c", i),
        );
        println!(
            "{n} links, a process per call: resolve {:.1} ms a call, compare (6 profiles) {:.1} ms a call (medians of 3): compare/resolve {:.2}x",
            1000.0 / resolve.rate,
            1000.0 / compare.rate,
            resolve.rate / compare.rate
        );
        return;
    }

    // ---- curl, a process per URL
    let n = 2_000 / scale;
    let list = dir.path().join("xargs.txt");
    std::fs::write(&list, urls(port, n, "x").join("\n")).unwrap();
    let resolve_cfg = dir.path().join("resolve.cfg");
    std::fs::write(&resolve_cfg, curl_resolve(port)).unwrap();
    let (secs, _, cpu) = timed(&format!(
        "xargs -P 64 -n 1 curl -sL -o /dev/null -K {} < {}",
        resolve_cfg.display(),
        list.display()
    ));
    runs.push(Run {
        name: "xargs -P 64 -n 1 curl -sL".into(),
        urls: n,
        secs,
        peak_rss_kb: None,
        cpu_secs: cpu,
        p50_ms: None,
        p99_ms: None,
    });

    // ---- curl --parallel
    let n = 20_000 / scale;
    let cfg = dir.path().join("curl.cfg");
    let mut f = std::fs::File::create(&cfg).unwrap();
    f.write_all(curl_resolve(port).as_bytes()).unwrap();
    for u in urls(port, n, "p") {
        writeln!(f, "url = \"{u}\"\noutput = \"/dev/null\"").unwrap();
    }
    drop(f);
    let curl_parallel = || {
        let (secs, rss, cpu) = timed(&format!(
            "curl -sL --parallel --parallel-max 64 -K {}",
            cfg.display()
        ));
        Run {
            name: "curl -sL --parallel --parallel-max 64".into(),
            urls: n,
            secs,
            peak_rss_kb: rss,
            cpu_secs: cpu,
            p50_ms: None,
            p99_ms: None,
        }
    };

    // ---- hoptrace: concurrency, then batch size
    // `pg`: the PostgreSQL database to store in (sled otherwise).
    let run_on = |bin: &str,
                  pg: Option<&str>,
                  name: String,
                  n: usize,
                  concurrency: u32,
                  tag: &str,
                  flags: &str| {
        let db = dir.path().join(format!("db-{tag}"));
        let cfg = dir.path().join(format!("{tag}.toml"));
        let mut c = hoptrace::config::Config::default();
        c.dns.nameservers = vec![dns.addr];
        c.policy.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.per_host_per_second = 1e9;
        c.limits.concurrency = concurrency;
        c.browser.enabled = false;
        c.watch.auto = false;
        c.storage.backend = match pg {
            Some(url) => hoptrace::config::Backend::Postgres(hoptrace::config::Postgres::at(url)),
            None => hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(db)),
        };
        // Only the keys set here, so an older build (`BENCH_BASELINE_BIN`) reads it too.
        let full = toml::Table::try_from(&c).unwrap();
        let mut only = toml::Table::new();
        for (section, keys) in [
            ("dns", &["nameservers"][..]),
            ("policy", &["allow_cidrs"]),
            ("limits", &["per_host_per_second", "concurrency"]),
            ("browser", &["enabled"]),
            ("watch", &["auto"]),
            (
                "storage",
                if pg.is_some() {
                    &["url"][..]
                } else {
                    &["path"]
                },
            ),
        ] {
            let mut t = toml::Table::new();
            for k in keys {
                t.insert(k.to_string(), full[section][k].clone());
            }
            only.insert(section.to_string(), toml::Value::Table(t));
        }
        if pg.is_some() {
            // The older name of `storage.type`, which every build reads.
            only["storage"]["backend"] = "postgres".into();
        }
        let _ = config_toml(&c, ""); // still checks the typed config is valid
        std::fs::write(&cfg, toml::to_string(&only).unwrap()).unwrap();
        let input = dir.path().join(format!("{tag}.txt"));
        std::fs::write(&input, urls(port, n, tag).join("\n")).unwrap();
        let out = dir.path().join(format!("{tag}.jsonl"));
        // `BENCH_WRAP`: a command each hoptrace run is started under, `{tag}` replaced by the
        // run's tag (a profiler, say; the figures are then the wrapper's too).
        let perf =
            std::env::var("BENCH_WRAP").map_or(String::new(), |w| w.replace("{tag}", tag) + " ");
        let (secs, rss, cpu) = timed(&format!(
            "{perf}{bin} resolve --json {flags} --config {} - < {} > {}",
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
            cpu_secs: cpu,
            p50_ms: Some(percentile(&lat, 0.5)),
            p99_ms: Some(percentile(&lat, 0.99)),
        }
    };
    let run_bin = |bin: &str, name: String, n: usize, concurrency: u32, tag: &str, flags: &str| {
        run_on(bin, None, name, n, concurrency, tag, flags)
    };
    let hoptrace = |name: String, n: usize, concurrency: u32, tag: &str, flags: &str| {
        run_bin(bin, name, n, concurrency, tag, flags)
    };
    // `BENCH_BACKENDS=1`: only the store backends against each other: the same batch stored
    // in sled and in PostgreSQL (a server this run starts, as the tests do), alternating,
    // three runs each; the ratio of the medians.
    if std::env::var_os("BENCH_BACKENDS").is_some() {
        let pg = db::Postgres::start();
        let n = 20_000 / scale;
        let mut urls = Vec::new();
        for i in 0..3 {
            urls.push(pg.database(&format!("bench{i}")).await);
        }
        let (sled, postgres) = alternating(
            n,
            |i| run_on(bin, None, String::new(), n, 64, &format!("sled{i}"), ""),
            |i| {
                run_on(
                    bin,
                    Some(&urls[i]),
                    String::new(),
                    n,
                    64,
                    &format!("pg{i}"),
                    "",
                )
            },
        );
        println!(
            "resolve {n} URLs, concurrency 64: sled {:.0} URL/s, PostgreSQL {:.0} URL/s (medians of 3): PostgreSQL/sled {:.2}x",
            sled.rate,
            postgres.rate,
            postgres.rate / sled.rate
        );
        return;
    }
    // `BENCH_BASELINE_BIN=path`: only this build against another (e.g. main's release binary),
    // on the same URLs, alternating, three runs each; the ratio of the medians.
    if let Ok(base) = std::env::var("BENCH_BASELINE_BIN") {
        let n = 20_000 / scale;
        for (flags, tag) in [("", "store"), ("--no-store", "nostore")] {
            let (this, that) = alternating(
                n,
                |i| run_bin(bin, String::new(), n, 64, &format!("this-{tag}{i}"), flags),
                |i| {
                    run_bin(
                        &base,
                        String::new(),
                        n,
                        64,
                        &format!("base-{tag}{i}"),
                        flags,
                    )
                },
            );
            println!(
                "resolve {n} URLs, concurrency 64 {flags}: this build {:.0} URL/s, {:.0} µs CPU a URL; baseline {:.0} URL/s, {:.0} µs (medians of 3): {:.2}x the rate, {:.2}x the CPU",
                this.rate,
                this.cpu_us,
                that.rate,
                that.cpu_us,
                this.rate / that.rate,
                this.cpu_us / that.cpu_us
            );
        }
        return;
    }
    // The headline comparison: curl --parallel, hoptrace with its store and without, in
    // turn, three rounds; each one's median run is kept (this VM swings by 20% between runs
    // seconds apart, and a single run of each would measure the swing).
    let mut rounds: [Vec<Run>; 3] = Default::default();
    for i in 0..3 {
        rounds[0].push(curl_parallel());
        rounds[1].push(hoptrace(
            "hoptrace resolve, concurrency 64".into(),
            20_000 / scale,
            64,
            &format!("c64-{i}"),
            "",
        ));
        // What the store costs: the same run keeping nothing.
        rounds[2].push(hoptrace(
            "hoptrace resolve --no-store, concurrency 64".into(),
            20_000 / scale,
            64,
            &format!("nostore-{i}"),
            "--no-store",
        ));
    }
    for mut r in rounds {
        r.sort_by(|a, b| a.rate().partial_cmp(&b.rate()).unwrap());
        let mut median = r.swap_remove(1);
        median.name += " (median of 3)";
        runs.push(median);
    }
    let mut scaling = Vec::new();
    for (c, n) in [(1u32, 1_000), (8, 5_000), (64, 20_000), (256, 20_000)] {
        scaling.push(hoptrace(
            format!("hoptrace, concurrency {c}"),
            n / scale,
            c,
            &format!("s{c}"),
            "",
        ));
    }
    // A process's fixed cost (start, open the store, one resolution, exit): the median of
    // three single-URL runs. Batch costs are given with it taken off, since it is paid once.
    let mut startups: Vec<f64> = (0..3)
        .map(|i| hoptrace("start-up".into(), 1, 64, &format!("one{i}"), "").secs)
        .collect();
    startups.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let startup = startups[1];
    let mut batches = Vec::new();
    for n in [1_000usize, 10_000, 100_000] {
        batches.push(hoptrace(
            format!("hoptrace, batch of {n}"),
            n / scale,
            64,
            &format!("b{n}"),
            "",
        ));
    }

    let curl_xargs = runs[0].rate();
    let curl_par = runs[1].rate();
    println!(
        "two-hop chains, fixture: {} on 127.0.0.1, {NAMES} names via a local DNS responder ({} cores; URLs/s; ratios against curl in this run)",
        fixture.name(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<44} {:>8} {:>10} {:>8} {:>8} {:>10} {:>11} {:>9} {:>9}",
        "", "URLs", "URLs/s", "p50 ms", "p99 ms", "peak RSS", "CPU µs/URL", "vs xargs", "vs par."
    );
    let show = |r: &Run| {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<44} {:>8} {:>10.0} {:>8} {:>8} {:>10} {:>11} {:>8.2}x {:>8.2}x",
            r.name,
            r.urls,
            r.rate(),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.peak_rss_kb
                .map_or("-".into(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
            r.cpu_us_per_url().map_or("-".into(), |c| format!("{c:.0}")),
            r.rate() / curl_xargs,
            r.rate() / curl_par,
        );
    };
    runs.iter().chain(&scaling).for_each(show);
    let cost = |r: &Run| (r.secs - startup).max(0.0) / r.urls as f64;
    println!(
        "batch size (cost per resolution must stay flat; a process's start-up, {:.0} ms, taken off)",
        startup * 1e3
    );
    for r in &batches {
        show(r);
        println!(
            "{:<44} {:>8.1} µs per resolution ({:.1} with start-up)",
            "",
            cost(r) * 1e6,
            r.secs * 1e6 / r.urls as f64
        );
    }

    // ---- the issue's targets, each met or not
    let c64 = &runs[2];
    let costs: Vec<f64> = batches.iter().map(cost).collect();
    let flat =
        costs.iter().cloned().fold(0.0, f64::max) / costs.iter().cloned().fold(f64::MAX, f64::min);
    let peak_100k = batches.last().and_then(|r| r.peak_rss_kb).unwrap_or(0) as f64 / 1024.0;
    let mut targets: Vec<(String, String, bool)> = vec![
        (
            "HTTP-only, concurrency 64: >= 10x xargs curl".into(),
            format!("{:.1}x", c64.rate() / curl_xargs),
            c64.rate() / curl_xargs >= 10.0,
        ),
        (
            "HTTP-only, concurrency 64: >= 1x curl --parallel".into(),
            format!(
                "{:.2}x ({:.2}x with --no-store)",
                c64.rate() / curl_par,
                runs[3].rate() / curl_par
            ),
            c64.rate() / curl_par >= 1.0,
        ),
        (
            "p99 at concurrency 64 < 20 ms".into(),
            format!("{:.1} ms", c64.p99_ms.unwrap_or(f64::NAN)),
            c64.p99_ms.is_some_and(|p| p < 20.0),
        ),
        (
            format!(
                "batch of {}: peak RSS < 256 MB",
                batches.last().map_or(0, |r| r.urls)
            ),
            format!("{peak_100k:.0} MB"),
            peak_100k < 256.0,
        ),
        (
            "cost per resolution flat over batch sizes (max/min <= 1.3)".into(),
            format!("{flat:.2}"),
            flat <= 1.3,
        ),
    ];
    // The API and browser rows come from `--bench api` / `--bench browser`, when
    // scripts/bench ran them in this same run (BENCH_SINCE: when that run began).
    let since = std::env::var("BENCH_SINCE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let fresh = |name: &str| -> Option<serde_json::Value> {
        let path = bench_dir().join(name);
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        let at = modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        if at < since? {
            return None;
        }
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let mut others = serde_json::Map::new();
    if let Some(api) = fresh("api.json") {
        let run = |call: &str| {
            api["runs"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["call"] == call))
                .cloned()
                .unwrap_or_default()
        };
        for call in ["GET /v1/trace, paced", "POST /v1/resolve (hit), paced"] {
            let r = run(call);
            let (rps, p99) = (
                r["rps"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(f64::NAN),
            );
            let base = run("GET /healthz, paced")["p99_ms"]
                .as_f64()
                .unwrap_or(f64::NAN);
            targets.push((
                format!("API {call}: p99 < 2 ms at ~10,000 req/s"),
                format!("{p99:.2} ms at {rps:.0}/s (/healthz p99 {base:.2} ms)"),
                p99 < 2.0 && rps >= 9_000.0,
            ));
        }
        let idle = api["rss_idle_mb"].as_f64().unwrap_or(f64::NAN);
        targets.push((
            "API server RSS idle < 100 MB".into(),
            format!("{idle:.1} MB"),
            idle < 100.0,
        ));
        others.insert("api".into(), api);
    }
    if let Some(browser) = fresh("browser.json") {
        for d in browser["drivers"].as_array().cloned().unwrap_or_default() {
            targets.push((
                format!(
                    "JavaScript hops, warm browser ({}): measured",
                    d["driver"].as_str().unwrap_or("?")
                ),
                format!(
                    "visit median {:.0} ms, p95 {:.0} ms; best {:.2}x the cold-browser baseline",
                    d["warm_visit_ms"]["median"].as_f64().unwrap_or(f64::NAN),
                    d["warm_visit_ms"]["p95"].as_f64().unwrap_or(f64::NAN),
                    d["best_ratio"].as_f64().unwrap_or(f64::NAN)
                ),
                true,
            ));
        }
        others.insert("browser".into(), browser);
    }
    println!("targets (issue 7; the API's from issue 4)");
    for (what, got, met) in &targets {
        println!(
            "  {:<62} {:<48} {}",
            what,
            got,
            if *met { "met" } else { "NOT met" }
        );
    }
    if since.is_none() {
        println!(
            "  (API and browser rows: scripts/bench runs --bench api and --bench browser first)"
        );
    }

    let json: Vec<serde_json::Value> = runs
        .iter()
        .chain(&scaling)
        .chain(&batches)
        .map(|r| {
            serde_json::json!({
                "name": r.name, "urls": r.urls, "seconds": r.secs, "per_second": r.rate(),
                "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "peak_rss_kb": r.peak_rss_kb, "cpu_us_per_url": r.cpu_us_per_url(),
                "vs_curl_xargs": r.rate() / curl_xargs, "vs_curl_parallel": r.rate() / curl_par,
            })
        })
        .collect();
    let json = serde_json::json!({
        "fixture": fixture.name(),
        "startup_seconds": startup,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "runs": json,
        "targets": targets.iter().map(|(what, got, met)| serde_json::json!({"target": what, "measured": got, "met": met})).collect::<Vec<_>>(),
        "api_and_browser": others,
    });
    write_bench_json("suite.json", &json);
}
