//! `hoptrace export`: the store's chains as MISP, STIX 2.1, CSV or text.

use std::io::Write;

use anyhow::Context;

use crate::export::{gather, parse_since, render, ExportError, Filter, Format};
use crate::store::Store;

use super::*;

pub(super) async fn export(args: ExportArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let now = crate::now_ms();
    let format: Format = args
        .format
        .parse()
        .map_err(|e| usage(anyhow::Error::from(e)))?;
    let filter = Filter {
        since_ms: args
            .since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()
            .map_err(|e| usage(e.into()))?,
        label: args.label,
        campaign: args.campaign,
        defang: args.defang,
    };
    let store = Store::open(&config.storage).await?;
    let max = config.limits.max_export_chains as usize;
    let found = gather(&store, &filter, format, max, now)
        .await
        .map_err(|e| match e {
            ExportError::Campaign(_) | ExportError::TooMany { .. } => usage(e.into()),
            e => e.into(),
        })?;
    let bytes = render(&found, format, &filter).map_err(|e| usage(e.into()))?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("--output {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if format == Format::Stix {
                writeln!(out)?;
            }
        }
    }
    eprintln!(
        "exported {} chains ({} indicators)",
        found.chain_count,
        found.indicators().len()
    );
    Ok(())
}
