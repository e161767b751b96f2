//! One link as several visitors see it: each client profile resolves it at the same time, and
//! the answer says where the chains part and whether the link is **cloaked** — its visitors
//! end on different registrable domains, or with different outcomes. A fake shortener that
//! rotates its path, or a site that answers everyone alike, is not cloaked.

use serde::{Deserialize, Serialize};

use crate::chain::{Resolved, Resolver, VisitorError, DIRECT};
use crate::input::Link;
use crate::labels::{registrable, Builtin};
use crate::trace::{Outcome, Trace};

/// One visitor's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub profile: String,
    /// The egress point it went out through (`direct`: hoptrace's own address).
    pub via: String,
    pub trace: Trace,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub input: String,
    pub cells: Vec<Cell>,
    /// The first hop (0 = the input) whose host differs between visitors; `None` when every
    /// chain passes the same hosts.
    pub diverges_at: Option<usize>,
    pub cloaked: bool,
}

/// Resolves `input` as each visitor of the matrix, concurrently, each visit its own (no
/// cache): `profiles` through each of `via`. With neither named: every built-in profile
/// directly, and the default profile through every egress point; with one named, the other is
/// the default (`direct`, or the default profile). A cloaked link's cells carry the `cloaked`
/// label.
pub async fn compare(
    resolver: &Resolver,
    input: &str,
    profiles: &[String],
    via: &[String],
) -> Result<Comparison, VisitorError> {
    let matrix = match profiles.is_empty() && via.is_empty() {
        true => {
            let mut m = product(resolver.profiles().builtin_names(), &[]);
            let points = resolver.points();
            if !points.is_empty() {
                m.extend(product(&[], &points));
            }
            m
        }
        false => product(profiles, via),
    };
    for (p, v) in &matrix {
        resolver.visitor(p, v)?;
    }
    let traces = match Link::parse(input) {
        Ok(link) => resolver.resolve_matrix(&link, &matrix).await,
        Err(e) => {
            let answer = Resolved::unstored(Trace::input_error(input, e.to_string()));
            matrix.iter().map(|_| Ok(answer.clone())).collect()
        }
    };
    let mut cells = Vec::new();
    for ((profile, via), trace) in matrix.into_iter().zip(traces) {
        cells.push(Cell {
            profile,
            via,
            trace: trace?.trace,
        });
    }
    let traces: Vec<&Trace> = cells.iter().map(|c| &c.trace).collect();
    let diverges_at = diverges_at(&traces);
    let cloaked = cloaked(&traces);
    if cloaked {
        for c in &mut cells {
            if !c.trace.labels.iter().any(|l| *l == Builtin::Cloaked) {
                c.trace.labels.push(Builtin::Cloaked.into());
            }
        }
    }
    Ok(Comparison {
        input: input.to_string(),
        cells,
        diverges_at,
        cloaked,
    })
}

/// Every profile through every way out: `profiles` (none: the default profile) through each
/// of `via` (none: `direct`), grouped by way out. A name given twice is one cell: the same
/// visitor twice would only visit the link twice.
pub fn product(profiles: &[String], via: &[String]) -> Vec<(String, String)> {
    let (profiles, via) = (distinct(profiles), distinct(via));
    let (profiles, via) = (&profiles[..], &via[..]);
    let default = [crate::profile::DEFAULT.to_string()];
    let direct = [DIRECT.to_string()];
    let profiles = if profiles.is_empty() {
        &default[..]
    } else {
        profiles
    };
    let via = if via.is_empty() { &direct[..] } else { via };
    via.iter()
        .flat_map(|v| profiles.iter().map(move |p| (p.clone(), v.clone())))
        .collect()
}

/// How many visitors a request names, repeats included: what a request is bounded by (a body
/// of a million repeats is refused, not folded).
pub fn named(profiles: &[String], via: &[String]) -> usize {
    profiles.len().max(1).saturating_mul(via.len().max(1))
}

/// How many cells `compare` makes for these arguments (what a caller reserves).
pub fn cells(resolver: &Resolver, profiles: &[String], via: &[String]) -> usize {
    match (profiles.len(), via.len()) {
        (0, 0) => resolver.profiles().builtin_names().len() + resolver.points().len(),
        _ => distinct(profiles).len().max(1) * distinct(via).len().max(1),
    }
}

/// `names` without repeats, in their first order.
fn distinct(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}

/// The first hop index at which the chains' hosts differ (a chain that ended earlier differs
/// from one that goes on).
fn diverges_at(traces: &[&Trace]) -> Option<usize> {
    let longest = traces.iter().map(|t| t.hops.len()).max().unwrap_or(0);
    (0..longest).find(|&i| {
        let mut hosts = traces
            .iter()
            .map(|t| t.hops.get(i).map(|h| h.host.as_str()));
        let first = hosts.next().flatten();
        hosts.any(|h| h != first)
    })
}

/// Visitors that end on different registrable domains, or with different outcomes.
fn cloaked(traces: &[&Trace]) -> bool {
    ends_differ(traces.iter().map(|t| (t.outcome, t.final_host.as_str())))
}

/// Whether chains ending so (outcome, final host) end on different registrable domains or
/// with different outcomes: what makes a link cloaked.
pub fn ends_differ<'a>(ends: impl IntoIterator<Item = (Outcome, &'a str)>) -> bool {
    let mut ends = ends
        .into_iter()
        .map(|(outcome, host)| (outcome, registrable(host)));
    let Some(first) = ends.next() else {
        return false;
    };
    ends.any(|e| e != first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Hop, Via};

    fn chain(hosts: &[&str], outcome: Outcome) -> Trace {
        let hops = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Hop::new(format!("http://{h}/{i}"), h.to_string(), Via::Input))
            .collect();
        let mut t = Trace::from_hops("http://x/", hops, outcome);
        t.final_host = hosts.last().unwrap().to_string();
        t
    }

    #[test]
    fn where_chains_part_and_what_counts_as_cloaked() {
        let a = chain(&["short.example", "cdn.payload.example"], Outcome::Download);
        let b = chain(&["short.example", "www.harmless.example"], Outcome::Landed);
        assert_eq!(diverges_at(&[&a, &b]), Some(1));
        assert!(cloaked(&[&a, &b]));
        // The same registrable domain through another subdomain, same outcome: not cloaked.
        let c = chain(&["short.example", "a.site.example"], Outcome::Landed);
        let d = chain(&["short.example", "b.site.example"], Outcome::Landed);
        assert!(!cloaked(&[&c, &d]));
        assert_eq!(diverges_at(&[&c, &d]), Some(1));
        // One chain stops early.
        let e = chain(&["short.example"], Outcome::Landed);
        assert_eq!(diverges_at(&[&c, &e]), Some(1));
        assert_eq!(diverges_at(&[&c, &c]), None);
    }
}
