//! Search over every stored Trace: by host, registrable domain, IP, label, page title, body
//! SHA-256 and screenshot SHA-256 (exact values, answered from an index the store keeps in
//! step with the Traces: one small entry per value a Trace holds), and by URL substring and
//! time range (answered by a bounded scan). Either way a page reads at most
//! [`SCAN_BUDGET`] candidate Traces and returns at most [`MAX_LIMIT`] hits, with a cursor
//! to go on from: memory and time per page stay bounded however large the store.
//!
//! Index entries are candidates, not answers: every candidate is checked against the Trace
//! stored now ([`SearchQuery::matches`]), so an entry left behind by an older Trace of the
//! same input never shows.

use serde::Serialize;

use crate::trace::Trace;
use crate::wire::wire_enum;

/// Most hits one page returns.
pub const MAX_LIMIT: usize = 100;
/// Most candidate Traces one page reads (from the index or by scanning the store).
pub const SCAN_BUDGET: usize = 20_000;
/// Longest title kept as an index value (characters); longer titles match on this prefix.
const TITLE_CHARS: usize = 200;

wire_enum! {
    /// What a value is (the key of a search parameter and of a pivot); `as_str` is the query
    /// parameter's name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SearchKey {
        Host = "host",
        Domain = "domain",
        Ip = "ip",
        Label = "label",
        Title = "title",
        Body = "body",
        Screenshot = "screenshot",
        /// The landing page's icon: its SHA-256 or its Shodan hash (either matches).
        Favicon = "favicon",
    }
}

impl SearchKey {
    /// The index value of `value` for this key: what a query and a Trace both turn into.
    pub fn term(self, value: &str) -> String {
        let v = value.trim().replace('\0', "");
        let v = match self {
            SearchKey::Title => v
                .chars()
                .take(TITLE_CHARS)
                .collect::<String>()
                .to_lowercase(),
            SearchKey::Host | SearchKey::Domain => v.trim_end_matches('.').to_ascii_lowercase(),
            _ => v.to_ascii_lowercase(),
        };
        format!("{}:{v}", self.as_str())
    }
}

/// One search: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    /// Exact values (index terms, [`SearchKey::term`]).
    pub terms: Vec<String>,
    /// A substring of the input or of any hop's URL (case-insensitive).
    pub url: Option<String>,
    /// Stored at or after / before (ms).
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Go on after this Trace key (the previous page's `next`).
    pub after: Option<String>,
    pub limit: usize,
}

/// One page of hits, in key order.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub hits: Vec<(String, Trace, u64)>,
    /// Where the next page starts (`after`), when the store may hold more.
    pub next: Option<String>,
    /// Candidate Traces read for this page.
    pub scanned: usize,
}

/// A hit as the API shows it.
#[derive(Debug, Serialize)]
pub struct SearchHit<'a> {
    pub input: &'a str,
    pub final_url: &'a str,
    pub final_host: &'a str,
    pub outcome: &'static str,
    pub labels: &'a [crate::trace::Label],
    pub title: Option<&'a str>,
    pub stored_at: String,
}

impl<'a> SearchHit<'a> {
    pub fn of(trace: &'a Trace, stored_at_ms: u64) -> SearchHit<'a> {
        SearchHit {
            input: &trace.input,
            final_url: &trace.final_url,
            final_host: &trace.final_host,
            outcome: trace.outcome.as_str(),
            labels: &trace.labels,
            title: trace.evidence.as_ref().and_then(|e| e.title.as_deref()),
            stored_at: crate::trace::rfc3339(stored_at_ms),
        }
    }
}

/// Every index term of `trace`: each hop's host, registrable domain and address, the labels,
/// and the landing page's title and hashes.
pub fn terms(trace: &Trace) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |key: SearchKey, v: &str| {
        if v.trim().is_empty() {
            return;
        }
        let t = key.term(v);
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for h in &trace.hops {
        add(SearchKey::Host, &h.host);
        add(SearchKey::Domain, &crate::labels::registrable(&h.host));
        if let Some(ip) = &h.ip {
            add(SearchKey::Ip, ip);
        }
    }
    for l in &trace.labels {
        add(SearchKey::Label, l.as_str());
    }
    if let Some(e) = &trace.evidence {
        if let Some(t) = &e.title {
            add(SearchKey::Title, t);
        }
        if let Some(b) = &e.body_sha256 {
            add(SearchKey::Body, b);
        }
        if let Some(s) = &e.screenshot_sha256 {
            add(SearchKey::Screenshot, s);
        }
        if let Some(f) = &e.favicon_sha256 {
            add(SearchKey::Favicon, f);
        }
        if let Some(m) = e.favicon_mmh3 {
            add(SearchKey::Favicon, &m.to_string());
        }
    }
    out
}

impl SearchQuery {
    /// Whether anything narrows the search (an empty query would list the whole store).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
            && self.url.is_none()
            && self.since_ms.is_none()
            && self.until_ms.is_none()
    }

    /// Whether `trace`, stored at `stored_at_ms`, meets every condition.
    pub fn matches(&self, trace: &Trace, stored_at_ms: u64) -> bool {
        if self.since_ms.is_some_and(|s| stored_at_ms < s)
            || self.until_ms.is_some_and(|u| stored_at_ms > u)
        {
            return false;
        }
        if let Some(part) = &self.url {
            let part = part.to_lowercase();
            let found = std::iter::once(&trace.input)
                .chain(trace.hops.iter().map(|h| &h.url))
                .any(|u| u.to_lowercase().contains(&part));
            if !found {
                return false;
            }
        }
        if self.terms.is_empty() {
            return true;
        }
        let have = terms(trace);
        self.terms.iter().all(|t| have.contains(t))
    }

    /// The page's size, within bounds.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_LIMIT)
    }
}

/// Collects a page from `candidates` (Trace key, Trace, stored at; in key order): those that
/// match, up to the page size, within the scan budget. `more` says whether candidates remain
/// past the last one given.
pub fn collect(
    q: &SearchQuery,
    candidates: impl IntoIterator<Item = Result<(String, Trace, u64), super::StoreError>>,
    page: &mut SearchPage,
) -> Result<bool, super::StoreError> {
    for c in candidates {
        let (key, trace, at) = c?;
        page.scanned += 1;
        if q.matches(&trace, at) {
            page.hits.push((key.clone(), trace, at));
        }
        if page.hits.len() >= q.page_size() || page.scanned >= SCAN_BUDGET {
            page.next = Some(key);
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Evidence, Hop, Outcome, Via};

    fn sample() -> Trace {
        let mut a = Hop::new(
            "http://Short.example/x".into(),
            "Short.example".into(),
            Via::Input,
        );
        a.ip = Some("203.0.113.9".into());
        a.labels = vec!["fake-shortener".into()];
        let b = Hop::new(
            "https://www.land.co.uk/Login".into(),
            "www.land.co.uk".into(),
            Via::HttpRedirect,
        );
        let mut t = Trace::from_hops("http://short.example/x", vec![a, b], Outcome::Landed);
        t.evidence = Some(Evidence {
            title: Some("  Sign In ".into()),
            body_sha256: Some("AB12".into()),
            ..Default::default()
        });
        t
    }

    #[test]
    fn a_trace_matches_each_of_its_values() {
        let t = sample();
        for (k, v) in [
            (SearchKey::Host, "short.example"),
            (SearchKey::Host, "WWW.LAND.CO.UK"),
            (SearchKey::Domain, "land.co.uk"),
            (SearchKey::Ip, "203.0.113.9"),
            (SearchKey::Label, "fake-shortener"),
            (SearchKey::Title, "sign in"),
            (SearchKey::Body, "ab12"),
        ] {
            let q = SearchQuery {
                terms: vec![k.term(v)],
                ..Default::default()
            };
            assert!(q.matches(&t, 5), "{k:?} {v}");
        }
        let q = SearchQuery {
            terms: vec![SearchKey::Domain.term("co.uk")],
            ..Default::default()
        };
        assert!(!q.matches(&t, 5));
        let q = SearchQuery {
            url: Some("/login".into()),
            since_ms: Some(5),
            until_ms: Some(5),
            ..Default::default()
        };
        assert!(q.matches(&t, 5));
        assert!(!SearchQuery {
            since_ms: Some(6),
            ..Default::default()
        }
        .matches(&t, 5));
    }
}
