//! Many links through the one resolver: [`Resolver::resolve_each`] for a list held whole (an
//! API batch, a scanned document's links), [`Batch`] for a stream of any length (`hoptrace
//! resolve`). Both answer in input order; every visit takes its slot of the resolver's one
//! admission, so neither adds to `limits.concurrency`.
//!
//! A [`Batch`] reads its input only as fast as answers are taken, keeps a window of
//! resolutions in flight (finished ones wait for an earlier slow one there, so one slow link
//! does not stop new ones from starting), and hands answers out in groups, each group kept by
//! the store before it is handed out: one flush covers many Traces. [`Batch::each`] is the
//! same engine for other work through the resolver (`hoptrace scan`'s documents, whose
//! repository records share their group's flush).
//!
//! What a crash loses: writers in a batch queue their writes for the next flush, and the
//! flush runs before each group is handed out. A crash between two flushes loses the writes
//! of the answers not yet handed out (at most a group and the window in flight) and nothing
//! that was: no line a user saw printed is lost, and a scan resumed after the crash scans the
//! lost repositories again (a repository record whose Traces were lost is scanned again too).

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
    pub fn run<E, S>(self, entries: S) -> Groups<Resolved, E>
    where
        E: Send + 'static,
        S: Stream<Item = Result<Entry, E>> + Send + 'static,
    {
        let resolver = self.resolver.clone();
        let this = Arc::new(self);
        Batch::each(&resolver, entries, move |entry| {
            let this = this.clone();
            async move {
                match entry {
                    Entry::Answered(trace) => Resolved::unstored(*trace),
                    // Boxed: the resolution's state is ~5 KB, and a task's future is moved
                    // whole as the task is made and finished.
                    Entry::Link(link) => Box::pin(this.one(&link)).await,
                }
            }
        })
    }

    /// The batch engine itself, for any work done through `resolver` (a scan's documents,
    /// each resolving its links): `work` runs on each item of `items` as a task of its own,
    /// at most 4 x `limits.concurrency` items in flight, and the answers come from the
    /// [`Groups`] in input order. Each group is handed out only once the store has flushed
    /// every write queued before it (`Durability::NextFlush` Traces and
    /// `put_repository_later` records alike): what a reader of the groups has seen survives a
    /// crash, and a crash loses at most the writes of answers not yet handed out.
    pub fn each<I, T, E, S, F, Fut>(resolver: &Resolver, items: S, work: F) -> Groups<T, E>
    where
        I: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        S: Stream<Item = Result<I, E>> + Send + 'static,
        F: Fn(I) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let window = resolver.admission().capacity().saturating_mul(4);
        let store = resolver.store().cloned();
        let (tx, rx) = mpsc::channel::<T>(window);
        let jobs = items.map(move |item| item.map(&work));
        let producer = tokio::spawn(produce(jobs, window, tx));
        // With the store on, answers wait longer for one another, and in larger groups than
        // the window (they leave the channel as they come, so the work goes on): a flush is
        // cheaper per write the more it covers (`cargo bench --bench store`: 92 µs of CPU a
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

/// Each item's work is its own task (they spread over the cores); the answers go to `tx` in
/// input order.
async fn produce<T, E, S, Fut>(
    jobs: S,
    window: usize,
    tx: mpsc::Sender<T>,
) -> Result<(), BatchError<E>>
where
    T: Send + 'static,
    E: Send + 'static,
    S: Stream<Item = Result<Fut, E>> + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut answers = std::pin::pin!(jobs
        .map(|job| tokio::spawn(async move {
            Ok::<T, BatchError<E>>(job.map_err(BatchError::Input)?.await)
        }))
        .buffered(window.max(1)));
    while let Some(joined) = answers.next().await {
        if tx.send(joined??).await.is_err() {
            break; // the reader of the answers stopped
        }
    }
    Ok(())
}

/// A running [`Batch`]'s answers, a group at a time.
pub struct Groups<T, E> {
    rx: mpsc::Receiver<T>,
    producer: Option<JoinHandle<Result<(), BatchError<E>>>>,
    store: Option<Store>,
    gather: Duration,
    group: usize,
}

impl<T, E> Groups<T, E> {
    /// The next answers in input order, on disk when the resolver has a store; `None` once
    /// every entry is answered.
    ///
    /// Answers wait for one another a little: woken for each, a reader that prints them is
    /// woken thousands of times a second, every wake a futex call and a switch. The last ones
    /// come as soon as input ends.
    pub async fn next(&mut self) -> Result<Option<Vec<T>>, BatchError<E>> {
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
