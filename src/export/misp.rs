//! A MISP event (MISP core format, as `pymisp` loads it): a `url` object per distinct hop URL
//! (url, host, domain, port, resource_path, query_string, first-seen, last-seen), a
//! `domain-ip` object per host and vetted address, a `file` object for each download (name,
//! type and size from its headers: it was never fetched), `redirects-to` references from hop
//! to hop, `downloaded-from` from a file to its URL, the labels as tags, and `to_ids` only on
//! what a malicious label marks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{address, host_indicators, time, uuid_of, Chain, Found, Kind};
use crate::labels::{registrable, Label};
use crate::trace::{Hop, Outcome};

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

/// The events of `found`, one JSON object a line: one per campaign, and for the chains of no
/// campaign one per registrable domain they ended on; a group of more than
/// [`CHAINS_PER_EVENT`] chains is split into parts (`part 2 of 3` in the event's `info`).
pub fn events(found: &Found) -> Vec<u8> {
    let mut groups: BTreeMap<String, Vec<&Chain>> = BTreeMap::new();
    for c in &found.chains {
        let campaign = found
            .campaigns
            .iter()
            .find(|(_, inputs)| inputs.contains(&c.trace.input));
        // Where it landed: a chain the policy blocked, or that failed, landed nowhere.
        let landed = matches!(c.trace.outcome, Outcome::Landed | Outcome::Download);
        let host = c
            .trace
            .hops
            .last()
            .map(|h| h.host.as_str())
            .filter(|h| landed && !h.is_empty());
        let group = match (campaign, host) {
            (Some((campaign, _)), _) => format!("campaign {}", campaign.id),
            (None, Some(host)) => format!("landing domain {}", registrable(host)),
            (None, None) => "chains that landed nowhere".to_string(),
        };
        groups.entry(group).or_default().push(c);
    }
    let mut out = Vec::new();
    for (group, chains) in groups {
        let parts = chains.len().div_ceil(CHAINS_PER_EVENT);
        for (i, part) in chains.chunks(CHAINS_PER_EVENT).enumerate() {
            let name = match parts {
                1 => group.clone(),
                n => format!("{group}, part {} of {n}", i + 1),
            };
            // Written to memory: a value cannot fail to be written.
            let _ = serde_json::to_writer(&mut out, &event(part, &name, found.now_ms));
            out.push(b'\n');
        }
    }
    out
}

/// One event of `chains`, named `name` in its `info`.
pub fn event(chains: &[&Chain], name: &str, now_ms: u64) -> Value {
    // Objects by their uuid, so a URL on many chains is one object with its references.
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut labels: BTreeSet<Label> = BTreeSet::new();
    let mut refs: BTreeSet<(String, String, &str)> = BTreeSet::new();
    for c in chains {
        for hop in &c.trace.hops {
            let s = seen
                .entry(hop.url.clone())
                .or_insert((c.stored_ms, c.stored_ms));
            *s = (s.0.min(c.stored_ms), s.1.max(c.stored_ms));
        }
    }
    for c in chains {
        let mut previous: Option<String> = None;
        for (i, hop) in c.trace.hops.iter().enumerate() {
            let at = seen[&hop.url];
            let bad = malicious(hop);
            labels.extend(hop.labels.iter().cloned());
            let url_key = uuid_of(&["misp-object", "url", &hop.url]);
            objects.entry(url_key.clone()).or_insert_with(|| {
                let u = url::Url::parse(&hop.url).ok();
                let mut a = vec![attr("url", "url", &hop.url, bad, at)];
                if let Some(a0) = a.first_mut() {
                    a0["Tag"] = json!(hop
                        .labels
                        .iter()
                        .map(|l| tag(l.as_str()))
                        .collect::<Vec<_>>());
                }
                a.extend(names(&hop.host, "host", bad, at));
                if let Some(ip) = address_of(&hop.host) {
                    a.push(attr("ip", "ip-dst", ip, bad, at));
                }
                if let Some(u) = &u {
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
            if let Some(prev) = previous.replace(url_key.clone()) {
                refs.insert((prev, url_key.clone(), "redirects-to"));
            }
            let named = names(&hop.host, "hostname", bad, at);
            if let (Some(ip), false) = (hop.ip.as_deref().and_then(address), named.is_empty()) {
                let key = format!("{}|{ip}", hop.host);
                let di = uuid_of(&["misp-object", "domain-ip", &key]);
                objects.entry(di.clone()).or_insert_with(|| {
                    let mut a = named;
                    // The address the name resolved to: an observable, never `to_ids` for the
                    // name's labels (a CDN or host shared with innocent sites).
                    a.push(attr("ip", "ip-dst", ip, false, at));
                    object("domain-ip", DOMAIN_IP_TEMPLATE, &key, a)
                });
                refs.insert((url_key.clone(), di, "resolves-to"));
            }
            let last = i + 1 == c.trace.hops.len();
            if last && c.trace.outcome == Outcome::Download {
                let name = file_name(hop);
                let fk = uuid_of(&["misp-object", "file", &hop.url]);
                objects.entry(fk.clone()).or_insert_with(|| {
                    let mut a = vec![attr("filename", "filename", &name, bad, at)];
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
                refs.insert((fk, url_key.clone(), "downloaded-from"));
            }
        }
    }
    for (from, to, relation) in refs {
        if let Some(o) = objects.get_mut(&from) {
            let reference = json!({
                "uuid": uuid_of(&["misp-reference", &from, &to, relation]),
                "object_uuid": from,
                "referenced_uuid": to,
                "relationship_type": relation,
                "comment": "",
            });
            if let Some(list) = o["ObjectReference"].as_array_mut() {
                list.push(reference);
            }
        }
    }
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
            "Object": objects.into_values().collect::<Vec<_>>(),
            "Tag": labels.iter().map(|l| tag(l.as_str())).collect::<Vec<_>>(),
        }
    })
}
