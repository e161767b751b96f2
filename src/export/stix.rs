//! A STIX 2.1 bundle: `url`, `domain-name` and `ipv4-addr`/`ipv6-addr` observables (with the
//! deterministic ids STIX asks of them), an `indicator` with a STIX pattern for every payload
//! host, fake or lookalike shortener, phishing host and C2, `relationship`s along each chain
//! (`redirects-to` from hop to hop, `resolves-to` from a name to its vetted address,
//! `indicates`, `based-on`), and an `infrastructure` per campaign that `consists-of` its hops.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{address, host_indicators, time, uuid_of, Found, Indicator, Kind};
use crate::labels::{registrable, Builtin, Label};

/// STIX's namespace for the ids of observables (STIX 2.1, 2.9).
const SCO_NAMESPACE: uuid::Uuid = uuid::uuid!("00abedb4-aa42-466c-9c01-fed23315a9b7");

/// The id of an observable of `kind` whose id-contributing property is `value`.
fn sco_id(kind: &str, value: &str) -> String {
    let canonical = json!({ "value": value }).to_string();
    format!(
        "{kind}--{}",
        uuid::Uuid::new_v5(&SCO_NAMESPACE, canonical.as_bytes())
    )
}

fn ip_kind(ip: &str) -> &'static str {
    match ip.contains(':') {
        true => "ipv6-addr",
        false => "ipv4-addr",
    }
}

/// `url` as RFC 3986 has it, which STIX asks of a `url` value: the WHATWG form hoptrace keeps
/// leaves `[`, `]`, `|`, `^`, `{`, `}`, `"`, a second `#` and a `%` without two hex digits
/// where RFC 3986 refuses them (`?a[]=1`, an ordinary PHP query): those are percent-encoded,
/// the rest is kept as it is.
fn uri(url: &str) -> String {
    use std::fmt::Write;
    let host_at = url.find("://").map_or(0, |i| i + 3);
    let path_at = url[host_at..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| host_at + i);
    let mut fragment = false;
    let mut out = String::with_capacity(url.len());
    for (i, c) in url.char_indices() {
        let keep = match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | ':' | '@' | '/' => true,
            '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' => true,
            '%' => url
                .as_bytes()
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            // An IPv6 address's brackets.
            '[' | ']' => i < path_at,
            '?' => i >= path_at,
            '#' => i >= path_at && !std::mem::replace(&mut fragment, true),
            _ => false,
        };
        match keep {
            true => out.push(c),
            false => {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

/// The STIX value of an indicator: a URL as RFC 3986 has it.
fn value_of(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Url => uri(value),
        Kind::Domain | Kind::Ip => value.to_string(),
    }
}

fn sco_of(kind: Kind, value: &str) -> (String, Value) {
    let t = match kind {
        Kind::Url => "url",
        Kind::Domain => "domain-name",
        Kind::Ip => ip_kind(value),
    };
    let value = value_of(kind, value);
    let id = sco_id(t, &value);
    (
        id.clone(),
        json!({"type": t, "spec_version": "2.1", "id": id, "value": value}),
    )
}

/// A STIX pattern literal: quotes and backslashes escaped.
fn literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The indicator an indicator-worthy value gets: its pattern and types, or `None`.
fn pattern_of(i: &Indicator) -> Option<(String, Vec<&'static str>)> {
    if !i.malicious() {
        return None;
    }
    let has = |l: Builtin| i.labels.contains(&Label::from(l));
    let types = match has(Builtin::LookalikeShortener)
        && !has(Builtin::PayloadHost)
        && !has(Builtin::C2)
        && !has(Builtin::FakeShortener)
    {
        // Resembles a shortener no list names: suspicious, not proven.
        true => vec!["anomalous-activity"],
        false => vec!["malicious-activity"],
    };
    let value = literal(&value_of(i.kind, &i.value));
    let pattern = match i.kind {
        Kind::Url => format!("[url:value = '{value}']"),
        Kind::Domain => format!("[domain-name:value = '{value}']"),
        Kind::Ip => format!("[{}:value = '{value}']", ip_kind(&i.value)),
    };
    Some((pattern, types))
}

fn relationship(kind: &str, from: &str, to: &str, at: (u64, u64)) -> Value {
    json!({
        "type": "relationship",
        "spec_version": "2.1",
        "id": format!("relationship--{}", uuid_of(&["stix-relationship", kind, from, to])),
        "created": time(at.0),
        "modified": time(at.1.max(at.0)),
        "relationship_type": kind,
        "source_ref": from,
        "target_ref": to,
    })
}

pub fn bundle(found: &Found) -> Value {
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let indicators = found.indicators();
    let seen: BTreeMap<(Kind, String), (u64, u64)> = indicators
        .iter()
        .map(|i| ((i.kind, i.value.clone()), (i.first_ms, i.last_ms)))
        .collect();
    for i in &indicators {
        let (id, sco) = sco_of(i.kind, &i.value);
        objects.insert(id.clone(), sco);
        let Some((pattern, types)) = pattern_of(i) else {
            continue;
        };
        let ind = format!("indicator--{}", uuid_of(&["stix-indicator", &pattern]));
        let labels: Vec<&Label> = i.labels.iter().collect();
        objects.insert(
            ind.clone(),
            json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": ind,
                "created": time(i.first_ms),
                "modified": time(i.last_ms),
                "name": format!("{} ({})", i.value, labels.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")),
                "description": format!(
                    "{} on the redirect chains of {} input(s), first {}; found by hoptrace",
                    i.kind.as_str(),
                    i.inputs.len(),
                    i.inputs.first().map(String::as_str).unwrap_or("")
                ),
                "indicator_types": types,
                "pattern": pattern,
                "pattern_type": "stix",
                "valid_from": time(i.first_ms),
                "labels": labels,
            }),
        );
        let r = relationship("based-on", &ind, &id, (i.first_ms, i.last_ms));
        objects.insert(r["id"].as_str().unwrap_or_default().to_string(), r);
    }
    let mut add = |r: Value| {
        objects.insert(r["id"].as_str().unwrap_or_default().to_string(), r);
    };
    for c in &found.chains {
        let at = (c.stored_ms, c.stored_ms);
        for pair in c.trace.hops.windows(2) {
            let [a, b] = [&pair[0], &pair[1]].map(|h| sco_id("url", &uri(&h.url)));
            add(relationship("redirects-to", &a, &b, at));
        }
        for hop in &c.trace.hops {
            let Some(ip) = &hop.ip else {
                continue;
            };
            // Where the host is a domain name (not an address, nor a name no resolver takes).
            let name = host_indicators(&hop.host)
                .into_iter()
                .find(|(k, v)| *k == Kind::Domain && *v == hop.host);
            let address = address(ip);
            if let (Some((_, name)), Some(ip)) = (name, address) {
                let (name, ip) = (sco_id("domain-name", &name), sco_id(ip_kind(&ip), &ip));
                add(relationship("resolves-to", &name, &ip, at));
            }
        }
    }
    for (campaign, inputs) in &found.campaigns {
        let infra = format!(
            "infrastructure--{}",
            uuid_of(&["stix-infrastructure", &campaign.id])
        );
        let hosts: BTreeSet<&str> = found
            .chains
            .iter()
            .filter(|c| inputs.contains(&c.trace.input))
            .flat_map(|c| c.trace.hops.iter().map(|h| h.host.as_str()))
            .filter(|h| !h.is_empty())
            .collect();
        let kinds: BTreeSet<&str> = campaign
            .labels
            .iter()
            .filter_map(|l| match l {
                Label::Builtin(Builtin::PayloadHost) => Some("hosting-malware"),
                Label::Builtin(Builtin::Phishing) => Some("phishing"),
                Label::Builtin(Builtin::C2) => Some("command-and-control"),
                _ => None,
            })
            .collect();
        let first = found
            .chains
            .iter()
            .map(|c| c.stored_ms)
            .min()
            .unwrap_or(found.now_ms);
        add(json!({
            "type": "infrastructure",
            "spec_version": "2.1",
            "id": infra,
            "created": time(first),
            "modified": time(found.now_ms.max(first)),
            "name": format!("hoptrace campaign {}", campaign.id),
            "description": format!(
                "{} repositories by {} users, landing on {}",
                campaign.repository_count,
                campaign.user_count,
                campaign.landing_hosts.join(", ")
            ),
            "infrastructure_types": if kinds.is_empty() { vec!["unknown"] } else { kinds.into_iter().collect() },
        }));
        for host in hosts {
            for name in BTreeSet::from([host.to_string(), registrable(host)]) {
                let target = sco_id("domain-name", &name);
                if seen.contains_key(&(Kind::Domain, name)) {
                    add(relationship(
                        "consists-of",
                        &infra,
                        &target,
                        (first, found.now_ms.max(first)),
                    ));
                }
            }
        }
    }
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid_of(&["stix-bundle", &found.now_ms.to_string()])),
        "objects": objects.into_values().collect::<Vec<_>>(),
    })
}
