//! Watches, observations, events, counters and repositories in sled: each write flushed
//! before it is reported.

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::Transactional;
use async_trait::async_trait;

use super::{corrupt, decode, decode_all, SledStore};
use crate::store::model::{Event, Observation, RepositoryRecord, WatchRecord};
use crate::store::{Repositories, StoreError, Watches};

fn due_key(due_ms: u64, url: &str) -> Vec<u8> {
    let mut k = due_ms.to_be_bytes().to_vec();
    k.extend_from_slice(url.as_bytes());
    k
}

fn event_id(key: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(
        key.try_into().map_err(|e| corrupt("event id", e))?,
    ))
}

/// A repository write's version, as the log keys it.
fn version_of(key: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(
        key.try_into()
            .map_err(|e| corrupt("repository version", e))?,
    ))
}

fn observation_prefix(url: &str) -> Vec<u8> {
    let mut k = url.as_bytes().to_vec();
    k.push(0);
    k
}

impl SledStore {
    async fn write_watch(&self, w: &WatchRecord, only_new: bool) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(w).map_err(|e| StoreError::encode("watch", e))?;
        let result: Result<bool, TransactionError<String>> = (&self.watches, &self.watch_due)
            .transaction(|(watches, due)| {
                let old = watches.get(w.url.as_bytes())?;
                if let Some(old) = &old {
                    if only_new {
                        return Ok(false);
                    }
                    let old: WatchRecord = serde_json::from_slice(old)
                        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    due.remove(due_key(old.next_due_ms, &old.url))?;
                }
                watches.insert(w.url.as_bytes(), bytes.as_slice())?;
                due.insert(due_key(w.next_due_ms, &w.url), &[][..])?;
                Ok(true)
            });
        let added = result.map_err(StoreError::from)?;
        if added {
            self.make_durable().await?;
        }
        Ok(added)
    }

    fn first_event_id(&self) -> Result<Option<u64>, StoreError> {
        self.events.first()?.map(|(k, _)| event_id(&k)).transpose()
    }
}

#[async_trait]
impl Watches for SledStore {
    async fn put_watch(&self, w: &WatchRecord) -> Result<(), StoreError> {
        self.write_watch(w, false).await.map(|_| ())
    }
    async fn add_watch_if_absent(&self, w: &WatchRecord) -> Result<bool, StoreError> {
        self.write_watch(w, true).await
    }
    async fn watch(&self, url: &str) -> Result<Option<WatchRecord>, StoreError> {
        self.watches
            .get(url.as_bytes())?
            .map(|b| decode(&b, "watch"))
            .transpose()
    }
    async fn remove_watch(&self, url: &str) -> Result<bool, StoreError> {
        let result: Result<bool, TransactionError<String>> = (&self.watches, &self.watch_due)
            .transaction(|(watches, due)| match watches.remove(url.as_bytes())? {
                Some(old) => {
                    let old: WatchRecord = serde_json::from_slice(&old)
                        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    due.remove(due_key(old.next_due_ms, &old.url))?;
                    Ok(true)
                }
                None => Ok(false),
            });
        let removed = result.map_err(StoreError::from)?;
        self.make_durable().await?;
        Ok(removed)
    }
    async fn watches(&self) -> Result<Vec<WatchRecord>, StoreError> {
        decode_all(&self.watches, "watch")
    }
    async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut urls = Vec::new();
        for k in self
            .watch_due
            .range(..(now_ms + 1).to_be_bytes().to_vec())
            .keys()
            .take(limit)
        {
            urls.push(String::from_utf8_lossy(&k?[8..]).into_owned());
        }
        Ok(urls)
    }
    async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        Ok(match self.watch_due.first()? {
            Some((k, _)) => Some(u64::from_be_bytes(
                k[..8].try_into().map_err(|e| corrupt("due", e))?,
            )),
            None => None,
        })
    }
    async fn observe(
        &self,
        url: &str,
        at_ms: u64,
        observation: &Observation,
        keep: usize,
    ) -> Result<(), StoreError> {
        let mut key = observation_prefix(url);
        key.extend_from_slice(&at_ms.to_be_bytes());
        // The cells of one run share its time: the visitor keeps their keys apart.
        if let Some(cell) = &observation.cell {
            key.extend_from_slice(cell.key().as_bytes());
        }
        let bytes =
            serde_json::to_vec(observation).map_err(|e| StoreError::encode("observation", e))?;
        self.observations.insert(key, bytes)?;
        let prefix = observation_prefix(url);
        let count = self.observations.scan_prefix(&prefix).keys().count();
        for k in self
            .observations
            .scan_prefix(&prefix)
            .keys()
            .take(count.saturating_sub(keep))
        {
            self.observations.remove(k?)?;
        }
        self.make_durable().await
    }
    async fn observations(&self, url: &str) -> Result<Vec<Observation>, StoreError> {
        self.observations
            .scan_prefix(observation_prefix(url))
            .values()
            .map(|v| decode(&v?, "observation"))
            .collect()
    }
    async fn push_event(&self, keep: usize, mut event: Event) -> Result<u64, StoreError> {
        let id = self.db.generate_id()? + 1;
        event.id = id;
        let bytes = serde_json::to_vec(&event).map_err(|e| StoreError::encode("event", e))?;
        self.events.insert(id.to_be_bytes(), bytes)?;
        // Ids only grow, so the oldest are first; (sled's `len` walks the whole tree.)
        while let Some(oldest) = self.first_event_id()? {
            if oldest.saturating_add(keep as u64) > id {
                break;
            }
            self.events.remove(oldest.to_be_bytes())?;
        }
        self.make_durable().await?;
        Ok(id)
    }
    async fn last_event_id(&self) -> Result<u64, StoreError> {
        Ok(self
            .events
            .last()?
            .map(|(k, _)| event_id(&k))
            .transpose()?
            .unwrap_or(0))
    }
    async fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        self.events
            .range((after.saturating_add(1)).to_be_bytes()..)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let id = event_id(&k)?;
                Ok((
                    id,
                    serde_json::from_slice(&v).map_err(|e| corrupt("event", e))?,
                ))
            })
            .collect()
    }
    async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(match self.meta.get(name.as_bytes())? {
            Some(b) => u64::from_be_bytes(b.as_ref().try_into().map_err(|e| corrupt(name, e))?),
            None => 0,
        })
    }
    async fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.meta.insert(name.as_bytes(), &value.to_be_bytes())?;
        self.make_durable().await
    }
}

#[async_trait]
impl Repositories for SledStore {
    async fn put_repository(
        &self,
        name: &str,
        record: &RepositoryRecord,
    ) -> Result<(), StoreError> {
        self.put_repository_later(name, record).await?;
        self.make_durable().await
    }
    async fn put_repository_later(
        &self,
        name: &str,
        record: &RepositoryRecord,
    ) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(record).map_err(|e| StoreError::encode("repository record", e))?;
        // Readable at once; on disk with the next flush of the database.
        self.repositories.insert(name.as_bytes(), bytes)?;
        // The write's version (ids only grow, across restarts too) in the log, where an
        // earlier write of the name no longer is.
        let _order = super::lock(&self.logging);
        // From 1: version 0 is an empty store's.
        let version = (self.db.generate_id()? + 1).to_be_bytes();
        let earlier = self.repository_at.insert(name.as_bytes(), &version[..])?;
        if let Some(v) = &earlier {
            self.repository_log.remove(v)?;
        }
        let mut entry = vec![u8::from(earlier.is_some())];
        entry.extend_from_slice(name.as_bytes());
        self.repository_log.insert(&version[..], entry)?;
        Ok(())
    }
    async fn repositories_version(&self) -> Result<u64, StoreError> {
        match self.repository_log.last()? {
            Some((k, _)) => version_of(&k),
            None => Ok(0),
        }
    }
    async fn repositories_since(
        &self,
        version: u64,
        limit: usize,
    ) -> Result<Option<Vec<crate::store::Written>>, StoreError> {
        let mut written = Vec::new();
        for kv in self
            .repository_log
            .range(version.saturating_add(1).to_be_bytes()..)
            .take(limit)
        {
            let (k, v) = kv?;
            let (&flag, name) = v
                .split_first()
                .ok_or_else(|| corrupt("repository log", "an empty entry"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let record = match self.repositories.get(name.as_bytes())? {
                Some(b) => decode(&b, &format!("repository {name}")),
                None => Err(corrupt(&format!("repository {name}"), "logged, not stored")),
            };
            written.push(crate::store::Written {
                version: version_of(&k)?,
                name,
                replaced: flag != 0,
                record,
            });
        }
        Ok(Some(written))
    }

    async fn repositories_at(
        &self,
        namespace: Option<&str>,
        after: Option<&str>,
        version: u64,
        limit: usize,
    ) -> Result<crate::store::RepositoryPage, StoreError> {
        use std::ops::Bound;
        let (first, end) = crate::store::namespace_range(namespace);
        let from = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Included(first.into_bytes()),
        };
        let end = end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.into_bytes()));
        let mut page = Vec::new();
        for kv in self.repositories.range::<Vec<u8>, _>((from, end)) {
            if page.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            let written = match self.repository_at.get(&k)? {
                Some(at) => version_of(&at)?,
                None => 0, // written before the log was kept
            };
            if written > version {
                continue;
            }
            let name = String::from_utf8_lossy(&k).into_owned();
            let record = decode(&v, &format!("repository {name}"));
            page.push((name, record));
        }
        Ok(page)
    }
    async fn repository(&self, name: &str) -> Result<Option<RepositoryRecord>, StoreError> {
        match self.repositories.get(name.as_bytes())? {
            Some(b) => Ok(Some(decode(&b, &format!("repository {name}"))?)),
            None => Ok(None),
        }
    }
    async fn repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        decode_all(&self.repositories, "repository")
    }
    async fn repositories_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::store::RepositoryPage, StoreError> {
        use std::ops::Bound;
        let from = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut page = Vec::new();
        for kv in self
            .repositories
            .range::<Vec<u8>, _>((from, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k).into_owned();
            let record = decode(&v, &format!("repository {name}"));
            page.push((name, record));
        }
        Ok(page)
    }
}
