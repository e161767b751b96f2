//! The embedded backend: sled, one process at a time. Traces are group-committed (writers
//! queue, one writes the batch as a transaction and flushes once), `put_later` queues without
//! waiting, and every other write is flushed before it is reported.

mod hot;
mod order;
mod traces;
mod watches;

use std::path::Path;
use std::sync::Arc;

use super::StoreError;
use traces::{TraceTrees, TraceWrite};

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// A transaction aborted with a record it could not read, or failed in sled.
impl From<::sled::transaction::TransactionError<String>> for StoreError {
    fn from(e: ::sled::transaction::TransactionError<String>) -> Self {
        match e {
            ::sled::transaction::TransactionError::Abort(m) => StoreError::Corrupt(m),
            ::sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
        }
    }
}

/// sled's page cache, smaller than its default (1 GiB) so a long batch's memory stays bounded;
/// pages it drops are read back from the OS's file cache (a 100,000-URL batch ran as fast
/// with 128 MiB as with 1 GiB).
const CACHE_BYTES: u64 = 128 << 20;

/// The database. One per process: sled locks its folder.
#[derive(Clone)]
pub struct SledStore {
    db: ::sled::Db,
    trees: TraceTrees,
    /// Scanned repositories (`namespace/name` -> the scan's record), for resuming a scan and
    /// for campaigns.
    repositories: ::sled::Tree,
    /// Watched links (URL -> record), their due times (`due ms` big-endian + URL -> ()),
    /// observations (URL NUL `at ms` -> record), events (id big-endian -> record), and small
    /// counters such as the webhook's cursor.
    watches: ::sled::Tree,
    watch_due: ::sled::Tree,
    observations: ::sled::Tree,
    events: ::sled::Tree,
    meta: ::sled::Tree,
    /// The Traces read most, decompressed (kept in step with the writes by `commit`).
    hot: Arc<hot::Hot>,
    /// Told of each batch's keys where `hot` forgets them (see `Traces::on_write`).
    listeners: Arc<Listeners>,
    durability: Arc<GroupCommit>,
    /// Repository writes by version (big-endian id -> a replaced flag byte and the name; a
    /// name's earlier write removed), and each name's version: `Repositories::repositories_since`.
    repository_log: ::sled::Tree,
    repository_at: ::sled::Tree,
    /// Held while a write takes its version and enters the log: entries appear in version
    /// order, so a reader of the log never passes one that comes later.
    logging: Arc<std::sync::Mutex<()>>,
}

/// Group commit: writers queue what they want written and the first one to get the turn
/// writes everything queued so far as one sled transaction, flushes once, and hands every
/// writer in that batch its result. One writer at a time touches the trace and domain trees,
/// so a hot landing domain (thousands of inputs ending on one site) costs one read-modify-write
/// per batch instead of a transaction conflict per Trace; and concurrent writers share an
/// fsync. (sled 0.34's `flush_async` deadlocks when called concurrently, sled issue #1308, so
/// flushes are serialised and blocking.)
#[derive(Default)]
struct GroupCommit {
    queue: std::sync::Mutex<Vec<Queued>>,
    /// Held by the batch being written until it is flushed, even if the writer that started
    /// it is cancelled: never two flushes at once.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// One writer's part of a batch: a Trace to store (or nothing: a writer that only needs its
/// earlier direct writes on disk), and where its result goes (nowhere for `put_later`).
struct Queued {
    trace: Option<TraceWrite>,
    done: Option<tokio::sync::oneshot::Sender<Result<(), StoreError>>>,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = ::sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match &e {
                ::sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().to_ascii_lowercase().contains("lock") =>
                {
                    StoreError::Locked {
                        path: path.to_path_buf(),
                    }
                }
                _ => StoreError::Open {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                },
            })?;
        let store = SledStore {
            trees: TraceTrees {
                traces: db.open_tree("traces")?,
                domains: db.open_tree("domains")?,
                domain_inputs: db.open_tree("domain_inputs")?,
                screenshots: db.open_tree("screenshots")?,
                search: db.open_tree("search")?,
                domain_order: db.open_tree("domain_order")?,
            },
            repositories: db.open_tree("repositories")?,
            repository_log: db.open_tree("repository_log")?,
            repository_at: db.open_tree("repository_at")?,
            logging: Arc::default(),
            watches: db.open_tree("watches")?,
            watch_due: db.open_tree("watch_due")?,
            observations: db.open_tree("observations")?,
            events: db.open_tree("events")?,
            meta: db.open_tree("meta")?,
            db,
            hot: Arc::default(),
            listeners: Arc::default(),
            durability: Arc::default(),
        };
        store.index_stored()?;
        store.order_stored()?;
        Ok(store)
    }

    /// Writes the search terms of Traces stored before the index existed, once per store,
    /// on a thread of its own (a large store is searchable at once; its older Traces become
    /// findable by exact value as the thread reaches them).
    fn index_stored(&self) -> Result<(), StoreError> {
        const DONE: &[u8] = b"search-indexed";
        if self.meta.get(DONE)?.is_some() {
            return Ok(());
        }
        if self.trees.traces.is_empty() {
            self.meta.insert(DONE, &[][..])?;
            return Ok(());
        }
        let (traces, search, meta) = (
            self.trees.traces.clone(),
            self.trees.search.clone(),
            self.meta.clone(),
        );
        std::thread::spawn(move || {
            let indexed = traces.iter().try_for_each(|kv| {
                let (k, v) = kv?;
                let key = String::from_utf8_lossy(&k);
                let Ok(trace) = traces::record_of(&v).and_then(|e| Ok(e.decode()?)) else {
                    return Ok(());
                };
                for t in crate::store::search::terms(&trace) {
                    search.insert(traces::search_key(&t, &key), &[][..])?;
                }
                Ok::<(), ::sled::Error>(())
            });
            match indexed.and_then(|()| meta.insert(DONE, &[][..]).map(drop)) {
                Ok(()) => tracing::info!("search index: stored traces indexed"),
                Err(e) => tracing::warn!("search index: indexing stored traces failed: {e}"),
            }
        });
        Ok(())
    }

    /// Orders the domain index of a store written before its orders were kept (once per
    /// store; the index holds one record per landing domain, few beside the Traces).
    fn order_stored(&self) -> Result<(), StoreError> {
        const DONE: &[u8] = b"domains-ordered";
        if self.meta.get(DONE)?.is_none() {
            order::rebuild(&self.trees.domain_order, &self.trees.domains)?;
            self.meta.insert(DONE, &[][..])?;
        }
        Ok(())
    }

    /// Queues `write` for the next batch, without waiting for it.
    fn queue(&self, write: TraceWrite) {
        lock(&self.durability.queue).push(Queued {
            trace: Some(write),
            done: None,
        });
    }

    /// Returns once every write made so far is on disk.
    async fn make_durable(&self) -> Result<(), StoreError> {
        self.commit(None).await
    }

    /// Queues `write`, then waits for a batch that includes it to be written and flushed:
    /// a batch another writer ran, or one this call runs when its turn comes first.
    async fn commit(&self, write: Option<TraceWrite>) -> Result<(), StoreError> {
        let gc = &self.durability;
        let (done, mut result) = tokio::sync::oneshot::channel();
        lock(&gc.queue).push(Queued {
            trace: write,
            done: Some(done),
        });
        // The turn is fair (FIFO) and a batch's results are sent before its turn ends, so
        // when this call's turn comes its write is either done or still queued.
        let turn = gc.turn.clone().lock_owned().await;
        if let Ok(r) = result.try_recv() {
            return r;
        }
        let batch = std::mem::take(&mut *lock(&gc.queue));
        let (trees, db) = (self.trees.clone(), self.db.clone());
        let (hot, listeners) = (self.hot.clone(), self.listeners.clone());
        let batch = tokio::task::spawn_blocking(move || {
            let writes: Vec<&TraceWrite> = batch.iter().filter_map(|q| q.trace.as_ref()).collect();
            let written = traces::write_traces(&db, &trees, &writes);
            // Before any writer hears of it: none of them may read an older Trace after.
            hot.forget(writes.iter().map(|w| w.key()));
            listeners.tell(writes.iter().map(|w| w.key()));
            let r = written.and_then(|()| db.flush().map(drop).map_err(StoreError::from));
            // A writer that was cancelled meanwhile no longer listens; its write stands.
            for done in batch.into_iter().filter_map(|q| q.done) {
                let _ = done.send(r.clone());
            }
            drop(turn);
        })
        .await;
        if let Err(e) = batch {
            // The batch's writers lost their senders; tell this one what happened.
            return Err(StoreError::WriteLost(e.to_string()));
        }
        result
            .await
            .unwrap_or_else(|_| Err(StoreError::WriteLost("its writer went away".into())))
    }
}

/// Whoever asked to hear of Trace writes.
#[derive(Default)]
struct Listeners(std::sync::RwLock<Vec<super::WriteListener>>);

impl Listeners {
    fn add(&self, listener: super::WriteListener) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    fn tell<'a>(&self, keys: impl Iterator<Item = &'a str> + Clone) {
        let listeners = self.0.read().unwrap_or_else(|p| p.into_inner());
        for listener in listeners.iter() {
            keys.clone().for_each(|key| listener(key));
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, e))
}

/// Every record of `tree`, in key order.
fn decode_all<T: serde::de::DeserializeOwned>(
    tree: &::sled::Tree,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    tree.iter().values().map(|v| decode(&v?, what)).collect()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
