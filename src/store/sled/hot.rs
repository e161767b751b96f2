//! The Traces read most, kept decompressed, so an API cache hit does not read sled and
//! decompress for the same few links a scanner asks about again and again.
//!
//! Coherent with the writes: a batch's keys are forgotten once its transaction is applied,
//! before any of its writers is told, and a value read from sled is kept only if no batch was
//! applied since the read began (the generation), so a read that raced a write never puts the
//! older Trace back. sled allows one process per database, so every write passes here.

use std::collections::HashMap;

use crate::store::encoded::EncodedTrace;

/// The JSON kept, in bytes, before the cache starts over (as the project's other memos do:
/// bounded memory, no bookkeeping per hit).
const BUDGET: usize = 16 << 20;
/// A Trace larger than this is not kept (it would crowd out hundreds of ordinary ones).
const LARGEST: usize = 256 << 10;

#[derive(Default)]
pub(super) struct Hot(std::sync::Mutex<Kept>);

#[derive(Default)]
struct Kept {
    traces: HashMap<String, EncodedTrace>,
    /// Traces, in bytes.
    bytes: usize,
    /// Batches applied so far.
    generation: u64,
}

impl Hot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Trace kept for `key`, or, for a miss, the generation to hand [`Hot::keep`] with
    /// what sled answers now.
    pub(super) fn get(&self, key: &str) -> Result<EncodedTrace, u64> {
        let kept = self.lock();
        kept.traces.get(key).cloned().ok_or(kept.generation)
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
        kept.traces.insert(key.to_string(), trace.clone());
        kept.bytes += size;
    }

    /// Forgets `keys`, whose new values a batch has just applied.
    pub(super) fn forget<'a>(&self, keys: impl Iterator<Item = &'a str>) {
        let mut kept = self.lock();
        kept.generation += 1;
        for key in keys {
            if let Some(old) = kept.traces.remove(key) {
                kept.bytes -= key.len() + old.json().len();
            }
        }
    }
}

impl Kept {
    /// Starts over when `size` more would pass the budget.
    fn make_room(&mut self, size: usize) {
        if self.bytes + size > BUDGET {
            self.traces.clear();
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

    #[test]
    fn memory_stays_within_the_budget() {
        let hot = Hot::default();
        let trace = encoded("a");
        let each = trace.json().len() + 8;
        for i in 0..(2 * BUDGET / each) {
            let key = format!("{i:08}");
            let seen = hot.get("").unwrap_err();
            hot.keep(&key, seen, &trace);
            assert!(hot.lock().bytes <= BUDGET);
            if i % 3 == 0 {
                hot.forget([key.as_str()].into_iter());
            }
        }
        let kept = hot.lock();
        assert!(!kept.traces.is_empty());
        let counted: usize = kept
            .traces
            .iter()
            .map(|(k, v)| k.len() + v.json().len())
            .sum();
        assert_eq!(counted, kept.bytes);
    }
}
