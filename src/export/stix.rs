//! A STIX 2.1 bundle: `url`, `domain-name` and `ipv4-addr`/`ipv6-addr` observables (with the
//! deterministic ids STIX asks of them), an `indicator` with a STIX pattern for every payload
//! host, fake or lookalike shortener, phishing host and C2, `relationship`s along each chain
//! (`redirects-to` from hop to hop, `resolves-to` from a name to its vetted address,
//! `indicates`, `based-on`), and an `infrastructure` per campaign that `consists-of` its hops.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::indicator::{address, host_indicators, Indicator};
use super::spill::{Runs, Sortable, Spill};
use super::{time, uuid_of, Kind};
use crate::campaigns::Campaign;
use crate::labels::{Builtin, Label};
use crate::trace::Trace;

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

/// One object of the bundle, sorted on disk by its id so that each is written once.
#[derive(Serialize, Deserialize)]
struct Object {
    id: String,
    /// The object as JSON; without `created` and `modified` when `at` is set.
    json: String,
    /// First and last sighting (ms): an object met again widens them.
    at: Option<(u64, u64)>,
}

impl Sortable for Object {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn bytes(&self) -> usize {
        self.id.len() * 2 + self.json.len() + 64
    }
}

impl Object {
    fn new(body: &Value, at: Option<(u64, u64)>) -> Object {
        Object {
            id: body["id"].as_str().unwrap_or_default().to_string(),
            json: body.to_string(),
            at,
        }
    }

    /// `self` met again as `other`: the earliest and latest sightings of both.
    fn widen(&mut self, other: &Object) {
        if let (Some(a), Some(b)) = (&mut self.at, other.at) {
            *a = (a.0.min(b.0), a.1.max(b.1));
        }
    }

    fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.at {
            // Written by hand: `json` is an object (`{...}`) serialized by serde_json.
            Some((first, last)) => write!(
                out,
                "{{\"created\":\"{}\",\"modified\":\"{}\",{}",
                time(first),
                time(last.max(first)),
                self.json.get(1..).unwrap_or("}")
            ),
            None => out.write_all(self.json.as_bytes()),
        }
    }
}

/// A relationship of `kind` from one object to another; its times come with it as `at`.
fn relationship(kind: &str, from: &str, to: &str) -> Value {
    json!({
        "type": "relationship",
        "spec_version": "2.1",
        "id": format!("relationship--{}", uuid_of(&["stix-relationship", kind, from, to])),
        "relationship_type": kind,
        "source_ref": from,
        "target_ref": to,
    })
}

/// A STIX bundle written as the store is walked: each chain's relationships and each
/// campaign's members go to objects sorted on disk by id, each chain's values to the
/// indicator tally ([`Spill`]); at the end the indicators' objects and the campaigns'
/// infrastructures join them, and the objects are written once each inside a bundle
/// envelope written by hand. Memory: a run of each spill, the campaigns met.
pub struct Bundle {
    objects: Runs<Object>,
    indicators: Spill,
    /// The campaigns met, by index: each with its first chain's time.
    campaigns: BTreeMap<usize, (Campaign, u64)>,
    now_ms: u64,
}

impl Bundle {
    pub fn new(now_ms: u64) -> Bundle {
        Bundle {
            objects: Runs::default(),
            indicators: Spill::new(),
            campaigns: BTreeMap::new(),
            now_ms,
        }
    }

    /// Run files the objects and indicators were sorted through.
    pub fn runs(&self) -> usize {
        self.objects.written() + self.indicators.runs()
    }

    /// One chain: its values tallied, its relationships (`redirects-to` hop to hop,
    /// `resolves-to` name to address, its campaign's `consists-of`) set down.
    pub fn add(
        &mut self,
        trace: &Trace,
        stored_ms: u64,
        campaign: Option<(usize, &Campaign)>,
    ) -> std::io::Result<()> {
        self.indicators.add(trace, stored_ms)?;
        let at = Some((stored_ms, stored_ms));
        for r in chain_relationships(trace) {
            self.objects.push(Object::new(&r, at))?;
        }
        let Some((i, campaign)) = campaign else {
            return Ok(());
        };
        let first = &mut self
            .campaigns
            .entry(i)
            .or_insert_with(|| (campaign.clone(), stored_ms))
            .1;
        *first = (*first).min(stored_ms);
        let infra = infrastructure_id(campaign);
        let names: BTreeSet<String> = trace
            .hops
            .iter()
            .flat_map(|h| host_indicators(&h.host))
            .filter(|(k, _)| *k == Kind::Domain)
            .map(|(_, name)| name)
            .collect();
        for name in names {
            let r = relationship("consists-of", &infra, &sco_id("domain-name", &name));
            self.objects
                .push(Object::new(&r, Some((stored_ms, self.now_ms))))?;
        }
        Ok(())
    }

    /// The bundle, to `out`; how many indicators (URLs, names, addresses) it holds.
    pub fn write(mut self, out: &mut dyn Write) -> std::io::Result<usize> {
        let mut objects = self.objects;
        let mut count = 0;
        self.indicators.finish(|i| {
            count += 1;
            indicator_objects(&i)
                .iter()
                .try_for_each(|o| objects.push(Object::new(o, None)))
        })?;
        for (campaign, first) in std::mem::take(&mut self.campaigns).into_values() {
            let body = infrastructure(&campaign);
            objects.push(Object::new(&body, Some((first, self.now_ms))))?;
        }
        write!(
            out,
            "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
            uuid_of(&["stix-bundle", &self.now_ms.to_string()])
        )?;
        let mut open: Option<Object> = None;
        let mut written = 0;
        let mut put = |o: Object, out: &mut dyn Write| -> std::io::Result<()> {
            out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
            written += 1;
            o.write(out)
        };
        for o in objects.merged()? {
            let o = o?;
            match &mut open {
                Some(same) if same.id == o.id => same.widen(&o),
                _ => {
                    if let Some(done) = open.replace(o) {
                        put(done, out)?;
                    }
                }
            }
        }
        if let Some(done) = open {
            put(done, out)?;
        }
        out.write_all(b"\n]}\n")?;
        Ok(count)
    }
}

/// An indicator's objects: its observable, and where a label makes it worth one, an
/// `indicator` with its pattern, `based-on` the observable.
fn indicator_objects(i: &Indicator) -> Vec<Value> {
    let (id, sco) = sco_of(i.kind, &i.value);
    let Some((pattern, types)) = pattern_of(i) else {
        return vec![sco];
    };
    let ind = format!("indicator--{}", uuid_of(&["stix-indicator", &pattern]));
    let labels: Vec<&str> = i.labels.iter().map(Label::as_str).collect();
    let more = match i.more_inputs {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let indicator = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": ind,
        "created": time(i.first_ms),
        "modified": time(i.last_ms),
        "name": format!("{} ({})", i.value, labels.join(", ")),
        "description": format!(
            "{} on the redirect chains of {} input(s), first {}{more}; found by hoptrace",
            i.kind.as_str(),
            i.inputs.len() + i.more_inputs,
            i.inputs.first().map(String::as_str).unwrap_or(""),
        ),
        "indicator_types": types,
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": time(i.first_ms),
        "labels": labels,
    });
    let mut based_on = relationship("based-on", &ind, &id);
    based_on["created"] = json!(time(i.first_ms));
    based_on["modified"] = json!(time(i.last_ms));
    vec![sco, indicator, based_on]
}

/// A chain's own relationships: `redirects-to` from each hop's URL to the next, and
/// `resolves-to` from a hop's name to the address it was vetted at.
fn chain_relationships(trace: &Trace) -> Vec<Value> {
    let mut out = Vec::new();
    for pair in trace.hops.windows(2) {
        let [a, b] = [&pair[0], &pair[1]].map(|h| sco_id("url", &uri(&h.url)));
        out.push(relationship("redirects-to", &a, &b));
    }
    for hop in &trace.hops {
        let Some(ip) = hop.ip.as_deref().and_then(address) else {
            continue;
        };
        // Where the host is a domain name (not an address, nor a name no resolver takes).
        let named = host_indicators(&hop.host)
            .into_iter()
            .any(|(k, v)| k == Kind::Domain && v == hop.host);
        if named {
            let (name, ip) = (sco_id("domain-name", &hop.host), sco_id(ip_kind(&ip), &ip));
            out.push(relationship("resolves-to", &name, &ip));
        }
    }
    out
}

fn infrastructure_id(campaign: &Campaign) -> String {
    format!(
        "infrastructure--{}",
        uuid_of(&["stix-infrastructure", &campaign.id])
    )
}

/// A campaign's `infrastructure` (its kinds from its labels); its times come with it.
fn infrastructure(campaign: &Campaign) -> Value {
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
    json!({
        "type": "infrastructure",
        "spec_version": "2.1",
        "id": infrastructure_id(campaign),
        "name": format!("hoptrace campaign {}", campaign.id),
        "description": format!(
            "{} repositories by {} users, landing on {}",
            campaign.repository_count,
            campaign.user_count,
            campaign.landing_hosts.join(", ")
        ),
        "infrastructure_types": if kinds.is_empty() { vec!["unknown"] } else { kinds.into_iter().collect() },
    })
}
