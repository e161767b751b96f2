//! `hoptrace export`: the store's chains as MISP, STIX 2.1, CSV or text; or a running
//! server's (`--server`: `GET /v1/export`).

use std::io::Write;

use anyhow::Context;

use crate::export::{parse_since, prepare, ExportError, Filter, Format};

use super::client::{open_store, with_query, Remote};
use super::*;

pub(super) async fn export(args: ExportArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let now = crate::now_ms();
    let format: Format = args
        .format
        .parse()
        .map_err(|e| usage(anyhow::Error::from(ExportError::from(e))))?;
    // The config's default applies where it can (MISP and STIX carry values, not text);
    // asked for on a MISP or STIX export, it is refused.
    let flat = matches!(format, Format::Csv | Format::Txt);
    let defang = args.defang || (config.output.defang && flat);
    let (bytes, done) = match Remote::new(&args.server)? {
        Some(remote) => {
            let path = with_query(
                "/v1/export",
                &[
                    ("format", Some(&args.format)),
                    ("since", args.since.as_deref()),
                    ("label", args.label.as_deref()),
                    ("campaign", args.campaign.as_deref()),
                    ("defang", defang.then_some("true")),
                ],
            );
            let bytes = remote.document(&path).await?.to_vec();
            (bytes, "exported by the server".to_string())
        }
        None => {
            let filter = Filter {
                since_ms: args
                    .since
                    .as_deref()
                    .map(|s| parse_since(s, now))
                    .transpose()
                    .map_err(|e| usage(e.into()))?,
                label: args.label,
                campaign: args.campaign,
                defang,
            };
            let store = open_store(&config, true).await?;
            let refused = |e: ExportError| match e {
                ExportError::Campaign(_) | ExportError::Defang => usage(e.into()),
                e => e.into(),
            };
            let prepared = prepare(&store, &filter, format, now)
                .await
                .map_err(refused)?;
            // Written as the sorted runs are merged, straight to the file or stdout.
            let mut out: Box<dyn Write> = match &args.output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("--output {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let summary = prepared.write(&mut out).map_err(refused)?;
            out.flush()?;
            match format {
                Format::Misp => eprintln!(
                    "exported {} chains in {} events",
                    summary.chains, summary.events
                ),
                _ => eprintln!(
                    "exported {} chains ({} indicators)",
                    summary.chains, summary.indicators
                ),
            }
            return Ok(());
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("--output {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if format == Format::Stix && !bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    eprintln!("{done}");
    Ok(())
}
