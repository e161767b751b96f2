//! Lookalikes of real shorteners: a name that folds to the same skeleton (confusable letters,
//! doubled letters) or sits within a small edit distance of one.

use std::collections::HashMap;

use super::Labels;

/// Answers of [`Labels::lookalike_of`] by registrable domain. A batch meets the same sites
/// again and again, and comparing a name with every real shortener on every hop is costly
/// (edit distances). Emptied whenever the lists change; bounded.
#[derive(Debug, Default)]
pub(super) struct Memo(std::sync::Mutex<HashMap<String, Option<String>>>);

/// Entries kept before the memo starts over (a few MB at most).
const MEMO_MAX: usize = 65_536;

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

impl Memo {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn clear(&mut self) {
        self.lock().clear();
    }
}

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
        if let Some(known) = self.memo.lock().get(registrable) {
            return known.clone();
        }
        let found = self.compare_with_shorteners(registrable);
        let mut memo = self.memo.lock();
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(registrable.to_string(), found.clone());
        found
    }

    fn compare_with_shorteners(&self, registrable: &str) -> Option<String> {
        if self.shorteners.iter().any(|s| s.domain == registrable) {
            return None;
        }
        let unicode = idna::domain_to_unicode(registrable).0;
        let first = unicode.split('.').next().unwrap_or_default();
        let candidates = [skeleton(first), skeleton(&compact(&unicode))].map(|c| {
            let n = c.chars().count();
            (c, n)
        });
        let mut best: Option<(usize, &RealShortener)> = None;
        for real in &self.shorteners {
            let allowed = match real.key.chars().count() {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            };
            let key_len = real.key.chars().count();
            for (cand, cand_len) in &candidates {
                // The distance is at least the difference in length.
                if key_len.abs_diff(*cand_len) > allowed {
                    continue;
                }
                // A short key is compared with the whole name only, not its first label
                // (`tco.example` is not `t.co`).
                if allowed == 0 && cand == &candidates[0].0 && candidates[0].0 != candidates[1].0 {
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

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), with three
/// rows rather than the whole table.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > 2 {
        return n.abs_diff(m);
    }
    // Rows i-2, i-1 and i of the table.
    let mut older: Vec<usize> = vec![0; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut row: Vec<usize> = vec![0; m + 1];
    for i in 1..=n {
        row[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(older[j - 2] + 1);
            }
        }
        std::mem::swap(&mut older, &mut prev);
        std::mem::swap(&mut prev, &mut row);
    }
    prev[m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{Builtin, Label};

    use crate::labels::tests::builtin;

    #[test]
    fn a_shortener_added_later_is_seen_by_names_compared_before() {
        let mut l = builtin();
        assert!(l.classify("shortenerlongname.com").labels.is_empty());
        l.add("shortenerlongnam.com", "shortener".to_string(), None)
            .unwrap();
        let got = l.classify("shortenerlongname.com");
        assert_eq!(got.labels, vec![Label::from(Builtin::LookalikeShortener)]);
        assert_eq!(got.imitates.as_deref(), Some("shortenerlongnam.com"));
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
            assert_eq!(got.labels, vec![Label::from(Builtin::Shortener)], "{host}");
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
            assert_eq!(
                got.labels,
                vec![Label::from(Builtin::LookalikeShortener)],
                "{host}"
            );
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
        assert_eq!(got.labels, vec![Label::from(Builtin::LookalikeShortener)]);
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
