//! Traces in sled: one key per Trace, and the landing-domain index kept in step with them.
//!
//! sled's cost is per key written (whatever its size), so
//! a Trace is one key. What the index needs from the past is in that key's value: the
//! registrable domains the input has landed on before ([`Landings`], in front of the
//! [`EncodedTrace`] record), so "is this a new input for that domain?" is a read, not a key
//! per (domain, input). The inputs a domain gained are written once per batch as one key
//! (`domain NUL NUL id` -> JSON list), however many Traces of the batch landed there.
//!
//! Stores written before this form have a key per (domain, input) (`domain NUL input` ->
//! nothing) and Trace values without [`Landings`]; both are still read, and such an input's
//! earlier domains are looked up among those keys.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::BTreeSet;

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::Transactional;
use async_trait::async_trait;

use super::{decode, decode_all, SledStore};
use crate::store::encoded::EncodedTrace;
use crate::store::model::{DomainPage, DomainQuery, DomainRecord};
use crate::store::{Durability, SearchPage, SearchQuery, StoreError, Traces};
use crate::trace::{Label, Trace};

/// What one batch of Traces writes, together: the Traces, the landing-domain index (domain
/// -> record, and the inputs that landed on each), and screenshots and landing pages' HTML
/// by content (see `store::blobs`).
#[derive(Clone)]
pub(super) struct TraceTrees {
    pub traces: ::sled::Tree,
    pub domains: ::sled::Tree,
    pub domain_inputs: ::sled::Tree,
    pub screenshots: ::sled::Tree,
    /// The search index: `term NUL key` -> nothing (see `store::search`).
    pub search: ::sled::Tree,
    /// The domain index in each order it is paged by (see `order`).
    pub domain_order: ::sled::Tree,
}

/// A serialised Trace and what the domain index needs of it.
pub(super) struct TraceWrite {
    key: String,
    /// The [`EncodedTrace`] record (compressed), ready to store.
    record: Vec<u8>,
    /// The registrable landing domain, the final hop's labels and when it was stored.
    landing: Option<(String, Vec<Label>, String)>,
    /// The landing page's screenshot and HTML, by their keys.
    blobs: Vec<(String, bytes::Bytes)>,
    /// The Trace's search index terms.
    terms: Vec<String>,
}

impl TraceWrite {
    pub(super) fn key(&self) -> &str {
        &self.key
    }
}

/// Marks a Trace value that starts with its [`Landings`] (an [`EncodedTrace`] record starts
/// with 1, 2 or `{`).
const LANDINGS_TAG: u8 = 3;
/// How many domains an input's value remembers; older ones move to a key of their own.
const MAX_LANDINGS: usize = 16;

/// The registrable domains an input has landed on (oldest first), and whether that is all
/// of them: when not, the others are keys `domain NUL input` in the index (written before
/// this form, or moved out of a full list).
#[derive(Debug, Clone, PartialEq)]
struct Landings {
    domains: Vec<String>,
    complete: bool,
}

impl Landings {
    /// Splits a stored Trace value into its landings and its [`EncodedTrace`] record.
    fn split(value: &[u8]) -> Result<(Landings, &[u8]), StoreError> {
        let corrupt = || StoreError::Corrupt("a trace's landing domains are damaged".into());
        if value.first() != Some(&LANDINGS_TAG) {
            // Written before landings were kept: its domains are keys of their own.
            return Ok((
                Landings {
                    domains: Vec::new(),
                    complete: false,
                },
                value,
            ));
        }
        let (&flags, rest) = value
            .get(1..)
            .and_then(<[u8]>::split_first)
            .ok_or_else(corrupt)?;
        let (&count, mut rest) = rest.split_first().ok_or_else(corrupt)?;
        let mut domains = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or_else(corrupt)?;
            let name = tail.get(..len as usize).ok_or_else(corrupt)?;
            domains.push(String::from_utf8(name.to_vec()).map_err(|_| corrupt())?);
            rest = &tail[len as usize..];
        }
        Ok((
            Landings {
                domains,
                complete: flags & 1 == 1,
            },
            rest,
        ))
    }

    /// Notes `domain`; returns the domains that no longer fit (oldest first), which the caller
    /// keeps as keys of their own.
    fn add(&mut self, domain: &str) -> Vec<String> {
        if self.domains.iter().any(|d| d == domain) {
            return Vec::new();
        }
        let out = if domain.len() > u8::MAX as usize {
            // Too long for its length byte.
            vec![domain.to_string()]
        } else {
            self.domains.push(domain.to_string());
            let over = self.domains.len().saturating_sub(MAX_LANDINGS);
            self.domains.drain(..over).collect()
        };
        if !out.is_empty() {
            self.complete = false;
        }
        out
    }

    /// The value to store: these landings, then `record`.
    fn value(&self, record: &[u8]) -> Vec<u8> {
        let names: usize = self.domains.iter().map(|d| d.len() + 1).sum();
        let mut v = Vec::with_capacity(3 + names + record.len());
        v.extend_from_slice(&[LANDINGS_TAG, self.complete as u8, self.domains.len() as u8]);
        for d in &self.domains {
            v.push(d.len() as u8);
            v.extend_from_slice(d.as_bytes());
        }
        v.extend_from_slice(record);
        v
    }
}

/// The key of one input that landed on `domain`, in the older form.
fn link(domain: &str, input: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(domain.len() + 1 + input.len());
    k.extend_from_slice(domain.as_bytes());
    k.push(0);
    k.extend_from_slice(input.as_bytes());
    k
}

/// The key of the inputs `domain` gained in the batch numbered `id`.
fn group(domain: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(domain.len() + 10);
    k.extend_from_slice(domain.as_bytes());
    k.extend_from_slice(&[0, 0]);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn trace_write(key: &str, trace: &Trace, encoded: &EncodedTrace) -> TraceWrite {
    let record = encoded.record();
    let now_ms = encoded.stored_at_ms();
    let landing = crate::labels::landing_domain(trace).map(|domain| {
        let labels = trace
            .hops
            .last()
            .map(|h| h.labels.clone())
            .unwrap_or_default();
        (domain, labels, crate::trace::rfc3339(now_ms))
    });
    TraceWrite {
        key: key.to_string(),
        record,
        landing,
        blobs: crate::store::blobs(trace),
        terms: crate::store::search::terms(trace),
    }
}

/// The search index key of `term` for the Trace under `key`.
pub(super) fn search_key(term: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(term.len() + 1 + key.len());
    k.extend_from_slice(term.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn abort(e: impl std::fmt::Display) -> ConflictableTransactionError<String> {
    ConflictableTransactionError::Abort(e.to_string())
}

/// Writes a batch of Traces and their landing-domain index entries in one transaction (all or
/// none): a key per Trace, and per domain the batch landed on, its record and the inputs it
/// gained, each written once however many Traces landed there.
pub(super) fn write_traces(
    db: &::sled::Db,
    trees: &TraceTrees,
    writes: &[&TraceWrite],
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    // Numbers the batch's lists of inputs (only grows, across restarts too).
    let batch = db.generate_id()?;
    let result: Result<(), TransactionError<String>> = (
        &trees.traces,
        &trees.domains,
        &trees.domain_inputs,
        &trees.screenshots,
        &trees.search,
        &trees.domain_order,
    )
        .transaction(|(traces, domains, inputs, shots, search, order)| {
            // Per domain the batch landed on: its record before the batch, and after.
            let mut touched: HashMap<&str, (Option<DomainRecord>, DomainRecord)> = HashMap::new();
            let mut gained: HashMap<&str, Vec<&str>> = HashMap::new();
            for w in writes {
                // (A read in the transaction sees this batch's earlier writes of the key.)
                let mut landings = match traces.get(w.key.as_bytes())? {
                    Some(old) => Landings::split(&old).map(|(l, _)| l).unwrap_or_else(|e| {
                        // A damaged value must not stop the new Trace from being kept: its
                        // domains count as unknown (the keys of their own are asked).
                        tracing::warn!(
                            "the stored trace of {} is damaged ({e}); replacing it",
                            w.key
                        );
                        Landings {
                            domains: Vec::new(),
                            complete: false,
                        }
                    }),
                    None => Landings {
                        domains: Vec::new(),
                        complete: true,
                    },
                };
                if let Some((domain, labels, now)) = &w.landing {
                    let known = landings.domains.contains(domain)
                        || (!landings.complete && inputs.get(link(domain, &w.key))?.is_some());
                    for old in landings.add(domain) {
                        inputs.insert(link(&old, &w.key), &[][..])?;
                    }
                    let (_, rec) = match touched.entry(domain.as_str()) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(match domains.get(domain.as_bytes())? {
                            Some(b) => {
                                let old: DomainRecord =
                                    serde_json::from_slice(&b).map_err(abort)?;
                                (Some(old.clone()), old)
                            }
                            None => (
                                None,
                                DomainRecord {
                                    domain: domain.clone(),
                                    inputs: 0,
                                    first_seen: now.clone(),
                                    last_seen: now.clone(),
                                    labels: Vec::new(),
                                },
                            ),
                        }),
                    };
                    if !known {
                        rec.inputs += 1;
                        gained.entry(domain.as_str()).or_default().push(&w.key);
                    }
                    rec.last_seen = now.clone();
                    for l in labels {
                        if !rec.labels.contains(l) {
                            rec.labels.push(l.clone());
                        }
                    }
                }
                traces.insert(w.key.as_bytes(), landings.value(&w.record))?;
                for t in &w.terms {
                    search.insert(search_key(t, &w.key), &[][..])?;
                }
                // By content: a Trace names its screenshot and HTML by hash; equal ones are kept once.
                for (k, blob) in &w.blobs {
                    shots.insert(k.as_bytes(), blob.as_ref())?;
                }
            }
            for (domain, keys) in &gained {
                let list = serde_json::to_vec(keys).map_err(abort)?;
                inputs.insert(group(domain, batch), list)?;
            }
            for (domain, (old, rec)) in &touched {
                domains.insert(domain.as_bytes(), serde_json::to_vec(rec).map_err(abort)?)?;
                super::order::update(order, old.as_ref(), rec)?;
            }
            Ok(())
        });
    result.map_err(StoreError::from)
}

/// A stored Trace value's record.
pub(super) fn record_of(value: &[u8]) -> Result<EncodedTrace, StoreError> {
    Ok(EncodedTrace::from_record(Landings::split(value)?.1)?)
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
        let generation = match self.hot.get(key) {
            Ok(kept) => return Ok(Some(kept)),
            Err(generation) => generation,
        };
        match self.trees.traces.get(key.as_bytes())? {
            Some(value) => {
                let trace = record_of(&value)?;
                self.hot.keep(key, generation, &trace);
                Ok(Some(trace))
            }
            None => Ok(None),
        }
    }
    fn on_write(&self, listener: crate::store::WriteListener) -> bool {
        // sled allows one process per database: every write passes `commit`.
        self.listeners.add(listener);
        true
    }
    async fn put_encoded(
        &self,
        key: &str,
        trace: &Trace,
        encoded: &EncodedTrace,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let write = trace_write(key, trace, encoded);
        match durability {
            Durability::Now => self.commit(Some(write)).await,
            // Queued for the next batch (a `flush` or another writer's `put`), not waited for.
            Durability::NextFlush => {
                self.queue(write);
                Ok(())
            }
        }
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
    async fn domains_page(&self, q: &DomainQuery) -> Result<DomainPage, StoreError> {
        super::order::page(&self.trees.domain_order, &self.trees.domains, q)
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
                let e = record_of(&v)?;
                Ok((key, e.decode()?, e.stored_at_ms()))
            })
            .collect()
    }
    async fn search(&self, q: &SearchQuery) -> Result<SearchPage, StoreError> {
        // The index answers for one exact value; the other conditions are checked on each
        // candidate. Without one, the whole store is scanned (bounded per page).
        let Some(term) = q.terms.first() else {
            return crate::store::scan(self, q).await;
        };
        use std::ops::Bound;
        let mut prefix = term.as_bytes().to_vec();
        prefix.push(0);
        let from = match &q.after {
            Some(k) => Bound::Excluded(search_key(term, k)),
            None => Bound::Included(prefix.clone()),
        };
        let mut end = term.as_bytes().to_vec();
        end.push(1);
        let candidates = self
            .trees
            .search
            .range::<Vec<u8>, _>((from, Bound::Excluded(end)))
            .keys()
            .filter_map(|k| {
                let k = match k {
                    Ok(k) => k,
                    Err(e) => return Some(Err(StoreError::from(e))),
                };
                let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                // An entry whose Trace is gone is skipped.
                match self.trees.traces.get(key.as_bytes()) {
                    Ok(Some(v)) => {
                        Some(record_of(&v).and_then(|e| Ok((key, e.decode()?, e.stored_at_ms()))))
                    }
                    Ok(None) => None,
                    Err(e) => Some(Err(e.into())),
                }
            });
        let mut page = SearchPage::default();
        crate::store::search::collect(q, candidates, &mut page)?;
        Ok(page)
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
        let mut found = BTreeSet::new();
        for kv in self.trees.domain_inputs.scan_prefix(&prefix) {
            let (k, v) = kv?;
            match &k[prefix.len()..] {
                // A batch's inputs.
                [0, ..] => found.extend(decode::<Vec<String>>(&v, "domain inputs")?),
                // One input (the older form, or a domain moved out of an input's list).
                input => {
                    found.insert(String::from_utf8_lossy(input).into_owned());
                }
            }
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landings_read_back_as_written() {
        let mut l = Landings {
            domains: Vec::new(),
            complete: true,
        };
        assert!(l.add("a.test").is_empty());
        assert!(l.add("a.test").is_empty(), "a domain is noted once");
        assert!(l.add("b.test").is_empty());
        let value = l.value(b"RECORD");
        let (read, record) = Landings::split(&value).unwrap();
        assert_eq!((read, record), (l, &b"RECORD"[..]));
    }

    #[test]
    fn a_full_list_hands_back_its_oldest_and_is_no_longer_complete() {
        let mut l = Landings {
            domains: Vec::new(),
            complete: true,
        };
        for i in 0..MAX_LANDINGS {
            assert!(l.add(&format!("d{i}.test")).is_empty());
        }
        assert!(l.complete);
        assert_eq!(l.add("new.test"), vec!["d0.test".to_string()]);
        assert!(!l.complete);
        assert_eq!(l.domains.len(), MAX_LANDINGS);
        let long = "x".repeat(300);
        assert_eq!(l.add(&long), vec![long]);
        assert_eq!(l.domains.len(), MAX_LANDINGS);
        let (read, _) = Landings::split(&l.value(b"")).unwrap();
        assert_eq!(read, l);
    }

    #[test]
    fn older_values_have_unknown_landings_and_damaged_ones_are_errors() {
        let (l, rest) = Landings::split(b"{\"stored_at_ms\":1}").unwrap();
        assert!(!l.complete && l.domains.is_empty());
        assert_eq!(rest, b"{\"stored_at_ms\":1}");
        let good = Landings {
            domains: vec!["a.test".into()],
            complete: true,
        }
        .value(b"");
        for cut in 1..good.len() {
            assert!(Landings::split(&good[..cut]).is_err(), "{cut}");
        }
    }
}
