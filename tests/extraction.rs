//! Links written without a scheme (`gohhs.com/plain`, bare `failhostingpolp.ru`): how many
//! of those in campaign-style descriptions are found (recall), and how many of the plain
//! `name.tld` words found in ordinary READMEs are links (precision).
//!
//! Recall: tests/fixtures/schemeless/campaigns.jsonl, descriptions written the ways the threat
//! model's campaigns write them, each with the scheme-less links it holds. Precision: the
//! README.md of every crate in Cargo.lock, taken from Cargo's registry sources at test time
//! (the build downloaded them); each scheme-less find is a link only when its host is listed in
//! tests/fixtures/schemeless/readme-links.txt (judged by hand), else a false positive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hoptrace::extract::{find, Form, Link};

/// The scheme-less finds of `text`: as written, for each link written without a scheme.
fn schemeless(links: &[Link]) -> Vec<String> {
    let mut out = Vec::new();
    for l in links {
        for p in &l.found_in {
            let lower = p.written.to_ascii_lowercase();
            let plain = p.form != Form::Defanged
                && !["http://", "https://", "http%3a", "https%3a", "www."]
                    .iter()
                    .any(|s| lower.starts_with(s));
            if plain {
                out.push(p.written.clone());
            }
        }
    }
    out
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schemeless")
        .join(name)
}

#[test]
fn schemeless_links_in_campaign_descriptions_are_found() {
    let text = std::fs::read_to_string(fixture("campaigns.jsonl")).unwrap();
    let (mut want, mut found, mut extra) = (0, 0, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        let got = schemeless(&find(&[("description", d["text"].as_str().unwrap())]));
        let expected: Vec<&str> = d["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        want += expected.len();
        found += expected
            .iter()
            .filter(|e| got.iter().any(|g| g == *e))
            .count();
        for e in expected.iter().filter(|e| !got.iter().any(|g| g == *e)) {
            eprintln!("missed: {e}");
        }
        for g in got {
            if !expected.contains(&g.as_str()) {
                extra.push(g);
            }
        }
    }
    let recall = found as f64 / want as f64;
    eprintln!("recall on scheme-less links: {found}/{want} = {recall:.3}; not expected: {extra:?}");
    assert!(want >= 60, "the corpus holds {want} links");
    assert!(recall >= 0.95, "recall {recall:.3}");
    assert!(extra.is_empty(), "found what is no link: {extra:?}");
}

/// The README.md of every crate Cargo.lock names, from the registry's unpacked sources.
fn readmes() -> Vec<(String, String)> {
    let lock =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
            .unwrap();
    let lock: toml::Table = toml::from_str(&lock).unwrap();
    let crates: BTreeSet<String> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}-{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let mut out = BTreeMap::new();
    for registry in std::fs::read_dir(home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for krate in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = krate.file_name().to_string_lossy().into_owned();
            if !crates.contains(&name) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(krate.path().join("README.md")) {
                out.insert(name, text);
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn few_plain_words_in_readmes_are_taken_for_links() {
    let readmes = readmes();
    if readmes.len() < 100 {
        eprintln!(
            "only {} READMEs in the registry sources: not measured",
            readmes.len()
        );
        return;
    }
    let labels = std::fs::read_to_string(fixture("readme-links.txt")).unwrap();
    let links: BTreeSet<&str> = labels
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let (mut finds, mut good, mut bad) = (0usize, 0usize, BTreeMap::<String, usize>::new());
    for (_, text) in &readmes {
        for written in schemeless(&find(&[("readme", text)])) {
            finds += 1;
            let host = written.split(['/', '?', '#', ':']).next().unwrap_or("");
            if links.contains(host) {
                good += 1;
            } else {
                *bad.entry(written).or_default() += 1;
            }
        }
    }
    let precision = good as f64 / finds.max(1) as f64;
    eprintln!(
        "{} READMEs: {finds} scheme-less finds, {good} links: precision {precision:.3}; not links: {bad:?}",
        readmes.len()
    );
    assert!(precision >= 0.95, "precision {precision:.3}: {bad:?}");
}
