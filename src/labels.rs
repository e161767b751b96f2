//! Labelling endpoints: listed indicators (payload hosts, phishing redirectors, C2, fake
//! shorteners and what they imitate), real shorteners, and *unlisted* lookalikes of real
//! shorteners — the lists go stale after every takedown, the resemblance does not.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::extract::refang;

/// The lists shipped in `resolver-config/`, compiled in.
const BUILTIN: &[(&str, &str)] = &[
    (
        "resolver-config/indicators.txt",
        include_str!("../resolver-config/indicators.txt"),
    ),
    (
        "resolver-config/shorteners.txt",
        include_str!("../resolver-config/shorteners.txt"),
    ),
];

// The labels hoptrace itself gives or acts on (lists may name others; on the wire every
// label is its string).
pub const FAKE_SHORTENER: &str = "fake-shortener";
pub const LOOKALIKE_SHORTENER: &str = "lookalike-shortener";
pub const SHORTENER: &str = "shortener";
pub const PAYLOAD_HOST: &str = "payload-host";
pub const PHISHING: &str = "phishing";
pub const C2: &str = "c2";
/// A well-known wrapper that forwards anywhere (Google `/url` and the like).
pub const OPEN_REDIRECT: &str = "open-redirect";

/// Labels that make a link, and its repository, malicious.
pub const MALICIOUS: &[&str] = &[
    FAKE_SHORTENER,
    LOOKALIKE_SHORTENER,
    PAYLOAD_HOST,
    PHISHING,
    C2,
];
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

/// What a host is known or suspected to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLabels {
    pub labels: Vec<String>,
    pub imitates: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    label: String,
    imitates: Option<String>,
}

/// A real shortener, with the keys its lookalikes are compared on.
#[derive(Debug, Clone)]
struct RealShortener {
    domain: String,
    key: String,
}

/// All indicator lists, ready to label hosts.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    by_domain: HashMap<String, Vec<Entry>>,
    shorteners: Vec<RealShortener>,
}

impl Labels {
    /// The built-in lists plus `extra_files` (plain text, or TOML when the name ends `.toml`).
    pub fn load(extra_files: &[impl AsRef<Path>]) -> Result<Labels, LabelError> {
        let mut labels = Labels::default();
        for (origin, text) in BUILTIN {
            labels.add_text(origin, text)?;
        }
        for path in extra_files {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| LabelError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let origin = path.display().to_string();
            if path.extension().is_some_and(|e| e == "toml") {
                labels.add_toml(&origin, &text)?;
            } else {
                labels.add_text(&origin, &text)?;
            }
        }
        Ok(labels)
    }

    /// Plain-text list: `[label]` / `[label imitated]` sections, one domain a line.
    pub fn add_text(&mut self, origin: &str, text: &str) -> Result<(), LabelError> {
        let mut section: Option<(String, Option<String>)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: String| LabelError::Line {
                origin: origin.to_string(),
                line: i + 1,
                message,
            };
            if line.starts_with('[') && line.ends_with(']') && !line.contains("[.]") {
                let mut words = line[1..line.len() - 1].split_whitespace();
                let label = words
                    .next()
                    .ok_or_else(|| err("empty section name".into()))?;
                let imitates = words.next().map(str::to_string);
                section = Some((check_label(label).map_err(err)?, imitates));
                continue;
            }
            let mut words = line.split_whitespace();
            let domain = words.next().unwrap_or_default();
            let (label, imitates) = match words.next() {
                Some(label) => (
                    check_label(label).map_err(err)?,
                    words.next().map(str::to_string),
                ),
                None => section.clone().ok_or_else(|| {
                    err(format!(
                        "`{domain}` has no label (add `[label]` above it or a label after it)"
                    ))
                })?,
            };
            self.add(domain, label, imitates).map_err(err)?;
        }
        Ok(())
    }

    /// TOML list: `[[indicator]] domains = [...] label = "..." imitates = "..."`.
    pub fn add_toml(&mut self, origin: &str, text: &str) -> Result<(), LabelError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            indicator: Vec<Group>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Group {
            label: String,
            #[serde(default)]
            imitates: Option<String>,
            domains: Vec<String>,
        }
        let file: File = toml::from_str(text).map_err(|e| LabelError::File {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        for group in file.indicator {
            let err = |message: String| LabelError::File {
                origin: origin.to_string(),
                message,
            };
            let label = check_label(&group.label).map_err(err)?;
            for d in &group.domains {
                self.add(d, label.clone(), group.imitates.clone())
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, domain: &str, label: String, imitates: Option<String>) -> Result<(), String> {
        let domain =
            normalise_domain(domain).ok_or_else(|| format!("`{domain}` is not a domain name"))?;
        if psl::domain_str(&domain).is_none() {
            return Err(format!(
                "`{domain}` is a public suffix, not a domain anyone registered"
            ));
        }
        let imitates = match imitates {
            Some(i) => {
                Some(normalise_domain(&i).ok_or_else(|| format!("`{i}` is not a domain name"))?)
            }
            None => None,
        };
        if label == SHORTENER {
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
        let named_shortener = out.labels.iter().any(|l| l == SHORTENER);
        let fake = out.labels.iter().any(|l| l == FAKE_SHORTENER);
        if named_shortener || benign {
            return out;
        }
        if let Some(reg) = registrable {
            if let Some(real) = self.lookalike_of(&reg) {
                if fake {
                    // Listed without an original: say which one it resembles.
                    out.imitates.get_or_insert(real);
                } else {
                    out.labels.push(LOOKALIKE_SHORTENER.to_string());
                    out.imitates = Some(real);
                }
            }
        }
        out
    }

    /// The real shortener `registrable` imitates, if it resembles one closely: the same
    /// skeleton (confusable letters folded, doubled letters collapsed), or within a small
    /// edit distance for longer names.
    fn lookalike_of(&self, registrable: &str) -> Option<String> {
        if self.shorteners.iter().any(|s| s.domain == registrable) {
            return None;
        }
        let unicode = idna::domain_to_unicode(registrable).0;
        let first = unicode.split('.').next().unwrap_or_default();
        let candidates = [skeleton(first), skeleton(&compact(&unicode))];
        let mut best: Option<(usize, &RealShortener)> = None;
        for real in &self.shorteners {
            let allowed = match real.key.chars().count() {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            };
            for cand in &candidates {
                // A short key is compared with the whole name only, not its first label
                // (`tco.example` is not `t.co`).
                if allowed == 0 && cand == &candidates[0] && candidates[0] != candidates[1] {
                    continue;
                }
                let d = edit_distance(&real.key, cand);
                if d <= allowed && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, real));
                }
            }
        }
        best.map(|(_, real)| real.domain.clone())
    }
}

fn check_label(label: &str) -> Result<String, String> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(label.to_string())
    } else {
        Err(format!(
            "label `{label}` must be lowercase letters, digits and dashes"
        ))
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

fn normalise_domain(s: &str) -> Option<String> {
    let s = refang(s);
    let s = s.trim().trim_end_matches('.');
    if s.is_empty() || s.contains(['/', ':', ' ', '@']) {
        return None;
    }
    let ascii = idna::domain_to_ascii(s).ok()?;
    (!ascii.is_empty() && ascii.contains('.')).then_some(ascii)
}

/// Domain-hack suffixes, where the suffix is part of the brand (`bit.ly` is "bitly").
const HACK_SUFFIXES: &[&str] = &[
    "ly", "gd", "gy", "cc", "co", "at", "gl", "me", "id", "in", "us", "io", "de", "im", "mp",
];

/// The name people read in a shortener's domain: `bitly.com` -> `bitly`, `bit.ly` -> `bitly`.
fn brand(domain: &str) -> String {
    let (first, suffix) = domain.split_once('.').unwrap_or((domain, ""));
    if HACK_SUFFIXES.contains(&suffix) && first.len() < 5 {
        compact(domain)
    } else {
        first.to_string()
    }
}

fn compact(domain: &str) -> String {
    domain.chars().filter(|c| *c != '.' && *c != '-').collect()
}

/// Folds what a reader would not tell apart: look-alike Unicode letters to ASCII, `1 i I |`
/// to `l`, `0` to `o`, `rn` to `m`, `vv` to `w`; then collapses doubled letters.
pub fn skeleton(s: &str) -> String {
    let mut folded = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            'а' | 'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'α' | 'ɑ' => 'a',
            'е' | 'é' | 'è' | 'ê' | 'ë' | 'ε' => 'e',
            'о' | 'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ο' | 'σ' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'с' | 'ç' | 'ϲ' => 'c',
            'у' | 'ý' | 'ÿ' | 'γ' => 'y',
            'х' | 'χ' => 'x',
            'і' | 'í' | 'ì' | 'î' | 'ï' | 'ι' | 'ӏ' | 'ł' | '1' | 'i' | 'I' | '|' | '!' | 'l' => {
                'l'
            }
            'ј' => 'j',
            'ѕ' => 's',
            'һ' => 'h',
            'ԁ' => 'd',
            'ɡ' => 'g',
            'ո' | 'ñ' => 'n',
            'ν' => 'v',
            'κ' => 'k',
            'τ' | 'т' => 't',
            'υ' | 'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ԝ' | 'ω' => 'w',
            'м' => 'm',
            c => c.to_ascii_lowercase(),
        };
        folded.push(c);
    }
    let folded = folded.replace("rn", "m").replace("vv", "w");
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        if out.chars().last() != Some(c) {
            out.push(c);
        }
    }
    out
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > 2 {
        return n.abs_diff(m);
    }
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=m {
        d[0][j] = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m]
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
mod tests {
    use super::*;

    fn builtin() -> Labels {
        Labels::load(&[] as &[&Path]).unwrap()
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
            assert!(got.labels.contains(&label.to_string()), "{host}: {got:?}");
            if let Some(i) = imitates {
                assert_eq!(got.imitates.as_deref(), Some(i), "{host}");
            }
            assert!(
                !got.labels.contains(&LOOKALIKE_SHORTENER.to_string()),
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

    #[test]
    fn real_shorteners_are_not_lookalikes() {
        let l = builtin();
        for host in [
            "bit.ly",
            "bitly.com",
            "tinyurl.com",
            "t.co",
            "goo.gl",
            "ow.ly",
            "is.gd",
            "buff.ly",
            "cutt.ly",
            "rb.gy",
            "tiny.cc",
            "urlgo.in",
            "shorturl.at",
            "rebrand.ly",
            "www.bitly.com",
        ] {
            let got = l.classify(host);
            assert_eq!(got.labels, vec![SHORTENER.to_string()], "{host}");
            assert_eq!(got.imitates, None, "{host}");
        }
        for host in [
            "github.com",
            "google.com",
            "docker.com",
            "hub.docker.com",
            "example.com",
            "bitbucket.org",
            "rebrand.com",
            "youtube.com",
            "twitter.com",
            "tco.example",
            "titly.dev.example",
        ] {
            assert!(
                l.classify(host).labels.is_empty(),
                "{host}: {:?}",
                l.classify(host)
            );
        }
    }

    #[test]
    fn unlisted_lookalikes_are_caught() {
        let l = builtin();
        for (host, imitates) in [
            ("bitlly.com", "bit.ly"),
            ("b1tly.com", "bit.ly"),
            ("bltly.net", "bit.ly"),
            ("bitIy.com", "bit.ly"),
            ("btily.com", "bit.ly"),
            ("tinyurI.com", "tinyurl.com"),
            ("tinnyurl.com", "tinyurl.com"),
            ("tlnyur1.com", "tinyurl.com"),
            ("0w.ly", "ow.ly"),
            ("ovv.ly", "ow.ly"),
            ("cuttly.com", "cutt.ly"),
            ("urllgo.com", "urlgo.in"),
        ] {
            let got = l.classify(host);
            assert_eq!(got.labels, vec![LOOKALIKE_SHORTENER.to_string()], "{host}");
            assert_eq!(got.imitates.as_deref(), Some(imitates), "{host}");
        }
    }

    #[test]
    fn idn_homographs() {
        let l = builtin();
        // "bіtly.com" with a Cyrillic і, as a URL would carry it: punycode.
        let puny = idna::domain_to_ascii("bіtly.com").unwrap();
        assert!(puny.starts_with("xn--"));
        let got = l.classify(&puny);
        assert_eq!(got.labels, vec![LOOKALIKE_SHORTENER.to_string()]);
        assert_eq!(got.imitates.as_deref(), Some("bit.ly"));
        let got = l.classify(&idna::domain_to_ascii("tіnyurl.com").unwrap());
        assert_eq!(got.imitates.as_deref(), Some("tinyurl.com"));
    }

    #[test]
    fn rn_and_vv_fold() {
        assert_eq!(skeleton("rnicrosoft"), skeleton("microsoft"));
        assert_eq!(skeleton("vvww"), "w");
        assert_eq!(skeleton("b1tl1y"), skeleton("bitly"));
    }

    #[test]
    fn extra_lists_text_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("more.txt");
        std::fs::write(&txt, "# mine\n[payload-host]\nnew-cdn[.]example\nsingle.example phishing\nfake.example fake-shortener bit.ly\n").unwrap();
        let tml = dir.path().join("more.toml");
        std::fs::write(
            &tml,
            "[[indicator]]\nlabel = \"c2\"\ndomains = [\"c2[.]example\", \"other.example\"]\n",
        )
        .unwrap();
        let l = Labels::load(&[&txt, &tml]).unwrap();
        assert_eq!(l.classify("a.new-cdn.example").labels, vec!["payload-host"]);
        assert_eq!(l.classify("single.example").labels, vec!["phishing"]);
        let f = l.classify("fake.example");
        assert_eq!(
            (f.labels, f.imitates.as_deref()),
            (vec!["fake-shortener".to_string()], Some("bit.ly"))
        );
        assert_eq!(l.classify("c2.example").labels, vec!["c2"]);
        // Built-ins are still there.
        assert_eq!(l.classify("gts794.com").labels, vec!["payload-host"]);
    }

    #[test]
    fn bad_lists_name_the_place() {
        let mut l = Labels::default();
        let e = l
            .add_text("x.txt", "\n\nnolabel.example\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt:3") && e.contains("no label"), "{e}");
        let e = l
            .add_text("x.txt", "[Bad Label]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt:1"), "{e}");
        let e = l
            .add_text("x.txt", "[c2]\nco.uk\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("public suffix"), "{e}");
        let e = l
            .add_toml("y.toml", "[[indicator]]\nlabel = \"c2\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("y.toml") && e.contains("domains"), "{e}");
        let e = Labels::load(&[Path::new("/nonexistent/list.txt")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels.extra_files"), "{e}");
    }
}
