//! `hoptrace campaigns`: clusters of flagged repositories from the store (walked, never
//! loaded whole), their timelines and their members, written as they are made; or from a
//! running server (`--server`: `GET /v1/campaigns`, page by page).

use std::io::Write;

use crate::campaigns::{timeline, Campaign, Clusters};

use super::client::{open_store, with_query, Remote};
use super::*;

pub(super) async fn campaigns(args: CampaignsArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let defang = args.defang || config.output.defang;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(remote) = Remote::new(&args.server)? {
        if args.timeline || args.members.is_some() {
            return Err(usage(anyhow::anyhow!(
                "--timeline and --members walk the store itself: run them where the store is \
                 (or stop the server for a moment)"
            )));
        }
        let found = remote_campaigns(&remote, args.min_repositories).await?;
        let found = match defang {
            true => defanged(&found)?,
            false => found,
        };
        write_summaries(&mut out, &found, args.json, args.min_repositories)?;
        out.flush()?;
        return Ok(());
    }
    let store = open_store(&config, true).await?;
    let mut clusters = Clusters::build(&store, args.min_repositories).await?;
    for e in &clusters.damaged.errors {
        eprintln!("hoptrace: skipped a damaged record: {e}");
    }
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
                    let m = match defang {
                        true => defanged(&m),
                        false => Ok(m),
                    };
                    failed = m
                        .and_then(|m| serde_json::to_writer(&mut out, &m).map_err(Into::into))
                        .and_then(|()| writeln!(out))
                        .err();
                }
            })
            .await?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    } else if args.timeline {
        for (c, days) in clusters.campaigns.iter().zip(&clusters.days) {
            // Ids (`landing:example.com`) stay as written: they are what --campaign takes.
            let t = timeline::timeline(&c.id, days);
            match args.json {
                true => {
                    serde_json::to_writer(&mut out, &t)?;
                    writeln!(out)?;
                }
                false => write_timeline(&mut out, &t)?,
            }
        }
    } else {
        let found = match defang {
            true => defanged(&clusters.campaigns)?,
            false => std::mem::take(&mut clusters.campaigns),
        };
        write_summaries(&mut out, &found, args.json, args.min_repositories)?;
    }
    out.flush()?;
    Ok(())
}

/// Every campaign the server knows, page by page.
async fn remote_campaigns(remote: &Remote, min: usize) -> Result<Vec<Campaign>, Failure> {
    let min = min.to_string();
    let mut cursor: Option<String> = None;
    let mut found = Vec::new();
    loop {
        let path = with_query(
            "/v1/campaigns",
            &[
                ("min_repositories", Some(&min)),
                ("limit", Some("1000")),
                ("cursor", cursor.as_deref()),
            ],
        );
        let page = remote.json(http::Method::GET, &path, None).await?;
        found.extend(serde_json::from_value::<Vec<Campaign>>(
            page["campaigns"].clone(),
        )?);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(found),
        }
    }
}

/// The campaigns as `GET /v1/campaigns` answers (one campaign at a time) or as a table.
fn write_summaries(
    out: &mut impl Write,
    found: &[Campaign],
    json: bool,
    min: usize,
) -> std::io::Result<()> {
    if json {
        write!(out, "{{\"campaigns\": [")?;
        for (i, c) in found.iter().enumerate() {
            if i > 0 {
                write!(out, ",")?;
            }
            write!(out, "\n  ")?;
            serde_json::to_writer(&mut *out, c)?;
        }
        writeln!(out, "\n]}}")
    } else if found.is_empty() {
        writeln!(
            out,
            "no campaigns of {min} or more repositories in the store"
        )
    } else {
        write_campaigns(out, found)
    }
}
