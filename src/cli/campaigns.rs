//! `hoptrace campaigns`: clusters of flagged repositories from the store, or from a running
//! server (`--server`: `GET /v1/campaigns`, page by page).

use std::io::Write;

use crate::campaigns::Campaign;

use super::client::{open_store, with_query, Remote};
use super::*;

pub(super) async fn campaigns(args: CampaignsArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let found = match Remote::new(&args.server)? {
        Some(remote) => {
            let (min, mut offset) = (args.min_repositories.to_string(), Some(0u64));
            let mut found = Vec::new();
            while let Some(at) = offset {
                let at = at.to_string();
                let path = with_query(
                    "/v1/campaigns",
                    &[
                        ("min_repositories", Some(&min)),
                        ("limit", Some("1000")),
                        ("offset", Some(&at)),
                    ],
                );
                let page = remote.json(http::Method::GET, &path, None).await?;
                found.extend(serde_json::from_value::<Vec<Campaign>>(
                    page["campaigns"].clone(),
                )?);
                offset = page["next_offset"].as_u64();
            }
            found
        }
        None => {
            let store = open_store(&config, true).await?;
            let records = store.repositories().await?;
            crate::campaigns::cluster(records, args.min_repositories)
        }
    };
    let found = match args.defang || config.output.defang {
        true => defanged(&found)?,
        false => found,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "campaigns": found }))?;
        writeln!(out)?;
    } else if found.is_empty() {
        writeln!(
            out,
            "no campaigns of {} or more repositories in the store",
            args.min_repositories
        )?;
    } else {
        write_campaigns(&mut out, &found)?;
    }
    out.flush()?;
    Ok(())
}
