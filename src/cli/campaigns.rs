//! `hoptrace campaigns`: clusters of flagged repositories from the store, their timelines
//! and their members, written as they are made (the store is walked, never loaded whole).

use std::io::Write;

use crate::campaigns::{timeline, Clusters};
use crate::store::Store;

use super::*;

pub(super) async fn campaigns(args: CampaignsArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let store = Store::open(&config.storage).await?;
    let mut clusters = Clusters::build(&store, args.min_repositories).await?;
    for e in &clusters.damaged.errors {
        eprintln!("hoptrace: skipped a damaged record: {e}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let found = &clusters.campaigns;
    if let Some(id) = &args.members {
        let index = match id.as_str() {
            "all" => None,
            id => Some(clusters.find(id).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "no campaign {id:?} (hoptrace campaigns lists them)"
                ))
            })?),
        };
        let mut failed = None;
        clusters
            .members(&store, index, |m| {
                if failed.is_none() {
                    failed = serde_json::to_writer(&mut out, &m)
                        .map_err(std::io::Error::from)
                        .and_then(|()| writeln!(out))
                        .err();
                }
            })
            .await?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    } else if args.timeline {
        for (c, days) in found.iter().zip(&clusters.days) {
            let t = timeline::timeline(&c.id, days);
            match args.json {
                true => {
                    serde_json::to_writer(&mut out, &t)?;
                    writeln!(out)?;
                }
                false => write_timeline(&mut out, &t)?,
            }
        }
    } else if args.json {
        // The shape GET /v1/campaigns answers, one campaign at a time.
        write!(out, "{{\"campaigns\": [")?;
        for (i, c) in found.iter().enumerate() {
            if i > 0 {
                write!(out, ",")?;
            }
            write!(out, "\n  ")?;
            serde_json::to_writer(&mut out, c)?;
        }
        writeln!(out, "\n]}}")?;
    } else if found.is_empty() {
        writeln!(
            out,
            "no campaigns of {} or more repositories in the store",
            args.min_repositories
        )?;
    } else {
        write_campaigns(&mut out, found)?;
    }
    out.flush()?;
    Ok(())
}
