//! Scanning repository descriptions: each Docker Hub repository's links are found
//! ([`crate::extract`]), resolved ([`crate::chain`]) and judged, and what they reached is kept
//! in the store, both to resume an interrupted scan and to group repositories into
//! [`crate::campaigns`].

mod document;
mod judge;
pub(crate) use document::Fnv;
pub use document::{documents, lines_with_text, Document, DocumentError, ScanError, MAX_LINE};
use judge::signature;
pub use judge::{infrastructure, judge_link, judge_repository};

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::chain::{Batch, Entry, Groups, Lookup, Resolver};
use crate::extract::{self, Link, Provenance};
use crate::labels::{self, Builtin, Label};
pub use crate::store::model::{InfraKey, InfraKind, Reason, ReasonKind, RepositoryRecord, Verdict};
use crate::store::{Durability, Store, StoreError};
use crate::trace::{Outcome, Trace, Via};

/// Links resolved per repository at most; a description with more is judged on these (the
/// output says how many were left out).
pub const MAX_LINKS_PER_REPOSITORY: usize = 200;

/// A link of a repository: its Trace, and where in the repository it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScannedLink {
    #[serde(flatten)]
    pub trace: Trace,
    pub found_in: Vec<Provenance>,
}

/// One output line of `hoptrace scan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scanned {
    pub repository: String,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub links: Vec<ScannedLink>,
    /// Links found beyond [`MAX_LINKS_PER_REPOSITORY`], not resolved.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links_left_out: usize,
    /// Answered from an earlier scan of the same text in the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why [`Scanner::scan_each`] skipped a repository (the scan goes on).
#[derive(Debug, thiserror::Error)]
pub enum Skipped {
    #[error(transparent)]
    Input(#[from] ScanError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Scans documents with one resolver: the limits on links in flight (the resolver's
/// admission) and per host apply to all repositories together.
pub struct Scanner {
    resolver: Arc<Resolver>,
    use_cache: bool,
    rescan: bool,
}

impl Scanner {
    /// `use_cache` as for `resolve`; `rescan` resolves repositories the store has already
    /// scanned.
    pub fn new(resolver: Arc<Resolver>, use_cache: bool, rescan: bool) -> Scanner {
        Scanner {
            resolver,
            use_cache,
            rescan,
        }
    }

    /// Scans one document and stores what it found (when the resolver has a store).
    pub async fn scan(&self, doc: &Document) -> Result<Scanned, StoreError> {
        let digest = doc.digest();
        if !self.rescan {
            if let Some(done) = self.resumed(doc, &digest).await? {
                return Ok(done);
            }
        }
        let (found, left_out) = links_of(doc, MAX_LINKS_PER_REPOSITORY);
        let entries = found.iter().map(|l| Entry::parse(l.url.clone()));
        let lookup = Lookup::cache_if(self.use_cache);
        let traces = self.resolver.answer_each(entries, lookup).await;
        let store = self.resolver.store();
        let durability = self.resolver.durability();
        concluded(store, doc, found, traces, left_out, durability).await
    }

    /// Scans `docs`, a stream of any length, through the resolver's one batch engine
    /// ([`Batch::each`]): in input order, a group at a time, each group handed out once its
    /// Traces and repository records are on disk, when the resolver defers its writes
    /// ([`Resolver::defer_durability`]) in one flush. A crash between flushes loses only the
    /// repositories not yet handed out; resuming scans them again. A bad document or a write
    /// that failed skips its repository, not the scan.
    pub fn scan_each<S>(self: Arc<Self>, docs: S) -> Groups<Result<Scanned, Skipped>, Infallible>
    where
        S: Stream<Item = Result<Document, ScanError>> + Send + 'static,
    {
        let resolver = self.resolver.clone();
        Batch::each(&resolver, docs.map(Ok), move |doc| {
            let this = self.clone();
            async move {
                // Boxed: a scan's state (its resolutions') is large, and a task's future is
                // moved whole as the task is made.
                Ok(Box::pin(this.scan(&doc?)).await?)
            }
        })
    }

    /// A stored scan of the same text, its links' latest Traces read back from the store.
    async fn resumed(&self, doc: &Document, digest: &str) -> Result<Option<Scanned>, StoreError> {
        let Some(store) = self.resolver.store() else {
            return Ok(None);
        };
        let rec = match store.repository(&doc.repository).await {
            Ok(Some(rec)) => rec,
            Ok(None) => return Ok(None),
            // A damaged record is scanned again, and the new one replaces it.
            Err(StoreError::Corrupt(why)) => {
                tracing::warn!("scanning {} again: {why}", doc.repository);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if rec.digest != digest {
            return Ok(None);
        }
        let mut links = Vec::with_capacity(rec.links.len());
        for l in rec.links {
            let Ok(link) = crate::input::Link::parse(l.url.as_str()) else {
                return Ok(None);
            };
            let Some(trace) = self.resolver.stored(&link).await else {
                return Ok(None); // the store lost a trace: scan again
            };
            links.push(ScannedLink {
                trace,
                found_in: l.found_in,
            });
        }
        Ok(Some(Scanned {
            repository: rec.repository,
            verdict: rec.verdict,
            reasons: rec.reasons,
            links,
            links_left_out: rec.links_left_out,
            resumed: true,
        }))
    }
}

/// The distinct links of a document, at most `max` (and how many more there were).
pub fn links_of(doc: &Document, max: usize) -> (Vec<Link>, usize) {
    let fields: Vec<(&str, &str)> = doc
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut found = extract::find(&fields);
    let left_out = found.len().saturating_sub(max);
    found.truncate(max);
    (found, left_out)
}

/// Judges a document from its links' Traces (in the order of `found`) and, given a store,
/// keeps the record for resuming and campaigns.
pub async fn conclude(
    store: Option<&Store>,
    doc: &Document,
    found: Vec<Link>,
    traces: Vec<Trace>,
    left_out: usize,
) -> Result<Scanned, StoreError> {
    concluded(store, doc, found, traces, left_out, Durability::Now).await
}

/// [`conclude`], the record durable as `durability` says (a scan that defers its writes
/// flushes before it reports).
async fn concluded(
    store: Option<&Store>,
    doc: &Document,
    found: Vec<Link>,
    traces: Vec<Trace>,
    left_out: usize,
    durability: Durability,
) -> Result<Scanned, StoreError> {
    let links = traces
        .into_iter()
        .zip(&found)
        .map(|(trace, l)| ScannedLink {
            trace,
            found_in: l.found_in.clone(),
        })
        .collect();
    let scanned = judge_repository(doc, links, left_out);
    if let Some(store) = store {
        let record = record(doc, doc.digest(), &scanned, found);
        match durability {
            Durability::Now => store.put_repository(&doc.repository, &record).await?,
            Durability::NextFlush => store.put_repository_later(&doc.repository, &record).await?,
        }
    }
    Ok(scanned)
}

fn record(doc: &Document, digest: String, scanned: &Scanned, found: Vec<Link>) -> RepositoryRecord {
    let mut landing_hosts = Vec::new();
    let mut infra = Vec::new();
    let mut labels = Vec::new();
    for link in &scanned.links {
        let t = &link.trace;
        if judge_link(t).iter().all(|r| r.verdict == Verdict::Clean) {
            continue;
        }
        // A chain the egress policy stopped landed nowhere: the refused address (a metadata
        // endpoint, say) is no campaign's landing.
        let landed = matches!(t.outcome, Outcome::Landed | Outcome::Download);
        if landed && !t.final_host.is_empty() && !landing_hosts.contains(&t.final_host) {
            landing_hosts.push(t.final_host.clone());
        }
        push_new(&mut infra, infrastructure(t));
        push_new(&mut labels, t.labels.clone());
    }
    if let Some(sig) = signature(doc) {
        push_new(&mut infra, vec![InfraKey::new(InfraKind::Signature, sig)]);
    }
    RepositoryRecord {
        repository: doc.repository.clone(),
        namespace: doc.namespace.clone(),
        digest,
        verdict: scanned.verdict,
        reasons: scanned.reasons.clone(),
        links: found,
        links_left_out: scanned.links_left_out,
        landing_hosts,
        infrastructure: infra,
        labels,
        scanned_at: crate::trace::rfc3339(crate::now_ms()),
        last_updated: doc.last_updated.clone(),
        date_registered: doc.date_registered.clone(),
    }
}

fn push_new<T: PartialEq>(into: &mut Vec<T>, items: Vec<T>) {
    for i in items {
        if !into.contains(&i) {
            into.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The infrastructure keys of `t` as stored.
    fn keys(t: &Trace) -> Vec<String> {
        infrastructure(t).iter().map(ToString::to_string).collect()
    }
    use crate::trace::Hop;
    use serde_json::Value;

    fn doc(ns: &str, name: &str) -> Document {
        Document {
            repository: format!("{ns}/{name}"),
            namespace: ns.into(),
            name: name.into(),
            fields: vec![],
            last_updated: None,
            date_registered: None,
        }
    }

    fn trace(hops: &[(&str, Via, &[&str], Option<&str>)], outcome: Outcome) -> Trace {
        let input = hops[0].0;
        let hops = hops
            .iter()
            .map(|(u, via, labels, ct)| {
                let url = url::Url::parse(u).unwrap();
                let mut h = Hop::new(u.to_string(), url.host_str().unwrap().into(), *via);
                h.labels = labels.iter().map(|s| Label::from(*s)).collect();
                h.content_type = ct.map(str::to_string);
                h
            })
            .collect();
        Trace::from_hops(input, hops, outcome)
    }

    #[test]
    fn hub_objects_and_pages() {
        let v: Value = serde_json::from_str(
            r#"{"namespace":"a1bcdef234","name":"website","description":"d","full_description":null,"last_updated":"2023-05-01T00:00:00Z","star_count":0}"#,
        )
        .unwrap();
        let d = Document::from_hub(&v).unwrap();
        assert_eq!(d.repository, "a1bcdef234/website");
        assert_eq!(d.fields, vec![("description".to_string(), "d".to_string())]);
        assert_eq!(signature(&d), Some("website-seo"));
        assert_eq!(signature(&doc("ab1cdef234", "website")), None);
        assert_eq!(signature(&doc("a1bcdef234", "site")), None);
        let v: Value = serde_json::from_str(r#"{"repo_name":"x/y"}"#).unwrap();
        assert_eq!(Document::from_hub(&v).unwrap().repository, "x/y");
        assert!(Document::from_hub(&serde_json::json!({"name": "y"})).is_err());
        assert!(Document::from_hub(&serde_json::json!([1])).is_err());

        let input = "\n{\"results\":[{\"namespace\":\"a\",\"name\":\"b\"},{\"namespace\":\"c\",\"name\":\"d\"}]}\nnot json\n\n{\"namespace\":\"e\",\"name\":\"f\"}\n";
        let got: Vec<_> = documents(std::io::Cursor::new(input.to_string()), "-").collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].as_ref().unwrap().repository, "c/d");
        assert!(
            matches!(got[2], Err(ScanError::Line { line: 3, .. })),
            "{:?}",
            got[2]
        );
        assert_eq!(got[3].as_ref().unwrap().repository, "e/f");

        let text: Vec<_> = documents(
            std::io::Cursor::new("see\nhttp://x.example/\n".to_string()),
            "notes.md",
        )
        .collect();
        assert_eq!(text.len(), 1);
        assert_eq!(
            text[0].as_ref().unwrap().fields[0].1,
            "see\nhttp://x.example/\n"
        );
    }

    #[test]
    fn link_verdicts_and_infrastructure() {
        let fake = trace(
            &[
                ("http://bltlly.com/x", Via::Input, &["fake-shortener"], None),
                (
                    "http://cdn.failhostingpolp.ru/a/b",
                    Via::HttpRedirect,
                    &["payload-host"],
                    None,
                ),
            ],
            Outcome::Landed,
        );
        let reasons = judge_link(&fake);
        assert_eq!(reasons.len(), 2);
        assert!(reasons.iter().all(|r| r.verdict == Verdict::Malicious));
        assert_eq!(
            keys(&fake),
            vec!["fake-shortener:bltlly.com", "landing:failhostingpolp.ru"]
        );

        let exe = trace(
            &[
                ("http://files.example/get", Via::Input, &[], None),
                (
                    "http://dl.example/setup.exe",
                    Via::HttpRedirect,
                    &[],
                    Some("text/plain"),
                ),
            ],
            Outcome::Download,
        );
        let r = judge_link(&exe);
        assert!(
            r.iter()
                .any(|r| r.verdict == Verdict::Suspicious && r.why.contains(".exe")),
            "{r:?}"
        );

        let pdf = trace(
            &[(
                "http://docs.example/manual.pdf",
                Via::Input,
                &[],
                Some("application/pdf"),
            )],
            Outcome::Download,
        );
        assert!(judge_link(&pdf).is_empty());

        let unknown = trace(
            &[
                ("http://shrt.example/Ab3xY", Via::Input, &[], None),
                ("http://far.example/page", Via::HttpRedirect, &[], None),
            ],
            Outcome::Landed,
        );
        assert!(judge_link(&unknown)[0]
            .why
            .contains("shrt.example acts as a URL shortener"));

        let docs = trace(
            &[
                ("https://github.com/org/repo", Via::Input, &[], None),
                ("https://docs.github.com/en", Via::HttpRedirect, &[], None),
            ],
            Outcome::Landed,
        );
        assert!(judge_link(&docs).is_empty());

        let ebook = trace(
            &[
                ("https://www.blogger.com/p?el=x", Via::Input, &[], None),
                (
                    "https://gohhs.com/x",
                    Via::Javascript,
                    &["fake-shortener"],
                    None,
                ),
                (
                    "https://rd.lesac.ru/",
                    Via::HttpRedirect,
                    &["phishing"],
                    None,
                ),
                ("https://cards.example/pay", Via::HttpRedirect, &[], None),
            ],
            Outcome::Landed,
        );
        assert_eq!(
            keys(&ebook),
            vec![
                "fake-shortener:gohhs.com",
                "redirector:lesac.ru",
                "landing:cards.example"
            ]
        );
    }

    /// A chain the egress policy refused (a metadata address) makes the repository suspicious
    /// but gives it no landing host: it landed nowhere.
    #[test]
    fn a_blocked_chain_is_no_landing() {
        let mut blocked = trace(
            &[
                ("http://go.example/x", Via::Input, &[], None),
                (
                    "http://169.254.169.254/latest",
                    Via::HttpRedirect,
                    &[],
                    None,
                ),
            ],
            Outcome::Blocked,
        );
        blocked.hops[1].blocked = true;
        let d = doc("u1", "r");
        let link = ScannedLink {
            trace: blocked,
            found_in: vec![],
        };
        let scanned = judge_repository(&d, vec![link], 0);
        assert_eq!(scanned.verdict, Verdict::Suspicious);
        let rec = record(&d, d.digest(), &scanned, vec![]);
        assert!(rec.landing_hosts.is_empty(), "{:?}", rec.landing_hosts);
        assert!(rec.infrastructure.is_empty(), "{:?}", rec.infrastructure);
    }

    /// A 10 MB repository line is an error naming its line, read past without being held;
    /// the lines around it are scanned.
    #[test]
    fn a_line_over_the_cap_is_skipped_with_an_error() {
        let huge = format!(
            "{{\"namespace\":\"big\",\"name\":\"x\",\"description\":\"{}\"}}",
            "a".repeat(10 << 20)
        );
        let input = format!("{{\"namespace\":\"a\",\"name\":\"b\"}}\n{huge}\n{{\"namespace\":\"c\",\"name\":\"d\"}}\n");
        let got: Vec<_> = documents(std::io::Cursor::new(input), "-").collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().repository, "a/b");
        match &got[1] {
            Err(ScanError::Line { line: 2, message }) => assert!(message.contains("longer than")),
            other => panic!("{:?}", other.as_ref().map(|d| &d.repository)),
        }
        assert_eq!(got[2].as_ref().unwrap().repository, "c/d");
        let text = format!("notes\n{}\n", "b".repeat(MAX_LINE));
        let got: Vec<_> = documents(std::io::Cursor::new(text), "notes.md").collect();
        assert!(matches!(got[..], [Err(ScanError::Line { .. })]), "{got:?}");
    }

    #[test]
    fn links_beyond_the_cap_are_counted_not_resolved() {
        let mut d = doc("a", "b");
        let text: Vec<String> = (0..5).map(|i| format!("http://h{i}.example/")).collect();
        d.fields = vec![("description".into(), text.join(" "))];
        let (found, left_out) = links_of(&d, 3);
        assert_eq!(found.len(), 3);
        assert_eq!(left_out, 2);
        assert_eq!(found[0].url, "http://h0.example/");
    }

    #[test]
    fn repository_verdict_is_the_worst_reason_first() {
        let d = doc("a1bcdef234", "website");
        let s = judge_repository(&d, vec![], 0);
        assert_eq!(s.verdict, Verdict::Suspicious);
        assert_eq!(s.reasons[0].url, None);
        assert_eq!(
            judge_repository(&doc("someone", "website"), vec![], 0).verdict,
            Verdict::Clean
        );
    }
}
