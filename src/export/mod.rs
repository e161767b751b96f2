//! What hoptrace found, in the formats other platforms read: a MISP event ([`misp`]), a STIX
//! 2.1 bundle ([`stix`]), and one indicator a line as CSV or text ([`flat`]). Everything comes
//! from the store: the chains (filtered by when they were stored, a label, a campaign), their
//! hops' URLs, domains and vetted addresses, and the campaigns the scanned repositories form.

mod flat;
mod misp;
mod spill;
mod stix;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::campaigns::Campaign;
use crate::labels::{registrable, Label};
use crate::store::{Store, StoreError};
use crate::trace::{rfc3339_ms, Outcome, Trace};
use crate::wire::{wire_enum, UnknownName};

/// Traces read from the store per call while walking it.
const PAGE: usize = 1000;

wire_enum! {
    /// What an export is written as; its wire names are what `--format` and `?format=` take.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Format {
        Misp = "misp",
        Stix = "stix",
        Csv = "csv",
        Txt = "txt",
    }
}

impl Format {
    /// The media type of an export in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Misp => "application/x-ndjson",
            Format::Stix => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Txt => "text/plain; charset=utf-8",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("format must be {}, not {:?}", crate::wire::one_of(Format::NAMES), .0.name)]
    Format(#[from] UnknownName),
    #[error("since: {0:?} is neither an RFC 3339 time nor a duration such as 7d")]
    Since(String),
    #[error("no campaign {0:?} (hoptrace campaigns lists them)")]
    Campaign(String),
    #[error("defang: only csv and txt exports are defanged; MISP and STIX carry indicators as values and patterns")]
    Defang,
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which chains an export covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Stored at or after this time (ms).
    pub since_ms: Option<u64>,
    /// Chains with a hop carrying this label; in CSV and text, only indicators carrying it.
    pub label: Option<String>,
    /// Chains whose input is a link of one of this campaign's repositories.
    pub campaign: Option<String>,
    /// CSV and text: URLs and names defanged.
    pub defang: bool,
}

/// `since` as hoptrace takes it: an RFC 3339 time, or a duration back from `now_ms`.
pub fn parse_since(since: &str, now_ms: u64) -> Result<u64, ExportError> {
    if let Ok(t) = humantime::parse_rfc3339_weak(since) {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ExportError::Since(since.into()))?;
        return Ok(ms.as_millis() as u64);
    }
    let back = humantime::parse_duration(since).map_err(|_| ExportError::Since(since.into()))?;
    Ok(now_ms.saturating_sub(back.as_millis() as u64))
}

/// One stored chain.
#[derive(Serialize, Deserialize)]
pub struct Chain {
    pub trace: Trace,
    pub stored_ms: u64,
}

/// What an export covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Chains the export covers.
    pub chains: usize,
    /// Distinct URLs, names and addresses among them.
    pub indicators: usize,
    /// MISP events written (one a line).
    pub events: usize,
    /// Run files the export was sorted through on disk.
    pub runs: usize,
}

wire_enum! {
    /// What kind of value an indicator is (its name is the CSV's `type` column).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Kind {
        Url = "url",
        Domain = "domain",
        Ip = "ip",
    }
}

/// One value seen in the chains, with what is known of it.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub kind: Kind,
    pub value: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub labels: BTreeSet<Label>,
    /// The inputs whose chains passed it, in order of first appearance.
    pub inputs: Vec<String>,
    /// Inputs past the first [`spill::INPUTS_KEPT`] (streamed CSV and text exports only).
    pub more_inputs: usize,
}

impl Indicator {
    /// Whether a label on it makes it malicious (MISP `to_ids`, a STIX indicator).
    pub fn malicious(&self) -> bool {
        Label::any_malicious(&self.labels)
    }
}

/// What a hop's host is as indicators: an address; or a domain name with its registrable
/// domain. A host no resolver would look up (`=1+1.evil.example`, `a_b.example`, an emoji
/// IDN) is no domain name — STIX and MISP refuse it as one, and one such hop must not spoil
/// a whole export — so it is exported inside its URL, with its registrable domain when that
/// is a name.
pub(crate) fn host_indicators(host: &str) -> Vec<(Kind, String)> {
    if host.is_empty() {
        return Vec::new();
    }
    if let Some(ip) = address(host.trim_start_matches('[').trim_end_matches(']')) {
        return vec![(Kind::Ip, ip)];
    }
    let registrable = registrable(host);
    let mut out = Vec::new();
    if domain_name(&registrable) {
        out.push((Kind::Domain, registrable.clone()));
    }
    if registrable != host && domain_name(host) {
        out.push((Kind::Domain, host.to_string()));
    }
    out
}

/// `ip` as an address indicator: a v4-mapped v6 address as the v4 one it is.
fn address(ip: &str) -> Option<String> {
    let ip: std::net::IpAddr = ip.parse().ok()?;
    Some(ip.to_canonical().to_string())
}

/// Whether `name` is a domain name as DNS and IDNA 2008 take one (STIX's `idn-hostname`,
/// MISP's `hostname`): labels of 1-63 letters, digits and inner hyphens, no `--` at the
/// third place but in an IDN label (`xn--`) that decodes to lowercase letters and digits and
/// encodes back to itself; 253 characters at most (a final dot aside).
pub(crate) fn domain_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253
        && name.split('.').all(|label| {
            let ldh = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            ldh && (label.get(2..4) != Some("--") || idn_label(label))
        })
}

fn idn_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    let Some(decoded) = lower
        .strip_prefix("xn--")
        .and_then(idna::punycode::decode_to_string)
    else {
        return false;
    };
    !decoded.is_ascii()
        && decoded
            .chars()
            .all(|c| (c.is_alphanumeric() && !c.is_uppercase()) || c == '-')
        && idna::domain_to_ascii_strict(&decoded).is_ok_and(|a| a == lower)
}

/// Every value a chain's hops show: each URL and its host's names with the hop's labels, and
/// the address each name resolved to, without them: an address is an observable, not what
/// the name's labels are about (it is often a CDN or hosting address shared with innocent
/// sites).
fn hop_values(trace: &Trace) -> Vec<(Kind, String, &[Label])> {
    let mut values = Vec::new();
    for hop in &trace.hops {
        values.push((Kind::Url, hop.url.clone(), hop.labels.as_slice()));
        values.extend(
            host_indicators(&hop.host)
                .into_iter()
                .map(|(k, v)| (k, v, hop.labels.as_slice())),
        );
        if let Some(ip) = hop.ip.as_deref().and_then(address) {
            values.push((Kind::Ip, ip, &[][..]));
        }
    }
    values
}

/// Every stored chain `filter` selects, with its campaign (if any) and that campaign's index
/// among the store's campaigns.
async fn selected_chains(
    store: &Store,
    filter: &Filter,
    mut each: impl FnMut(Trace, u64, Option<(usize, &Campaign)>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    // A chain is a campaign's when it passed the campaign's infrastructure: found from the
    // chain itself, so no campaign's inputs are ever gathered.
    let mut clusters = crate::campaigns::Clusters::build(store, 2).await?;
    let only = match &filter.campaign {
        None => None,
        Some(id) => Some(
            clusters
                .find(id)
                .ok_or_else(|| ExportError::Campaign(id.clone()))?,
        ),
    };
    let mut after: Option<String> = None;
    loop {
        let page = store.traces_after(after.as_deref(), PAGE).await?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (_, trace, stored_ms) in page {
            let wanted = filter.since_ms.is_none_or(|s| stored_ms >= s)
                && filter
                    .label
                    .as_ref()
                    .is_none_or(|l| trace.labels.iter().any(|t| t == l));
            if !wanted || trace.hops.is_empty() {
                continue;
            }
            let campaign = clusters.of_trace(&trace);
            if only.is_some_and(|o| campaign != Some(o)) {
                continue;
            }
            let campaign = campaign.map(|i| (i, &clusters.campaigns[i]));
            each(trace, stored_ms, campaign)?;
        }
    }
    Ok(())
}

/// An export of the chains `filter` selects, its store walk done: what it needs is sorted on
/// disk ([`spill`]), ready to be written by [`Prepared::write`] in bounded memory whatever
/// the store holds.
pub struct Prepared {
    stage: Stage,
    summary: Summary,
    filter: Filter,
    now_ms: u64,
}

enum Stage {
    Flat(Format, spill::Spill),
    Stix(stix::Bundle),
    Misp(misp::Groups),
}

/// Walks the store once for an export in `format` of the chains `filter` selects. Nothing is
/// written yet: a bad filter (a campaign that does not exist, `defang` with MISP or STIX) is
/// refused here, before any of the document is sent.
pub async fn prepare(
    store: &Store,
    filter: &Filter,
    format: Format,
    now_ms: u64,
) -> Result<Prepared, ExportError> {
    if filter.defang && matches!(format, Format::Misp | Format::Stix) {
        return Err(ExportError::Defang);
    }
    let mut stage = match format {
        Format::Csv | Format::Txt => Stage::Flat(format, spill::Spill::new()),
        Format::Stix => Stage::Stix(stix::Bundle::new(now_ms)),
        Format::Misp => Stage::Misp(misp::Groups::default()),
    };
    let mut chains = 0;
    selected_chains(store, filter, |trace, stored_ms, campaign| {
        chains += 1;
        match &mut stage {
            Stage::Flat(_, spill) => spill.add(&trace, stored_ms)?,
            Stage::Stix(bundle) => bundle.add(&trace, stored_ms, campaign)?,
            Stage::Misp(groups) => groups.add(slim(trace), stored_ms, campaign)?,
        }
        Ok(())
    })
    .await?;
    Ok(Prepared {
        stage,
        summary: Summary {
            chains,
            ..Summary::default()
        },
        filter: filter.clone(),
        now_ms,
    })
}

impl Prepared {
    /// The export written to `out`, one indicator, object or event at a time.
    pub fn write(self, out: &mut dyn std::io::Write) -> Result<Summary, ExportError> {
        let Prepared {
            stage,
            mut summary,
            filter,
            now_ms,
        } = self;
        match stage {
            Stage::Flat(format, spill) => {
                summary.runs = spill.runs();
                let mut rows = flat::Rows::new(format, &filter, now_ms, out)?;
                spill.finish(|i| {
                    summary.indicators += 1;
                    rows.row(&i)
                })?;
                rows.finish()?;
            }
            Stage::Stix(bundle) => {
                summary.runs = bundle.runs();
                summary.indicators = bundle.write(out)?;
            }
            Stage::Misp(groups) => {
                summary.runs = groups.runs();
                summary.events = groups.write(now_ms, out)?;
            }
        }
        Ok(summary)
    }
}

/// `trace` with only what an export reads: the HTTP records (1-2 KB a hop), evidence and
/// browser notes dropped, but a download's last record (its file's name and size), so a
/// store of many chains is held in a fraction of the memory.
fn slim(mut trace: Trace) -> Trace {
    let download = trace.outcome == Outcome::Download;
    let last = trace.hops.len().saturating_sub(1);
    for (i, hop) in trace.hops.iter_mut().enumerate() {
        if !(download && i == last) {
            hop.http = None;
        }
        hop.blocked_requests = Vec::new();
        hop.reason.clear();
    }
    trace.evidence = None;
    trace.screenshot = None;
    trace
}

/// Milliseconds as RFC 3339 with milliseconds (what MISP and STIX both read).
fn time(ms: u64) -> String {
    rfc3339_ms(ms)
}

/// A name-based UUID (v5) under hoptrace's namespace: the same thing gets the same id in
/// every export, so platforms that import twice merge instead of duplicating.
fn uuid_of(parts: &[&str]) -> String {
    const NS: uuid::Uuid = uuid::uuid!("7d6b1f0a-2f6e-5b8e-9c3a-686f70747261");
    uuid::Uuid::new_v5(&NS, parts.join("\0").as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, HttpRecord};
    use crate::trace::{Evidence, Hop, Via};

    #[test]
    fn formats_and_kinds_are_named_once_and_read_back() {
        assert_eq!(Format::NAMES, ["misp", "stix", "csv", "txt"]);
        assert_eq!(Kind::NAMES, ["url", "domain", "ip"]);
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(*f));
        }
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(*k));
        }
        // The refusal reads as it always has, its list made from the names.
        let refused = ExportError::from("xml".parse::<Format>().unwrap_err());
        assert_eq!(
            refused.to_string(),
            "format must be misp, stix, csv or txt, not \"xml\""
        );
    }

    /// A chain of `input` through `urls` (each hop with an HTTP record), ending `outcome`.
    fn chain(input: &str, urls: &[&str], outcome: Outcome, stored_ms: u64) -> Chain {
        let mut trace = Trace::input_error(input, String::new());
        trace.outcome = outcome;
        trace.error = None;
        trace.evidence = Some(Evidence::default());
        trace.hops = urls
            .iter()
            .map(|u| {
                let host = url::Url::parse(u).unwrap().host_str().unwrap().to_string();
                let mut hop = Hop::new(u.to_string(), host, Via::HttpRedirect);
                hop.blocked_requests = vec!["http://x.test/: refused".into()];
                hop.http = Some(Box::new(HttpRecord {
                    response_headers: vec![Header {
                        name: "content-disposition".into(),
                        value: "attachment; filename=\"setup.zip\"".into(),
                    }],
                    ..Default::default()
                }));
                hop
            })
            .collect();
        Chain { trace, stored_ms }
    }

    /// A STIX bundle of `chains` (no campaign), as written.
    fn stix_of(chains: &[Chain]) -> String {
        let mut bundle = stix::Bundle::new(10);
        for c in chains {
            bundle.add(&c.trace, c.stored_ms, None).unwrap();
        }
        let mut out = Vec::new();
        bundle.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The MISP events of `chains` (no campaign), one a line.
    fn misp_of(chains: Vec<Chain>) -> Vec<serde_json::Value> {
        let mut groups = misp::Groups::default();
        for c in chains {
            groups.add(c.trace, c.stored_ms, None).unwrap();
        }
        let mut out = Vec::new();
        groups.write(10, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The address a payload host resolved to is an observable: no STIX pattern, no MISP
    /// `to_ids`; an address that is itself the labelled host still is an indicator.
    #[test]
    fn a_resolved_address_is_no_indicator() {
        let mut named = chain("a", &["http://pay.test/x"], Outcome::Landed, 1);
        named.trace.hops[0].labels = vec!["payload-host".into()];
        named.trace.hops[0].ip = Some("203.0.113.5".into());
        let mut literal = chain("b", &["http://198.51.100.7/y"], Outcome::Landed, 1);
        literal.trace.hops[0].labels = vec!["payload-host".into()];
        let chains = vec![named, literal];
        let bundle = stix_of(&chains);
        let parsed: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        assert!(parsed["objects"].as_array().unwrap().len() > 4, "{bundle}");
        assert!(
            !bundle.contains("[ipv4-addr:value = '203.0.113.5']"),
            "{bundle}"
        );
        assert!(
            bundle.contains("\"value\":\"203.0.113.5\""),
            "still an observable"
        );
        assert!(
            bundle.contains("[ipv4-addr:value = '198.51.100.7']"),
            "{bundle}"
        );
        let event = misp::event(&chains, "test", 10);
        let attrs: Vec<&serde_json::Value> = event["Event"]["Object"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["Attribute"].as_array().unwrap())
            .collect();
        let ip = |v: &str| {
            attrs
                .iter()
                .find(|a| a["value"] == v)
                .map(|a| a["to_ids"].clone())
        };
        assert_eq!(ip("203.0.113.5"), Some(serde_json::json!(false)));
        assert_eq!(ip("198.51.100.7"), Some(serde_json::json!(true)));
    }

    /// STIX: an object met on many chains is written once, its relationship's span widened
    /// to every sighting.
    #[test]
    fn a_stix_object_is_written_once() {
        let chains: Vec<Chain> = (0..5)
            .map(|i| {
                chain(
                    &format!("i{i}"),
                    &["http://s.test/1", "http://land.test/x"],
                    Outcome::Landed,
                    100 + i,
                )
            })
            .collect();
        let bundle: serde_json::Value = serde_json::from_str(&stix_of(&chains)).unwrap();
        let objects = bundle["objects"].as_array().unwrap();
        let ids: BTreeSet<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), objects.len(), "each id once");
        let hop: Vec<&serde_json::Value> = objects
            .iter()
            .filter(|o| o["relationship_type"] == "redirects-to")
            .collect();
        assert_eq!(hop.len(), 1);
        assert_eq!(hop[0]["created"], time(100));
        assert_eq!(hop[0]["modified"], time(104));
    }

    /// MISP: one event per landing domain (no campaign here), a group larger than an event
    /// holds split into numbered parts, each a line, each saying which chains it holds.
    #[test]
    fn misp_events_are_bounded_and_one_a_line() {
        let mut chains: Vec<Chain> = (0..misp::CHAINS_PER_EVENT + 1)
            .map(|i| {
                chain(
                    &format!("i{i}"),
                    &[&format!("http://a.land.test/{i}")],
                    Outcome::Landed,
                    1,
                )
            })
            .collect();
        chains.push(chain("j", &["http://other.test/"], Outcome::Landed, 1));
        let infos: Vec<String> = misp_of(chains)
            .iter()
            .map(|e| {
                let objects = e["Event"]["Object"].as_array().unwrap().len();
                assert!(objects <= misp::CHAINS_PER_EVENT, "{objects}");
                e["Event"]["info"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            infos,
            [
                "hoptrace: landing domain land.test, part 1 (chains 1-1000 of 1001): 1000 redirect chains and where they land",
                "hoptrace: landing domain land.test, part 2 (chains 1001-1001 of 1001): 1 redirect chains and where they land",
                "hoptrace: landing domain other.test: 1 redirect chains and where they land",
            ]
        );
    }

    /// MISP: chains of many hops fill an event's attributes before its chain count; a chain
    /// longer than an event holds keeps its first hops and the event says how many it lost.
    #[test]
    fn misp_events_are_bounded_in_attributes() {
        let most = misp::ATTRIBUTES_PER_EVENT / 15;
        let urls: Vec<String> = (0..most + 3)
            .map(|h| format!("http://h{h}.land.test/"))
            .collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let long = chain("long", &urls, Outcome::Landed, 1);
        let mid = chain("mid", &urls[..most / 2 + 1], Outcome::Landed, 1);
        let events = misp_of(vec![mid, long]);
        assert_eq!(events.len(), 2, "one chain an event");
        let attributes = |e: &serde_json::Value| -> usize {
            e["Event"]["Object"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["Attribute"].as_array().unwrap().len())
                .sum()
        };
        for e in &events {
            assert!(attributes(e) <= misp::ATTRIBUTES_PER_EVENT);
        }
        let info = events[1]["Event"]["info"].as_str().unwrap();
        assert!(
            info.contains("3 hops past the event's size left out"),
            "{info}"
        );
    }

    #[test]
    fn a_chain_is_held_with_only_what_exports_read() {
        let urls = ["http://s.test/1", "http://files.test/setup.zip"];
        let kept = slim(chain("a", &urls, Outcome::Download, 1).trace);
        assert!(
            kept.hops[0].http.is_none(),
            "a hop's HTTP record is dropped"
        );
        let last = kept.hops[1]
            .http
            .as_ref()
            .expect("a download's last record is kept");
        assert!(last.response_header("content-disposition").is_some());
        assert!(kept.evidence.is_none());
        assert!(kept.hops.iter().all(|h| h.blocked_requests.is_empty()));
        // What the exports read is all there.
        assert_eq!(kept.hops[1].url, urls[1]);
        assert_eq!(kept.outcome, Outcome::Download);
        let landed = slim(chain("b", &urls, Outcome::Landed, 1).trace);
        assert!(landed.hops.iter().all(|h| h.http.is_none()));
    }
}
