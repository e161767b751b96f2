//! The `hoptrace` command line, laid out like ripgrep's: the arguments defined once
//! ([`args`]), one file per command, what a person reads in [`render`], and the client of a
//! running server in [`client`]. `anyhow` lives here and in `main`, at the binary's edge.

mod args;
mod campaigns;
mod client;
mod compare;
mod export;
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
        Command::Campaigns(args) => campaigns::campaigns(args).await,
        Command::Compare(args) => compare::compare(args).await,
        Command::Export(args) => export::export(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Watch(args) => watch::watch(args).await,
        Command::Health(args) => client::health(args).await,
    }
}

/// The items of the batches the iterator `make` builds, produced on a thread of their own
/// (reading input blocks) at most `batches` batches ahead of the consumer; the thread stops
/// when the stream is dropped. Batches, because handing items over one by one woke the
/// thread for every item (a futex wake and a switch: ~3% of `resolve`'s CPU at full speed).
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

/// The URLs named on the command line, with `-` replaced by stdin's lines (blank lines and
/// `#` comments skipped), read about `ahead` lines ahead of the work.
pub(super) fn read_inputs(
    args: Vec<String>,
    ahead: usize,
) -> impl futures_util::Stream<Item = std::io::Result<String>> {
    // One batch of up to `ahead` lines waits while the next is read.
    read_ahead(1, move || {
        args.into_iter()
            .flat_map(move |arg| -> Box<dyn Iterator<Item = _>> {
                if arg != "-" {
                    return Box::new(std::iter::once(vec![Ok(arg)]));
                }
                Box::new(LineBatches {
                    reader: std::io::BufReader::with_capacity(64 << 10, std::io::stdin()),
                    max: ahead.max(1),
                    done: false,
                })
            })
    })
}

/// The links on the lines of `reader`, in batches of at most `max`. A batch ends early where
/// the next line needs a read that may block (a person typing, `tail -f`), so a line never
/// waits for the one after it.
struct LineBatches<R> {
    reader: std::io::BufReader<R>,
    max: usize,
    done: bool,
}

impl<R: std::io::Read> Iterator for LineBatches<R> {
    type Item = Vec<std::io::Result<String>>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        let mut batch = Vec::new();
        let mut line = String::new();
        while !self.done {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    let link = line.trim();
                    if !link.is_empty() && !link.starts_with('#') {
                        batch.push(Ok(link.to_string()));
                    }
                }
                Err(e) => {
                    batch.push(Err(e));
                    self.done = true;
                }
            }
            let would_read = self.reader.buffer().is_empty();
            if batch.len() >= self.max || (would_read && !batch.is_empty()) {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}
