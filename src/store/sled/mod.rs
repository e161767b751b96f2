//! The embedded backend: sled, one process at a time. Traces are group-committed (writers
//! queue, one writes the batch as a transaction and flushes once), `put_later` queues without
//! waiting, and every other write is flushed before it is reported.

mod watches;

use std::collections::hash_map::{Entry, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::encoded::EncodedTrace;
use super::model::{DomainRecord, Event, Observation, RepositoryRecord, WatchRecord};
use super::{Repositories, StoreError, Traces, Watches};
use crate::trace::Trace;
use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::Transactional;
use async_trait::async_trait;

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Db(e.to_string())
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
    durability: Arc<GroupCommit>,
    /// Repository writes since opening (see `Repositories::repositories_version`).
    repositories_version: Arc<std::sync::atomic::AtomicU64>,
}

/// What one batch of Traces writes, together: the Traces, the landing-domain index (domain
/// -> record, and domain NUL input -> ()), and screenshots by SHA-256.
#[derive(Clone)]
struct TraceTrees {
    traces: ::sled::Tree,
    domains: ::sled::Tree,
    domain_inputs: ::sled::Tree,
    screenshots: ::sled::Tree,
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

/// A serialised Trace and what the domain index needs of it.
struct TraceWrite {
    key: String,
    record: EncodedTrace,
    /// The registrable landing domain, the final hop's labels and when it was stored.
    landing: Option<(String, Vec<String>, String)>,
    /// The landing page's screenshot, by its SHA-256.
    screenshot: Option<(String, bytes::Bytes)>,
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
        Ok(SledStore {
            trees: TraceTrees {
                traces: db.open_tree("traces")?,
                domains: db.open_tree("domains")?,
                domain_inputs: db.open_tree("domain_inputs")?,
                screenshots: db.open_tree("screenshots")?,
            },
            repositories: db.open_tree("repositories")?,
            watches: db.open_tree("watches")?,
            watch_due: db.open_tree("watch_due")?,
            observations: db.open_tree("observations")?,
            events: db.open_tree("events")?,
            meta: db.open_tree("meta")?,
            db,
            durability: Arc::default(),
            repositories_version: Default::default(),
        })
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
        let batch = tokio::task::spawn_blocking(move || {
            let writes: Vec<&TraceWrite> = batch.iter().filter_map(|q| q.trace.as_ref()).collect();
            let r = write_traces(&trees, &writes)
                .and_then(|()| db.flush().map(drop).map_err(StoreError::from));
            // A writer that was cancelled meanwhile no longer listens; its write stands.
            for done in batch.into_iter().filter_map(|q| q.done) {
                let _ = done.send(r.clone());
            }
            drop(turn);
        })
        .await;
        if let Err(e) = batch {
            // The batch's writers lost their senders; tell this one what happened.
            return Err(StoreError::Db(format!("store write task failed: {e}")));
        }
        result
            .await
            .unwrap_or_else(|_| Err(StoreError::Db("store write task ended".into())))
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

/// Writes of the watchlist that keep its due-time index in step.
fn trace_write(key: &str, trace: &Trace, now_ms: u64) -> Result<TraceWrite, StoreError> {
    let record = EncodedTrace::encode(trace, now_ms)?;
    let landing = crate::labels::landing_domain(trace).map(|domain| {
        let labels = trace
            .hops
            .last()
            .map(|h| h.labels.clone())
            .unwrap_or_default();
        (domain, labels, crate::trace::rfc3339(now_ms))
    });
    let screenshot = trace.screenshot.clone().and_then(|png| {
        let sha = trace.evidence.as_ref()?.screenshot_sha256.clone()?;
        Some((sha, png))
    });
    Ok(TraceWrite {
        key: key.to_string(),
        record,
        landing,
        screenshot,
    })
}

/// Writes a batch of Traces and their landing-domain index entries in one transaction (all or
/// none), each domain's record read and written once however many Traces landed on it.
fn write_traces(trees: &TraceTrees, writes: &[&TraceWrite]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let result: Result<(), TransactionError<String>> = (
        &trees.traces,
        &trees.domains,
        &trees.domain_inputs,
        &trees.screenshots,
    )
        .transaction(|(traces, domains, inputs, shots)| {
            let mut touched: HashMap<&str, DomainRecord> = HashMap::new();
            for w in writes {
                traces.insert(w.key.as_bytes(), w.record.record())?;
                // By content: a Trace names its screenshot by hash, and equal ones are kept once.
                if let Some((sha, png)) = &w.screenshot {
                    shots.insert(sha.as_bytes(), png.as_ref())?;
                }
                let Some((domain, labels, now)) = &w.landing else {
                    continue;
                };
                let mut link = domain.as_bytes().to_vec();
                link.push(0);
                link.extend_from_slice(w.key.as_bytes());
                let new_input = inputs.insert(link, &[][..])?.is_none();
                let rec = match touched.entry(domain.as_str()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(match domains.get(domain.as_bytes())? {
                        Some(b) => serde_json::from_slice::<DomainRecord>(&b)
                            .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?,
                        None => DomainRecord {
                            domain: domain.clone(),
                            inputs: 0,
                            first_seen: now.clone(),
                            last_seen: now.clone(),
                            labels: Vec::new(),
                        },
                    }),
                };
                if new_input {
                    rec.inputs += 1;
                }
                rec.last_seen = now.clone();
                for l in labels {
                    if !rec.labels.contains(l) {
                        rec.labels.push(l.clone());
                    }
                }
            }
            for (domain, rec) in &touched {
                let bytes = serde_json::to_vec(rec)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                domains.insert(domain.as_bytes(), bytes)?;
            }
            Ok(())
        });
    result.map_err(|e| match e {
        TransactionError::Abort(m) => StoreError::Corrupt(m),
        TransactionError::Storage(e) => StoreError::Db(e.to_string()),
    })
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Traces for SledStore {
    async fn latest(&self, key: &str) -> Result<Option<(Trace, u64)>, StoreError> {
        match self.latest_encoded(key).await? {
            Some(e) => Ok(Some((e.decode()?, e.stored_at_ms()))),
            None => Ok(None),
        }
    }
    async fn latest_encoded(&self, key: &str) -> Result<Option<EncodedTrace>, StoreError> {
        match self.trees.traces.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(EncodedTrace::from_record(&bytes)?)),
            None => Ok(None),
        }
    }
    async fn put(&self, key: &str, trace: &Trace, now_ms: u64) -> Result<(), StoreError> {
        self.commit(Some(trace_write(key, trace, now_ms)?)).await
    }
    async fn put_later(&self, key: &str, trace: &Trace, now_ms: u64) -> Result<(), StoreError> {
        // Queued for the next batch (a `flush` or another writer's `put`), not waited for.
        let write = trace_write(key, trace, now_ms)?;
        lock(&self.durability.queue).push(Queued {
            trace: Some(write),
            done: None,
        });
        Ok(())
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.make_durable().await
    }
    async fn domain(&self, domain: &str) -> Result<Option<DomainRecord>, StoreError> {
        match self
            .trees
            .domains
            .get(domain.to_ascii_lowercase().as_bytes())?
        {
            Some(b) => Ok(Some(decode(&b, "domain")?)),
            None => Ok(None),
        }
    }
    async fn domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        decode_all(&self.trees.domains, "domain")
    }
    async fn traces_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Trace, u64)>, StoreError> {
        use std::ops::Bound;
        let from = match after {
            Some(k) => Bound::Excluded(k.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.trees
            .traces
            .range::<Vec<u8>, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let e = EncodedTrace::from_record(&v)?;
                Ok((key, e.decode()?, e.stored_at_ms()))
            })
            .collect()
    }
    async fn screenshot(&self, sha256: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        Ok(self
            .trees
            .screenshots
            .get(sha256.as_bytes())?
            .map(|v| bytes::Bytes::copy_from_slice(&v)))
    }
    async fn domain_inputs(&self, domain: &str) -> Result<Vec<String>, StoreError> {
        let mut prefix = domain.to_ascii_lowercase().into_bytes();
        prefix.push(0);
        self.trees
            .domain_inputs
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[prefix.len()..]).into_owned()))
            .collect()
    }
}
