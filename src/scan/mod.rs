//! Scanning repository descriptions: each Docker Hub repository's links are found
//! ([`crate::extract`]), resolved ([`crate::chain`]) and judged, and what they reached is kept
//! in the store, both to resume an interrupted scan and to group repositories into
//! [`crate::campaigns`].

mod judge;
use judge::signature;
pub use judge::{infrastructure, judge_link, judge_repository};

use std::io::BufRead;
use std::sync::Arc;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::Resolver;
use crate::extract::{self, Link, Provenance};
use crate::labels::{self, FAKE_SHORTENER, LOOKALIKE_SHORTENER, SHORTENER};
pub use crate::store::model::{Reason, RepositoryRecord, Verdict};
use crate::store::{Store, StoreError};
use crate::trace::{Outcome, Trace, Via};

/// Links resolved per repository at most; a description with more is judged on these (the
/// output says how many were left out).
pub const MAX_LINKS_PER_REPOSITORY: usize = 200;

/// Labels that make a link, and its repository, malicious.
pub use crate::labels::MALICIOUS as MALICIOUS_LABELS;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
}

/// One thing to scan: a repository's text fields, or a plain-text document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `namespace/name`, or the document's own name for plain text.
    pub repository: String,
    /// The publishing user (empty for plain text).
    pub namespace: String,
    pub name: String,
    /// (field name, text) in the order they are searched.
    pub fields: Vec<(String, String)>,
    /// When Docker Hub says the repository was last updated, as it says it.
    pub last_updated: Option<String>,
}

impl Document {
    /// A repository from a Docker Hub API object: `namespace` (or `user`) and `name`, or
    /// `repo_name` = `namespace/name` as search results have it; the text of `description`
    /// and `full_description`; other fields ignored.
    pub fn from_hub(v: &Value) -> Result<Document, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let (namespace, name) = match (text("namespace").or_else(|| text("user")), text("name")) {
            (Some(ns), Some(name)) => (ns, name),
            _ => match text("repo_name").as_deref().and_then(|r| r.split_once('/')) {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => return Err("no `namespace` and `name` (nor `repo_name`)".into()),
            },
        };
        if namespace.is_empty() || name.is_empty() {
            return Err("empty `namespace` or `name`".into());
        }
        let fields = ["description", "full_description"]
            .into_iter()
            .filter_map(|k| text(k).map(|t| (k.to_string(), t)))
            .collect();
        Ok(Document {
            repository: format!("{namespace}/{name}"),
            namespace,
            name,
            fields,
            last_updated: text("last_updated"),
        })
    }

    /// Plain text named `name` (searched as the field `text`).
    pub fn text(name: &str, text: String) -> Document {
        Document {
            repository: name.to_string(),
            namespace: String::new(),
            name: name.to_string(),
            fields: vec![("text".to_string(), text)],
            last_updated: None,
        }
    }

    /// A digest of the searched text: a stored scan of the same repository with the same
    /// digest need not run again.
    fn digest(&self) -> String {
        let mut h = Fnv::default();
        for (k, v) in &self.fields {
            h.write(k.as_bytes());
            h.write(&[0]);
            h.write(v.as_bytes());
            h.write(&[0]);
        }
        format!("{:016x}", h.0)
    }
}

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`), which stored
/// digests and campaign ids need.
pub(crate) struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Reads scan input: Docker Hub repository JSONL (one object a line, or an API page with a
/// `results` array) when the first non-blank line starts with `{`, otherwise the whole input
/// as one plain-text document named `source`. Bad lines are errors of their own; the rest
/// goes on.
pub fn documents<R: BufRead>(
    mut reader: R,
    source: &str,
) -> Box<dyn Iterator<Item = Result<Document, ScanError>> + Send>
where
    R: Send + 'static,
{
    let mut first = String::new();
    let mut line_no = 0;
    loop {
        first.clear();
        match reader.read_line(&mut first) {
            Ok(0) => return Box::new(std::iter::empty()),
            Ok(_) => line_no += 1,
            Err(e) => return Box::new(std::iter::once(Err(e.into()))),
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    if !first.trim_start().starts_with('{') {
        let mut text = first;
        if let Err(e) = reader.read_to_string(&mut text) {
            return Box::new(std::iter::once(Err(e.into())));
        }
        return Box::new(std::iter::once(Ok(Document::text(source, text))));
    }
    let first_docs = hub_line(&first, line_no);
    let rest = reader
        .lines()
        .enumerate()
        .filter(|(_, l)| !matches!(l, Ok(l) if l.trim().is_empty()))
        .flat_map(move |(i, line)| match line {
            Ok(line) => hub_line(&line, line_no + 1 + i),
            Err(e) => vec![Err(e.into())],
        });
    Box::new(first_docs.into_iter().chain(rest))
}

/// The repositories on one JSONL line.
fn hub_line(line: &str, line_no: usize) -> Vec<Result<Document, ScanError>> {
    let err = |message: String| ScanError::Line {
        line: line_no,
        message,
    };
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return vec![Err(err(format!("not JSON ({e})")))],
    };
    match v.get("results").and_then(Value::as_array) {
        Some(page) => page
            .iter()
            .map(|r| Document::from_hub(r).map_err(|m| err(m)))
            .collect(),
        None => vec![Document::from_hub(&v).map_err(err)],
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

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

/// Scans documents with one resolver: the limits on links in flight and per host apply to
/// all repositories together.
pub struct Scanner {
    resolver: Arc<Resolver>,
    slots: tokio::sync::Semaphore,
    use_cache: bool,
    rescan: bool,
}

impl Scanner {
    /// `concurrency` links resolve at once over all repositories; `use_cache` as for
    /// `resolve`; `rescan` resolves repositories the store has already scanned.
    pub fn new(
        resolver: Arc<Resolver>,
        concurrency: usize,
        use_cache: bool,
        rescan: bool,
    ) -> Scanner {
        Scanner {
            resolver,
            slots: tokio::sync::Semaphore::new(concurrency.max(1)),
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
        let traces = join_all(found.iter().map(|l| async {
            let _slot = self.slots.acquire().await;
            self.resolver.resolve(&l.url, self.use_cache).await
        }))
        .await;
        conclude(self.resolver.store(), doc, found, traces, left_out).await
    }

    /// A stored scan of the same text, its links' latest Traces read back from the store.
    async fn resumed(&self, doc: &Document, digest: &str) -> Result<Option<Scanned>, StoreError> {
        let Some(store) = self.resolver.store() else {
            return Ok(None);
        };
        let Some(rec) = store.repository(&doc.repository).await? else {
            return Ok(None);
        };
        if rec.digest != digest {
            return Ok(None);
        }
        let mut links = Vec::with_capacity(rec.links.len());
        for l in rec.links {
            let Some(trace) = self.resolver.stored(&l.url).await else {
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
        store.put_repository(&doc.repository, &record).await?;
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
        if !t.final_host.is_empty() && !landing_hosts.contains(&t.final_host) {
            landing_hosts.push(t.final_host.clone());
        }
        push_new(&mut infra, infrastructure(t));
        push_new(&mut labels, t.labels.clone());
    }
    if let Some(sig) = signature(doc) {
        push_new(&mut infra, vec![format!("signature:{sig}")]);
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
    }
}

fn push_new(into: &mut Vec<String>, items: Vec<String>) {
    for i in items {
        if !into.contains(&i) {
            into.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Hop;

    fn doc(ns: &str, name: &str) -> Document {
        Document {
            repository: format!("{ns}/{name}"),
            namespace: ns.into(),
            name: name.into(),
            fields: vec![],
            last_updated: None,
        }
    }

    fn trace(hops: &[(&str, Via, &[&str], Option<&str>)], outcome: Outcome) -> Trace {
        let input = hops[0].0;
        let hops = hops
            .iter()
            .map(|(u, via, labels, ct)| {
                let url = url::Url::parse(u).unwrap();
                let mut h = Hop::new(u.to_string(), url.host_str().unwrap().into(), *via);
                h.labels = labels.iter().map(|s| s.to_string()).collect();
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
            infrastructure(&fake),
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
            infrastructure(&ebook),
            vec![
                "fake-shortener:gohhs.com",
                "redirector:lesac.ru",
                "landing:cards.example"
            ]
        );
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
