//! The `hoptrace` command line, laid out like ripgrep's: the arguments defined once
//! ([`args`]), one file per command, what a person reads in [`render`], and the client of a
//! running server in [`client`]. `anyhow` lives here and in `main`, at the binary's edge.

mod args;
mod campaigns;
mod client;
mod compare;
mod export;
mod generate;
mod hub;
mod lines;
pub mod render;
mod resolve;
mod scan;
mod serve;
mod watch;

pub use args::*;
pub use render::write_human;
use render::*;

use futures_util::stream::{self, StreamExt};

/// Exit status for usage and configuration errors (as clap uses for usage errors).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the work could not run (for example the database is locked).
pub const EXIT_FAILURE: i32 = 1;

/// A failure with the exit status it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: EXIT_FAILURE,
            error: e.into(),
        }
    }
}

pub(super) fn usage(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_USAGE,
        error,
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Resolve(args) => resolve::resolve(args).await,
        Command::Scan(args) => scan::scan(args).await,
        Command::Hub(args) => hub::hub(args).await,
        Command::Campaigns(args) => campaigns::campaigns(args).await,
        Command::Compare(args) => compare::compare(args).await,
        Command::Export(args) => export::export(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Watch(args) => watch::watch(args).await,
        Command::Health(args) => client::health(args).await,
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    }
}

/// The items of the batches the iterator `make` builds, produced on a thread of their own
/// (reading input blocks) at most `batches` batches ahead of the consumer; the thread stops
/// when the stream is dropped. Batches, because handing items over one by one woke the
/// thread for every item (a futex wake and a switch each).
pub(super) fn read_ahead<I, T>(
    batches: usize,
    make: impl FnOnce() -> I + Send + 'static,
) -> impl futures_util::Stream<Item = T>
where
    I: Iterator<Item = Vec<T>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<T>>(batches.max(1));
    std::thread::spawn(move || {
        for batch in make() {
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
        .flat_map(stream::iter)
}
