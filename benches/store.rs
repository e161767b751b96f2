//! The embedded store alone (issue 18): the CPU each Trace costs when stored the way
//! `hoptrace resolve` stores them (queued with `put_later`, one flush per group), without the
//! network's noise around it. The Trace is a real one from the suite's fixture (two hops with
//! their HTTP records, 2.4 KB of JSON), given a new input and landing host each time.
//!
//!     cargo bench --bench store          # STORE_N=20000 STORE_GROUP=32 STORE_ROUNDS=3
//!
//! Prints CPU µs per Trace (user + system, every thread of the process: sled's own threads
//! included), Traces per second and the database's size, for each round and their median.

use std::time::Instant;

use hoptrace::store::Store;
use hoptrace::trace::Trace;

const SAMPLE: &str = include_str!("data/trace.json");

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time so far (user + system, all threads), in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn main() {
    let (n, group, rounds) = (
        env("STORE_N", 20_000),
        env("STORE_GROUP", 32).max(1),
        env("STORE_ROUNDS", 3).max(1),
    );
    let sample: Trace = serde_json::from_str(SAMPLE).expect("the sample Trace reads");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut per_trace = Vec::new();
    println!("sled: {n} Traces a round, a flush every {group} (as `resolve` groups its lines)");
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let traces: Vec<Trace> = (0..n)
            .map(|i| {
                let mut t = sample.clone();
                let host = format!("s{}.bench{}.test", i % 8, i % 3);
                t.input = format!("http://{host}:8080/a/r{round}-{i}");
                t.final_url = format!("http://{host}:8080/b/r{round}-{i}");
                t.final_host = host;
                t
            })
            .collect();
        let (cpu, secs) = rt.block_on(async {
            let store = Store::open_sled(&dir.path().join("db")).unwrap();
            let (cpu0, t0) = (cpu_secs(), Instant::now());
            for (i, t) in traces.iter().enumerate() {
                store
                    .put_later(&t.input, t, 1_000 + i as u64)
                    .await
                    .unwrap();
                if (i + 1) % group == 0 {
                    store.flush().await.unwrap();
                }
            }
            store.flush().await.unwrap();
            (cpu_secs() - cpu0, t0.elapsed().as_secs_f64())
        });
        let us = cpu * 1e6 / n as f64;
        per_trace.push(us);
        println!(
            "round {round}: {us:.1} µs CPU a Trace, {:.0} Traces/s, {:.1} MB on disk",
            n as f64 / secs,
            dir_bytes(dir.path()) as f64 / 1e6
        );
    }
    per_trace.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "median: {:.1} µs CPU a Trace",
        per_trace[per_trace.len() / 2]
    );
}
