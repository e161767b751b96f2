//! Many links through the one resolver: [`Resolver::resolve_each`] for a list held whole (an
//! API batch, a scanned document's links), [`Batch`] for a stream of any length (`hoptrace
//! resolve`). Both answer in input order; every visit takes its slot of the resolver's one
//! admission, so neither adds to `limits.concurrency`.
//!
//! A [`Batch`] reads its input only as fast as answers are taken, keeps a window of
//! resolutions in flight (finished ones wait for an earlier slow one there, so one slow link
//! does not stop new ones from starting), and hands answers out in groups, each group kept by
//! the store before it is handed out: one flush covers many Traces.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use super::{Lookup, Resolved, Resolver, Unstored, VisitorError};
use crate::input::Link;
use crate::store::{Store, StoreError};
use crate::trace::Trace;

/// One input of a batch.
#[derive(Debug)]
pub enum Entry {
    /// A link to resolve.
    Link(Link),
    /// An input answered without resolving (a line that cannot be a link): its Trace keeps
    /// its place in the output.
    Answered(Box<Trace>),
}

impl Entry {
    pub fn answered(trace: Trace) -> Entry {
        Entry::Answered(Box::new(trace))
    }

    /// `input` parsed once; one that is no URL is answered as an input error.
    pub fn parse(input: String) -> Entry {
        Entry::checked(Link::parse(input.as_str()), &input)
    }

    /// [`Entry::parse`], and only a web URL is a link (what the API resolves).
    pub fn web(input: String) -> Entry {
        Entry::checked(Link::web(input.as_str()), &input)
    }

    fn checked(parsed: Result<Link, crate::input::InputError>, input: &str) -> Entry {
        match parsed {
            Ok(link) => Entry::Link(link),
            Err(e) => Entry::answered(Trace::input_error(input, e.to_string())),
        }
    }
}

/// Why a batch stopped.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// The input failed (reading stdin, say).
    #[error(transparent)]
    Input(E),
    /// The store could not keep a group.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a resolution task failed: {0}")]
    Task(#[from] JoinError),
}

/// A stream of links resolved as one visitor, in input order.
pub struct Batch {
    resolver: Arc<Resolver>,
    profile: String,
    via: String,
    lookup: Lookup,
}

impl Batch {
    /// A batch resolved as the profile `profile` going out through `via` (checked here, so a
    /// wrong name fails before any input is read).
    pub fn new(
        resolver: Arc<Resolver>,
        profile: &str,
        via: &str,
        lookup: Lookup,
    ) -> Result<Batch, VisitorError> {
        resolver.visitor(profile, via)?;
        Ok(Batch {
            resolver,
            profile: profile.to_string(),
            via: via.to_string(),
            lookup,
        })
    }

    /// Starts resolving `entries`; the answers come from the [`Groups`].
    pub fn run<E, S>(self, entries: S) -> Groups<E>
    where
        E: Send + 'static,
        S: Stream<Item = Result<Entry, E>> + Send + 'static,
    {
        let window = self.resolver.admission().capacity().saturating_mul(4);
        let store = self.resolver.store().cloned();
        let (tx, rx) = mpsc::channel::<Resolved>(window);
        let producer = tokio::spawn(self.produce(entries, window, tx));
        // With the store on, answers wait longer for one another, and in larger groups than
        // the window (they leave the channel as they come, so the resolutions go on): a flush
        // is cheaper per Trace the more it covers (`cargo bench --bench store`: 92 µs of CPU a
        // Trace in groups of 8, 54 in groups of 32, 38 in groups of 512).
        let (gather, group) = match store {
            Some(_) => (GATHER_STORED, GROUP_STORED.max(window)),
            None => (GATHER, window),
        };
        Groups {
            rx,
            producer: Some(producer),
            store,
            gather,
            group,
        }
    }

    /// Each entry's resolution is its own task (they spread over the cores); its visit waits
    /// for one of the resolver's slots. Answers go to `tx` in input order.
    async fn produce<E, S>(
        self,
        entries: S,
        window: usize,
        tx: mpsc::Sender<Resolved>,
    ) -> Result<(), BatchError<E>>
    where
        E: Send + 'static,
        S: Stream<Item = Result<Entry, E>> + Send + 'static,
    {
        let this = Arc::new(self);
        let mut answers = std::pin::pin!(entries
            .map(|entry| {
                let this = this.clone();
                tokio::spawn(async move {
                    match entry.map_err(BatchError::Input)? {
                        Entry::Answered(trace) => {
                            Ok::<_, BatchError<E>>(Resolved::unstored(*trace))
                        }
                        // Boxed: the resolution's state is ~5 KB, and a task's future is
                        // moved whole as the task is made and finished.
                        Entry::Link(link) => Ok(Box::pin(this.one(&link)).await),
                    }
                })
            })
            .buffered(window.max(1)));
        while let Some(joined) = answers.next().await {
            if tx.send(joined??).await.is_err() {
                break; // the reader of the answers stopped
            }
        }
        Ok(())
    }

    async fn one(&self, link: &Link) -> Resolved {
        let resolution = self
            .resolver
            .resolve_link_as(link, &self.profile, &self.via, self.lookup);
        // The profile and the way out were checked in `Batch::new`.
        resolution
            .await
            .unwrap_or_else(|e| Resolved::unstored(Trace::input_error(link.input(), e.to_string())))
    }
}

/// A running [`Batch`]'s answers, a group at a time.
pub struct Groups<E> {
    rx: mpsc::Receiver<Resolved>,
    producer: Option<JoinHandle<Result<(), BatchError<E>>>>,
    store: Option<Store>,
    gather: Duration,
    group: usize,
}

impl<E> Groups<E> {
    /// The next answers in input order, on disk when the resolver has a store; `None` once
    /// every entry is answered.
    ///
    /// Answers wait for one another a little: woken for each, a reader that prints them is
    /// woken thousands of times a second, every wake a futex call and a switch. The last ones
    /// come as soon as input ends.
    pub async fn next(&mut self) -> Result<Option<Vec<Resolved>>, BatchError<E>> {
        let Some(first) = self.rx.recv().await else {
            return match self.producer.take() {
                Some(producer) => producer.await?.map(|()| None),
                None => Ok(None),
            };
        };
        let mut ready = Vec::with_capacity(self.group);
        ready.push(first);
        let until = tokio::time::Instant::now() + self.gather;
        loop {
            while ready.len() < self.group {
                match self.rx.try_recv() {
                    Ok(answer) => ready.push(answer),
                    Err(_) => break,
                }
            }
            let now = tokio::time::Instant::now();
            if ready.len() >= self.group || self.rx.is_closed() || now >= until {
                break;
            }
            tokio::time::sleep((until - now).min(GATHER)).await;
        }
        if let Some(store) = &self.store {
            store.flush().await?;
        }
        Ok(Some(ready))
    }
}

/// How long an answer may wait for others to be handed out with it (and how often a longer
/// wait looks whether a group's worth has come).
const GATHER: Duration = Duration::from_millis(5);
/// How long an answer may wait for others to share its flush of the store: unnoticed by a
/// person, and long enough at full speed (~6,000 a second here) to fill a window.
const GATHER_STORED: Duration = Duration::from_millis(50);
/// The most answers that share one flush of the store (~3 MB of Traces).
const GROUP_STORED: usize = 1024;

impl Resolver {
    /// Resolves `links` at once as `lookup` says, answering in their order (each visit takes
    /// an admission slot; answers from the cache or another caller's visit take none).
    pub async fn resolve_each(
        &self,
        links: &[Link],
        lookup: Lookup,
    ) -> Vec<Result<Resolved, Unstored>> {
        futures_util::future::join_all(links.iter().map(|l| self.resolve_link(l, lookup))).await
    }

    /// [`Resolver::resolve_each`] of `entries`, each answered whether or not the store kept
    /// it (a scan's links).
    pub async fn answer_each(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        lookup: Lookup,
    ) -> Vec<Trace> {
        let answers = entries.into_iter().map(|entry| async move {
            match entry {
                Entry::Link(link) => Resolved::kept_or_not(self.resolve_link(&link, lookup).await),
                Entry::Answered(trace) => Resolved::unstored(*trace),
            }
            .trace
        });
        futures_util::future::join_all(answers).await
    }

    /// Resolves `link` as each visitor of `matrix` (profile, way out) at once, each visit its
    /// own (no cache), answering in the matrix's order.
    pub async fn resolve_matrix(
        &self,
        link: &Link,
        matrix: &[(String, String)],
    ) -> Vec<Result<Resolved, VisitorError>> {
        let cells = matrix
            .iter()
            .map(|(profile, via)| self.resolve_link_as(link, profile, via, Lookup::Refresh));
        futures_util::future::join_all(cells).await
    }
}
