//! Script pages at the report's scale: distinct links of the report's page form
//! (`setTimeout('Redirect()', 0)` calling `window.location.replace('https://…/' + el)`),
//! resolved without the cache at concurrency 64, under `browser.script_engine = "auto"` and
//! `"chromium"` in the same run; then the mixed case (script pages among plain two-hop HTTP
//! links) under `auto`. Local fixtures: loopback servers, local DNS.
//!
//!     cargo bench --bench script   # BENCH_QUICK=1: a short run (fewer links)
//!
//! `BENCH_AUTO_ONLY=1` leaves out the `chromium` run (minutes of it): for profiling the engine.
//!
//! Prints resolutions/s and the ratio, and writes target/bench/script.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use futures_util::stream::{self, StreamExt};
use hoptrace::browser::Driver;
use hoptrace::chain::Resolver;
use hoptrace::config::{Config, ScriptEngineKind};
use hoptrace::trace::{Engine, Trace, Via};

const CONCURRENCY: usize = 64;

struct Run {
    name: String,
    links: usize,
    seconds: f64,
    /// CPU seconds (user + system) used during the run, by whom (load cannot inflate these).
    cpu: Cpu,
    /// Resolutions whose script hop was right (the page's own `el`), and by which engine.
    right: usize,
    emulated: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.links as f64 / self.seconds
    }
}

async fn run(name: &str, r: &Arc<Resolver>, urls: Vec<(String, Option<String>)>) -> Run {
    let links = urls.len();
    let before = Cpu::now();
    let t0 = Instant::now();
    let traces: Vec<(Trace, Option<String>)> = stream::iter(urls)
        .map(|(u, want)| {
            let r = r.clone();
            async move { (r.resolve(&u, false).await, want) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(&before);
    let right = traces
        .iter()
        .filter(|(t, want)| match want {
            Some(w) => t
                .hops
                .get(1)
                .is_some_and(|h| h.via == Via::Javascript && h.url.ends_with(w.as_str())),
            None => t.hops.len() == 2,
        })
        .count();
    let emulated = traces
        .iter()
        .filter(|(t, _)| t.hops[0].engine == Some(Engine::Emulated))
        .count();
    Run {
        name: name.into(),
        links,
        seconds,
        cpu,
        right,
        emulated,
    }
}

/// CPU seconds used so far by this process, by its script workers, and by the rest of its
/// descendants (Chromium), from `/proc` (a process that ended is not counted).
#[derive(Default, Clone, Copy)]
struct Cpu {
    me: f64,
    workers: f64,
    chromium: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // pid -> (parent, user + system ticks)
        let mut procs = std::collections::HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the command's closing parenthesis: state, ppid, ..., utime (14), stime (15).
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            procs.insert(pid, (num(1) as u32, num(11) + num(12)));
        }
        let me = std::process::id();
        let mut cpu = Cpu {
            me: procs.get(&me).map_or(0.0, |p| p.1) / tick,
            ..Cpu::default()
        };
        for (&pid, &(_, ticks)) in &procs {
            let mut up = pid;
            let mut ours = false;
            for _ in 0..32 {
                match procs.get(&up) {
                    Some(&(parent, _)) if parent == me => {
                        ours = true;
                        break;
                    }
                    Some(&(parent, _)) if parent > 1 => up = parent,
                    _ => break,
                }
            }
            if !ours {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(hoptrace::script::WORKER_ARG) {
                cpu.workers += ticks / tick;
            } else {
                cpu.chromium += ticks / tick;
            }
        }
        cpu
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            me: self.me - before.me,
            workers: self.workers - before.workers,
            chromium: self.chromium - before.chromium,
        }
    }
}

/// The machine's 1-minute load average (other work shares these cores).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn resolver(config: &Config, kind: ScriptEngineKind, driver: &Arc<dyn Driver>) -> Arc<Resolver> {
    let mut cfg = config.clone();
    cfg.browser.script_engine = kind;
    Arc::new(Resolver::with_driver(&cfg, None, Some(driver.clone())).unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let auto_only = std::env::var_os("BENCH_AUTO_ONLY").is_some();
    let (n, plain) = if quick { (60, 120) } else { (300, 600) };
    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.browser.max_tabs = 4;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(30_000);
    env.config.limits.total_timeout = std::time::Duration::from_millis(300_000);
    env.config.limits.concurrency = CONCURRENCY as u32;
    env.dns.set("blog.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/blog" => html(&REPORT.replace("https://gohhs.com/", "/went/")),
            "/short" => redirect(302, b"/landing"),
            _ => html("<html>landing</html>"),
        }
    })
    .await;
    let port = srv.port();
    let script = |i: usize, tag: &str| {
        (
            format!("http://blog.test:{port}/blog?el={tag}{i}"),
            Some(format!("/went/{tag}{i}")),
        )
    };
    let driver: Arc<dyn Driver> = Arc::new(hoptrace::browser::oxide::Oxide::new(
        env.config.browser.chrome_path.as_deref(),
        hoptrace::browser::Identity::from_config(&env.config.http),
    ));
    let auto = resolver(&env.config, ScriptEngineKind::Auto, &driver);
    let chromium = resolver(&env.config, ScriptEngineKind::Chromium, &driver);
    // Warm both: the worker processes and the browser.
    run("warm", &auto, vec![script(0, "w")]).await;
    if !auto_only {
        run("warm", &chromium, vec![script(0, "w")]).await;
    }

    let mut runs = vec![run("auto", &auto, (1..=n).map(|i| script(i, "a")).collect()).await];
    if !auto_only {
        runs.push(
            run(
                "chromium",
                &chromium,
                (1..=n).map(|i| script(i, "c")).collect(),
            )
            .await,
        );
    }
    runs.push(
        run(
            "auto, mixed",
            &auto,
            (1..=plain + n / 10)
                .map(|i| {
                    if i % 11 == 0 {
                        script(i, "m")
                    } else {
                        (format!("http://blog.test:{port}/short?n={i}"), None)
                    }
                })
                .collect(),
        )
        .await,
    );
    println!(
        "Script pages of the report's form, no cache, concurrency {CONCURRENCY} ({} cores, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    for r in &runs {
        println!(
            "  {:<12} {:>4} links in {:>7.2} s: {:>7.1} resolutions/s ({} right, {} decided by the embedded engine)",
            r.name,
            r.links,
            r.seconds,
            r.rate(),
            r.right,
            r.emulated
        );
        println!(
            "  {:<12} CPU per link: {:.2} ms script workers, {:.2} ms this process, {:.2} ms Chromium",
            "",
            r.cpu.workers * 1000.0 / r.links as f64,
            r.cpu.me * 1000.0 / r.links as f64,
            r.cpu.chromium * 1000.0 / r.links as f64,
        );
    }
    let ratio = (!auto_only).then(|| runs[0].rate() / runs[1].rate());
    if let Some(ratio) = ratio {
        println!("  auto / chromium: {ratio:.1}x");
    }
    let json = serde_json::json!({
        "concurrency": CONCURRENCY,
        "runs": runs.iter().map(|r| serde_json::json!({
            "name": r.name, "links": r.links, "seconds": r.seconds,
            "per_second": r.rate(), "right": r.right, "emulated": r.emulated,
            "cpu_seconds": { "workers": r.cpu.workers, "process": r.cpu.me, "chromium": r.cpu.chromium },
        })).collect::<Vec<_>>(),
        "ratio": ratio,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("script.json"), json.to_string());
}
