//! The crawls of a running server: started through the API (`POST /v1/hub`, a job polled at
//! `GET /v1/hub/{id}`) or by the schedule. One crawl at a time per process, through one
//! client of the Hub (its rate limit and its `Retry-After` waits hold for all of them). A
//! job keeps only its newest records, within a count and a byte budget: everything it reads
//! goes to the scan and the store as it comes, page by page.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::scan::Scanner;
use crate::store::Store;
use crate::trace::rfc3339_ms;

use super::{scan_records, Crawler, HubApi, HubError, HubRecord, Source};

/// Records a job keeps for its callers to read (the newest).
pub const KEPT_RECORDS: usize = 1000;
/// Bytes of JSON a job keeps at most (the newest records within it).
pub const KEPT_BYTES: usize = 4 * 1024 * 1024;
/// Jobs remembered (the newest; the running one is never forgotten: it is the newest).
const KEPT_JOBS: usize = 8;

/// What a crawl is asked to do.
#[derive(Debug, Clone)]
pub struct Order {
    pub sources: Vec<Source>,
    /// Only repositories updated after this.
    pub since: Option<SystemTime>,
    /// Scan each record into the store.
    pub scan: bool,
    /// Without `since`: only what changed since the last finished crawl of each source.
    pub incremental: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
}

/// One crawl, as its callers see it.
pub struct Job {
    pub id: String,
    sources: Vec<String>,
    scan: bool,
    since: Option<SystemTime>,
    started_ms: u64,
    state: Mutex<State>,
}

struct State {
    status: Status,
    finished_ms: Option<u64>,
    error: Option<Arc<HubError>>,
    /// Pages handed out (resumed ones and older repositories: once a source is finished).
    pages: u64,
    resumed_pages: u64,
    older: u64,
    imageless: u64,
    /// Records handed out so far; each kept one carries its number (from 1).
    seq: u64,
    /// (number, the record as JSON), oldest first.
    kept: VecDeque<(u64, String)>,
    kept_bytes: usize,
}

impl Job {
    fn new(order: &Order) -> Job {
        let mut id = [0u8; 8];
        // An id nobody guesses; the clock would do, should the system's randomness fail.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            id = crate::now_ms().to_be_bytes();
        }
        Job {
            id: crate::record::hex(&id),
            sources: order.sources.iter().map(Source::to_string).collect(),
            scan: order.scan,
            since: order.since,
            started_ms: crate::now_ms(),
            state: Mutex::new(State {
                status: Status::Running,
                finished_ms: None,
                error: None,
                pages: 0,
                resumed_pages: 0,
                older: 0,
                imageless: 0,
                seq: 0,
                kept: VecDeque::new(),
                kept_bytes: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.state().status
    }

    /// Why the crawl failed (`None` while running or when done).
    pub fn error(&self) -> Option<Arc<HubError>> {
        self.state().error.clone()
    }

    /// Records handed out so far, and how many of them were imageless.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.seq, s.imageless)
    }

    /// Keeps one record (with its scan, when scanned), forgetting the oldest beyond the
    /// budgets.
    fn keep(&self, record: &HubRecord, scanned: Option<&crate::scan::Scanned>) {
        let mut s = self.state();
        s.seq += 1;
        s.imageless += u64::from(record.imageless);
        let seq = s.seq;
        let mut entry = json!({"seq": seq, "record": record});
        if let Some(scanned) = scanned {
            entry["scanned"] = json!(scanned);
        }
        let text = entry.to_string();
        s.kept_bytes += text.len();
        s.kept.push_back((seq, text));
        while s.kept.len() > KEPT_RECORDS || (s.kept_bytes > KEPT_BYTES && s.kept.len() > 1) {
            if let Some((_, old)) = s.kept.pop_front() {
                s.kept_bytes -= old.len();
            }
        }
    }

    fn finish(&self, result: Result<(), HubError>) {
        let mut s = self.state();
        s.finished_ms = Some(crate::now_ms());
        match result {
            Ok(()) => s.status = Status::Done,
            Err(e) => {
                s.status = Status::Failed;
                s.error = Some(Arc::new(e));
            }
        }
    }

    /// The job and its kept records numbered above `after`: `next_after` is what to ask
    /// with next; `missed` counts records above `after` no longer kept.
    pub fn view(&self, after: u64) -> Value {
        let s = self.state();
        let records: Vec<Value> = s
            .kept
            .iter()
            .filter(|(seq, _)| *seq > after)
            .filter_map(|(_, text)| serde_json::from_str(text).ok())
            .collect();
        let first_kept = s.kept.front().map_or(s.seq + 1, |(seq, _)| *seq);
        json!({
            "id": self.id,
            "status": s.status,
            "sources": self.sources,
            "scan": self.scan,
            "since": self.since.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            "started": rfc3339_ms(self.started_ms),
            "finished": s.finished_ms.map(rfc3339_ms),
            "error": s.error.as_ref().map(ToString::to_string),
            "pages": s.pages,
            "resumed_pages": s.resumed_pages,
            "records_total": s.seq,
            "imageless": s.imageless,
            "older": s.older,
            "records": records,
            "next_after": s.seq.max(after),
            "missed": first_kept
                .saturating_sub(after.saturating_add(1))
                .min(s.seq.saturating_sub(after)),
        })
    }
}

/// The server's crawls.
pub struct Crawls {
    api: Arc<HubApi>,
    pub(super) store: Store,
    scanner: Scanner,
    concurrency: usize,
    /// The one crawl running.
    slot: Arc<Semaphore>,
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl Crawls {
    /// Crawls through `api`, scanning with `scanner` (whose resolver holds the process-wide
    /// admission) at most `concurrency` repositories at once.
    pub fn new(api: HubApi, store: Store, scanner: Scanner, concurrency: usize) -> Arc<Crawls> {
        Arc::new(Crawls {
            api: Arc::new(api),
            store,
            scanner,
            concurrency: concurrency.max(1),
            slot: Arc::new(Semaphore::new(1)),
            jobs: Mutex::default(),
        })
    }

    /// Starts `order` as a job in the background, unless a crawl is running (`Busy`).
    pub fn start(self: &Arc<Self>, order: Order) -> Result<Arc<Job>, HubError> {
        let permit = self
            .slot
            .clone()
            .try_acquire_owned()
            .map_err(|_| HubError::Busy)?;
        let job = self.remember(&order);
        let (me, running) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let result = me.crawl(&order, &running).await;
            running.finish(result);
            drop(permit);
        });
        Ok(job)
    }

    /// Runs `order` to its end, after any crawl running now (the schedule's way); the job
    /// says how it went.
    pub async fn run(&self, order: &Order) -> Arc<Job> {
        // The semaphore is never closed.
        let _permit = self.slot.acquire().await;
        let job = self.remember(order);
        let result = self.crawl(order, &job).await;
        job.finish(result);
        job
    }

    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().find(|j| j.id == id).cloned()
    }

    fn remember(&self, order: &Order) -> Arc<Job> {
        let job = Arc::new(Job::new(order));
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.push_back(job.clone());
        while jobs.len() > KEPT_JOBS {
            jobs.pop_front();
        }
        job
    }

    /// Every source of `order` in turn, each page's records scanned (when asked) and kept
    /// by the job before the crawl's cursor moves past the page.
    async fn crawl(&self, order: &Order, job: &Job) -> Result<(), HubError> {
        let mut crawler = Crawler::new(self.api.clone(), Some(self.store.clone()), order.since);
        if order.incremental {
            crawler = crawler.incremental();
        }
        for source in &order.sources {
            let summary = crawler
                .crawl(source, |records| async move {
                    job.state().pages += 1;
                    match order.scan {
                        true => {
                            scan_records(&self.scanner, &records, self.concurrency, |r, s| {
                                job.keep(r, Some(&s));
                                Ok(())
                            })
                            .await
                        }
                        false => {
                            records.iter().for_each(|r| job.keep(r, None));
                            Ok(())
                        }
                    }
                })
                .await;
            let summary = summary?;
            let mut s = job.state();
            s.resumed_pages += summary.resumed_pages;
            s.older += summary.older;
        }
        Ok(())
    }
}
