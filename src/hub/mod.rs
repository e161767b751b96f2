//! Docker Hub as a source: list a namespace's repositories (or a search's, or a list of
//! names), ask each one's description and tags, and hand out records in the shape `scan`
//! reads, telling imageless repositories from the rest.
//!
//! A page is all or nothing: its records are handed out, and its cursor (pages finished, a
//! store counter per source) moves on, only once every repository on it was read. An
//! interrupted crawl resumes at the first page it did not finish; a crawl that ends clears
//! its cursor, so the next run starts over (with `since`, reading only newer repositories).

pub mod api;
pub mod jobs;
pub mod record;
pub mod schedule;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};

use crate::scan::{Document, DocumentError, Scanned, Scanner};
use crate::store::{Store, StoreError};
pub use api::HubApi;
pub use jobs::{Crawls, Job, Order};
pub use record::{valid_name, HubRecord, Listed, RecordError};

/// The environment variable a Docker Hub API token is read from (never a flag or a config
/// key, where `ps` or a shared file would show it).
pub const TOKEN_VAR: &str = "HOPTRACE_HUB_TOKEN";

/// Repositories asked per listing page (the Hub's maximum).
pub const PAGE_SIZE: usize = 100;

/// Tag pages read at most per repository (of [`PAGE_SIZE`] tags each).
pub const MAX_TAG_PAGES: usize = 10;

/// Why a crawl stopped. Each names the page it was at.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `hub.api_url` is no URL.
    #[error("hub: {0}")]
    ApiUrl(#[source] url::ParseError),
    #[error("hub: {} is not a header value", TOKEN_VAR)]
    Token,
    #[error("hub: {0}")]
    Client(#[source] crate::fetch::ClientError),
    #[error("hub: egress: {0}")]
    Egress(#[source] crate::egress::EgressError),
    /// A namespace outside the Hub's syntax.
    #[error("namespace {0:?} is not a Docker Hub namespace")]
    BadNamespace(String),
    #[error("name a source: namespaces, a search or repositories")]
    NoSource,
    /// A search that is empty or too long.
    #[error("search: 1 to {} bytes", crate::config::MAX_HUB_SEARCH)]
    BadSearch,
    /// A repository entry (counted from 1) that is not `namespace/name`; `shown` is cut to
    /// 300 characters.
    #[error("repository entry {entry}: {shown:?} is not `namespace/name`")]
    BadRepository { entry: usize, shown: String },
    /// Another crawl is running in this process (one at a time).
    #[error("a Docker Hub crawl is running already (one at a time)")]
    Busy,
    #[error("{page}: {source}")]
    Request {
        page: String,
        #[source]
        source: Box<crate::fetch::FetchError>,
    },
    /// The page's body was cut short (why).
    #[error("{page}: {why}")]
    Cut { page: String, why: &'static str },
    #[error("{page}: malformed: {kind}")]
    Malformed { page: String, kind: RecordError },
    #[error("{page}: larger than {} MiB", api::MAX_PAGE_BYTES >> 20)]
    TooLarge { page: String },
    #[error("{page}: not found")]
    NotFound { page: String },
    #[error("{page}: status {status}")]
    Status { page: String, status: u16 },
    #[error("{page}: the Hub asks to wait {seconds} s; run again later to resume")]
    RateLimited { page: String, seconds: u64 },
    #[error("{page}: gave up after {attempts} attempts (last: {last})")]
    GaveUp {
        page: String,
        attempts: u32,
        last: Retried,
    },
    /// A page's `next` leads off the configured API: not followed.
    #[error("{page}: `next` leads off the Hub's API ({next}); not followed")]
    ForeignNext { page: String, next: String },
    /// Whoever took the records could not (stdout closed, a scan failed).
    #[error("handing out records: {0}")]
    Emit(EmitError),
    #[error("the crawl's cursor: {0}")]
    Store(#[from] StoreError),
}

/// The answer a page was asked again for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Retried {
    #[error("429 Too Many Requests")]
    TooManyRequests,
    #[error("status {0}")]
    Status(u16),
}

/// Why a page's records could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// A record is not the document a scan reads.
    #[error("{0}")]
    Document(#[from] DocumentError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Scanning a record failed in the store.
    #[error("{0}")]
    Scan(#[from] StoreError),
    /// Writing the records out failed (stdout closed).
    #[error("{0}")]
    Write(#[from] std::io::Error),
}

/// Where the repositories come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `GET /v2/namespaces/{ns}/repositories`, paged.
    Namespace(String),
    /// `GET /v2/search/repositories?query=`, paged.
    Search(String),
    /// `namespace/name` pairs, asked one by one (a "page" is [`PAGE_SIZE`] of them).
    Repositories(Vec<(String, String)>),
}

impl Source {
    /// The store counter holding this source's pages finished.
    fn cursor_key(&self) -> String {
        match self {
            Source::Namespace(ns) => format!("hub:namespace:{ns}"),
            Source::Search(q) => {
                let mut h = crate::scan::Fnv::default();
                h.write(q.as_bytes());
                format!("hub:search:{:016x}", h.0)
            }
            Source::Repositories(list) => {
                let mut h = crate::scan::Fnv::default();
                for (ns, name) in list {
                    h.write(format!("{ns}/{name}\n").as_bytes());
                }
                format!("hub:repositories:{:016x}", h.0)
            }
        }
    }
}

/// How a job names a source.
impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Namespace(ns) => write!(f, "namespace:{ns}"),
            Source::Search(q) => write!(f, "search:{q}"),
            Source::Repositories(list) => write!(f, "repositories:{}", list.len()),
        }
    }
}

/// The sources a request names, in order: namespaces, searches, `namespace/name` entries;
/// an error names the first one that is not a Docker Hub name (or an empty or overlong
/// search).
pub fn sources(
    namespaces: &[String],
    searches: &[String],
    repositories: &[String],
) -> Result<Vec<Source>, HubError> {
    let mut sources = Vec::new();
    for ns in namespaces {
        if !valid_name(ns) {
            return Err(HubError::BadNamespace(ns.clone()));
        }
        sources.push(Source::Namespace(ns.clone()));
    }
    for q in searches {
        if q.trim().is_empty() || q.len() > crate::config::MAX_HUB_SEARCH {
            return Err(HubError::BadSearch);
        }
        sources.push(Source::Search(q.clone()));
    }
    if !repositories.is_empty() {
        let mut list = Vec::with_capacity(repositories.len());
        for (i, entry) in repositories.iter().enumerate() {
            match entry.split_once('/') {
                Some((ns, name)) if valid_name(ns) && valid_name(name) => {
                    list.push((ns.to_string(), name.to_string()))
                }
                _ => {
                    return Err(HubError::BadRepository {
                        entry: i + 1,
                        shown: entry.chars().take(300).collect(),
                    })
                }
            }
        }
        sources.push(Source::Repositories(list));
    }
    if sources.is_empty() {
        return Err(HubError::NoSource);
    }
    Ok(sources)
}

/// Scans `records` (at most `concurrency` at once; their visits take the resolver's
/// process-wide slots) and hands each record's verdict to `each`, in order. What is scanned
/// is stored by the scanner, for campaigns, the timeline and the exports.
pub async fn scan_records(
    scanner: &Scanner,
    records: &[HubRecord],
    concurrency: usize,
    mut each: impl FnMut(&HubRecord, Scanned) -> Result<(), EmitError>,
) -> Result<(), EmitError> {
    let docs = records
        .iter()
        .map(|r| Ok(Document::from_hub(&serde_json::to_value(r)?)?))
        .collect::<Result<Vec<_>, EmitError>>()?;
    // Owned documents: a stream over borrowed ones is not `Send` for every lifetime, which
    // a spawned crawl needs.
    let mut scanned = std::pin::pin!(stream::iter(docs)
        .map(|d| async move { scanner.scan(&d).await })
        .buffered(concurrency.max(1)));
    for record in records {
        let Some(s) = scanned.next().await else { break };
        each(record, s?)?;
    }
    Ok(())
}

/// What one crawl did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Pages read in this run.
    pub pages: u64,
    /// Pages skipped because an earlier, interrupted run finished them.
    pub resumed_pages: u64,
    pub records: u64,
    /// Repositories left out as not updated after `since`.
    pub older: u64,
}

/// A crawl of one source at a time.
pub struct Crawler {
    api: Arc<HubApi>,
    store: Option<Store>,
    /// Only repositories updated after this are read.
    since: Option<SystemTime>,
    /// Without `since`: only repositories updated since the last finished crawl of the same
    /// source began (kept in the store).
    incremental: bool,
}

impl Crawler {
    /// `store` keeps the cursor (none: no resuming).
    pub fn new(
        api: impl Into<Arc<HubApi>>,
        store: Option<Store>,
        since: Option<SystemTime>,
    ) -> Crawler {
        Crawler {
            api: api.into(),
            store,
            since,
            incremental: false,
        }
    }

    /// Each crawl reads only what changed since the last finished crawl of its source began
    /// (the first reads everything); an explicit `since` wins.
    pub fn incremental(mut self) -> Crawler {
        self.incremental = true;
        self
    }

    /// Crawls `source`, handing each finished page's records to `emit` (in page order); the
    /// cursor moves past a page once `emit` took it without an error.
    pub async fn crawl<F, Fut>(&self, source: &Source, mut emit: F) -> Result<Summary, HubError>
    where
        F: FnMut(Vec<HubRecord>) -> Fut,
        Fut: std::future::Future<Output = Result<(), EmitError>>,
    {
        let key = source.cursor_key();
        let done = match &self.store {
            Some(s) => s.counter(&key).await?,
            None => 0,
        };
        let since = self.since_for(&key, done).await?;
        let mut summary = Summary {
            resumed_pages: done,
            ..Summary::default()
        };
        let page_size = PAGE_SIZE.to_string();
        let mut page_no = done + 1;
        let mut url = match source {
            Source::Namespace(ns) => Some(self.api.url(
                &format!("/v2/namespaces/{ns}/repositories"),
                &[("page", &page_no.to_string()), ("page_size", &page_size)],
            )),
            Source::Search(q) => Some(self.api.url(
                "/v2/search/repositories",
                &[
                    ("query", q),
                    ("page", &page_no.to_string()),
                    ("page_size", &page_size),
                ],
            )),
            Source::Repositories(_) => None,
        };
        loop {
            let (listed, next) = match (source, &url) {
                (Source::Repositories(list), _) => {
                    let from = (page_no as usize - 1).saturating_mul(PAGE_SIZE);
                    let chunk = list.iter().skip(from).take(PAGE_SIZE);
                    let listed: Vec<Listed> = chunk
                        .map(|(ns, name)| Listed {
                            namespace: ns.clone(),
                            name: name.clone(),
                            last_updated: None,
                        })
                        .collect();
                    let more = from + PAGE_SIZE < list.len();
                    if listed.is_empty() {
                        break;
                    }
                    (listed, more.then(String::new))
                }
                (_, Some(page)) => {
                    let value = self.api.get(page).await?;
                    let namespace = match source {
                        Source::Namespace(ns) => Some(ns.as_str()),
                        _ => None,
                    };
                    record::page(&value, namespace).map_err(|kind| HubError::Malformed {
                        page: page.to_string(),
                        kind,
                    })?
                }
                (_, None) => break,
            };
            let mut records = Vec::with_capacity(listed.len());
            let mut older_on_page = 0;
            for repo in &listed {
                if !after(since, repo.last_updated.as_deref()) {
                    older_on_page += 1;
                    continue;
                }
                if let Some(r) = self.repository(repo, since).await? {
                    records.push(r);
                } else {
                    older_on_page += 1;
                }
            }
            summary.records += records.len() as u64;
            summary.older += older_on_page;
            summary.pages += 1;
            emit(records).await.map_err(HubError::Emit)?;
            if let Some(s) = &self.store {
                s.set_counter(&key, page_no).await?;
            }
            // Every page is read even with `since`: whether a listing's order is newest
            // first is not something to bet repositories on, and a page is one request for a
            // hundred of them; the older ones cost no further request.
            let more = match next {
                None => false,
                Some(next) => {
                    if let Some(page) = url.take() {
                        url = Some(self.api.next(&page, &next)?);
                    }
                    true
                }
            };
            if !more {
                break;
            }
            page_no += 1;
        }
        // Finished: the next run starts over, and an incremental one reads only what
        // changed since this one began.
        if let Some(s) = &self.store {
            if self.incremental {
                let began = s.counter(&began_key(&key)).await?;
                s.set_counter(&since_key(&key), began).await?;
            }
            s.set_counter(&key, 0).await?;
        }
        Ok(summary)
    }

    /// The `since` of a crawl of the source keyed `key` that finished `done` pages before:
    /// the explicit one, or for an incremental crawl the start of the last finished one. A
    /// crawl starting afresh notes when it began (a resumed one keeps its first start, so
    /// nothing updated on its earlier pages meanwhile is skipped next time).
    async fn since_for(&self, key: &str, done: u64) -> Result<Option<SystemTime>, HubError> {
        let (Some(store), true, None) = (&self.store, self.incremental, self.since) else {
            return Ok(self.since);
        };
        if done == 0 {
            store.set_counter(&began_key(key), crate::now_ms()).await?;
        }
        Ok(match store.counter(&since_key(key)).await? {
            0 => None,
            ms => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
        })
    }

    /// One repository's record (`None` when its details show it is older than `since`).
    async fn repository(
        &self,
        repo: &Listed,
        since: Option<SystemTime>,
    ) -> Result<Option<HubRecord>, HubError> {
        let path = format!(
            "/v2/namespaces/{}/repositories/{}",
            repo.namespace, repo.name
        );
        let detail_url = self.api.url(&path, &[]);
        let detail = self.api.get(&detail_url).await?;
        let updated = detail.get("last_updated").and_then(|v| v.as_str());
        if repo.last_updated.is_none() && !after(since, updated) {
            return Ok(None);
        }
        let (tag_count, imageless) = self.tags(&path).await?;
        record::record(repo, &detail, tag_count, imageless)
            .map(Some)
            .map_err(|kind| HubError::Malformed {
                page: detail_url.to_string(),
                kind,
            })
    }

    /// The Hub's count of a repository's tags, and whether none of them has an image: tag
    /// pages are read, following `next` on the API's host only, until a tag with an image
    /// shows (imaged), the pages end with every counted tag seen and none with an image
    /// (imageless), or [`MAX_TAG_PAGES`] were read (not proven imageless: counted as imaged).
    /// An empty first page is imageless without a further request.
    async fn tags(&self, path: &str) -> Result<(u64, bool), HubError> {
        let mut url = self.api.url(
            &format!("{path}/tags"),
            &[("page_size", &PAGE_SIZE.to_string())],
        );
        let (mut count, mut seen) = (0, 0u64);
        for _ in 0..MAX_TAG_PAGES {
            let value = self.api.get(&url).await?;
            let page = record::tags_page(&value).map_err(|kind| HubError::Malformed {
                page: url.to_string(),
                kind,
            })?;
            count = count.max(page.count);
            seen += page.listed;
            if page.any_image {
                return Ok((count, false));
            }
            match page.next {
                Some(next) if page.listed > 0 => url = self.api.next(&url, &next)?,
                _ => return Ok((count, seen >= count)),
            }
        }
        Ok((count, false))
    }
}

/// True when there is no `since`, or `updated` is after it (or unreadable: read it).
fn after(since: Option<SystemTime>, updated: Option<&str>) -> bool {
    let Some(since) = since else { return true };
    match updated.and_then(|u| humantime::parse_rfc3339_weak(u).ok()) {
        Some(t) => t > since,
        None => true,
    }
}

/// Store counter: when the current crawl of a source began (ms since the epoch).
fn began_key(key: &str) -> String {
    format!("{key}:began")
}

/// Store counter: when the last finished crawl of a source began; an incremental crawl's
/// `since`.
fn since_key(key: &str) -> String {
    format!("{key}:since")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refusal is a kind with its data; the words are what they always were.
    #[test]
    fn refusals_are_kinds_with_their_words() {
        let words = |e: HubError| e.to_string();
        let none: [String; 0] = [];
        assert_eq!(
            words(sources(&["-x".into()], &[], &[]).unwrap_err()),
            "namespace \"-x\" is not a Docker Hub namespace"
        );
        assert_eq!(
            words(sources(&[], &[" ".into()], &[]).unwrap_err()),
            format!("search: 1 to {} bytes", crate::config::MAX_HUB_SEARCH)
        );
        assert_eq!(
            words(sources(&[], &[], &["a/b".into(), "nope".into()]).unwrap_err()),
            "repository entry 2: \"nope\" is not `namespace/name`"
        );
        assert_eq!(
            words(sources(&none, &none, &none).unwrap_err()),
            "name a source: namespaces, a search or repositories"
        );
        let gave_up = |last| HubError::GaveUp {
            page: "http://hub.test/p".into(),
            attempts: 4,
            last,
        };
        assert_eq!(
            words(gave_up(Retried::Status(503))),
            "http://hub.test/p: gave up after 4 attempts (last: status 503)"
        );
        assert_eq!(
            words(gave_up(Retried::TooManyRequests)),
            "http://hub.test/p: gave up after 4 attempts (last: 429 Too Many Requests)"
        );
        assert_eq!(
            words(HubError::Token),
            "hub: HOPTRACE_HUB_TOKEN is not a header value"
        );
    }
}
