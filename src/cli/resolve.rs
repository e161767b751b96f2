//! `hoptrace resolve`: links from the arguments or stdin, resolved in order.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use futures_util::stream::StreamExt;

use crate::chain::{Resolved, Resolver};
use crate::store::Store;
use crate::trace::Trace;

use super::client::{open_store, Remote};
use super::lines::{read_inputs, Unreadable};
use super::*;

pub(super) async fn resolve(args: ResolveArgs) -> Result<(), Failure> {
    let mut config = args.config.load()?;
    let defang = args.defang || config.output.defang;
    if let Some(remote) = Remote::new(&args.server)? {
        return through(&remote, args, defang).await;
    }
    if let Some(dir) = &args.screenshot {
        config.browser.screenshots = true;
        std::fs::create_dir_all(dir).with_context(|| format!("--screenshot {}", dir.display()))?;
    }
    let store = match args.no_store {
        true => None,
        false => Some(open_store(&config, true).await?),
    };
    let mut resolver = Resolver::new(&config, store.clone()).map_err(|e| usage(e.into()))?;
    resolver.watch_automatically(&config.watch, crate::config::AutoSource::Resolve);
    // A printed line is on disk, but the store is flushed once per group of lines rather than
    // once per resolution, so the disk's latency does not hold up the resolutions.
    resolver.defer_durability();
    let resolver = std::sync::Arc::new(resolver);
    let use_cache = !args.no_cache;
    let (profile, via) = (args.profile.clone(), args.via.clone());
    resolver
        .visitor(&profile, &via)
        .map_err(|e| usage(e.into()))?;
    let concurrency = (config.limits.concurrency as usize).max(1);
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let printing = Printing {
        json: args.json,
        defang,
        colour,
    };

    // Inputs are read as they are needed (a list of millions is never held whole); each
    // resolution is its own task, so they spread over the cores, and its visit waits for one
    // of the resolver's `concurrency` slots. Results come back in input order; finished ones may
    // wait for an earlier slow one in a window four times that size, so one slow link does
    // not stop new ones from starting (nor does a flush of the store by the printer).
    let mut evidence = Evidence::new(&args, store.clone());
    let inputs = read_inputs(args.urls, concurrency);
    let window = concurrency.saturating_mul(4);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Resolved>(window);
    let producer = tokio::spawn(async move {
        let mut traces = std::pin::pin!(inputs
            .map(|input| {
                let resolver = resolver.clone();
                let (profile, via) = (profile.clone(), via.clone());
                tokio::spawn(async move {
                    let input = match input {
                        Ok(input) => input,
                        // Answered as a link that does not parse is; the run goes on.
                        Err(Unreadable::Line { line, why }) => {
                            let trace = Trace::input_error(&line, why.to_string());
                            return Ok(Resolved::unstored(trace));
                        }
                        Err(e) => return Err(e),
                    };
                    // Boxed: the resolution's state is ~5 KB, and a task's future is moved
                    // whole as the task is made and finished.
                    let resolution = resolver.resolve_as(&input, &profile, &via, use_cache);
                    let trace = Box::pin(resolution).await;
                    // The profile and the way out were checked above.
                    Ok::<_, Unreadable>(trace.unwrap_or_else(|e| {
                        Resolved::unstored(Trace::input_error(&input, e.to_string()))
                    }))
                })
            })
            .buffered(window));
        while let Some(joined) = traces.next().await {
            let trace = joined.context("a resolution task failed")??;
            if tx.send(trace).await.is_err() {
                break; // the printer stopped (stdout closed)
            }
        }
        Ok::<_, anyhow::Error>(())
    });

    // Lines are written a group at a time; a larger buffer makes fewer writes of them.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    // Lines wait for one another a little before they are printed: woken for each line, the
    // printer (the main thread) is woken thousands of times a second, every wake a futex
    // call and a switch. With the store on they wait longer, and in larger groups than the
    // window (they are taken out of the channel as they come, so the resolutions go on): a
    // flush is cheaper per line the more lines it covers (`cargo bench --bench store`: 92 µs
    // of CPU a Trace in groups of 8, 54 in groups of 32, 38 in groups of 512). The last
    // lines are printed as soon as input ends.
    let (gather, group) = match store {
        Some(_) => (GATHER_STORED, GROUP_STORED.max(window)),
        None => (GATHER, window),
    };
    let mut ready = Vec::with_capacity(group);
    while let Some(trace) = rx.recv().await {
        ready.push(trace);
        let until = tokio::time::Instant::now() + gather;
        loop {
            while ready.len() < group {
                match rx.try_recv() {
                    Ok(trace) => ready.push(trace),
                    Err(_) => break,
                }
            }
            let now = tokio::time::Instant::now();
            if ready.len() >= group || rx.is_closed() || now >= until {
                break;
            }
            tokio::time::sleep((until - now).min(GATHER)).await;
        }
        if let Some(store) = &store {
            store.flush().await?;
        }
        for resolved in ready.drain(..) {
            evidence.keep(&resolved.trace).await?;
            match (args.json, defang) {
                (true, false) => {
                    announce_watch(&resolved.trace, false);
                    resolved.write_json(&mut out)?;
                    out.write_all(b"\n")?;
                }
                _ => printing.trace(&mut out, &resolved.trace)?,
            }
        }
        out.flush()?;
    }
    producer.await.context("the resolution task failed")??;
    evidence.finish()?;
    Ok(())
}

/// How many links go to the server in one batch: few enough that the first lines come soon.
const REMOTE_BATCH: usize = 32;

/// `resolve --server`: the links resolved by the running server (`POST /v1/resolve/batch`),
/// its store keeping them, printed here in input order.
async fn through(remote: &Remote, args: ResolveArgs, defang: bool) -> Result<(), Failure> {
    let local_only = [
        (args.screenshot.is_some(), "--screenshot"),
        (args.har.is_some(), "--har"),
        (args.no_store, "--no-store"),
        (args.profile != crate::profile::DEFAULT, "--profile"),
        (args.via != crate::chain::DIRECT, "--via"),
    ];
    if let Some((_, flag)) = local_only.iter().find(|(set, _)| *set) {
        return Err(usage(anyhow::anyhow!(
            "{flag} works on this machine's resolutions, not with --server"
        )));
    }
    let printing = Printing {
        json: args.json,
        defang,
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut inputs = std::pin::pin!(read_inputs(args.urls, REMOTE_BATCH));
    let mut batch = Vec::with_capacity(REMOTE_BATCH);
    let mut done = false;
    while !done {
        // Lines that cannot be links are answered here, in their place.
        let mut answers: Vec<Option<Trace>> = Vec::new();
        while batch.len() < REMOTE_BATCH {
            match inputs.next().await {
                None => {
                    done = true;
                    break;
                }
                Some(Ok(url)) => {
                    batch.push(url);
                    answers.push(None);
                }
                Some(Err(Unreadable::Line { line, why })) => {
                    answers.push(Some(Trace::input_error(&line, why.to_string())))
                }
                Some(Err(e)) => return Err(e.into()),
            }
        }
        if answers.is_empty() {
            break;
        }
        let body = serde_json::json!({"urls": batch, "refresh": args.no_cache});
        batch.clear();
        let mut traces = Vec::new();
        if body["urls"].as_array().is_some_and(|u| !u.is_empty()) {
            let answer = remote
                .json(http::Method::POST, "/v1/resolve/batch", Some(body))
                .await?;
            traces = serde_json::from_value::<Vec<Trace>>(answer["traces"].clone())
                .context("the server's traces")?;
        }
        let mut traces = traces.into_iter();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for answer in answers {
            if let Some(trace) = answer.or_else(|| traces.next()) {
                printing.trace(&mut out, &trace)?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// How long a line may wait for others to be printed with it (and how often a longer wait
/// looks whether a group's worth has come).
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a line may wait for others to share its flush of the store: unnoticed by a
/// person, and long enough at full speed (~6,000 lines a second here) to fill a window.
const GATHER_STORED: std::time::Duration = std::time::Duration::from_millis(50);
/// The most lines that share one flush of the store (~3 MB of Traces).
const GROUP_STORED: usize = 1024;

/// What `--screenshot DIR` and `--har FILE` write as the Traces come.
struct Evidence {
    dir: Option<std::path::PathBuf>,
    har: Option<(std::path::PathBuf, Vec<Trace>)>,
    store: Option<Store>,
}

impl Evidence {
    fn new(args: &ResolveArgs, store: Option<Store>) -> Evidence {
        Evidence {
            dir: args.screenshot.clone(),
            har: args.har.clone().map(|f| (f, Vec::new())),
            store,
        }
    }

    /// Writes `trace`'s screenshot (from the Trace, or from the store for a cached one) and
    /// keeps it for the HAR.
    async fn keep(&mut self, trace: &Trace) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            let sha = trace
                .evidence
                .as_ref()
                .and_then(|e| e.screenshot_sha256.clone());
            let png = match (&trace.screenshot, &sha, &self.store) {
                (Some(png), _, _) => Some(png.clone()),
                (None, Some(sha), Some(store)) => store.screenshot(sha).await?,
                _ => None,
            };
            if let (Some(png), Some(sha)) = (png, sha) {
                let host: String = trace
                    .final_host
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{host}-{}.png", &sha[..16.min(sha.len())]));
                std::fs::write(&path, &png)
                    .with_context(|| format!("writing {}", path.display()))?;
                let input = crate::terminal::Shown(&trace.input);
                eprintln!("screenshot of {input}: {}", path.display());
            }
        }
        if let Some((_, traces)) = &mut self.har {
            traces.push(trace.clone());
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some((file, traces)) = self.har {
            let refs: Vec<&Trace> = traces.iter().collect();
            let bytes = serde_json::to_vec_pretty(&crate::har::har(&refs))?;
            std::fs::write(&file, bytes).with_context(|| format!("--har {}", file.display()))?;
        }
        Ok(())
    }
}
