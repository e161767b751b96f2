//! Scanning, measured against baselines in the same run:
//! - link extraction (`extract::find`: markdown, HTML, bare, defanged, encoded, with
//!   provenance) in MB/s of descriptions, against one plain URL regex over the same text;
//! - whole scans of the synthetic Docker Hub dump (tests/fixtures/hub, copied 10 times with
//!   distinct paths) with the release binary: repositories/s, against `hoptrace resolve` of
//!   the same links (resolution alone: what scanning adds is extraction, judging and the
//!   repository records), and a re-run that resumes from the store.
//!
//!     cargo bench --bench scan
//!
//! Prints a table and writes target/bench/scan.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

const COPIES: usize = 10;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

/// The fixture dump `COPIES` times over, each copy's repositories and link paths distinct
/// (so no copy is answered from another's cache), served on `port`.
fn big_dump(port: u16) -> String {
    let raw = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hub/repositories.jsonl"),
    )
    .unwrap();
    let mut out = String::new();
    for k in 0..COPIES {
        for line in raw.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ns = format!("{}-{k}", v["namespace"].as_str().unwrap());
            v["namespace"] = ns.into();
            let text = v
                .to_string()
                .replace(":{{port}}/", &format!(":{{{{port}}}}/c{k}/"))
                .replace("%3A{{port}}%2F", &format!("%3A{{{{port}}}}%2Fc{k}%2F"))
                .replace("{{port}}", &port.to_string());
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

async fn run() {
    // ---- extraction
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let dump = hub.dump();
    let texts: Vec<(String, String)> = dump
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["description"].as_str().unwrap_or("").to_string(),
                v["full_description"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let bytes: usize = texts.iter().map(|(a, b)| a.len() + b.len()).sum();
    let plain = regex::Regex::new(r#"https?://[^\s<>"']+"#).unwrap();
    let rounds = (50_000_000 / bytes).max(3);
    let measure = |f: &dyn Fn(&str, &str) -> usize| {
        let mut best = f64::MAX;
        let mut found = 0;
        for _ in 0..3 {
            let t = Instant::now();
            found = 0;
            for _ in 0..rounds {
                for (a, b) in &texts {
                    found += f(a, b);
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        ((bytes * rounds) as f64 / best / 1e6, found / rounds)
    };
    let (base_mbs, base_links) =
        measure(&|a, b| plain.find_iter(a).count() + plain.find_iter(b).count());
    let (ext_mbs, ext_links) = measure(&|a, b| {
        hoptrace::extract::find(&[("description", a), ("full_description", b)]).len()
    });

    // ---- whole scans with the release binary
    let big = big_dump(hub.server.port());
    let repos = big.lines().count();
    let dir = env.dir.path();
    let input = dir.join("dump.jsonl");
    std::fs::write(&input, &big).unwrap();
    let links: Vec<String> = big
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let d = v["description"].as_str().unwrap_or("").to_string();
            let f = v["full_description"].as_str().unwrap_or("").to_string();
            hoptrace::extract::find(&[("description", &d), ("full_description", &f)])
                .into_iter()
                .map(|l| l.url)
                .collect::<Vec<_>>()
        })
        .collect();
    let link_file = dir.join("links.txt");
    std::fs::write(&link_file, links.join("\n")).unwrap();
    let bin = env!("CARGO_BIN_EXE_hoptrace");
    let timed = |args: &[&str], db: &str, stdin: Option<&std::path::Path>| {
        let cfg = dir.join(format!("{db}.toml"));
        let mut c = hoptrace::config::Config::default();
        c.dns.nameservers = vec![env.dns.addr];
        c.policy.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.per_host_per_second = 100000.0;
        c.limits.concurrency = 64;
        c.browser.enabled = false;
        c.storage.backend =
            hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(dir.join(db)));
        std::fs::write(&cfg, config_toml(&c, "")).unwrap();
        let mut c = Command::new(bin);
        c.args(args)
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(f) = stdin {
            c.stdin(std::fs::File::open(f).unwrap());
        }
        let t = Instant::now();
        let status = c.status().unwrap();
        assert!(status.success());
        t.elapsed().as_secs_f64()
    };
    let input_s = input.to_str().unwrap();
    let resolve_s = timed(&["resolve", "--json", "-"], "resolve-db", Some(&link_file));
    let scan_s = timed(&["scan", "--json", input_s], "scan-db", None);
    let resume_s = timed(&["scan", "--json", input_s], "scan-db", None);

    println!(
        "extraction over {:.1} MB of descriptions ({} repositories x {rounds}):",
        bytes as f64 / 1e6,
        texts.len()
    );
    println!(
        "  {:<44} {:>9.1} MB/s  {:>5} links/round",
        "plain regex (https?://...) baseline", base_mbs, base_links
    );
    println!(
        "  {:<44} {:>9.1} MB/s  {:>5} links/round",
        "extract::find (all forms, provenance)", ext_mbs, ext_links
    );
    println!("  ratio extract / regex: {:.2}x", ext_mbs / base_mbs);
    println!(
        "whole scan of {repos} repositories ({} links), fresh store each:",
        links.len()
    );
    println!(
        "  {:<44} {:>9.0} links/s ({:.2} s)",
        "hoptrace resolve of the links (baseline)",
        links.len() as f64 / resolve_s,
        resolve_s
    );
    println!(
        "  {:<44} {:>9.0} repos/s ({:.2} s) = {:.0} links/s",
        "hoptrace scan",
        repos as f64 / scan_s,
        scan_s,
        links.len() as f64 / scan_s
    );
    println!(
        "  {:<44} {:>9.0} repos/s ({:.2} s)",
        "hoptrace scan again (resumed from the store)",
        repos as f64 / resume_s,
        resume_s
    );
    println!("  ratio scan / resolve time: {:.2}x", scan_s / resolve_s);

    let json = serde_json::json!({
        "extract_mb_per_s": ext_mbs, "regex_mb_per_s": base_mbs,
        "extract_links": ext_links, "regex_links": base_links,
        "repositories": repos, "links": links.len(),
        "resolve_s": resolve_s, "scan_s": scan_s, "resume_s": resume_s,
        "scan_repos_per_s": repos as f64 / scan_s,
    });
    write_bench_json("scan.json", &json);
}
