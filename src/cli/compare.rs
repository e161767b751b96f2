//! `hoptrace compare`: one link as several visitors, without the store (each cell is a visit
//! of its own, and the store keeps what the default visitor sees).

use std::io::Write;

use crate::chain::Resolver;

use super::*;

pub(super) async fn compare(args: CompareArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let resolver = Resolver::new(&config, None).map_err(|e| usage(e.into()))?;
    let found = crate::compare::compare(&resolver, &args.url, &args.profiles, &args.via)
        .await
        .map_err(|e| usage(e.into()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &found)?;
        writeln!(out)?;
    } else {
        write_comparison(&mut out, &found)?;
    }
    out.flush()?;
    Ok(())
}
