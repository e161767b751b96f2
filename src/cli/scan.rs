//! `hoptrace scan`: Docker Hub repositories (or text) judged by their links.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use futures_util::stream::StreamExt;

use crate::chain::Resolver;
use crate::terminal::Shown;

use super::client::Remote;
use super::*;

/// The most of a plain-text input `scan --server` sends as one document.
const TEXT_MAX: u64 = 16 << 20;

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
            let lines = lines_with_text(std::io::BufReader::new(open()?))?;
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
    let resolver = std::sync::Arc::new(resolver);
    let concurrency = config.limits.concurrency as usize;
    let scanner = Scanner::new(resolver, !args.no_cache, args.rescan);

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
    // held whole); `buffered` scans `concurrency` repositories at once and keeps input order.
    let docs = read_ahead(concurrency, move || {
        documents(reader, &source).map(|d| vec![d])
    });
    let scanner = &scanner;
    let mut results = std::pin::pin!(docs
        .map(|doc| async move {
            match doc {
                Ok(doc) => scanner.scan(&doc).await.map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })
        .buffered(concurrency.max(1)));
    let mut counts = [0usize; 3];
    let (mut resumed, mut bad) = (0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(result) = results.next().await {
        bar.inc(1);
        match result {
            Ok(scanned) => {
                counts[scanned.verdict as usize] += 1;
                resumed += usize::from(scanned.resumed);
                bar.suspend(|| -> std::io::Result<()> {
                    printing.scanned(&mut out, &scanned)?;
                    out.flush()
                })?;
            }
            Err(e) => {
                bad += 1;
                bar.suspend(|| eprintln!("hoptrace: skipped: {:#}", Shown(&e)));
            }
        }
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

/// The lines of `reader` with more than white space on them, counted a buffer at a time: no
/// line is held, however long (a line past `MAX_LINE` is an error of its own when read).
fn lines_with_text(mut reader: impl BufRead) -> std::io::Result<u64> {
    let (mut count, mut text) = (0, false);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(count + u64::from(text));
        }
        for &b in chunk {
            if b == b'\n' {
                count += u64::from(text);
                text = false;
            } else {
                text |= !b.is_ascii_whitespace();
            }
        }
        let used = chunk.len();
        reader.consume(used);
    }
}
