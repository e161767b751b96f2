//! What a scan reads: Docker Hub repository objects (JSONL, or API pages with `results`) or
//! plain text, as [`Document`]s; bad lines are errors of their own.

use std::io::BufRead;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
}

/// One thing to scan: a repository's text fields, or a plain-text document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `namespace/name`, or the document's own name for plain text.
    pub repository: String,
    /// The publishing user (empty for plain text).
    pub namespace: String,
    pub name: String,
    /// (field name, text) in the order they are searched.
    pub fields: Vec<(String, String)>,
    /// When Docker Hub says the repository was last updated, as it says it.
    pub last_updated: Option<String>,
}

impl Document {
    /// A repository from a Docker Hub API object: `namespace` (or `user`) and `name`, or
    /// `repo_name` = `namespace/name` as search results have it; the text of `description`
    /// and `full_description`; other fields ignored.
    pub fn from_hub(v: &Value) -> Result<Document, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let (namespace, name) = match (text("namespace").or_else(|| text("user")), text("name")) {
            (Some(ns), Some(name)) => (ns, name),
            _ => match text("repo_name").as_deref().and_then(|r| r.split_once('/')) {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => return Err("no `namespace` and `name` (nor `repo_name`)".into()),
            },
        };
        if namespace.is_empty() || name.is_empty() {
            return Err("empty `namespace` or `name`".into());
        }
        let fields = ["description", "full_description"]
            .into_iter()
            .filter_map(|k| text(k).map(|t| (k.to_string(), t)))
            .collect();
        Ok(Document {
            repository: format!("{namespace}/{name}"),
            namespace,
            name,
            fields,
            last_updated: text("last_updated"),
        })
    }

    /// Plain text named `name` (searched as the field `text`).
    pub fn text(name: &str, text: String) -> Document {
        Document {
            repository: name.to_string(),
            namespace: String::new(),
            name: name.to_string(),
            fields: vec![("text".to_string(), text)],
            last_updated: None,
        }
    }

    /// A digest of the searched text: a stored scan of the same repository with the same
    /// digest need not run again.
    pub(super) fn digest(&self) -> String {
        let mut h = Fnv::default();
        for (k, v) in &self.fields {
            h.write(k.as_bytes());
            h.write(&[0]);
            h.write(v.as_bytes());
            h.write(&[0]);
        }
        format!("{:016x}", h.0)
    }
}

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`), which stored
/// digests and campaign ids need.
pub(crate) struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Reads scan input: Docker Hub repository JSONL (one object a line, or an API page with a
/// `results` array) when the first non-blank line starts with `{`, otherwise the whole input
/// as one plain-text document named `source`. Bad lines are errors of their own; the rest
/// goes on.
pub fn documents<R>(
    mut reader: R,
    source: &str,
) -> Box<dyn Iterator<Item = Result<Document, ScanError>> + Send>
where
    R: BufRead + Send + 'static,
{
    let mut first = String::new();
    let mut line_no = 0;
    loop {
        first.clear();
        match reader.read_line(&mut first) {
            Ok(0) => return Box::new(std::iter::empty()),
            Ok(_) => line_no += 1,
            Err(e) => return Box::new(std::iter::once(Err(e.into()))),
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    if !first.trim_start().starts_with('{') {
        let mut text = first;
        if let Err(e) = reader.read_to_string(&mut text) {
            return Box::new(std::iter::once(Err(e.into())));
        }
        return Box::new(std::iter::once(Ok(Document::text(source, text))));
    }
    let first_docs = hub_line(&first, line_no);
    let rest = reader
        .lines()
        .enumerate()
        .filter(|(_, l)| !matches!(l, Ok(l) if l.trim().is_empty()))
        .flat_map(move |(i, line)| match line {
            Ok(line) => hub_line(&line, line_no + 1 + i),
            Err(e) => vec![Err(e.into())],
        });
    Box::new(first_docs.into_iter().chain(rest))
}

/// The repositories on one JSONL line.
fn hub_line(line: &str, line_no: usize) -> Vec<Result<Document, ScanError>> {
    let err = |message: String| ScanError::Line {
        line: line_no,
        message,
    };
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return vec![Err(err(format!("not JSON ({e})")))],
    };
    match v.get("results").and_then(Value::as_array) {
        Some(page) => page
            .iter()
            .map(|r| Document::from_hub(r).map_err(err))
            .collect(),
        None => vec![Document::from_hub(&v).map_err(err)],
    }
}
