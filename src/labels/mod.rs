//! Labelling endpoints: listed indicators (payload hosts, phishing redirectors, C2, fake
//! shorteners and what they imitate), real shorteners, and *unlisted* lookalikes of real
//! shorteners — the lists go stale after every takedown, the resemblance does not.
//!
//! Here: the labels and how a host is classified; the list files in `lists`, the resemblance
//! in `lookalike`.

mod lists;
mod lookalike;

use std::collections::HashMap;

use crate::defang::refang;
pub use lookalike::skeleton;
use lookalike::{brand, RealShortener};

/// The lists shipped in `resolver-config/`, compiled in.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    (
        "resolver-config/indicators.txt",
        include_str!("../../resolver-config/indicators.txt"),
    ),
    (
        "resolver-config/shorteners.txt",
        include_str!("../../resolver-config/shorteners.txt"),
    ),
];

pub use crate::trace::{Builtin, Label};

/// Section of real domains that must never be called lookalikes.
const NOT_LOOKALIKE: &str = "not-a-lookalike";

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("labels.extra_files: cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("labels: {origin}:{line}: {message}")]
    Line {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("labels: {origin}: {message}")]
    File { origin: String, message: String },
}

/// Why one entry of a list is refused (reported with its file and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("`{0}` is not a domain name")]
    NotADomain(String),
    #[error("`{0}` is a public suffix, not a domain anyone registered")]
    PublicSuffix(String),
    #[error("label `{0}` must be lowercase letters, digits and dashes")]
    BadLabel(String),
}

/// What a host is known or suspected to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLabels {
    pub labels: Vec<Label>,
    pub imitates: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    label: Label,
    imitates: Option<String>,
}

/// All indicator lists, ready to label hosts.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_domain: HashMap<String, Vec<Entry>>,
    shorteners: Vec<RealShortener>,
    memo: lookalike::Memo,
}

impl Labels {
    pub(crate) fn add(
        &mut self,
        domain: &str,
        label: String,
        imitates: Option<String>,
    ) -> Result<(), EntryError> {
        let domain =
            normalise_domain(domain).ok_or_else(|| EntryError::NotADomain(domain.to_string()))?;
        if psl::domain_str(&domain).is_none() {
            return Err(EntryError::PublicSuffix(domain));
        }
        self.memo.clear();
        let imitates = match imitates {
            Some(i) => Some(normalise_domain(&i).ok_or(EntryError::NotADomain(i))?),
            None => None,
        };
        let label = Label::from(label);
        if label == Builtin::Shortener {
            self.shorteners.push(RealShortener {
                key: skeleton(&brand(&domain)),
                domain: domain.clone(),
            });
        }
        let entries = self.by_domain.entry(domain).or_default();
        if !entries.iter().any(|e| e.label == label) {
            entries.push(Entry { label, imitates });
        }
        Ok(())
    }

    /// Labels for `host`: every listed entry for the host or a parent domain down to its
    /// registrable domain, then lookalike detection when nothing names it a shortener.
    pub fn classify(&self, host: &str) -> HostLabels {
        let mut out = HostLabels::default();
        let Some(host) = normalise_domain(host) else {
            return out;
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            return out;
        }
        let registrable = psl::domain_str(&host).map(str::to_string);
        let mut name = host.as_str();
        let mut benign = false;
        loop {
            if let Some(entries) = self.by_domain.get(name) {
                for e in entries {
                    if e.label == NOT_LOOKALIKE {
                        benign = true;
                        continue;
                    }
                    if !out.labels.contains(&e.label) {
                        out.labels.push(e.label.clone());
                    }
                    if out.imitates.is_none() {
                        out.imitates = e.imitates.clone();
                    }
                }
            }
            // Walk up to the registrable domain and no further: `rd.lesac.ru.evil.com`
            // never reaches `rd.lesac.ru`, and a bare suffix like `ru` is never looked up.
            if Some(name) == registrable.as_deref() {
                break;
            }
            match name.split_once('.') {
                Some((_, parent)) if registrable.is_some() => name = parent,
                _ => break,
            }
        }
        let named_shortener = out.labels.iter().any(|l| *l == Builtin::Shortener);
        let fake = out.labels.iter().any(|l| *l == Builtin::FakeShortener);
        if named_shortener || benign {
            return out;
        }
        if let Some(reg) = registrable {
            if let Some(real) = self.lookalike_of(&reg) {
                if fake {
                    // Listed without an original: say which one it resembles.
                    out.imitates.get_or_insert(real);
                } else {
                    out.labels.push(Builtin::LookalikeShortener.into());
                    out.imitates = Some(real);
                }
            }
        }
        out
    }
}

pub(crate) fn check_label(label: &str) -> Result<String, EntryError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(label.to_string())
    } else {
        Err(EntryError::BadLabel(label.to_string()))
    }
}

/// Lowercase ASCII (punycode) form of a domain, refanged, without a trailing dot.
/// The registrable domain of `host` (`a.b.example.co.uk` -> `example.co.uk`), lower case;
/// an address or a name without a public suffix comes back as it is.
pub fn registrable(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host;
    }
    psl::domain_str(&host).unwrap_or(&host).to_string()
}

pub(crate) fn normalise_domain(s: &str) -> Option<String> {
    let s = refang(s);
    let s = s.trim().trim_end_matches('.');
    if s.is_empty() || s.contains(['/', ':', ' ', '@']) {
        return None;
    }
    let ascii = idna::domain_to_ascii(s).ok()?;
    (!ascii.is_empty() && ascii.contains('.')).then_some(ascii)
}

/// The registrable domain a trace landed on: only chains that reached a page or a file.
pub fn landing_domain(trace: &crate::trace::Trace) -> Option<String> {
    use crate::trace::Outcome;
    if !matches!(trace.outcome, Outcome::Landed | Outcome::Download) || trace.final_host.is_empty()
    {
        return None;
    }
    Some(registrable(&trace.final_host))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The built-in lists alone.
    pub(crate) fn builtin() -> Labels {
        Labels::load(&[] as &[&std::path::Path]).unwrap()
    }

    #[test]
    fn every_threat_model_indicator_is_listed() {
        let l = builtin();
        for (host, label, imitates) in [
            ("failhostingpolp.ru", "payload-host", None),
            ("gts794.com", "payload-host", None),
            ("totrakto.com", "payload-host", None),
            ("rd.lesac.ru", "phishing", None),
            ("soneservice.shop", "c2", None),
            ("bltlly.com", "fake-shortener", Some("bitly.com")),
            ("ltlly.com", "fake-shortener", Some("bitly.com")),
            ("tinurll.com", "fake-shortener", Some("tinyurl.com")),
            ("urlcod.com", "fake-shortener", Some("urlgo.in")),
            ("imgfil.com", "fake-shortener", Some("imgflip.com")),
            ("gohhs.com", "fake-shortener", None),
        ] {
            let got = l.classify(host);
            assert!(got.labels.contains(&label.into()), "{host}: {got:?}");
            if let Some(i) = imitates {
                assert_eq!(got.imitates.as_deref(), Some(i), "{host}");
            }
            assert!(
                !got.labels.contains(&Builtin::LookalikeShortener.into()),
                "{host} is listed, not merely alike"
            );
        }
    }

    #[test]
    fn psl_boundaries() {
        let l = builtin();
        assert!(l
            .classify("x.rd.lesac.ru")
            .labels
            .contains(&"phishing".into()));
        assert!(l
            .classify("RD.LESAC.RU.")
            .labels
            .contains(&"phishing".into()));
        assert!(l.classify("rd.lesac.ru.evil.com").labels.is_empty());
        assert!(
            l.classify("lesac.ru").labels.is_empty(),
            "the parent of a listed subdomain is not listed"
        );
        assert!(l
            .classify("cdn.failhostingpolp.ru")
            .labels
            .contains(&"payload-host".into()));
        assert!(l.classify("notgts794.com").labels.is_empty());
    }
}
