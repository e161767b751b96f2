//! `hoptrace scan`: Docker Hub repositories (or text) judged by their links.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::chain::Resolver;
use crate::terminal::Shown;

use super::client::Remote;
use super::*;

/// The most of a plain-text input `scan --server` sends as one document.
const TEXT_MAX: u64 = 16 << 20;

/// Documents the reading thread hands over at a time (one wake of the scan per batch).
const DOCUMENTS_PER_BATCH: usize = 64;

/// `scan --server`: each repository (a JSONL line), or the whole text, scanned by the running
/// server (`POST /v1/scan`), which resolves, judges and keeps it; printed here in input order.
async fn through(remote: &Remote, args: &ScanArgs, printing: Printing) -> Result<(), Failure> {
    use std::io::Read;
    let mut reader: Box<dyn BufRead + Send> = match args.input.as_str() {
        "-" => Box::new(std::io::BufReader::new(std::io::stdin())),
        path => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot read {path}"))
                .map_err(usage)?,
        )),
    };
    let mut first = String::new();
    while first.trim().is_empty() {
        if reader.read_line(&mut first)? == 0 {
            break;
        }
    }
    let mut requests: Box<dyn Iterator<Item = anyhow::Result<serde_json::Value>>> =
        match first.trim_start().starts_with('{') {
            true => Box::new(
                std::iter::once(Ok(first))
                    .chain(reader.lines().map(|l| l.map_err(anyhow::Error::from)))
                    .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
                    .map(|l| {
                        let repo: serde_json::Value = serde_json::from_str(&l?)?;
                        Ok(serde_json::json!({"repository": repo, "refresh": args.no_cache}))
                    }),
            ),
            false => {
                let mut text = first;
                reader.take(TEXT_MAX).read_to_string(&mut text)?;
                let body = serde_json::json!({"text": text, "refresh": args.no_cache});
                Box::new(std::iter::once(Ok(body)))
            }
        };
    let (mut scanned, mut bad) = (0usize, 0usize);
    let stdout = std::io::stdout();
    for request in requests.by_ref() {
        let answer = match request {
            Ok(body) => {
                remote
                    .json(http::Method::POST, "/v1/scan", Some(body))
                    .await
            }
            Err(e) => Err(Failure::from(e)),
        };
        let answer = answer
            .and_then(|a| serde_json::from_value::<crate::scan::Scanned>(a).map_err(Failure::from));
        match answer {
            Ok(s) => {
                scanned += 1;
                let mut out = stdout.lock();
                printing.scanned(&mut out, &s)?;
                out.flush()?;
            }
            Err(e) => {
                bad += 1;
                eprintln!("hoptrace: skipped: {:#}", Shown(&e.error));
            }
        }
    }
    eprintln!("scanned {scanned} repositories through the server; {bad} skipped");
    Ok(())
}

pub(super) async fn scan(args: ScanArgs) -> Result<(), Failure> {
    use crate::scan::{documents, Scanner, Verdict};
    let config = args.config.load()?;
    let defang = args.defang || config.output.defang;
    let printing = Printing {
        json: args.json,
        defang,
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    if let Some(remote) = Remote::new(&args.server)? {
        return through(&remote, &args, printing).await;
    }
    let (reader, source, total): (Box<dyn BufRead + Send>, String, Option<u64>) =
        if args.input == "-" {
            (
                Box::new(std::io::BufReader::new(std::io::stdin())),
                "stdin".into(),
                None,
            )
        } else {
            let path = std::path::Path::new(&args.input);
            let open = || {
                std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(usage)
            };
            // Counting lines first gives the progress bar a length (and an ETA).
            let lines = crate::scan::lines_with_text(std::io::BufReader::new(open()?))?;
            let name = path
                .file_name()
                .map_or(args.input.clone(), |n| n.to_string_lossy().into_owned());
            (
                Box::new(std::io::BufReader::new(open()?)),
                name,
                Some(lines),
            )
        };
    let store = super::client::open_store(&config, true).await?;
    let mut resolver = Resolver::new(&config, Some(store)).map_err(|e| usage(e.into()))?;
    resolver.watch_automatically(&config.watch, crate::config::AutoSource::Scan);
    // A printed line is on disk, but the store is flushed once per group of lines (Traces and
    // repository records alike: the batch's groups) rather than once per write, so the
    // disk's latency does not hold up the scan. A crash loses at most the lines not yet
    // printed, which a resumed scan scans again.
    resolver.defer_durability();
    let concurrency = (config.limits.concurrency as usize).max(1);
    let scanner = std::sync::Arc::new(Scanner::new(
        std::sync::Arc::new(resolver),
        !args.no_cache,
        args.rescan,
    ));

    let bar = if std::io::stderr().is_terminal() {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::no_length(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} repositories  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Documents are read as they are needed (a dump of millions of repositories is never
    // held whole), a batch of them at a time.
    let docs = read_ahead(
        concurrency.div_ceil(DOCUMENTS_PER_BATCH).max(2),
        move || {
            let mut docs = documents(reader, &source);
            std::iter::from_fn(move || {
                let batch: Vec<_> = docs.by_ref().take(DOCUMENTS_PER_BATCH).collect();
                (!batch.is_empty()).then_some(batch)
            })
        },
    );
    let mut groups = scanner.scan_each(docs);
    let mut counts = [0usize; 3];
    let (mut resumed, mut bad) = (0usize, 0usize);
    let stdout = std::io::stdout();
    // Lines are written a group at a time; a larger buffer makes fewer writes of them.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    while let Some(group) = groups.next().await? {
        bar.inc(group.len() as u64);
        bar.suspend(|| -> std::io::Result<()> {
            for result in group {
                match result {
                    Ok(scanned) => {
                        counts[scanned.verdict as usize] += 1;
                        resumed += usize::from(scanned.resumed);
                        printing.scanned(&mut out, &scanned)?;
                    }
                    Err(e) => {
                        bad += 1;
                        out.flush()?;
                        eprintln!("hoptrace: skipped: {:#}", Shown(&e));
                    }
                }
            }
            out.flush()
        })?;
    }
    bar.finish_and_clear();
    eprintln!(
        "scanned {} repositories: {} malicious, {} suspicious, {} clean ({resumed} from an earlier scan){}",
        counts.iter().sum::<usize>(),
        counts[Verdict::Malicious as usize],
        counts[Verdict::Suspicious as usize],
        counts[Verdict::Clean as usize],
        if bad > 0 { format!("; {bad} skipped (see above)") } else { String::new() },
    );
    Ok(())
}
