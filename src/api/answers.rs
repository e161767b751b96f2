//! The answers of `POST /v1/resolve` cache hits, kept by the request's bytes: the same
//! request again is answered without parsing it, looking its Trace up or splicing its input
//! in — most of a hit's own work.
//!
//! Coherent with the store: it tells this cache of every Trace key it writes, before the
//! writer hears the write is done, and the answers made for that key go. An answer made from
//! a read that a write overtook is not kept (the generation: writes heard so far). A store
//! that cannot tell of every write (one other processes write to) gets no answers kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;

use crate::chain::CachedJson;
use crate::store::Store;

/// The JSON kept, in bytes, before the cache starts over (bounded memory, no bookkeeping
/// per hit).
const BUDGET: usize = 16 << 20;
/// An answer larger than this is not kept (it would crowd out hundreds of ordinary ones).
const LARGEST: usize = 256 << 10;
/// Answers kept per link: the spellings of one link a caller uses are few; more are made
/// each time rather than crowd the budget.
const PER_KEY: usize = 4;

/// The kept answers; off when the store cannot tell of its writes.
pub struct Answers {
    kept: Mutex<Kept>,
    on: bool,
}

#[derive(Default)]
struct Kept {
    answers: HashMap<Bytes, CachedJson>,
    /// Per store key, the requests whose answers were made from its Trace.
    requests: HashMap<String, Vec<Bytes>>,
    /// Requests and answers, in bytes.
    bytes: usize,
    /// Writes heard so far.
    generation: u64,
}

/// What [`Answers::ticket`] saw before a store read: an answer made from that read is kept
/// only if no write was heard since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl Answers {
    /// Kept answers in front of `store`, which forgets them as it writes.
    pub fn new(store: &Store) -> Arc<Answers> {
        Arc::new_cyclic(|me: &Weak<Answers>| {
            let me = me.clone();
            let on = store.on_write(Arc::new(move |key: &str| {
                if let Some(answers) = me.upgrade() {
                    answers.forget(key);
                }
            }));
            Answers {
                kept: Mutex::default(),
                on,
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer kept for `request`.
    pub fn get(&self, request: &[u8]) -> Option<CachedJson> {
        if !self.on {
            return None;
        }
        self.lock().answers.get(request).cloned()
    }

    /// Taken before reading the store for an answer to keep.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Keeps `answer` for `request`, made from the Trace stored for `key` as read after
    /// `ticket`, unless a write was heard since.
    pub fn keep(&self, ticket: Ticket, request: &[u8], key: &str, answer: &CachedJson) {
        let size = request.len() + answer.json.len();
        if !self.on || size > LARGEST {
            return;
        }
        let mut kept = self.lock();
        let room = kept.requests.get(key).map_or(0, Vec::len) < PER_KEY;
        if kept.generation != ticket.0 || !room || kept.answers.contains_key(request) {
            return;
        }
        if kept.bytes + size > BUDGET {
            kept.answers.clear();
            kept.requests.clear();
            kept.bytes = 0;
        }
        // A copy: the request's bytes may be a slice of a connection's whole read buffer.
        let request = Bytes::copy_from_slice(request);
        kept.requests
            .entry(key.to_string())
            .or_default()
            .push(request.clone());
        kept.answers.insert(request, answer.clone());
        kept.bytes += size;
    }

    /// Forgets the answers made from `key`'s Trace, which the store has just replaced.
    fn forget(&self, key: &str) {
        let mut kept = self.lock();
        kept.generation += 1;
        for request in kept.requests.remove(key).unwrap_or_default() {
            if let Some(answer) = kept.answers.remove(&request) {
                kept.bytes -= request.len() + answer.json.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Outcome, Trace};

    fn answer(input: &str) -> CachedJson {
        let json = serde_json::to_vec(&Trace::input_error(input, "x".into())).unwrap();
        CachedJson {
            json: json.into(),
            outcome: Outcome::Landed,
            stored_at_ms: 1,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sled(&dir.path().join("db")).unwrap();
        (dir, store)
    }

    /// The store's write of a key takes the answers made from it, before the write returns;
    /// an answer made from a read a write overtook is not kept.
    #[tokio::test]
    async fn an_answer_lasts_until_the_store_writes_its_key() {
        let (_dir, store) = store();
        let answers = Answers::new(&store);
        let t = answers.ticket();
        answers.keep(t, b"req", "k", &answer("first"));
        assert!(answers.get(b"req").is_some(), "kept");
        assert!(answers.get(b"other").is_none());

        let trace = Trace::input_error("http://x.example/", "x".into());
        store.put("other", &trace, 2).await.unwrap();
        assert!(
            answers.get(b"req").is_some(),
            "another key's write leaves it"
        );
        store.put("k", &trace, 2).await.unwrap();
        assert!(answers.get(b"req").is_none(), "its key's write takes it");

        // A read before a write, answered after it: not kept.
        let t = answers.ticket();
        store.put("k", &trace, 3).await.unwrap();
        answers.keep(t, b"req", "k", &answer("stale"));
        assert!(answers.get(b"req").is_none(), "made from an overtaken read");
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let (_dir, store) = store();
        let answers = Answers::new(&store);
        let each = answer("a").json.len() + 8;
        for i in 0..(2 * BUDGET / each) {
            let key = format!("{i:08}");
            answers.keep(answers.ticket(), key.as_bytes(), &key, &answer("a"));
            assert!(answers.lock().bytes <= BUDGET);
            if i % 3 == 0 {
                answers.forget(&key);
            }
        }
        let kept = answers.lock();
        assert!(!kept.answers.is_empty());
        let counted: usize = kept
            .answers
            .iter()
            .map(|(r, a)| r.len() + a.json.len())
            .sum();
        assert_eq!(counted, kept.bytes);
    }
}
