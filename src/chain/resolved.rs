//! What a resolution is asked for ([`Lookup`]) and what it answers: the Trace, with the
//! bytes stored for it when this resolution stored them ([`Resolved`]), or why the store did
//! not keep it ([`Unstored`]).

use crate::store::EncodedTrace;
use crate::trace::Trace;

/// Where a resolution may take its answer from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh stored Trace, else one visit shared with concurrent callers.
    Cache,
    /// A visit of its own, whatever is stored or under way.
    Refresh,
}

impl Lookup {
    /// [`Lookup::Cache`] when `use_cache`, else [`Lookup::Refresh`].
    pub fn cache_if(use_cache: bool) -> Lookup {
        match use_cache {
            true => Lookup::Cache,
            false => Lookup::Refresh,
        }
    }
}

/// A resolution's Trace and, when this resolution stored it, the Trace as stored: a caller
/// that prints or sends it answers with those bytes instead of encoding the Trace again
/// (the stored JSON names the first caller's input: see [`EncodedTrace::answer`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub trace: Trace,
    pub stored: Option<EncodedTrace>,
}

impl Resolved {
    /// A Trace not stored by this resolution (not to be stored, or served from the store).
    pub(crate) fn unstored(trace: Trace) -> Resolved {
        Resolved {
            trace,
            stored: None,
        }
    }

    /// The answer whether or not the store kept it (the failure was logged where it
    /// happened).
    pub fn kept_or_not(result: Result<Resolved, Unstored>) -> Resolved {
        result.unwrap_or_else(|unstored| Resolved::unstored(unstored.trace))
    }

    /// Writes the Trace's JSON: the bytes stored, with this caller's input, when this
    /// resolution stored them (the Trace is encoded once, not again for printing), unless it
    /// added a watch, which the stored bytes do not say.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match &self.stored {
            Some(stored) if self.trace.watch_added.is_none() => {
                let json = stored.answer(Some(&self.trace.input), self.trace.cached);
                out.write_all(&json.map_err(std::io::Error::other)?)
            }
            _ => Ok(serde_json::to_writer(out, &self.trace)?),
        }
    }
}

/// A resolution whose Trace the store did not keep (the database was away, say).
#[derive(Debug, Clone)]
pub struct Unstored {
    pub trace: Trace,
    pub error: crate::store::StoreError,
}
