//! What hoptrace found, in the formats other platforms read: a MISP event ([`misp`]), a STIX
//! 2.1 bundle ([`stix`]), and one indicator a line as CSV or text ([`flat`]). Everything comes
//! from the store: the chains (filtered by when they were stored, a label, a campaign), their
//! hops' URLs, domains and vetted addresses, and the campaigns the scanned repositories form.

mod flat;
mod misp;
mod spill;
mod stix;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::campaigns::Campaign;
use crate::labels::{registrable, Label};
use crate::store::{Store, StoreError};
use crate::trace::{rfc3339_ms, Outcome, Trace};

/// Traces read from the store per call while walking it.
const PAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Misp,
    Stix,
    Csv,
    Txt,
}

impl std::str::FromStr for Format {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Format, ExportError> {
        match s {
            "misp" => Ok(Format::Misp),
            "stix" => Ok(Format::Stix),
            "csv" => Ok(Format::Csv),
            "txt" => Ok(Format::Txt),
            other => Err(ExportError::Format(other.to_string())),
        }
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
    #[error("format must be misp, stix, csv or txt, not {0:?}")]
    Format(String),
    #[error("since: {0:?} is neither an RFC 3339 time nor a duration such as 7d")]
    Since(String),
    #[error("no campaign {0:?} (hoptrace campaigns lists them)")]
    Campaign(String),
    #[error("defang: only csv and txt exports are defanged; MISP and STIX carry indicators as values and patterns")]
    Defang,
    /// A MISP or STIX document is built whole: past the cap it is refused, not grown.
    #[error("more than {max} chains match (limits.max_export_chains): narrow the export with since, label or campaign, or export csv or txt, which have no such limit")]
    TooMany { max: usize },
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
pub struct Chain {
    pub trace: Trace,
    pub stored_ms: u64,
}

/// What the exports are made of.
pub struct Found {
    /// For MISP and STIX; empty for CSV and text, whose indicators were folded as read.
    pub chains: Vec<Chain>,
    /// How many chains the export covers.
    pub chain_count: usize,
    /// CSV and text: the indicators, tallied while the store was walked.
    folded: Option<Vec<Indicator>>,
    /// Campaigns any exported chain belongs to, with the inputs of each.
    pub campaigns: Vec<(Campaign, BTreeSet<String>)>,
    /// When the export was made (ms).
    pub now_ms: u64,
}

/// What kind of value an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Url,
    Domain,
    Ip,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Url => "url",
            Kind::Domain => "domain",
            Kind::Ip => "ip",
        }
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

impl Found {
    /// Every URL, domain and address the chains passed, deduplicated, in a stable order.
    pub fn indicators(&self) -> Vec<Indicator> {
        if let Some(folded) = &self.folded {
            return folded.clone();
        }
        let mut tally = Tally::default();
        for c in &self.chains {
            tally.add(&c.trace, c.stored_ms);
        }
        tally.into_indicators()
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

/// Indicators gathered one chain at a time, so a chain need not be kept once counted.
#[derive(Default)]
struct Tally {
    // With each indicator, the inputs it has: a landing domain may have a campaign's
    // hundreds of thousands, and looking through a list per hop was quadratic.
    all: BTreeMap<(Kind, String), (Indicator, HashSet<String>)>,
}

impl Tally {
    fn add(&mut self, trace: &Trace, stored_ms: u64) {
        {
            for (kind, value, labels) in hop_values(trace) {
                let (i, inputs) = self.all.entry((kind, value.clone())).or_insert_with(|| {
                    let i = Indicator {
                        kind,
                        value,
                        first_ms: stored_ms,
                        last_ms: stored_ms,
                        labels: BTreeSet::new(),
                        inputs: Vec::new(),
                        more_inputs: 0,
                    };
                    (i, HashSet::new())
                });
                i.first_ms = i.first_ms.min(stored_ms);
                i.last_ms = i.last_ms.max(stored_ms);
                i.labels.extend(labels.iter().cloned());
                if !inputs.contains(&trace.input) {
                    inputs.insert(trace.input.clone());
                    i.inputs.push(trace.input.clone());
                }
            }
        }
    }

    fn into_indicators(self) -> Vec<Indicator> {
        self.all.into_values().map(|(i, _)| i).collect()
    }
}

/// The chains of the store that `filter` selects for an export in `format`, and the campaigns
/// they belong to. For MISP and STIX the chains are kept (at most `max_chains`, else
/// [`ExportError::TooMany`] as soon as one more matches); for CSV and text each is folded into
/// the indicators as it is read and dropped, so memory follows the indicators, not the store.
pub async fn gather(
    store: &Store,
    filter: &Filter,
    format: Format,
    max_chains: usize,
    now_ms: u64,
) -> Result<Found, ExportError> {
    let mut tally = matches!(format, Format::Csv | Format::Txt).then(Tally::default);
    let mut chains = Vec::new();
    let mut members: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut count = 0;
    let clusters = selected_chains(store, filter, |trace, stored_ms, campaign| {
        count += 1;
        if let (Some(i), None) = (campaign, &tally) {
            // Held for MISP and STIX only, as their chains are (within max_chains).
            members.entry(i).or_default().insert(trace.input.clone());
        }
        match &mut tally {
            Some(tally) => tally.add(&trace, stored_ms),
            None if chains.len() >= max_chains => {
                return Err(ExportError::TooMany { max: max_chains })
            }
            None => chains.push(Chain {
                trace: slim(trace),
                stored_ms,
            }),
        }
        Ok(())
    })
    .await?;
    let campaigns = members
        .into_iter()
        .map(|(i, inputs)| (clusters.campaigns[i].clone(), inputs))
        .collect();
    Ok(Found {
        chain_count: count,
        chains,
        folded: tally.map(Tally::into_indicators),
        campaigns,
        now_ms,
    })
}

/// Every stored chain `filter` selects, with the index of its campaign (if any) among the
/// store's campaigns, which are returned.
async fn selected_chains(
    store: &Store,
    filter: &Filter,
    mut each: impl FnMut(Trace, u64, Option<usize>) -> Result<(), ExportError>,
) -> Result<crate::campaigns::Clusters, ExportError> {
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
            each(trace, stored_ms, campaign)?;
        }
    }
    Ok(clusters)
}

/// A CSV or text export of the chains `filter` selects, written to `out` as the store is
/// walked: the indicators are tallied through temporary files ([`spill`]), so memory stays
/// bounded whatever the store holds. How many chains and indicators it covers.
pub async fn write_flat(
    store: &Store,
    filter: &Filter,
    format: Format,
    now_ms: u64,
    out: &mut dyn std::io::Write,
) -> Result<(usize, usize), ExportError> {
    let mut spill = spill::Spill::new();
    let mut chains = 0;
    selected_chains(store, filter, |trace, stored_ms, _| {
        chains += 1;
        Ok(spill.add(&trace, stored_ms)?)
    })
    .await?;
    let mut rows = flat::Rows::new(format, filter, now_ms, out)?;
    let mut indicators = 0;
    spill.finish(|i| {
        indicators += 1;
        rows.row(&i)
    })?;
    rows.finish()?;
    Ok((chains, indicators))
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

/// The export of `found` in `format`.
pub fn render(found: &Found, format: Format, filter: &Filter) -> Result<Vec<u8>, ExportError> {
    if filter.defang && matches!(format, Format::Misp | Format::Stix) {
        return Err(ExportError::Defang);
    }
    let json = |v: serde_json::Value| serde_json::to_vec_pretty(&v).unwrap_or_default();
    Ok(match format {
        Format::Misp => misp::events(found),
        Format::Stix => json(stix::bundle(found)),
        Format::Csv | Format::Txt => flat::rendered(found, format, filter),
    })
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

    #[test]
    fn an_indicator_names_each_input_once_in_the_order_first_seen() {
        let found = Found {
            chains: vec![
                // One chain passes the landing domain twice.
                chain(
                    "a",
                    &[
                        "http://s.test/1",
                        "http://land.test/x",
                        "http://land.test/y",
                    ],
                    Outcome::Landed,
                    5,
                ),
                chain("b", &["http://land.test/z"], Outcome::Landed, 3),
                // Another chain with the first one's input, after another input.
                chain("a", &["http://land.test/x"], Outcome::Landed, 9),
            ],
            campaigns: Vec::new(),
            now_ms: 10,
            chain_count: 3,
            folded: None,
        };
        let all = found.indicators();
        let land = all
            .iter()
            .find(|i| i.kind == Kind::Domain && i.value == "land.test")
            .unwrap();
        assert_eq!(land.inputs, ["a", "b"]);
        assert_eq!((land.first_ms, land.last_ms), (3, 9));
        let url = all
            .iter()
            .find(|i| i.value == "http://land.test/x")
            .unwrap();
        assert_eq!(url.inputs, ["a"]);
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
        let found = Found {
            chains: vec![named, literal],
            campaigns: Vec::new(),
            now_ms: 10,
            chain_count: 2,
            folded: None,
        };
        let all = found.indicators();
        let shared = all.iter().find(|i| i.value == "203.0.113.5").unwrap();
        assert!(shared.labels.is_empty() && !shared.malicious());
        let bundle = stix::bundle(&found).to_string();
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
        let event = misp::event(&found.chains.iter().collect::<Vec<_>>(), "test", 10);
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

    /// MISP: one event per landing domain (no campaign here), a group larger than an event
    /// holds split into numbered parts, each a line.
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
        let found = Found {
            chain_count: chains.len(),
            chains,
            campaigns: Vec::new(),
            now_ms: 10,
            folded: None,
        };
        let out = String::from_utf8(misp::events(&found)).unwrap();
        let infos: Vec<String> = out
            .lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                let objects = e["Event"]["Object"].as_array().unwrap().len();
                assert!(objects <= misp::CHAINS_PER_EVENT, "{objects}");
                e["Event"]["info"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            infos,
            [
                "hoptrace: landing domain land.test, part 1 of 2: 1000 redirect chains and where they land",
                "hoptrace: landing domain land.test, part 2 of 2: 1 redirect chains and where they land",
                "hoptrace: landing domain other.test: 1 redirect chains and where they land",
            ]
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
