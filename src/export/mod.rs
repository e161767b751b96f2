//! What hoptrace found, in the formats other platforms read: a MISP event ([`misp`]), a STIX
//! 2.1 bundle ([`stix`]), and one indicator a line as CSV or text ([`flat`]). Everything comes
//! from the store: the chains (filtered by when they were stored, a label, a campaign), their
//! hops' URLs, domains and vetted addresses, and the campaigns the scanned repositories form.

mod flat;
mod indicator;
mod misp;
mod prepare;
mod spill;
mod stix;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::trace::{rfc3339_ms, Trace};
use crate::wire::{wire_enum, UnknownName};

pub use indicator::Indicator;
pub use prepare::{prepare, Prepared};

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
    use std::collections::BTreeSet;

    use super::prepare::slim;
    use super::*;
    use crate::record::{Header, HttpRecord};
    use crate::trace::Outcome;
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
