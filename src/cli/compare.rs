//! `hoptrace compare`: one link as several visitors, without the store (each cell is a visit
//! of its own, and the store keeps what the default visitor sees); or by a running server
//! (`--server`: `POST /v1/compare`).

use std::io::Write;

use crate::chain::Resolver;
use crate::compare::Comparison;

use super::client::Remote;
use super::*;

pub(super) async fn compare(args: CompareArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let found = match Remote::new(&args.server)? {
        Some(remote) => {
            let body = serde_json::json!({
                "url": args.url, "profiles": args.profiles, "via": args.via,
            });
            let answer = remote
                .json(http::Method::POST, "/v1/compare", Some(body))
                .await?;
            serde_json::from_value::<Comparison>(answer)?
        }
        None => {
            let resolver = Resolver::new(&config, None).map_err(|e| usage(e.into()))?;
            crate::compare::compare(&resolver, &args.url, &args.profiles, &args.via)
                .await
                .map_err(|e| usage(e.into()))?
        }
    };
    let found = match args.defang || config.output.defang {
        true => defanged(&found)?,
        false => found,
    };
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
