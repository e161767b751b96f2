//! Docker Hub as a source: list a namespace's repositories (or a search's, or a list of
//! names), ask each one's description and tags, and hand out records in the shape `scan`
//! reads, telling imageless repositories from the rest.
//!
//! A page is all or nothing: its records are handed out, and its cursor (pages finished, a
//! store counter per source) moves on, only once every repository on it was read. An
//! interrupted crawl resumes at the first page it did not finish; a crawl that ends clears
//! its cursor, so the next run starts over (with `since`, reading only newer repositories).

pub mod api;
pub mod record;

use std::time::SystemTime;

use crate::store::{Store, StoreError};
pub use api::HubApi;
pub use record::{valid_name, HubRecord, Listed};

/// Repositories asked per listing page (the Hub's maximum).
pub const PAGE_SIZE: usize = 100;

/// Why a crawl stopped. Each names the page it was at.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("hub: {0}")]
    Setup(String),
    #[error("{page}: {message}")]
    Request { page: String, message: String },
    #[error("{page}: malformed: {message}")]
    Malformed { page: String, message: String },
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
        last: String,
    },
    /// A page's `next` leads off the configured API: not followed.
    #[error("{page}: `next` leads off the Hub's API ({next}); not followed")]
    ForeignNext { page: String, next: String },
    /// Whoever took the records could not (stdout closed, a scan failed).
    #[error("handing out records: {0}")]
    Emit(String),
    #[error("the crawl's cursor: {0}")]
    Store(#[from] StoreError),
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
    api: HubApi,
    store: Option<Store>,
    /// Only repositories updated after this are read.
    since: Option<SystemTime>,
}

impl Crawler {
    /// `store` keeps the cursor (none: no resuming).
    pub fn new(api: HubApi, store: Option<Store>, since: Option<SystemTime>) -> Crawler {
        Crawler { api, store, since }
    }

    /// Crawls `source`, handing each finished page's records to `emit` (in page order); the
    /// cursor moves past a page once `emit` took it without an error.
    pub async fn crawl<F, Fut>(&self, source: &Source, mut emit: F) -> Result<Summary, HubError>
    where
        F: FnMut(Vec<HubRecord>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let key = source.cursor_key();
        let done = match &self.store {
            Some(s) => s.counter(&key).await?,
            None => 0,
        };
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
                    record::page(&value, namespace).map_err(|message| HubError::Malformed {
                        page: page.to_string(),
                        message,
                    })?
                }
                (_, None) => break,
            };
            let mut records = Vec::with_capacity(listed.len());
            let mut older_on_page = 0;
            for repo in &listed {
                if !self.after_since(repo.last_updated.as_deref()) {
                    older_on_page += 1;
                    continue;
                }
                if let Some(r) = self.repository(repo).await? {
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
        // Finished: the next run starts over.
        if let Some(s) = &self.store {
            s.set_counter(&key, 0).await?;
        }
        Ok(summary)
    }

    /// One repository's record (`None` when its details show it is older than `since`).
    async fn repository(&self, repo: &Listed) -> Result<Option<HubRecord>, HubError> {
        let path = format!(
            "/v2/namespaces/{}/repositories/{}",
            repo.namespace, repo.name
        );
        let detail_url = self.api.url(&path, &[]);
        let detail = self.api.get(&detail_url).await?;
        let updated = detail.get("last_updated").and_then(|v| v.as_str());
        if repo.last_updated.is_none() && !self.after_since(updated) {
            return Ok(None);
        }
        let tags_url = self.api.url(
            &format!("{path}/tags"),
            &[("page_size", &PAGE_SIZE.to_string())],
        );
        let tags = self.api.get(&tags_url).await?;
        record::record(repo, &detail, &tags)
            .map(Some)
            .map_err(|message| HubError::Malformed {
                page: tags_url.to_string(),
                message,
            })
    }

    /// True when there is no `since`, or `updated` is after it (or unreadable: read it).
    fn after_since(&self, updated: Option<&str>) -> bool {
        let Some(since) = self.since else { return true };
        match updated.and_then(|u| humantime::parse_rfc3339_weak(u).ok()) {
            Some(t) => t > since,
            None => true,
        }
    }
}
