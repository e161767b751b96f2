//! What a chain shows as indicators: each hop's URL, its host's names (where they are domain
//! names STIX and MISP take) and the address it resolved to (an observable, never an indicator
//! of its name's labels); and an [`Indicator`], one value with what the chains tell of it.

use std::collections::BTreeSet;

use crate::labels::{registrable, Label};
use crate::trace::Trace;

use super::Kind;

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
pub(super) fn host_indicators(host: &str) -> Vec<(Kind, String)> {
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
pub(super) fn address(ip: &str) -> Option<String> {
    let ip: std::net::IpAddr = ip.parse().ok()?;
    Some(ip.to_canonical().to_string())
}

/// Whether `name` is a domain name as DNS and IDNA 2008 take one (STIX's `idn-hostname`,
/// MISP's `hostname`): labels of 1-63 letters, digits and inner hyphens, no `--` at the
/// third place but in an IDN label (`xn--`) that decodes to lowercase letters and digits and
/// encodes back to itself; 253 characters at most (a final dot aside).
fn domain_name(name: &str) -> bool {
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
pub(super) fn hop_values(trace: &Trace) -> Vec<(Kind, String, &[Label])> {
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
