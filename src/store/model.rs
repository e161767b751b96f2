//! What is stored, whatever stores it: the records every backend keeps, defined here so that
//! the storage traits name them (their behaviour lives with the modules that make them).

use serde::{Deserialize, Serialize};

use crate::extract::Link;
use crate::trace::{Label, Outcome};
use crate::wire::wire_enum;

/// A landing domain and what reached it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub domain: String,
    /// Number of distinct inputs whose chain ended on this domain.
    pub inputs: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub labels: Vec<Label>,
}

/// How `/v1/domains` orders the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainSort {
    Inputs,
    LastSeen,
    FirstSeen,
    Domain,
}

/// One page of the landing-domain index: sorted by `sort` (ties by name), from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainQuery {
    pub sort: DomainSort,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainPage {
    pub domains: Vec<DomainRecord>,
    /// Domains in the whole index.
    pub total: usize,
}

impl DomainQuery {
    /// The page, cut from the whole index (for a backend that cannot sort and page itself).
    pub fn page_of(&self, mut all: Vec<DomainRecord>) -> DomainPage {
        // Ties are broken by domain name (A to Z when descending) so pages are stable.
        let by = |a: &DomainRecord, b: &DomainRecord| match self.sort {
            DomainSort::Inputs => a.inputs.cmp(&b.inputs).then(b.domain.cmp(&a.domain)),
            DomainSort::LastSeen => a.last_seen.cmp(&b.last_seen).then(b.domain.cmp(&a.domain)),
            DomainSort::FirstSeen => a
                .first_seen
                .cmp(&b.first_seen)
                .then(b.domain.cmp(&a.domain)),
            DomainSort::Domain => a.domain.cmp(&b.domain),
        };
        all.sort_by(|a, b| match self.descending {
            true => by(b, a),
            false => by(a, b),
        });
        let total = all.len();
        DomainPage {
            domains: all.into_iter().skip(self.offset).take(self.limit).collect(),
            total,
        }
    }
}

/// A watched link, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRecord {
    pub url: String,
    pub every_seconds: u64,
    pub next_due_ms: u64,
    pub added_ms: u64,
    pub last_run_ms: Option<u64>,
    /// Added because a resolution passed through a fake or lookalike shortener.
    pub auto: bool,
    /// Client profiles each run resolves as (empty: the default profile alone).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Egress points each run goes out through (empty: `direct` alone); every profile goes
    /// through every point.
    #[serde(default)]
    pub via: Vec<String>,
}

impl WatchRecord {
    /// A new watch of `url` (a normalised key) added at `now` (ms), first due at once.
    pub fn new(url: String, every_seconds: u64, auto: bool, now: u64) -> WatchRecord {
        WatchRecord {
            url,
            every_seconds,
            next_due_ms: now,
            added_ms: now,
            last_run_ms: None,
            auto,
            profiles: Vec::new(),
            via: Vec::new(),
        }
    }

    /// Whether each run is the default visitor alone (one observation per run, no cell names).
    pub fn default_visitor(&self) -> bool {
        self.profiles.is_empty() && self.via.is_empty()
    }

    /// When a run that starts at `now` makes the watch due next: its interval give or take
    /// 10%.
    pub fn next_due_after(&self, now: u64) -> u64 {
        now.saturating_add(jittered(
            self.every_seconds.saturating_mul(1000),
            &self.url,
            now,
        ))
    }
}

/// `interval_ms` give or take 10%, differing per entry and turn, so entries added together
/// do not stay in step (and hit one host together).
fn jittered(interval_ms: u64, url: &str, now: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(url.as_bytes());
    h.write_u64(now);
    let spread = interval_ms / 10;
    if spread == 0 {
        return interval_ms.max(1);
    }
    (interval_ms - spread)
        .saturating_add(h.finish() % (2 * spread + 1))
        .max(1)
}

/// One re-resolution of a watched link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// RFC 3339 UTC, milliseconds.
    pub at: String,
    pub final_url: String,
    pub final_host: String,
    pub outcome: Outcome,
    pub labels: Vec<Label>,
    /// Hosts of every hop, in order.
    pub hop_hosts: Vec<String>,
    /// Labels of the final hop alone (what the landing host is).
    #[serde(default)]
    pub landing_labels: Vec<Label>,
    /// The visitor, for a watch that names profiles or points (absent: the default one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<WatchCell>,
}

/// One visitor of a watch's runs: a client profile through an egress point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchCell {
    pub profile: String,
    pub via: String,
}

impl WatchCell {
    /// A key part that sorts and separates cells (`profile` and `via` hold no NUL: they are
    /// configuration names).
    pub fn key(&self) -> String {
        format!("{}\0{}", self.profile, self.via)
    }
}

/// A new landing host, or a known one with new labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub event: EventKind,
    pub url: String,
    pub host: String,
    pub final_url: String,
    pub labels: Vec<Label>,
    /// For `new-landing-host`: the landing hosts seen before; for `relabel`: the host's
    /// labels before.
    pub before: Vec<String>,
    pub at: String,
    /// The visitor that saw it, for a watch that names profiles or points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<WatchCell>,
}

wire_enum! {
    /// What changed in a watched link's history (on the wire and in the SSE `event:` field).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum EventKind {
        /// The link lands on a host it never landed on before.
        NewLandingHost = "new-landing-host",
        /// The landing host is the same, its labels are not.
        Relabel = "relabel",
    }
}

wire_enum! {
    /// How bad a repository (or one of its links) is; ordered, worst last.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Verdict {
        Clean = "clean",
        Suspicious = "suspicious",
        Malicious = "malicious",
    }
}

/// Why a repository got its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub verdict: Verdict,
    /// The link this is about (`None` for what the repository itself shows).
    pub url: Option<String>,
    pub why: String,
    /// What the reason rests on.
    #[serde(default)]
    pub kind: ReasonKind,
    /// For [`ReasonKind::Publisher`]: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// What a [`Reason`] rests on: a user can tell "its link lands on a payload host" from "its
/// publisher published many that do".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    /// What one of its links' chains showed.
    #[default]
    Link,
    /// What the repository itself shows (its name, its publisher's name).
    Repository,
    /// The account that published it published campaign repositories.
    Publisher,
}

wire_enum! {
    /// What a piece of campaign infrastructure is (declared in name order: keys sort as
    /// their text).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum InfraKind {
        /// The account that published repositories (a campaign's member, never a key a
        /// repository stores).
        Account = "account",
        /// A fake or lookalike shortener's domain.
        FakeShortener = "fake-shortener",
        /// The registrable domain a chain ended on.
        Landing = "landing",
        /// A host between the link and its landing that a list labels, or that no list calls
        /// a real shortener or open redirect.
        Redirector = "redirector",
        /// A repository text's signature.
        Signature = "signature",
    }
}

/// A piece of campaign infrastructure that repositories share: `kind:name` when stored and
/// shown. Ordered as that text is (no kind's name is a prefix of another's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfraKey {
    pub kind: InfraKind,
    pub name: String,
}

impl InfraKey {
    pub fn new(kind: InfraKind, name: impl Into<String>) -> InfraKey {
        InfraKey {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for InfraKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Text that is no infrastructure key.
#[derive(Debug, thiserror::Error)]
pub enum BadInfraKey {
    #[error("infrastructure key `{0}` has no `kind:`")]
    NoKind(String),
    #[error("infrastructure key: {0}")]
    Kind(#[from] crate::wire::UnknownName),
}

impl std::str::FromStr for InfraKey {
    type Err = BadInfraKey;
    fn from_str(s: &str) -> Result<InfraKey, BadInfraKey> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| BadInfraKey::NoKind(s.to_string()))?;
        Ok(InfraKey::new(kind.parse()?, name))
    }
}

impl Serialize for InfraKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InfraKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<InfraKey, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What the store keeps of a scanned repository: enough to answer a re-run without
/// resolving again, and to cluster campaigns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    pub repository: String,
    pub namespace: String,
    /// `scan::Document::digest` of the text scanned.
    pub digest: String,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub links: Vec<Link>,
    #[serde(default)]
    pub links_left_out: usize,
    /// Final hosts of the links that made the verdict.
    pub landing_hosts: Vec<String>,
    /// Campaign infrastructure those links passed through (see `scan::infrastructure`).
    pub infrastructure: Vec<InfraKey>,
    pub labels: Vec<Label>,
    pub scanned_at: String,
    pub last_updated: Option<String>,
    /// Docker Hub's `date_registered`, where the input had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_registered: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Infrastructure keys keep their stored `kind:name` form, read back as their kind, and
    /// sort as that text; an old record reads and writes unchanged.
    #[test]
    fn infrastructure_keys_keep_their_stored_form() {
        let names = [
            "account",
            "fake-shortener",
            "landing",
            "redirector",
            "signature",
        ];
        assert_eq!(InfraKind::NAMES, names);
        let mut keys = Vec::new();
        for (kind, name) in InfraKind::ALL.iter().zip(names) {
            let text = format!("{name}:x.example");
            let key: InfraKey = text.parse().unwrap();
            assert_eq!((key.kind, key.to_string()), (*kind, text.clone()));
            keys.push(key);
        }
        let mut texts: Vec<String> = keys.iter().map(ToString::to_string).collect();
        keys.sort();
        texts.sort();
        assert_eq!(
            keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
            texts
        );
        assert!("nothing".parse::<InfraKey>().is_err());
        assert!("mirror:x.example".parse::<InfraKey>().is_err());

        let stored = serde_json::json!({
            "repository": "u/r", "namespace": "u", "digest": "d", "verdict": "malicious",
            "reasons": [{"verdict": "malicious", "url": "https://bltlly.com/x", "why": "w",
                         "kind": "link"}],
            "links": [], "links_left_out": 0, "landing_hosts": ["failhostingpolp.ru"],
            "infrastructure": ["fake-shortener:bltlly.com", "landing:failhostingpolp.ru",
                               "signature:website-seo"],
            "labels": ["fake-shortener", "payload-host"],
            "scanned_at": "2026-01-01T00:00:00Z", "last_updated": null
        });
        let r: RepositoryRecord = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), stored);
        assert_eq!(
            r.infrastructure[1],
            InfraKey::new(InfraKind::Landing, "failhostingpolp.ru")
        );
        assert_eq!(r.verdict, Verdict::Malicious);
        assert_eq!(Verdict::NAMES, ["clean", "suspicious", "malicious"]);
        assert_eq!(EventKind::NAMES, ["new-landing-host", "relabel"]);
        let e: EventKind = serde_json::from_value(serde_json::json!("relabel")).unwrap();
        assert_eq!(serde_json::to_value(e).unwrap(), "relabel");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for now in 0..200 {
            let j = jittered(10_000, "http://x/", now);
            assert!((9_000..=11_000).contains(&j), "{j}");
        }
        assert_eq!(jittered(5, "x", 1), 5);
        assert!(
            jittered(u64::MAX, "x", 1) >= u64::MAX / 10 * 9,
            "no overflow"
        );
    }
}
