//! Memory that does not follow the input: every export format of a store of many chains, and
//! repository lines of many megabytes. Peak memory is the binary's own (`ru_maxrss` of the
//! child), never a time.

mod common;

use std::io::Write as _;
use std::path::Path;

use common::rss::measured;
use common::*;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use hoptrace::scan::{infrastructure, RepositoryRecord, Verdict};
use hoptrace::store::Store;
use hoptrace::trace::{Builtin, Hop, Outcome, Trace, Via};

/// Writes at once while a store is filled, so its group commits take many each.
const WRITERS: usize = 256;

/// Chain `i` of the downloader's shape (tests/common/hubmix.rs): a fake shortener's unique
/// path, a payload host's rotating one, and the cracked archive's download at the one landing
/// domain, each hop with its address.
fn downloader_chain(i: usize) -> Trace {
    let hop = |host: &str, path: String, label: Builtin| {
        let mut h = Hop::new(
            format!("http://{host}{path}"),
            host.into(),
            Via::HttpRedirect,
        );
        h.labels = vec![label.into()];
        h.ip = Some("127.0.0.1".into());
        h.status = Some(302);
        h
    };
    let mut short = hop("bltlly.com", format!("/d{i}"), Builtin::FakeShortener);
    short.imitates = Some("bitly.com".into());
    let hops = vec![
        short,
        hop(
            "failhostingpolp.ru",
            format!("/{i:08x}/t{}", i * 7919),
            Builtin::PayloadHost,
        ),
        hop(
            "totrakto.com",
            format!("/CRACK-IDA-Pro-{i}.zip"),
            Builtin::PayloadHost,
        ),
    ];
    Trace::from_hops(format!("http://bltlly.com/d{i}"), hops, Outcome::Download)
}

/// The repository record a scan keeps for a repository of `namespace` linking `trace`'s input.
fn record(repository: String, namespace: String, trace: &Trace, day: usize) -> RepositoryRecord {
    let when = format!("2021-03-{:02}T00:00:00Z", 1 + day % 28);
    RepositoryRecord {
        repository,
        namespace,
        digest: String::new(),
        verdict: Verdict::Malicious,
        reasons: vec![],
        links: vec![],
        links_left_out: 0,
        landing_hosts: vec![trace.final_host.clone()],
        infrastructure: infrastructure(trace),
        labels: trace.labels.clone(),
        scanned_at: when.clone(),
        last_updated: Some(when.clone()),
        date_registered: Some(when),
    }
}

/// Stores `n` items made by `each` (`WRITERS` at a time).
async fn fill<F, Fut>(n: usize, each: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), hoptrace::store::StoreError>>,
{
    stream::iter(0..n)
        .map(each)
        .buffer_unordered(WRITERS)
        .try_collect::<()>()
        .await
        .unwrap();
}

/// Chains in the export test's store: enough that an exporter holding a STIX bundle or a MISP
/// event whole goes past the bound below, few enough for a debug build.
const CHAINS: usize = 5_000;
/// Peak memory every export format stays under (MB): the process, the store's cache (at most
/// 128 MiB) and one sorted run in memory (32 MiB), whatever the store holds.
const EXPORT_RSS_MB: f64 = 200.0;

/// One campaign of one landing domain, 5,000 chains: every format (CSV, text, STIX, MISP)
/// exported by the binary covers all of them within the same peak memory; MISP in events of
/// at most 1,000 chains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_of_a_large_store_stays_within_bounded_memory() {
    let env = TestEnv::new().await;
    {
        let store = Store::open(&env.config.storage).await.unwrap();
        let store = &store;
        fill(CHAINS, |i| async move {
            let t = downloader_chain(i);
            store.put(&t.input, &t, 1_000 + i as u64).await?;
            let r = record(
                format!("dl{:03}/crack-{i}", i % 300),
                format!("dl{:03}", i % 300),
                &t,
                i,
            );
            store.put_repository(&r.repository, &r).await
        })
        .await;
    }
    let cfg = env.write_config("");
    let out = env.dir.path().join("export.out");
    let mut peaks = Vec::new();
    for format in ["csv", "txt", "stix", "misp"] {
        let run =
            tokio::task::block_in_place(|| measured(&["export", "--format", format], &cfg, &out));
        assert!(run.success, "{format}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("exported {CHAINS} chains")),
            "{format}: {}",
            run.stderr
        );
        if format == "misp" {
            let text = std::fs::read_to_string(&out).unwrap();
            assert_eq!(
                text.lines().count(),
                CHAINS.div_ceil(1000),
                "one campaign's parts"
            );
        }
        eprintln!(
            "export {format}: {:.0} MB peak RSS, {:.1} s",
            run.rss_mb, run.seconds
        );
        peaks.push((format, run.rss_mb));
    }
    for (format, mb) in peaks {
        assert!(mb < EXPORT_RSS_MB, "export {format}: {mb:.0} MB peak RSS");
    }
}

/// Runs `hoptrace scan --json` over `input`: its peak memory (MB) and its stderr.
fn scan_measured(input: &Path, cfg: &Path) -> (f64, String) {
    let out = input.with_extension("out");
    let run = measured(&["scan", "--json", input.to_str().unwrap()], cfg, &out);
    assert!(run.success, "{}", run.stderr);
    let scanned = std::fs::read_to_string(&out).unwrap();
    assert_eq!(jsonl(&scanned).len(), 3, "{}", run.stderr);
    (run.rss_mb, run.stderr)
}

/// Repository lines of 10 MB and 64 MB given to `hoptrace scan`: each an error naming its
/// line, read past without being held (the scan's memory does not grow with them); the lines
/// around them are scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_repository_line_is_named_and_never_held() {
    let env = TestEnv::new().await;
    let cfg = env.write_config("");
    let repo = |name: &str| {
        format!("{{\"namespace\":\"a\",\"name\":\"{name}\",\"description\":\"no link\"}}\n")
    };
    let huge = |mb: usize| {
        format!(
            "{{\"namespace\":\"big\",\"name\":\"x\",\"full_description\":\"{}\"}}\n",
            "a".repeat(mb << 20)
        )
    };
    let small = env.dir.path().join("small.jsonl");
    std::fs::write(&small, [repo("one"), repo("two"), repo("three")].concat()).unwrap();
    let big = env.dir.path().join("big.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for line in [repo("one"), huge(10), repo("two"), huge(64), repo("three")] {
            w.write_all(line.as_bytes()).unwrap();
        }
    }
    let (base, _) = tokio::task::block_in_place(|| scan_measured(&small, &cfg));
    let (peak, err) = tokio::task::block_in_place(|| scan_measured(&big, &cfg));
    for line in [2, 4] {
        assert!(
            err.contains(&format!(
                "line {line}: longer than {} bytes",
                hoptrace::scan::MAX_LINE
            )),
            "{err}"
        );
    }
    eprintln!("scan: {base:.0} MB peak RSS, {peak:.0} MB with the long lines");
    // A line is held up to `MAX_LINE` (4 MiB) at most; the 64 MB one, held, is far past it.
    assert!(peak < base + 32.0, "{base:.0} MB, then {peak:.0} MB");
}
