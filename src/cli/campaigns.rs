//! `hoptrace campaigns`: clusters of flagged repositories from the store.

use std::io::Write;

use crate::store::Store;

use super::*;

pub(super) async fn campaigns(args: CampaignsArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let store = Store::open(&config.storage).await?;
    let records = store.repositories().await?;
    let found = crate::campaigns::cluster(records, args.min_repositories);
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
