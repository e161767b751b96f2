//! Lookalikes of real shorteners: a name that folds to the same skeleton (confusable letters,
//! doubled letters) or sits within a small edit distance of one.

use super::Labels;

/// A real shortener, with the keys its lookalikes are compared on.
#[derive(Debug, Clone)]
pub(super) struct RealShortener {
    pub(super) domain: String,
    pub(super) key: String,
}

impl Labels {
    /// The real shortener `registrable` imitates, if it resembles one closely: the same
    /// skeleton (confusable letters folded, doubled letters collapsed), or within a small
    /// edit distance for longer names.
    pub(super) fn lookalike_of(&self, registrable: &str) -> Option<String> {
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

/// Domain-hack suffixes, where the suffix is part of the brand (`bit.ly` is "bitly").
const HACK_SUFFIXES: &[&str] = &[
    "ly", "gd", "gy", "cc", "co", "at", "gl", "me", "id", "in", "us", "io", "de", "im", "mp",
];

/// The name people read in a shortener's domain: `bitly.com` -> `bitly`, `bit.ly` -> `bitly`.
pub(super) fn brand(domain: &str) -> String {
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
        if !out.ends_with(c) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LOOKALIKE_SHORTENER, SHORTENER};

    use crate::labels::tests::builtin;

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
}
