//! The Traces read most, kept decompressed, so an API cache hit does not read sled and
//! decompress for the same few links a scanner asks about again and again.
//!
//! Coherent with the writes: a batch's keys are forgotten once its transaction is applied,
//! before any of its writers is told, and a value read from sled is kept only if no batch was
//! applied since the read began (the generation), so a read that raced a write never puts the
//! older Trace back. sled allows one process per database, so every write passes here.
//!
//! With each Trace, the answers made from it for the requests that asked (an API cache hit's
//! bytes, keyed by the request's bytes): the same request again is answered without parsing
//! it, looking the Trace up or splicing its input in — most of a hit's own work.
//! An answer goes when its Trace goes.

use std::collections::HashMap;

use bytes::Bytes;

use crate::store::encoded::{EncodedTrace, KeptAnswer};

/// The JSON kept, in bytes, before the cache starts over (as the project's other memos do:
/// bounded memory, no bookkeeping per hit).
const BUDGET: usize = 16 << 20;
/// A Trace larger than this is not kept (it would crowd out hundreds of ordinary ones).
const LARGEST: usize = 256 << 10;
/// Answers kept per Trace: the spellings of one link a caller uses are few; more are made
/// each time rather than crowd the budget.
const ANSWERS_PER_TRACE: usize = 4;

#[derive(Default)]
pub(super) struct Hot(std::sync::Mutex<Kept>);

#[derive(Default)]
struct Kept {
    traces: HashMap<String, Entry>,
    /// By request; each is in the `requests` of the Trace it was made from.
    answers: HashMap<Bytes, KeptAnswer>,
    /// Traces and answers, in bytes.
    bytes: usize,
    /// Batches applied so far.
    generation: u64,
}

struct Entry {
    trace: EncodedTrace,
    /// The requests whose answers were made from this Trace.
    requests: Vec<Bytes>,
}

impl Hot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Trace kept for `key`, or, for a miss, the generation to hand [`Hot::keep`] with
    /// what sled answers now.
    pub(super) fn get(&self, key: &str) -> Result<EncodedTrace, u64> {
        let kept = self.lock();
        kept.traces
            .get(key)
            .map(|e| e.trace.clone())
            .ok_or(kept.generation)
    }

    /// Keeps `trace`, read from sled for `key` after [`Hot::get`] answered `generation`,
    /// unless a batch was applied since.
    pub(super) fn keep(&self, key: &str, generation: u64, trace: &EncodedTrace) {
        let size = key.len() + trace.json().len();
        if size > LARGEST {
            return;
        }
        let mut kept = self.lock();
        if kept.generation != generation || kept.traces.contains_key(key) {
            return;
        }
        kept.make_room(size);
        let entry = Entry {
            trace: trace.clone(),
            requests: Vec::new(),
        };
        kept.traces.insert(key.to_string(), entry);
        kept.bytes += size;
    }

    /// Forgets `keys`, whose new values a batch has just applied, and the answers made from
    /// them.
    pub(super) fn forget<'a>(&self, keys: impl Iterator<Item = &'a str>) {
        let mut kept = self.lock();
        kept.generation += 1;
        for key in keys {
            if let Some(old) = kept.traces.remove(key) {
                kept.bytes -= key.len() + old.trace.json().len();
                for request in old.requests {
                    if let Some(answer) = kept.answers.remove(&request) {
                        kept.bytes -= request.len() + answer.json.len();
                    }
                }
            }
        }
    }

    /// The answer kept for `request`, made from the Trace still kept for its key.
    pub(super) fn answer(&self, request: &[u8]) -> Option<KeptAnswer> {
        self.lock().answers.get(request).cloned()
    }

    /// Keeps `answer` for `request`, made from `from` (read for `key`), if `from` is still the
    /// Trace kept for `key`: one that a batch has replaced since is not.
    pub(super) fn keep_answer(
        &self,
        request: &[u8],
        key: &str,
        from: &EncodedTrace,
        answer: KeptAnswer,
    ) {
        let size = request.len() + answer.json.len();
        if size > LARGEST {
            return;
        }
        let mut kept = self.lock();
        let current = kept
            .traces
            .get(key)
            .is_some_and(|e| e.trace.same_record(from) && e.requests.len() < ANSWERS_PER_TRACE);
        // No starting over to make room here: it would take the Trace with it.
        if !current || kept.bytes + size > BUDGET || kept.answers.contains_key(request) {
            return;
        }
        // A copy: the request's bytes may be a slice of a connection's whole read buffer.
        let request = Bytes::copy_from_slice(request);
        if let Some(entry) = kept.traces.get_mut(key) {
            entry.requests.push(request.clone());
        }
        kept.answers.insert(request, answer);
        kept.bytes += size;
    }
}

impl Kept {
    /// Starts over when `size` more would pass the budget.
    fn make_room(&mut self, size: usize) {
        if self.bytes + size > BUDGET {
            self.traces.clear();
            self.answers.clear();
            self.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Trace;

    fn encoded(input: &str) -> EncodedTrace {
        EncodedTrace::encode(&Trace::input_error(input, "x".into()), 1).unwrap()
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept_and_a_written_key_is_forgotten() {
        let hot = Hot::default();
        let seen = hot.get("k").unwrap_err();
        hot.keep("k", seen, &encoded("old"));
        assert!(hot.get("k").is_ok(), "kept");
        // A batch writes k: forgotten.
        hot.forget(["k"].into_iter());
        let seen = hot.get("k").unwrap_err();
        // Another batch is applied while this read is under way: what it read is not kept.
        hot.forget(["other"].into_iter());
        hot.keep("k", seen, &encoded("stale"));
        assert!(hot.get("k").is_err(), "a raced read is not kept");
    }

    fn answer_of(trace: &EncodedTrace) -> KeptAnswer {
        KeptAnswer {
            json: Bytes::copy_from_slice(trace.json()),
            outcome: trace.outcome(),
            stored_at_ms: trace.stored_at_ms(),
        }
    }

    #[test]
    fn an_answer_lasts_as_long_as_the_record_it_was_made_from() {
        let hot = Hot::default();
        let first = encoded("first");
        hot.keep("k", hot.get("k").unwrap_err(), &first);
        hot.keep_answer(b"req", "k", &first, answer_of(&first));
        assert!(hot.answer(b"req").is_some(), "kept");
        assert!(hot.answer(b"other").is_none());

        // The key is written: the answer goes with the Trace.
        hot.forget(["k"].into_iter());
        assert!(hot.answer(b"req").is_none(), "forgotten with its Trace");

        // An answer made from a record that is no longer the one kept is not kept: a read
        // before the write, answered after it.
        let second = encoded("second");
        hot.keep("k", hot.get("k").unwrap_err(), &second);
        hot.keep_answer(b"req", "k", &first, answer_of(&first));
        assert!(hot.answer(b"req").is_none(), "made from a replaced record");
        // An equal record stored again is another record.
        let again = encoded("second");
        hot.keep_answer(b"req", "k", &again, answer_of(&again));
        assert!(
            hot.answer(b"req").is_none(),
            "an equal record is not the kept one"
        );
        hot.keep_answer(b"req", "k", &second, answer_of(&second));
        assert!(hot.answer(b"req").is_some());
        // Nor is one kept for a key with no Trace kept.
        hot.keep_answer(b"req2", "none", &second, answer_of(&second));
        assert!(hot.answer(b"req2").is_none());
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let hot = Hot::default();
        let trace = encoded("a");
        let each = trace.json().len() + 8;
        for i in 0..(2 * BUDGET / each) {
            let key = format!("{i:08}");
            let seen = hot.get("").unwrap_err();
            hot.keep(&key, seen, &trace);
            hot.keep_answer(key.as_bytes(), &key, &trace, answer_of(&trace));
            assert!(hot.lock().bytes <= BUDGET);
            if i % 3 == 0 {
                hot.forget([key.as_str()].into_iter());
            }
        }
        let kept = hot.lock();
        assert!(!kept.answers.is_empty());
        let counted: usize = kept
            .traces
            .iter()
            .map(|(k, v)| k.len() + v.trace.json().len())
            .chain(kept.answers.iter().map(|(r, a)| r.len() + a.json.len()))
            .sum();
        assert_eq!(counted, kept.bytes);
    }
}
