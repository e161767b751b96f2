//! The list files `labels.extra_files` names: plain text (`[label]` sections, a label after
//! each domain, or one host a line labelled by the file's name), TOML (`[[indicator]]`
//! groups) and MISP warninglists (JSON: `name`, `type`, `list`).

use std::path::Path;

use serde::Deserialize;

use super::{check_label, LabelError, Labels, BUILTIN};

impl Labels {
    /// The built-in lists plus `extra_files`: TOML when the name ends `.toml`, a MISP
    /// warninglist when it ends `.json`, plain text otherwise.
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
            // A file named for a label (`payload-host.txt`) gives it to lines that name none.
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| check_label(s).ok());
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => labels.add_toml(&origin, &text)?,
                Some("json") => labels.add_warninglist(&origin, &text, stem)?,
                _ => labels.add_labelled_text(&origin, &text, stem)?,
            }
        }
        Ok(labels)
    }

    /// Plain-text list: `[label]` / `[label imitated]` sections, one domain a line.
    pub fn add_text(&mut self, origin: &str, text: &str) -> Result<(), LabelError> {
        self.add_labelled_text(origin, text, None)
    }

    /// A plain-text list whose lines without a section or label of their own get `label`.
    fn add_labelled_text(
        &mut self,
        origin: &str,
        text: &str,
        label: Option<String>,
    ) -> Result<(), LabelError> {
        let mut section: Option<(String, Option<String>)> = label.map(|l| (l, None));
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
                section = Some((
                    check_label(label).map_err(|e| err(e.to_string()))?,
                    imitates,
                ));
                continue;
            }
            let mut words = line.split_whitespace();
            let domain = words.next().unwrap_or_default();
            let (label, imitates) = match words.next() {
                Some(label) => (
                    check_label(label).map_err(|e| err(e.to_string()))?,
                    words.next().map(str::to_string),
                ),
                None => section.clone().ok_or_else(|| {
                    err(format!(
                        "`{domain}` has no label (add `[label]` above it or a label after it, or name the file for its label, such as payload-host.txt)"
                    ))
                })?,
            };
            self.add(domain, label, imitates)
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// A MISP warninglist: `list` entries of type `hostname` or `string` (names, or URLs whose
    /// host is taken), labelled `label` (the file's name) or else by the list's `name`
    /// (`List of known URL shorteners` gives `list-of-known-url-shorteners`).
    pub fn add_warninglist(
        &mut self,
        origin: &str,
        text: &str,
        label: Option<String>,
    ) -> Result<(), LabelError> {
        #[derive(Deserialize)]
        struct Warninglist {
            name: String,
            #[serde(rename = "type")]
            kind: String,
            list: Vec<String>,
        }
        let at = |line: usize, message: String| LabelError::Line {
            origin: origin.to_string(),
            line,
            message,
        };
        let w: Warninglist = serde_json::from_str(text)
            .map_err(|e| at(e.line(), format!("not a MISP warninglist: {e}")))?;
        if !matches!(w.kind.as_str(), "hostname" | "string") {
            return Err(LabelError::File {
                origin: origin.to_string(),
                message: format!(
                    "warninglist type `{}` is not read: hoptrace labels hosts (hostname, string)",
                    w.kind
                ),
            });
        }
        let slug: String = w
            .name
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let label = match label.filter(|l| l != "list") {
            Some(l) => l,
            None => check_label(&slug.chars().take(64).collect::<String>())
                .map_err(|e| at(1, e.to_string()))?,
        };
        for entry in &w.list {
            let host = match entry.split_once("://") {
                Some((_, rest)) => rest.split(['/', '?', '#', ':']).next().unwrap_or(""),
                None => entry.as_str(),
            };
            let host = host.trim().trim_start_matches("*.").trim_start_matches('.');
            // The line is looked for only when the entry is refused: a search of the text
            // per entry made loading quadratic (a list of 60,000 names took 75 s).
            self.add(host, label.clone(), None)
                .map_err(|e| at(line_of(text, entry), e.to_string()))?;
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
            let label = check_label(&group.label).map_err(|e| err(e.to_string()))?;
            for d in &group.domains {
                self.add(d, label.clone(), group.imitates.clone())
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// The line of a warninglist's text where `entry` is written (1 when it is written with
/// escapes and so not found as it reads).
fn line_of(text: &str, entry: &str) -> usize {
    text.find(&format!("\"{entry}\""))
        .map_or(1, |i| text[..i].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (
                vec![crate::labels::Label::from("fake-shortener")],
                Some("bit.ly")
            )
        );
        assert_eq!(l.classify("c2.example").labels, vec!["c2"]);
        // Built-ins are still there.
        assert_eq!(l.classify("gts794.com").labels, vec!["payload-host"]);
    }

    #[test]
    fn warninglists_and_plain_lists() {
        let dir = tempfile::tempdir().unwrap();
        let wl = dir.path().join("list.json");
        std::fs::write(
            &wl,
            r#"{"name": "List of known URL Shorteners", "type": "string", "version": 3,
               "description": "x", "matching_attributes": ["hostname"],
               "list": ["new-short.example", "https://other-short.example/path", ".dot.example"]}"#,
        )
        .unwrap();
        let named = dir.path().join("c2.json");
        std::fs::write(
            &named,
            r#"{"name": "Whatever", "type": "hostname", "list": ["beacon.example"]}"#,
        )
        .unwrap();
        let plain = dir.path().join("payload-host.txt");
        std::fs::write(
            &plain,
            "# from a colleague
cdn-7[.]example

files.example  # seen 2026-11
",
        )
        .unwrap();
        let l = Labels::load(&[&wl, &named, &plain]).unwrap();
        for host in ["new-short.example", "other-short.example", "dot.example"] {
            assert_eq!(
                l.classify(host).labels,
                vec!["list-of-known-url-shorteners"],
                "{host}"
            );
        }
        assert_eq!(l.classify("beacon.example").labels, vec!["c2"]);
        assert_eq!(l.classify("cdn-7.example").labels, vec!["payload-host"]);
        assert_eq!(l.classify("files.example").labels, vec!["payload-host"]);

        // A malformed warninglist: its name and line.
        let bad = dir.path().join("broken.json");
        std::fs::write(
            &bad,
            "{\"name\": \"x\",\n \"type\": \"hostname\",\n \"list\": [\"a.example\",]\n}",
        )
        .unwrap();
        let e = Labels::load(&[&bad]).unwrap_err().to_string();
        assert!(e.contains("broken.json:3:"), "{e}");
        let cidr = dir.path().join("nets.json");
        std::fs::write(
            &cidr,
            r#"{"name": "n", "type": "cidr", "list": ["10.0.0.0/8"]}"#,
        )
        .unwrap();
        let e = Labels::load(&[&cidr]).unwrap_err().to_string();
        assert!(e.contains("nets.json") && e.contains("cidr"), "{e}");
        let junk = dir.path().join("shorteners.json");
        std::fs::write(
            &junk,
            "{\"name\": \"s\", \"type\": \"hostname\",\n\"list\": [\"ok.example\",\n\"com\"]}",
        )
        .unwrap();
        let e = Labels::load(&[&junk]).unwrap_err().to_string();
        assert!(
            e.contains("shorteners.json:3:") && e.contains("`com`"),
            "{e}"
        );
        // A plain list with no label anywhere: said how to give it one.
        let unnamed = dir.path().join("My List.txt");
        std::fs::write(
            &unnamed,
            "host.example
",
        )
        .unwrap();
        let e = Labels::load(&[&unnamed]).unwrap_err().to_string();
        assert!(
            e.contains("My List.txt:1:") && e.contains("name the file"),
            "{e}"
        );
    }

    /// MISP publishes warninglists of a million names, so loading one must be linear: with a
    /// search of the text per entry (quadratic) this list took longer than any test may run.
    #[test]
    fn a_warninglist_of_200k_names_loads() {
        const N: usize = 200_000;
        let mut text = String::with_capacity(N * 24);
        text.push_str("{\"name\": \"Big\", \"type\": \"hostname\", \"list\": [\n");
        for i in 0..N {
            let sep = if i + 1 == N { "\n" } else { ",\n" };
            text.push_str(&format!("\"h{i}.big-list.example\"{sep}"));
        }
        text.push_str("]}\n");
        let mut l = Labels::default();
        l.add_warninglist("big.json", &text, Some("c2".into()))
            .unwrap();
        for i in [0, N / 2, N - 1] {
            let host = format!("h{i}.big-list.example");
            assert_eq!(l.classify(&host).labels, vec!["c2"], "{host}");
        }
        assert!(l.classify("big-list.example").labels.is_empty());
        // A refused entry at the end still names its own line.
        let bad = text.replace(
            &format!("\"h{}.big-list.example\"\n", N - 1),
            "\"example\"\n",
        );
        let e = l
            .add_warninglist("big.json", &bad, Some("c2".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("big.json:{}:", N + 1)), "{e}");
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
