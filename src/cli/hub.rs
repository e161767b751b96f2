//! `hoptrace hub`: Docker Hub repositories listed (and scanned) from the Hub's API.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;

use crate::chain::Resolver;
use crate::egress::Egress;
use crate::hub::{scan_records, Crawler, EmitError, HubApi, HubRecord, Source, TOKEN_VAR};
use crate::scan::Scanner;

use super::*;

pub(super) async fn hub(args: HubArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let sources = sources(&args).map_err(usage)?;
    let since = match &args.since {
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .with_context(|| format!("--since: not an RFC 3339 date: {s}"))
                .map_err(usage)?,
        ),
        None => None,
    };
    let store = super::client::open_store(&config, false).await?;
    let egress = Egress::new(&config).map_err(|e| usage(e.into()))?;
    let token = std::env::var(TOKEN_VAR).ok();
    let api = HubApi::new(&config, egress, token.as_deref()).map_err(|e| usage(e.into()))?;
    let crawler = Crawler::new(api, Some(store.clone()), since);
    let scanner = match args.scan {
        true => {
            let mut resolver = Resolver::new(&config, Some(store)).map_err(|e| usage(e.into()))?;
            resolver.watch_automatically(&config.watch, crate::config::AutoSource::Scan);
            Some(Scanner::new(Arc::new(resolver), true, false))
        }
        false => None,
    };
    let concurrency = config.limits.concurrency.max(1) as usize;
    let printing = Printing {
        json: args.json,
        defang: config.output.defang,
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let scanner = &scanner;
    for source in &sources {
        let summary = crawler
            .crawl(source, |records| async move {
                emit(records, scanner, printing, concurrency).await
            })
            .await?;
        eprintln!(
            "hub: {} repositories from {} pages{}{}",
            summary.records,
            summary.pages,
            match summary.resumed_pages {
                0 => String::new(),
                n => format!(", resumed after {n} pages finished earlier"),
            },
            match summary.older {
                0 => String::new(),
                n => format!(", {n} not updated since --since"),
            },
        );
    }
    Ok(())
}

/// One page's records: printed, or scanned and their verdicts printed.
async fn emit(
    records: Vec<HubRecord>,
    scanner: &Option<Scanner>,
    printing: Printing,
    concurrency: usize,
) -> Result<(), EmitError> {
    let stdout = std::io::stdout();
    let Some(scanner) = scanner else {
        let mut out = std::io::BufWriter::new(stdout.lock());
        for r in &records {
            if printing.json {
                serde_json::to_writer(&mut out, r)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}/{}\t{}\t{} tags\t{}",
                    r.namespace,
                    r.name,
                    if r.imageless { "imageless" } else { "imaged" },
                    r.tag_count,
                    r.last_updated.as_deref().unwrap_or("-"),
                )?;
            }
        }
        return Ok(out.flush()?);
    };
    scan_records(scanner, &records, concurrency, |_, s| {
        let mut out = stdout.lock();
        printing
            .scanned(&mut out, &s)
            .and_then(|()| out.flush())
            .map_err(EmitError::from)
    })
    .await
}

/// The sources the arguments name, in order: namespaces, the search, the repository list.
fn sources(args: &HubArgs) -> anyhow::Result<Vec<Source>> {
    let lines = |path: &std::path::Path| -> anyhow::Result<Vec<String>> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        std::io::BufReader::new(file)
            .lines()
            .map(|l| Ok(l?.trim().to_string()))
            .filter(|l| !matches!(l, Ok(l) if l.is_empty() || l.starts_with('#')))
            .collect()
    };
    let mut namespaces = args.namespace.clone();
    if let Some(path) = &args.namespaces {
        namespaces.extend(lines(path)?);
    }
    let repositories = match &args.repositories {
        Some(path) => lines(path)?,
        None => Vec::new(),
    };
    Ok(crate::hub::sources(
        &namespaces,
        args.search.as_slice(),
        &repositories,
    )?)
}
