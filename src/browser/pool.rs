//! One warm browser shared by every visit, whatever drives it: started on first use,
//! replaced when it dies or stops answering (and the visit tried once more), kept when only
//! one page misbehaved. The crate-specific part is an [`Engine`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cdp;
pub use super::cdp::Broken;
use super::{Driver, DriverError, Identity, PreparedPage, Timing, Unavailable, Visit};
use crate::egress::proxy::Refuser;
use crate::trace::FinderNote;

/// How long a page prepared ahead may take to get its tab (it waits its turn).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);

/// A CDP crate's way of starting Chromium, making an isolated page and running a visit.
pub trait Engine: Send + Sync + 'static {
    /// A running browser.
    type Browser: Send + Sync + 'static;
    /// A page ready for one visit: a fresh incognito context whose proxy is one
    /// resolution's own, downloads denied, the identity set, a blank tab listened to.
    /// Dropping it disposes the context.
    type Page: Send + 'static;
    /// Whether pages must be prepared one at a time (the crate serialises them anyway).
    const SERIAL_PREPARE: bool;

    fn launch(
        &self,
        path: &Path,
        flags: Vec<String>,
    ) -> impl Future<Output = Result<Self::Browser, Unavailable>> + Send;
    fn pid(browser: &Self::Browser) -> Option<u32>;
    /// Whether the browser answers a trivial command within [`cdp::HEALTH_TIMEOUT`].
    fn healthy(&self, browser: &Self::Browser) -> impl Future<Output = bool> + Send;
    fn prepare(
        &self,
        browser: &Arc<Self::Browser>,
        proxy: SocketAddr,
        identity: &Identity,
        until: Instant,
    ) -> impl Future<Output = Result<Self::Page, Broken>> + Send;
    fn browser_of(page: &Self::Page) -> &Arc<Self::Browser>;
    fn proxy_of(page: &Self::Page) -> SocketAddr;
    fn identity_of(page: &Self::Page) -> &Identity;
    /// Loads `url` in `page` and watches it ([`cdp::watch`]); a page that settles where it
    /// is gets its screenshot when `screenshot_bytes` asks for one.
    fn run(
        &self,
        page: Self::Page,
        url: &str,
        settle: Duration,
        deadline: Instant,
        screenshot_bytes: Option<usize>,
    ) -> impl Future<Output = Result<Visit, Broken>> + Send;
}

/// Debian's Chromium, warm, driven through `E`.
pub struct Pool<E: Engine> {
    engine: E,
    path: Result<PathBuf, Unavailable>,
    refuser: Result<Refuser, Unavailable>,
    identity: Identity,
    warm: Mutex<Option<Arc<E::Browser>>>,
    /// Held while a browser starts, so that one starts at a time.
    launching: tokio::sync::Mutex<()>,
    launches: AtomicU64,
    /// Held while a page is prepared, for engines that prepare one at a time.
    preparing: tokio::sync::Mutex<()>,
}

/// Why a page could not be made: the browser it was tried on (to be let go), and the reason.
type Unprepared<E> = (Option<Arc<<E as Engine>::Browser>>, DriverError);

impl<E: Engine> Pool<E> {
    /// Finds the browser (without starting it: that happens on first use).
    pub fn with_engine(engine: E, configured: Option<&Path>, identity: Identity) -> Pool<E> {
        Pool {
            engine,
            identity,
            path: cdp::find_chromium(configured),
            refuser: Refuser::start().map_err(|e| Unavailable::Refuser(Arc::new(e))),
            warm: Mutex::new(None),
            launching: tokio::sync::Mutex::new(()),
            launches: AtomicU64::new(0),
            preparing: tokio::sync::Mutex::new(()),
        }
    }

    /// How many times a browser was started (a restart adds one).
    pub fn launches(&self) -> u64 {
        self.launches.load(Ordering::Relaxed)
    }

    /// The running browser's process id, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.slot().as_ref().and_then(|b| E::pid(b))
    }

    /// Starts the browser now rather than on the first visit.
    pub async fn prewarm(&self) -> Result<(), DriverError> {
        self.warm().await.map(|_| ())
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<E::Browser>>> {
        self.warm.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn alive(browser: &E::Browser) -> bool {
        E::pid(browser).is_none_or(cdp::process_alive)
    }

    /// The running browser, if it is still alive.
    fn running(&self) -> Option<Arc<E::Browser>> {
        let slot = self.slot();
        let b = slot.as_ref()?;
        if Self::alive(b) {
            return Some(b.clone());
        }
        tracing::warn!("Chromium (pid {:?}) is gone; starting a new one", E::pid(b));
        None
    }

    async fn warm(&self) -> Result<Arc<E::Browser>, DriverError> {
        if let Some(b) = self.running() {
            return Ok(b);
        }
        let _one_at_a_time = self.launching.lock().await;
        if let Some(b) = self.running() {
            return Ok(b); // started while this one waited its turn
        }
        *self.slot() = None;
        let path = self.path.as_ref().map_err(Unavailable::clone)?;
        let refuser = self.refuser.as_ref().map_err(Unavailable::clone)?;
        let b = Arc::new(
            self.engine
                .launch(path, cdp::flags(refuser.addr, &self.identity))
                .await?,
        );
        self.launches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("Chromium started, pid {:?}", E::pid(&b));
        *self.slot() = Some(b.clone());
        Ok(b)
    }

    /// Called when something failed on `b`: if the browser is really gone or stuck, it is
    /// killed and forgotten so the next visit starts another. A browser that still answers
    /// is kept: one slow or failed page is not a reason to end every other visit.
    async fn discard(&self, b: &Arc<E::Browser>) {
        if Self::alive(b) && self.engine.healthy(b).await {
            return;
        }
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, b)) {
            *slot = None;
        }
        drop(slot);
        if let Some(pid) = E::pid(b) {
            // Make sure a hung browser does not linger.
            cdp::kill_now(pid);
        }
    }

    /// `page` if it belongs to the browser running now.
    fn current(&self, page: E::Page) -> Option<E::Page> {
        let same = self
            .slot()
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, E::browser_of(&page)));
        (same && Self::alive(E::browser_of(&page))).then_some(page)
    }

    /// A fresh page on the current browser, starting one if needed; `until` bounds the
    /// wait for the new tab.
    async fn fresh(
        &self,
        proxy: SocketAddr,
        identity: &Identity,
        until: Instant,
    ) -> Result<E::Page, Unprepared<E>> {
        let _one_at_a_time = match E::SERIAL_PREPARE {
            true => Some(self.preparing.lock().await),
            false => None,
        };
        let b = self.warm().await.map_err(|e| (None, e))?;
        let t0 = Instant::now();
        let page = self
            .engine
            .prepare(&b, proxy, identity, until)
            .await
            .map_err(|broken| (Some(b), DriverError::Failed(broken)))?;
        tracing::debug!("page prepared in {} ms", t0.elapsed().as_millis());
        Ok(page)
    }
}

impl<E: Engine> Drop for Pool<E> {
    /// The browser goes with its driver, even when something still holds a page.
    fn drop(&mut self) {
        if let Some(pid) = self.slot().take().and_then(|b| E::pid(&b)) {
            cdp::kill_now(pid);
        }
    }
}

#[async_trait::async_trait]
impl<E: Engine> Driver for Pool<E> {
    fn available(&self) -> Result<(), Unavailable> {
        self.path.as_ref().map(|_| ()).map_err(Clone::clone)?;
        self.refuser.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    async fn prepare(&self, proxy: SocketAddr) -> Result<PreparedPage, DriverError> {
        // Pages are made ready for the default identity; a visit as another makes its own.
        let until = Instant::now() + PREPARE_TIMEOUT;
        match self.fresh(proxy, &self.identity, until).await {
            Ok(page) => Ok(Box::new(page)),
            Err((browser, e)) => {
                if let Some(b) = browser {
                    self.discard(&b).await;
                }
                Err(e)
            }
        }
    }

    async fn visit(
        &self,
        page: Option<PreparedPage>,
        url: &str,
        proxy: SocketAddr,
        identity: &Identity,
        timing: Timing,
    ) -> Result<Visit, DriverError> {
        let mut ready = page
            .and_then(|p| p.downcast::<E::Page>().ok())
            .map(|p| *p)
            .filter(|p| E::proxy_of(p) == proxy && E::identity_of(p) == identity);
        let mut last = None;
        // A browser that dies under a visit is replaced once; the visit then runs again.
        for _ in 0..2 {
            // Each launch-and-prepare gets the launch limit (bounded by the resolution's end).
            let until_ready = timing.prepare_deadline();
            let page = match ready.take().and_then(|p| self.current(p)) {
                Some(p) => p,
                None => match self.fresh(proxy, identity, until_ready).await {
                    Ok(p) => p,
                    Err((None, e)) => return Err(e),
                    // No page before the launch limit: a cut, not a browser failure.
                    Err(_) if Instant::now() >= until_ready => {
                        return Ok(Visit {
                            note: Some(FinderNote::NoPageInTime),
                            ..Visit::default()
                        })
                    }
                    Err((Some(b), e)) => {
                        self.discard(&b).await;
                        last = Some(e);
                        continue;
                    }
                },
            };
            let browser = E::browser_of(&page).clone();
            // The visit's own clock starts here, as its page starts loading.
            let deadline = timing.visit_deadline();
            match self
                .engine
                .run(page, url, timing.settle, deadline, timing.screenshot_bytes)
                .await
            {
                Ok(v) => return Ok(v),
                Err(why) => {
                    tracing::warn!("a browser visit failed ({why}); checking Chromium");
                    self.discard(&browser).await;
                    if Instant::now() >= deadline || Instant::now() >= timing.end {
                        // The page's time is gone either way: that is a cut, not a failure.
                        return Ok(Visit {
                            navigation: None,
                            note: Some(FinderNote::FailedLate(Arc::new(why))),
                            ..Visit::default()
                        });
                    }
                    last = Some(DriverError::Failed(why));
                }
            }
        }
        // Both tries failed, each leaving why.
        Err(last.unwrap_or(DriverError::Failed(Broken::Exited)))
    }
}
