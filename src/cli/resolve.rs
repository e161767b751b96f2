//! `hoptrace resolve`: links from the arguments or stdin, resolved in order.

use std::io::{IsTerminal, Write};

use std::sync::Arc;

use anyhow::Context;
use futures_util::stream::StreamExt;

use crate::chain::{Batch, Entry, Lookup, Resolver};
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
    // once per resolution (the batch's groups), so the disk's latency does not hold up the
    // resolutions.
    resolver.defer_durability();
    let concurrency = (config.limits.concurrency as usize).max(1);
    let lookup = Lookup::cache_if(!args.no_cache);
    let batch = Batch::new(Arc::new(resolver), &args.profile, &args.via, lookup)
        .map_err(|e| usage(e.into()))?;
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let printing = Printing {
        json: args.json,
        defang,
        colour,
    };

    // Inputs are read as they are needed (a list of millions is never held whole).
    let mut evidence = Evidence::new(&args, store);
    let entries = read_inputs(args.urls.clone(), concurrency).map(|input| match input {
        Ok(input) => Ok(Entry::parse(input)),
        // Answered as a link that does not parse is; the run goes on.
        Err(Unreadable::Line { line, why }) => {
            Ok(Entry::answered(Trace::input_error(&line, why.to_string())))
        }
        Err(e) => Err(e),
    });
    let mut groups = batch.run(entries);
    // Lines are written a group at a time; a larger buffer makes fewer writes of them.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    while let Some(group) = groups.next().await? {
        for resolved in group {
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
