//! The list files `labels.extra_files` names: plain text (`[label]` sections, or a label after
//! each domain) and TOML (`[[indicator]]` groups).

use std::path::Path;

use serde::Deserialize;

use super::{check_label, LabelError, Labels, BUILTIN};

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
