//! A stored Trace in its wire form: the JSON as it was first encoded, with where its `input`
//! and `cached` values sit, so a cache hit is answered by splicing those two into the stored
//! bytes instead of decoding the Trace and encoding it again (with each hop's HTTP record a
//! Trace is 1-2 KB of JSON, and decoding plus encoding it would be most of a hit's cost).
//!
//! The record sled keeps: a tag byte, a fixed header (when it was stored, the outcome, the
//! three offsets) and the JSON, LZ4-compressed against a dictionary: a typical Trace
//! (`dictionary.json`), since every Trace repeats the same field names, the request headers
//! hoptrace sends and the usual response headers. sled's cost per write grows with the
//! value (it rewrites whole leaves); the suite's 2.4 KB Traces are 1 KB compressed alone and
//! 0.4 KB against the dictionary. Records written before are still read: LZ4 without the
//! dictionary (tag 2), the same header with the JSON as it is (tag 1), and plain JSON
//! (`{"stored_at_ms":..,"trace":..}`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::trace::{Outcome, Trace};

/// Marks the record forms; the older plain-JSON records start with `{`.
const TAG_PLAIN: u8 = 1;
const TAG_LZ4: u8 = 2;
/// LZ4 against [`DICTIONARY`]. (3 marks sled's own prefix to a record.)
const TAG_LZ4_DICT: u8 = 4;
/// What records of [`TAG_LZ4_DICT`] were compressed against: never to be edited (a test pins
/// its hash); a better one would be a new tag.
const DICTIONARY: &[u8] = include_bytes!("dictionary.json");
/// Tag, stored_at_ms (8), outcome (1), input start, input end, cached offset (4 each).
const HEADER: usize = 1 + 8 + 1 + 4 * 3;
/// The most a stored Trace's JSON may claim to be once decompressed: far above any Trace
/// (hops are bounded, and each hop's headers), and it keeps a damaged length from asking
/// for gigabytes.
const MAX_JSON: usize = 64 << 20;

/// Outcomes by their code in a record (a new outcome is appended, never reordered).
const OUTCOMES: [Outcome; 7] = [
    Outcome::Landed,
    Outcome::Download,
    Outcome::Blocked,
    Outcome::Loop,
    Outcome::TooManyHops,
    Outcome::Timeout,
    Outcome::Error,
];

#[derive(Debug, thiserror::Error)]
pub enum EncodedError {
    #[error("cannot encode the trace: {0}")]
    Encode(serde_json::Error),
    #[error("stored trace is corrupt: {0}")]
    Corrupt(String),
}

/// A Trace as stored, with when it was stored; cheap to clone.
#[derive(Debug, Clone)]
pub struct EncodedTrace {
    json: Bytes,
    stored_at_ms: u64,
    outcome: Outcome,
    /// Byte ranges in the JSON of the `input` string (quotes included) and of the top-level
    /// `cached` literal; `None` where they could not be found for certain (then an answer
    /// with another input decodes and encodes, as before).
    splice: Option<Splice>,
}

#[derive(Debug, Clone, Copy)]
struct Splice {
    input: (usize, usize),
    cached: (usize, usize),
}

/// The older plain-JSON record (borrowed to write, owned to read).
#[derive(Serialize, Deserialize)]
struct Legacy<T> {
    stored_at_ms: u64,
    trace: T,
}

impl EncodedTrace {
    /// Encodes `trace` as stored at `stored_at_ms`.
    pub fn encode(trace: &Trace, stored_at_ms: u64) -> Result<EncodedTrace, EncodedError> {
        let json = serde_json::to_vec(trace).map_err(EncodedError::Encode)?;
        let splice = find_splice(&json, &trace.input, trace.cached)
            .filter(|s| u32::try_from(s.cached.1).is_ok());
        Ok(EncodedTrace {
            json: json.into(),
            stored_at_ms,
            outcome: trace.outcome,
            splice,
        })
    }

    /// Reads a stored record (any form).
    pub fn from_record(bytes: &[u8]) -> Result<EncodedTrace, EncodedError> {
        if bytes.first() == Some(&b'{') {
            let old: Legacy<Trace> =
                serde_json::from_slice(bytes).map_err(|e| EncodedError::Corrupt(e.to_string()))?;
            return EncodedTrace::encode(&old.trace, old.stored_at_ms);
        }
        let corrupt = |why: &str| EncodedError::Corrupt(why.to_string());
        if bytes.len() < HEADER {
            return Err(corrupt("unknown record form"));
        }
        let json: Bytes = match bytes[0] {
            TAG_PLAIN => Bytes::copy_from_slice(&bytes[HEADER..]),
            TAG_LZ4 => decompress(&bytes[HEADER..], b"")?.into(),
            TAG_LZ4_DICT => decompress(&bytes[HEADER..], DICTIONARY)?.into(),
            _ => return Err(corrupt("unknown record form")),
        };
        let u32_at = |i: usize| {
            let b: [u8; 4] = bytes[i..i + 4].try_into().expect("in the header");
            u32::from_be_bytes(b) as usize
        };
        let stored_at_ms = u64::from_be_bytes(bytes[1..9].try_into().expect("in the header"));
        let outcome = *OUTCOMES
            .get(bytes[9] as usize)
            .ok_or_else(|| corrupt("unknown outcome code"))?;
        let (input_start, input_end, cached_start) = (u32_at(10), u32_at(14), u32_at(18));
        let splice = if cached_start == 0 {
            None
        } else {
            let cached_end = cached_start + literal_len(json.get(cached_start..));
            let ok = input_start < input_end
                && input_end <= cached_start
                && cached_end <= json.len()
                && cached_end > cached_start;
            if !ok {
                return Err(corrupt("offsets outside the record"));
            }
            Some(Splice {
                input: (input_start, input_end),
                cached: (cached_start, cached_end),
            })
        };
        Ok(EncodedTrace {
            json,
            stored_at_ms,
            outcome,
            splice,
        })
    }

    /// The bytes to store: the header, then the JSON compressed.
    pub fn record(&self) -> Vec<u8> {
        let packed = lz4_flex::block::compress_prepend_size_with_dict(&self.json, DICTIONARY);
        let mut record = Vec::with_capacity(HEADER + packed.len());
        record.push(TAG_LZ4_DICT);
        record.extend_from_slice(&self.stored_at_ms.to_be_bytes());
        record.push(code(self.outcome));
        let (input, cached) = self
            .splice
            .map_or(((0, 0), (0, 0)), |s| (s.input, s.cached));
        for at in [input.0, input.1, cached.0] {
            // (A splice is kept only when its offsets fit.)
            record.extend_from_slice(&(at as u32).to_be_bytes());
        }
        record.extend_from_slice(&packed);
        record
    }

    pub fn stored_at_ms(&self) -> u64 {
        self.stored_at_ms
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The Trace as stored.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    pub fn decode(&self) -> Result<Trace, EncodedError> {
        serde_json::from_slice(self.json()).map_err(|e| EncodedError::Corrupt(e.to_string()))
    }

    /// The Trace's JSON with `cached` set and, when given, `input` replaced: what a cache hit
    /// answers.
    pub fn answer(&self, input: Option<&str>, cached: bool) -> Result<Vec<u8>, EncodedError> {
        let json = self.json();
        let Some(s) = self.splice else {
            let mut trace = self.decode()?;
            trace.cached = cached;
            if let Some(input) = input {
                trace.input = input.to_string();
            }
            return serde_json::to_vec(&trace).map_err(EncodedError::Encode);
        };
        let mut out = Vec::with_capacity(json.len() + input.map_or(0, |i| i.len() + 8));
        match input {
            Some(input) => {
                out.extend_from_slice(&json[..s.input.0]);
                serde_json::to_writer(&mut out, input).map_err(EncodedError::Encode)?;
                out.extend_from_slice(&json[s.input.1..s.cached.0]);
            }
            None => out.extend_from_slice(&json[..s.cached.0]),
        }
        out.extend_from_slice(if cached { b"true" } else { b"false" });
        out.extend_from_slice(&json[s.cached.1..]);
        Ok(out)
    }
}

/// The JSON of a record compressed against `dict`, its claimed size checked before anything
/// is allocated.
fn decompress(packed: &[u8], dict: &[u8]) -> Result<Vec<u8>, EncodedError> {
    let corrupt = |why: String| EncodedError::Corrupt(why);
    let (size, block) =
        lz4_flex::block::uncompressed_size(packed).map_err(|e| corrupt(e.to_string()))?;
    // LZ4 cannot expand more than 255 times.
    if size > MAX_JSON || size > block.len().saturating_mul(255) + 16 {
        return Err(corrupt(format!("claims {size} bytes of JSON")));
    }
    let mut json = vec![0; size];
    let n = lz4_flex::block::decompress_into_with_dict(block, &mut json, dict)
        .map_err(|e| corrupt(e.to_string()))?;
    if n != size {
        return Err(corrupt("shorter than it claims".into()));
    }
    Ok(json)
}

fn code(outcome: Outcome) -> u8 {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0) as u8
}

/// The length of the `true` or `false` at the start of `rest`.
fn literal_len(rest: Option<&[u8]>) -> usize {
    match rest {
        Some(r) if r.starts_with(b"true") => 4,
        Some(r) if r.starts_with(b"false") => 5,
        _ => 0,
    }
}

/// Where the top-level `input` string and `cached` literal are in `json`, an encoded Trace.
/// `input` is the first field, so its place is known from its encoding. `"cached":` followed
/// by a literal can only be the Trace's own field: inside a JSON string every quote is
/// escaped, and no nested record has a field of that name — checked by there being exactly
/// one, else no splice.
fn find_splice(json: &[u8], input: &str, cached: bool) -> Option<Splice> {
    const KEY: &[u8] = b"{\"input\":";
    let input_len = serde_json::to_string(input).ok()?.len();
    if !json.starts_with(KEY) {
        return None;
    }
    let pattern: &[u8] = if cached {
        b"\"cached\":true"
    } else {
        b"\"cached\":false"
    };
    let mut found = memchr::memmem::find_iter(json, pattern);
    let at = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let start = at + b"\"cached\":".len();
    Some(Splice {
        input: (KEY.len(), KEY.len() + input_len),
        cached: (start, at + pattern.len()),
    })
}

/// Writes the older record form (for tests that read a store written before this one).
pub fn legacy_record(trace: &Trace, stored_at_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&Legacy {
        stored_at_ms,
        trace,
    })
    .expect("a Trace encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Hop, HopNote, Via};

    fn trace(input: &str) -> Trace {
        let mut hop = Hop::new("https://a.test/x".into(), "a.test".into(), Via::Input);
        // A header whose text looks like the field must not be taken for it.
        hop.reason = HopNote::Text("\"cached\":false, {\"input\":\"x\"}".into()).into();
        let mut t = Trace::input_error(input, "x".into());
        t.hops.push(hop);
        t.outcome = Outcome::Loop;
        t
    }

    #[test]
    fn an_answer_is_the_trace_with_its_input_and_cached_replaced() {
        for input in ["https://a.test/", "we\"ird \\ \u{1F600} input", ""] {
            let t = trace(input);
            let enc = EncodedTrace::encode(&t, 42).unwrap();
            assert!(enc.splice.is_some(), "{input}");
            let read = EncodedTrace::from_record(&enc.record()).unwrap();
            assert_eq!(read.stored_at_ms(), 42);
            assert_eq!(read.outcome(), Outcome::Loop);
            assert_eq!(read.decode().unwrap(), t);
            for (new, cached) in [(Some("other \"one\""), true), (None, true), (None, false)] {
                let mut want = t.clone();
                want.cached = cached;
                if let Some(n) = new {
                    want.input = n.to_string();
                }
                let got: Trace =
                    serde_json::from_slice(&read.answer(new, cached).unwrap()).unwrap();
                assert_eq!(got, want);
                assert_eq!(
                    read.answer(new, cached).unwrap(),
                    serde_json::to_vec(&want).unwrap(),
                    "byte for byte what encoding the Trace gives"
                );
            }
        }
    }

    #[test]
    fn every_outcome_keeps_its_code() {
        for o in OUTCOMES {
            let mut t = trace("i");
            t.outcome = o;
            let read = EncodedTrace::from_record(&EncodedTrace::encode(&t, 1).unwrap().record());
            assert_eq!(read.unwrap().outcome(), o);
        }
    }

    #[test]
    fn records_of_the_older_forms_are_read() {
        let t = trace("https://old.test/");
        let read = EncodedTrace::from_record(&legacy_record(&t, 7)).unwrap();
        assert_eq!(
            (read.stored_at_ms(), read.decode().unwrap()),
            (7, t.clone())
        );
        // The header with the JSON uncompressed (written before records were compressed).
        let enc = EncodedTrace::encode(&t, 8).unwrap();
        let mut plain = enc.record()[..HEADER].to_vec();
        plain[0] = TAG_PLAIN;
        plain.extend_from_slice(enc.json());
        let read = EncodedTrace::from_record(&plain).unwrap();
        assert_eq!(
            (read.stored_at_ms(), read.decode().unwrap()),
            (8, t.clone())
        );
        // Compressed without the dictionary.
        let mut lz4 = enc.record()[..HEADER].to_vec();
        lz4[0] = TAG_LZ4;
        lz4.extend_from_slice(&lz4_flex::block::compress_prepend_size(enc.json()));
        let read = EncodedTrace::from_record(&lz4).unwrap();
        assert_eq!((read.stored_at_ms(), read.decode().unwrap()), (8, t));
        assert_eq!(
            read.answer(Some("other"), true).unwrap(),
            enc.answer(Some("other"), true).unwrap()
        );
    }

    /// Records name the dictionary by their tag alone: changing it would make every stored
    /// record of that tag unreadable.
    #[test]
    fn the_dictionary_never_changes() {
        assert_eq!(
            crate::record::sha256_hex(DICTIONARY),
            "08ea244a677e67f15985876c61c0c7627e7a94e9b3a46d6d8e0408302964772d"
        );
    }

    #[test]
    fn a_record_is_smaller_than_its_json() {
        let mut t = trace("https://a.test/");
        t.hops = vec![t.hops[0].clone(); 4];
        let enc = EncodedTrace::encode(&t, 1).unwrap();
        assert!(
            enc.record().len() < enc.json().len() / 2,
            "repeated hops compress"
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let good = EncodedTrace::encode(&trace("i"), 1).unwrap().record();
        for cut in 0..good.len() {
            let _ = EncodedTrace::from_record(&good[..cut]).map(|e| e.answer(Some("x"), true));
        }
        for at in HEADER..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            let _ = EncodedTrace::from_record(&bad).map(|e| e.answer(Some("x"), true));
        }
        let mut bad = good.clone();
        bad[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(EncodedTrace::from_record(&bad).is_err());
        let mut bad = good.clone();
        bad[9] = 200;
        assert!(EncodedTrace::from_record(&bad).is_err());
        // A length that asks for far more than the block could hold is refused before any
        // memory is taken for it.
        let mut bad = good;
        bad[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = EncodedTrace::from_record(&bad).unwrap_err().to_string();
        assert!(err.contains("claims"), "{err}");
    }
}
