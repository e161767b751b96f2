//! A MISP event (MISP core format, as `pymisp` loads it): a `url` object per distinct hop URL
//! (url, host, domain, port, resource_path, query_string, first-seen, last-seen), a
//! `domain-ip` object per host and vetted address, a `file` object for each download (name,
//! type and size from its headers: it was never fetched), `redirects-to` references from hop
//! to hop, `downloaded-from` from a file to its URL, the labels as tags, and `to_ids` only on
//! what a malicious label marks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::indicator::{address, host_indicators};
use super::spill::{Runs, Sortable};
use super::{time, uuid_of, Chain, Kind};
use crate::campaigns::Campaign;
use crate::labels::{registrable, Label};
use crate::trace::{Hop, Outcome, Trace};

/// MISP's object templates (misp-objects) this event uses: name -> (uuid, version).
const URL_TEMPLATE: (&str, &str) = ("60efb77b-40b5-4c46-871b-ed1ed999fce5", "9");
const DOMAIN_IP_TEMPLATE: (&str, &str) = ("43b3b146-77eb-4931-b4cc-b66c60f28734", "10");
const FILE_TEMPLATE: (&str, &str) = ("688c46fb-5edb-40a3-8273-1af7923e2215", "24");

fn tag(label: &str) -> Value {
    json!({"name": format!("hoptrace:label=\"{label}\"")})
}

/// One object attribute (its uuid made unique by the object's key when the object is made).
fn attr(relation: &str, kind: &str, value: impl ToString, to_ids: bool, seen: (u64, u64)) -> Value {
    json!({
        "object_relation": relation,
        "type": kind,
        "category": "Network activity",
        "value": value.to_string(),
        "to_ids": to_ids,
        "disable_correlation": false,
        "first_seen": time(seen.0),
        "last_seen": time(seen.1),
    })
}

fn object(name: &str, template: (&str, &str), key: &str, mut attributes: Vec<Value>) -> Value {
    for a in &mut attributes {
        let relation = a["object_relation"].as_str().unwrap_or("").to_string();
        let value = a["value"].as_str().unwrap_or("").to_string();
        a["uuid"] = json!(uuid_of(&["misp-attribute", name, key, &relation, &value]));
    }
    json!({
        "name": name,
        "meta-category": if name == "file" { "file" } else { "network" },
        "description": format!("hoptrace: {name}"),
        "template_uuid": template.0,
        "template_version": template.1,
        "uuid": uuid_of(&["misp-object", name, key]),
        "distribution": "5",
        "sharing_group_id": "0",
        "comment": "",
        "deleted": false,
        "Attribute": attributes,
        "ObjectReference": [],
    })
}

/// The attributes naming `host`: itself (as `relation`, a hostname) and its registrable
/// domain, each where it is a domain name (MISP refuses others; see [`host_indicators`]).
fn names(host: &str, relation: &str, bad: bool, at: (u64, u64)) -> Vec<Value> {
    let registrable = registrable(host);
    let mut out = Vec::new();
    for (kind, name) in host_indicators(host) {
        if kind != Kind::Domain {
            continue;
        }
        if name == host {
            out.push(attr(relation, "hostname", &name, bad, at));
        }
        if name == registrable {
            out.push(attr("domain", "domain", &name, false, at));
        }
    }
    out
}

/// `host` when it is an address (a v6 one without its brackets).
fn address_of(host: &str) -> Option<String> {
    host_indicators(host)
        .into_iter()
        .find_map(|(kind, ip)| (kind == Kind::Ip).then_some(ip))
}

fn malicious(hop: &Hop) -> bool {
    Label::any_malicious(&hop.labels)
}

/// The downloaded file's name: `Content-Disposition`'s, else the URL path's last segment.
fn file_name(hop: &Hop) -> String {
    let disposition = hop
        .http
        .as_ref()
        .and_then(|r| r.response_header("content-disposition"));
    let from_header = disposition.and_then(|d| {
        d.split(';')
            .filter_map(|p| p.trim().strip_prefix("filename="))
            .next()
            .map(|f| f.trim_matches('"').to_string())
    });
    from_header
        .filter(|f| !f.is_empty())
        .or_else(|| {
            url::Url::parse(&hop.url).ok().and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_string))
            })
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "download".into())
}

/// Chains one event holds at most: a larger group is split into numbered parts, so no event
/// is more than a MISP instance takes in (one of 583 MiB was measured at 100,000 chains).
pub const CHAINS_PER_EVENT: usize = 1000;

/// Attributes one event holds at most (counted as the most a hop can add: [`PER_HOP`]).
pub const ATTRIBUTES_PER_EVENT: usize = 50_000;

/// The most attributes one hop adds to an event: a `url` object (url, host, domain, ip,
/// port, resource_path, query_string, first-seen, last-seen), a `domain-ip` object (hostname,
/// domain, ip) and a `file` object (filename, mimetype, size-in-bytes).
const PER_HOP: usize = 15;

/// One chain on its way to its event: sorted on disk by group, then in walk order.
#[derive(Serialize, Deserialize)]
struct Grouped {
    group: String,
    seq: u64,
    chain: Chain,
}

impl Sortable for Grouped {
    type Key = (String, u64);
    fn key(&self) -> (String, u64) {
        (self.group.clone(), self.seq)
    }
    fn bytes(&self) -> usize {
        let hops: usize = self
            .chain
            .trace
            .hops
            .iter()
            .map(|h| h.url.len() * 2 + h.host.len() + 256)
            .sum();
        self.group.len() * 2 + self.chain.trace.input.len() + hops + 512
    }
}

/// What a chain is grouped under: its campaign; else the registrable domain it ended on;
/// else (blocked by the policy, or failed: it landed nowhere) the group of such chains.
fn group_of(trace: &Trace, campaign: Option<&Campaign>) -> String {
    let landed = matches!(trace.outcome, Outcome::Landed | Outcome::Download);
    let host = trace
        .hops
        .last()
        .map(|h| h.host.as_str())
        .filter(|h| landed && !h.is_empty());
    match (campaign, host) {
        (Some(campaign), _) => format!("campaign {}", campaign.id),
        (None, Some(host)) => format!("landing domain {}", registrable(host)),
        (None, None) => "chains that landed nowhere".to_string(),
    }
}

/// MISP events written as the store is walked: each chain is sorted on disk by its group
/// (campaign, landing domain), then the groups are read back in order and written event by
/// event, each of at most [`CHAINS_PER_EVENT`] chains and [`ATTRIBUTES_PER_EVENT`]
/// attributes. Memory: a run, one event's chains, a count per group.
#[derive(Default)]
pub struct Groups {
    chains: Runs<Grouped>,
    sizes: HashMap<String, usize>,
    seq: u64,
}

impl Groups {
    pub fn add(
        &mut self,
        trace: Trace,
        stored_ms: u64,
        campaign: Option<(usize, &Campaign)>,
    ) -> std::io::Result<()> {
        let group = group_of(&trace, campaign.map(|(_, c)| c));
        *self.sizes.entry(group.clone()).or_default() += 1;
        self.seq += 1;
        self.chains.push(Grouped {
            group,
            seq: self.seq,
            chain: Chain { trace, stored_ms },
        })
    }

    /// Run files the chains were sorted through.
    pub fn runs(&self) -> usize {
        self.chains.written()
    }

    /// The events, one JSON object a line, to `out`; how many.
    pub fn write(self, now_ms: u64, out: &mut dyn Write) -> std::io::Result<usize> {
        let mut part = Part::default();
        let mut events = 0;
        for g in self.chains.merged()? {
            let Grouped { group, chain, .. } = g?;
            if part.group != group || !part.fits(&chain) {
                events += part.flush(&self.sizes, now_ms, out)?;
                if part.group != group {
                    part = Part::of(group);
                }
            }
            part.push(chain);
        }
        events += part.flush(&self.sizes, now_ms, out)?;
        Ok(events)
    }
}

/// The event being filled: chains of one group.
#[derive(Default)]
struct Part {
    group: String,
    chains: Vec<Chain>,
    /// The most attributes its chains can add.
    attributes: usize,
    /// Chains of the group in earlier parts, and how many parts.
    before: usize,
    number: usize,
    /// Hops left out of chains too long for an event of their own.
    cut_hops: usize,
}

impl Part {
    fn of(group: String) -> Part {
        Part {
            group,
            ..Part::default()
        }
    }

    fn fits(&self, chain: &Chain) -> bool {
        self.chains.len() < CHAINS_PER_EVENT
            && self.attributes + chain.trace.hops.len() * PER_HOP <= ATTRIBUTES_PER_EVENT
    }

    fn push(&mut self, mut chain: Chain) {
        // A chain of more hops than an event holds (a damaged or hostile record: the hop
        // limit is far below) keeps its first ones.
        let most = ATTRIBUTES_PER_EVENT / PER_HOP;
        if chain.trace.hops.len() > most {
            self.cut_hops += chain.trace.hops.len() - most;
            chain.trace.hops.truncate(most);
        }
        self.attributes += chain.trace.hops.len() * PER_HOP;
        self.chains.push(chain);
    }

    /// The part as an event line (none when empty); the next part of the group follows on.
    fn flush(
        &mut self,
        sizes: &HashMap<String, usize>,
        now_ms: u64,
        out: &mut dyn Write,
    ) -> std::io::Result<usize> {
        if self.chains.is_empty() {
            return Ok(0);
        }
        let total = sizes.get(&self.group).copied().unwrap_or(0);
        let mut name = self.group.clone();
        let n = self.chains.len();
        if n < total {
            name.push_str(&format!(
                ", part {} (chains {}-{} of {total})",
                self.number + 1,
                self.before + 1,
                self.before + n
            ));
        }
        if self.cut_hops > 0 {
            name.push_str(&format!(
                ", {} hops past the event's size left out",
                self.cut_hops
            ));
        }
        serde_json::to_writer(&mut *out, &event(&self.chains, &name, now_ms))?;
        out.write_all(b"\n")?;
        self.before += n;
        self.number += 1;
        self.chains.clear();
        self.attributes = 0;
        self.cut_hops = 0;
        Ok(1)
    }
}

/// One event of `chains`, named `name` in its `info`: the span each URL was seen in, then
/// the objects of every hop, then the references between them, then the envelope.
pub fn event(chains: &[Chain], name: &str, now_ms: u64) -> Value {
    let seen = spans(chains);
    let mut objects = Objects::default();
    for c in chains {
        objects.chain(c, &seen);
    }
    let (objects, labels) = objects.referenced();
    let day = time(now_ms)[..10].to_string();
    json!({
        "Event": {
            "uuid": uuid_of(&["misp-event", name, &now_ms.to_string()]),
            "info": format!("hoptrace: {name}: {} redirect chains and where they land", chains.len()),
            "date": day,
            "timestamp": (now_ms / 1000).to_string(),
            "threat_level_id": "2",
            "analysis": "2",
            "distribution": "0",
            "published": false,
            "Attribute": [],
            "Object": objects,
            "Tag": labels.iter().map(|l| tag(l.as_str())).collect::<Vec<_>>(),
        }
    })
}

/// When each URL of `chains` was first and last seen (ms).
fn spans(chains: &[Chain]) -> BTreeMap<&str, (u64, u64)> {
    let mut seen: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in chains {
        for hop in &c.trace.hops {
            let s = seen
                .entry(hop.url.as_str())
                .or_insert((c.stored_ms, c.stored_ms));
            *s = (s.0.min(c.stored_ms), s.1.max(c.stored_ms));
        }
    }
    seen
}

/// An event's objects by their uuid (a URL on many chains is one object), the references
/// between them, and the labels met.
#[derive(Default)]
struct Objects {
    objects: BTreeMap<String, Value>,
    refs: BTreeSet<(String, String, &'static str)>,
    labels: BTreeSet<Label>,
}

impl Objects {
    fn chain(&mut self, c: &Chain, seen: &BTreeMap<&str, (u64, u64)>) {
        let mut previous: Option<String> = None;
        for (i, hop) in c.trace.hops.iter().enumerate() {
            let at = seen.get(hop.url.as_str()).copied().unwrap_or_default();
            self.labels.extend(hop.labels.iter().cloned());
            let url = self.url(hop, at);
            if let Some(prev) = previous.replace(url.clone()) {
                self.refs.insert((prev, url.clone(), "redirects-to"));
            }
            self.domain_ip(hop, at, &url);
            if i + 1 == c.trace.hops.len() && c.trace.outcome == Outcome::Download {
                self.file(hop, at, &url);
            }
        }
    }

    /// The hop's `url` object; its uuid.
    fn url(&mut self, hop: &Hop, at: (u64, u64)) -> String {
        let key = uuid_of(&["misp-object", "url", &hop.url]);
        self.objects.entry(key.clone()).or_insert_with(|| {
            let bad = malicious(hop);
            let mut a = vec![attr("url", "url", &hop.url, bad, at)];
            a[0]["Tag"] = json!(hop
                .labels
                .iter()
                .map(|l| tag(l.as_str()))
                .collect::<Vec<_>>());
            a.extend(names(&hop.host, "host", bad, at));
            if let Some(ip) = address_of(&hop.host) {
                a.push(attr("ip", "ip-dst", ip, bad, at));
            }
            if let Ok(u) = url::Url::parse(&hop.url) {
                if let Some(port) = u.port_or_known_default() {
                    a.push(attr("port", "port", port, false, at));
                }
                a.push(attr("resource_path", "text", u.path(), false, at));
                if let Some(q) = u.query() {
                    a.push(attr("query_string", "text", q, false, at));
                }
            }
            a.push(attr("first-seen", "datetime", time(at.0), false, at));
            a.push(attr("last-seen", "datetime", time(at.1), false, at));
            object("url", URL_TEMPLATE, &hop.url, a)
        });
        key
    }

    /// The hop's name and the address it was vetted at, where it has both, referenced from
    /// its URL.
    fn domain_ip(&mut self, hop: &Hop, at: (u64, u64), url: &str) {
        let named = names(&hop.host, "hostname", malicious(hop), at);
        let (Some(ip), false) = (hop.ip.as_deref().and_then(address), named.is_empty()) else {
            return;
        };
        let key = format!("{}|{ip}", hop.host);
        let di = uuid_of(&["misp-object", "domain-ip", &key]);
        self.objects.entry(di.clone()).or_insert_with(|| {
            let mut a = named;
            // The address the name resolved to: an observable, never `to_ids` for the name's
            // labels (a CDN or host shared with innocent sites).
            a.push(attr("ip", "ip-dst", ip, false, at));
            object("domain-ip", DOMAIN_IP_TEMPLATE, &key, a)
        });
        self.refs.insert((url.to_string(), di, "resolves-to"));
    }

    /// The file a download's last hop offered (never fetched: from its headers).
    fn file(&mut self, hop: &Hop, at: (u64, u64), url: &str) {
        let fk = uuid_of(&["misp-object", "file", &hop.url]);
        self.objects.entry(fk.clone()).or_insert_with(|| {
            let mut a = vec![attr(
                "filename",
                "filename",
                file_name(hop),
                malicious(hop),
                at,
            )];
            if let Some(t) = &hop.content_type {
                a.push(attr("mimetype", "mime-type", t, false, at));
            }
            let size = hop
                .http
                .as_ref()
                .and_then(|r| r.response_header("content-length")?.parse::<u64>().ok());
            if let Some(n) = size {
                a.push(attr("size-in-bytes", "size-in-bytes", n, false, at));
            }
            for x in &mut a {
                x["category"] = json!("Payload delivery");
            }
            object("file", FILE_TEMPLATE, &hop.url, a)
        });
        self.refs.insert((fk, url.to_string(), "downloaded-from"));
    }

    /// The objects with their references, and the labels.
    fn referenced(mut self) -> (Vec<Value>, BTreeSet<Label>) {
        for (from, to, relation) in self.refs {
            let Some(list) = self
                .objects
                .get_mut(&from)
                .and_then(|o| o["ObjectReference"].as_array_mut())
            else {
                continue;
            };
            list.push(json!({
                "uuid": uuid_of(&["misp-reference", &from, &to, relation]),
                "object_uuid": from,
                "referenced_uuid": to,
                "relationship_type": relation,
                "comment": "",
            }));
        }
        (self.objects.into_values().collect(), self.labels)
    }
}
