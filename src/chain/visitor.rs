//! Who resolves, and how it goes out: a client profile ([`crate::profile`]) and a way out —
//! hoptrace's own address (`direct`) or an egress point, each with its own fetcher and
//! next-hop finders (the browser's proxy dialling through the same egress).

use std::sync::Arc;

use super::{Resolved, Resolver, SetupError};
use crate::browser::{BrowserStage, Driver, StageLimits};
use crate::config::{Config, ScriptEngineKind};
use crate::discover::{NextHopFinder, StaticFinder};
use crate::egress::Egress;
use crate::fetch::Fetcher;
use crate::input::Link;
use crate::profile::{Profile, UnknownProfile};
use crate::script::ScriptEngine;
use crate::trace::Trace;

/// The way out that is hoptrace's own address.
pub const DIRECT: &str = "direct";

/// One way out: a fetcher and next-hop finders (the browser's proxy chained to the same
/// egress), on one egress's DNS and address.
pub(super) struct Way {
    /// The gate the fetcher dials through (its vetted addresses key politeness).
    pub(super) egress: Arc<Egress>,
    pub(super) fetcher: Fetcher,
    pub(super) finders: Vec<Arc<dyn NextHopFinder>>,
}

impl Way {
    pub(super) fn new(
        config: &Config,
        egress: Arc<Egress>,
        driver: Option<Arc<dyn Driver>>,
    ) -> Result<Way, SetupError> {
        let mut finders: Vec<Arc<dyn NextHopFinder>> = vec![Arc::new(StaticFinder {
            literal_scripts: driver.is_none(),
        })];
        if let Some(driver) = driver {
            let mut stage =
                BrowserStage::new(driver, egress.clone(), StageLimits::from_config(config));
            if config.browser.script_engine == ScriptEngineKind::Auto {
                let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
                // External scripts come through the chain's own client and gate, within
                // what one browser visit may pull.
                let engine = ScriptEngine::new(config.browser.script_worker.clone(), workers)
                    .with_fetcher(
                        Fetcher::new(config, egress.clone())?,
                        config.browser.max_page_bytes,
                    );
                stage = stage.with_script_engine(engine);
            }
            finders.push(Arc::new(stage));
        }
        Ok(Way {
            fetcher: Fetcher::new(config, egress.clone())?,
            egress,
            finders,
        })
    }
}

/// Who resolves: a client profile, going out one way.
pub struct Visitor<'a> {
    pub profile: &'a Profile,
    /// `direct`, or the egress point's name.
    pub via: &'a str,
    pub(super) way: &'a Way,
}

/// A profile or egress point that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum VisitorError {
    #[error(transparent)]
    Profile(#[from] UnknownProfile),
    #[error("no egress point `{name}` (known: {known})")]
    Via { name: String, known: String },
}

impl Resolver {
    /// Resolves `input` as the profile named `profile`. The default profile goes through the
    /// cache and the store as [`Resolver::resolve`] does (a Trace the store did not keep is
    /// answered all the same; the failure is logged); another visits afresh and is neither
    /// served from nor kept in the store (which keeps what the default visitor sees).
    pub async fn resolve_as(
        &self,
        input: &str,
        profile: &str,
        via: &str,
        use_cache: bool,
    ) -> Result<Resolved, VisitorError> {
        match Link::parse(input) {
            Ok(link) => {
                let lookup = super::Lookup::cache_if(use_cache);
                self.resolve_link_as(&link, profile, via, lookup).await
            }
            Err(e) => {
                self.visitor(profile, via)?;
                Ok(Resolved::unstored(Trace::input_error(input, e.to_string())))
            }
        }
    }

    /// [`Resolver::resolve_as`] of a link parsed already.
    pub async fn resolve_link_as(
        &self,
        link: &Link,
        profile: &str,
        via: &str,
        lookup: super::Lookup,
    ) -> Result<Resolved, VisitorError> {
        let visitor = self.visitor(profile, via)?;
        if profile == crate::profile::DEFAULT && via == DIRECT {
            return Ok(Resolved::kept_or_not(self.resolve_link(link, lookup).await));
        }
        let trace = self
            .follow_as(link.input(), link.url().clone(), &visitor)
            .await;
        Ok(Resolved::unstored(trace))
    }

    /// The visitor `profile` going out through `via` (`direct`, or an egress point).
    pub fn visitor<'a>(&'a self, profile: &str, via: &'a str) -> Result<Visitor<'a>, VisitorError> {
        let profile = self.profiles.get(profile)?;
        let way = match via {
            DIRECT => &self.direct,
            name => self.points.get(name).ok_or_else(|| VisitorError::Via {
                name: name.to_string(),
                known: std::iter::once(DIRECT)
                    .chain(self.points.keys().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
        };
        Ok(Visitor { profile, via, way })
    }

    /// The egress points' names, in order.
    pub fn points(&self) -> Vec<String> {
        self.points.keys().cloned().collect()
    }
}
