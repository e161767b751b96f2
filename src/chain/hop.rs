//! One hop: decoded statically when it is a known wrapper, else fetched through the egress
//! gate (politely, within the hop's time) and handed to the next-hop finders.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use std::sync::Arc;

use super::{Resolver, Visitor, DIRECT};
use crate::decode;
use crate::discover::{Found, NextHopFinder, Page};
use crate::egress::{EgressError, Pinned};
use crate::fetch::{FetchError, Form};
use crate::input::parse_input;
use crate::labels::Builtin;
use crate::trace::{ErrorKind, Hop, HopNote, Method, Outcome, TraceError, Via};

impl Resolver {
    /// One hop, in stages: refuse a scheme that is not the web's, decode a known wrapper
    /// without contacting it, fetch it through the egress gate within the time left (POSTing
    /// `form` when given), record the response, and ask the finders where the
    /// page leads. Each stage that ends the chain says how; the hop's record is filled in
    /// along the way and the network time charged to `spent`.
    pub(super) async fn step(
        &self,
        url: &Url,
        form: Option<Form<'_>>,
        hop: &mut Hop,
        spent: &mut Duration,
        visitor: &Visitor<'_>,
        first: bool,
    ) -> Step {
        if !matches!(url.scheme(), "http" | "https") {
            return blocked(hop, &EgressError::Scheme(url.scheme().to_string()));
        }
        if let Some(u) = decode::unwrap(url) {
            return decoded(hop, u);
        }
        let Some(remaining) = self
            .total_timeout
            .checked_sub(*spent)
            .filter(|d| !d.is_zero())
        else {
            let error = timeout_error(self.total_timeout, "total_timeout_ms");
            return Step::End(Outcome::Timeout, Some(error));
        };
        let budget = self.hop_timeout.min(remaining);
        if form.is_some() {
            hop.method = Some(Method::Post);
        }
        let (result, took) = self.fetch_politely(url, form, budget, visitor, first).await;
        *spent += took;
        hop.elapsed_ms = Some(took.as_millis() as u64);
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => return self.fetch_failed(hop, e, budget),
        };
        if let Some(end) = record_response(hop, &mut resp) {
            return end;
        }
        // A finder (the browser) may spend what is left of this hop's time.
        let remaining = self.total_timeout.saturating_sub(*spent);
        let page = Page {
            url,
            response: &resp,
            budget: self.hop_timeout.min(remaining),
            remaining,
            profile: visitor.profile,
            landing_evidence: (200..300).contains(&resp.status)
                && resp.content_type().is_none_or(|t| t.contains("html")),
        };
        let landing_evidence = page.landing_evidence;
        match self
            .find_next(&page, hop, spent, &visitor.way.finders)
            .await
        {
            Step::End(Outcome::Landed, None) if landing_evidence && self.favicon => {
                self.keep_favicon(url, &resp.body, hop, spent, visitor)
                    .await;
                Step::End(Outcome::Landed, None)
            }
            // 307 and 308 repeat the request, body and all; any other redirect after a POST
            // is followed with GET (as browsers do: 303 says so, 301 and 302 by custom).
            Step::Next(mut found)
                if found.via == Via::HttpRedirect && matches!(resp.status, 307 | 308) =>
            {
                found.post = form.map(|f| f.body.to_string());
                Step::Next(found)
            }
            next => next,
        }
    }

    /// Fetches `url` (POSTing `form` when given) within `budget` after waiting for politeness toward its host, with the
    /// time the fetch took (the wait left out).
    async fn fetch_politely(
        &self,
        url: &Url,
        form: Option<Form<'_>>,
        budget: Duration,
        visitor: &Visitor<'_>,
        first: bool,
    ) -> (Result<crate::fetch::Response, FetchError>, Duration) {
        // The name is vetted once here and held: politeness is owed to the addresses the
        // connection will go to, and the connection goes to them (no second lookup).
        let pinned = visitor.way.egress.pin(&host_of(url)).await.ok();
        for key in politeness_keys(url, pinned.as_ref()) {
            // Per way out: each egress point has its own budget.
            let key = match visitor.via {
                DIRECT => key,
                via => format!("{via}|{key}"),
            };
            self.politeness.wait(&key).await;
        }
        let t0 = Instant::now();
        let result = visitor
            .way
            .fetcher
            .fetch(url, form, budget, visitor.profile, first)
            .await;
        (result, t0.elapsed())
    }

    /// How a failed fetch (given `budget`) ends the chain.
    fn fetch_failed(&self, hop: &mut Hop, e: FetchError, budget: Duration) -> Step {
        match e {
            FetchError::Egress(e) if e.is_policy() => blocked(hop, &e),
            FetchError::Timeout(_) => {
                // A budget below the hop limit means the whole resolution's time ran out.
                let (limit, key) = if budget < self.hop_timeout {
                    (self.total_timeout, "total_timeout_ms")
                } else {
                    (self.hop_timeout, "hop_timeout_ms")
                };
                Step::End(Outcome::Timeout, Some(timeout_error(limit, key)))
            }
            e => failed(hop, e),
        }
    }

    /// Asks each finder in turn; the first that names a next hop wins.
    async fn find_next(
        &self,
        page: &Page<'_>,
        hop: &mut Hop,
        spent: &mut Duration,
        finders: &[Arc<dyn NextHopFinder>],
    ) -> Step {
        for finder in finders {
            let t0 = Instant::now();
            let finding = finder.next_hop(page).await;
            *spent += t0.elapsed().saturating_sub(finding.waited);
            if let Some(note) = finding.note {
                hop.reason.add(HopNote::Finder(note));
            }
            hop.blocked_requests.extend(finding.blocked_requests);
            if finding.engine.is_some() {
                hop.engine = finding.engine;
            }
            if finding.screenshot.is_some() {
                hop.screenshot = finding.screenshot;
            }
            if let Some(error) = finding.error {
                let outcome = if error.kind == ErrorKind::Timeout {
                    Outcome::Timeout
                } else {
                    Outcome::Error
                };
                return Step::End(outcome, Some(error));
            }
            match finding.next {
                Some(Ok(found)) => return Step::Next(found),
                Some(Err(bad)) => {
                    return Step::End(
                        Outcome::Error,
                        Some(TraceError {
                            kind: ErrorKind::Http,
                            message: format!(
                                "{} to an invalid URL {:?}: {}",
                                bad.via.as_str(),
                                bad.target,
                                bad.message
                            ),
                        }),
                    )
                }
                None => {}
            }
        }
        // The landing page: its HTML is kept as evidence (as served, cut to a cap).
        if page.landing_evidence {
            let body = &page.response.body;
            hop.html = Some(body.slice(..body.len().min(crate::trace::HTML_KEPT_BYTES)));
        }
        Step::End(Outcome::Landed, None)
    }

    /// Fetches and hashes the icon of the landing page `page` (served as `html`) through the
    /// visit's own fetcher and gate, as its profile, within what is left of the hop's time
    /// and the resolution's; why it has none is said on the hop.
    async fn keep_favicon(
        &self,
        page: &Url,
        html: &[u8],
        hop: &mut Hop,
        spent: &mut Duration,
        visitor: &Visitor<'_>,
    ) {
        let Some(icon) = crate::favicon::icon_url(page, html) else {
            return;
        };
        let used = Duration::from_millis(hop.elapsed_ms.unwrap_or(0));
        let budget = self
            .hop_timeout
            .saturating_sub(used)
            .min(self.total_timeout.saturating_sub(*spent));
        if budget.is_zero() {
            hop.reason.add(HopNote::Favicon(format!(
                "icon {icon} not fetched: no time left"
            )));
            return;
        }
        let t0 = Instant::now();
        let result =
            crate::favicon::fetch(&visitor.way.fetcher, &icon, budget, visitor.profile).await;
        *spent += t0.elapsed();
        match result {
            Ok(icon) => hop.favicon = Some(icon),
            Err(e) => hop.reason.add(HopNote::Favicon(e.to_string())),
        }
    }

    /// A new hop for `url`, labelled.
    pub(super) fn hop(&self, url: &Url, via: Via) -> Hop {
        let host = host_of(url);
        let mut hop = Hop::new(url.to_string(), host.clone(), via);
        let l = self.labels().classify(&host);
        hop.labels = l.labels;
        hop.imitates = l.imitates;
        hop
    }
}

pub(super) enum Step {
    Next(Found),
    End(Outcome, Option<TraceError>),
}

/// Policy refused the hop: it is never connected to.
fn blocked(hop: &mut Hop, why: &EgressError) -> Step {
    hop.blocked = true;
    hop.reason = HopNote::Blocked(why.to_string()).into();
    Step::End(Outcome::Blocked, None)
}

/// A known wrapper, decoded without contacting it: its target is the next hop.
fn decoded(hop: &mut Hop, u: decode::Unwrapped) -> Step {
    if let Some(label) = u.label {
        push_label(hop, label);
    }
    hop.automatic = u.automatic;
    hop.reason = HopNote::Decoded(u.wrapper.to_string()).into();
    match parse_input(&u.target) {
        Ok(next) => Step::Next(Found {
            url: next,
            via: u.via,
            post: None,
        }),
        Err(message) => Step::End(
            Outcome::Error,
            Some(TraceError {
                kind: ErrorKind::Input,
                message: format!("wrapper target {:?}: {message}", u.target),
            }),
        ),
    }
}

/// A fetch that failed other than by policy or the time limits.
fn failed(hop: &mut Hop, e: FetchError) -> Step {
    if let FetchError::HeadTooLarge(_) = e {
        push_label(hop, Builtin::OversizedHead);
        hop.reason = HopNote::OversizedHead(e.to_string()).into();
    }
    let outcome = if e.kind() == ErrorKind::Timeout {
        Outcome::Timeout
    } else {
        Outcome::Error
    };
    let error = TraceError {
        kind: e.kind(),
        message: e.to_string(),
    };
    Step::End(outcome, Some(error))
}

/// The response's status, peer, type and exchange on the hop; a download ends the chain
/// there (its body is never fetched).
fn record_response(hop: &mut Hop, resp: &mut crate::fetch::Response) -> Option<Step> {
    hop.status = Some(resp.status);
    hop.ip = resp.peer.map(|p| p.ip().to_string());
    hop.content_type = resp.content_type().map(str::to_string);
    // Moved, not copied: no finder reads the record.
    hop.http = Some(Box::new(std::mem::take(&mut resp.record)));
    if let Some(why) = &resp.download {
        hop.reason = HopNote::Download(why.to_string()).into();
        return Some(Step::End(Outcome::Download, None));
    }
    if let Some(note) = resp.body_note {
        hop.reason = HopNote::Body(note.to_string()).into();
    }
    None
}

fn push_label(hop: &mut Hop, label: Builtin) {
    if !hop.labels.iter().any(|l| *l == label) {
        hop.labels.push(label.into());
    }
}

fn timeout_error(limit: Duration, key: &str) -> TraceError {
    TraceError {
        kind: ErrorKind::Timeout,
        message: format!("no answer within {} ms (limits.{key})", limit.as_millis()),
    }
}

/// What a request to `url` is polite toward: the host name as a server knows it (lowercase,
/// IDNA as the URL parser gives it, without a trailing dot, so `Same.test.` and `same.test`
/// are one), and each address the gate vetted for it (`pinned`), so many names of one server
/// share that server's budget. A name the gate could not vet is keyed by name alone, and its
/// fetch says why.
fn politeness_keys(url: &Url, pinned: Option<&Pinned>) -> Vec<String> {
    let host = host_of(url);
    let name = host.trim_end_matches('.').to_string();
    let mut keys: Vec<String> = pinned
        .map(|p| p.addrs.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default();
    // An IP literal is its own address.
    if !keys.contains(&name) {
        keys.insert(0, name);
    }
    keys
}

/// The host as the URL names it (IPv6 without brackets).
pub(super) fn host_of(url: &Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(v6)) => v6.to_string(),
        Some(h) => h.to_string(),
        None => String::new(),
    }
}
