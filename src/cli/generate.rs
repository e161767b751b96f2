//! What the command line says about itself, for shells and `man`: completion scripts
//! (clap_complete) and manual pages (clap_mangen), both made from the arguments in [`args`].
//!
//! [`args`]: super::args

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use super::{CompletionsArgs, Failure, ManArgs};

pub(super) fn completions(args: CompletionsArgs) -> Result<(), Failure> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "hoptrace", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(())
}

pub(super) fn man(args: ManArgs) -> Result<(), Failure> {
    let cmd = super::Cli::command();
    match args.dir {
        Some(dir) => {
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .and_then(|_| out.flush())
                .context("writing the manual page")?;
        }
    }
    Ok(())
}
