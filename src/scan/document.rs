//! What a scan reads: Docker Hub repository objects (JSONL, or API pages with `results`) or
//! plain text, as [`Document`]s; bad lines are errors of their own.

use std::io::{BufRead, Read};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a Docker Hub object is not a repository to scan.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not a JSON object")]
    NotObject,
    #[error("no `namespace` and `name` (nor `repo_name`)")]
    NoName,
    #[error("empty `namespace` or `name`")]
    EmptyName,
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
    /// When Docker Hub says the repository was created (what a campaign's timeline counts).
    pub date_registered: Option<String>,
}

impl Document {
    /// A repository from a Docker Hub API object: `namespace` (or `user`) and `name`, or
    /// `repo_name` = `namespace/name` as search results have it; the text of `description`
    /// and `full_description`; other fields ignored.
    pub fn from_hub(v: &Value) -> Result<Document, DocumentError> {
        let obj = v.as_object().ok_or(DocumentError::NotObject)?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let (namespace, name) = match (text("namespace").or_else(|| text("user")), text("name")) {
            (Some(ns), Some(name)) => (ns, name),
            _ => match text("repo_name").as_deref().and_then(|r| r.split_once('/')) {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => return Err(DocumentError::NoName),
            },
        };
        if namespace.is_empty() || name.is_empty() {
            return Err(DocumentError::EmptyName);
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
            date_registered: text("date_registered"),
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
            date_registered: None,
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

/// Bytes a line of JSONL input (a repository, or an API page of them) or a plain-text
/// document may have: Docker Hub caps a full description at 25,000 characters, so a page of
/// 100 fits many times over. A longer line is an error of its own, read past without being
/// held; longer text is refused.
pub const MAX_LINE: usize = 4 << 20;

/// Hands `reader`'s buffered bytes to `step` until it says stop or the input ends (`step`
/// answers how many bytes it used and whether to go on); `Ok(false)` at the end of input.
/// Never holds more than the reader's buffer.
fn each_chunk(
    reader: &mut impl BufRead,
    mut step: impl FnMut(&[u8]) -> (usize, bool),
) -> std::io::Result<bool> {
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(false);
        }
        let (used, more) = step(chunk);
        reader.consume(used);
        if !more {
            return Ok(true);
        }
    }
}

/// One line of `reader` (its newline dropped) into `buf`, held up to `cap` bytes: `Ok(None)`
/// at the end, `Ok(Some(false))` for a line longer than `cap` (read to its end, not kept).
fn capped_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut fits) = (false, true);
    each_chunk(reader, |chunk| {
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if fits && buf.len() + part.len() <= cap {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        (done.unwrap_or(chunk.len()), done.is_none())
    })?;
    Ok(any.then_some(fits))
}

/// The lines of `reader` with more than white space on them, counted a buffer at a time: no
/// line is held, however long (a line past [`MAX_LINE`] is an error of its own when read).
pub fn lines_with_text(mut reader: impl BufRead) -> std::io::Result<u64> {
    let (mut count, mut text) = (0, false);
    each_chunk(&mut reader, |chunk| {
        for &b in chunk {
            if b == b'\n' {
                count += u64::from(text);
                text = false;
            } else {
                text |= !b.is_ascii_whitespace();
            }
        }
        (chunk.len(), true)
    })?;
    Ok(count + u64::from(text))
}

/// Reads scan input: Docker Hub repository JSONL (one object a line, or an API page with a
/// `results` array) when the first non-blank line starts with `{`, otherwise the whole input
/// as one plain-text document named `source`. Bad lines (and lines over [`MAX_LINE`]) are
/// errors of their own; the rest goes on.
pub fn documents<R>(
    mut reader: R,
    source: &str,
) -> Box<dyn Iterator<Item = Result<Document, ScanError>> + Send>
where
    R: BufRead + Send + 'static,
{
    let mut buf = Vec::new();
    let mut line_no = 0;
    let too_long = |line: usize| ScanError::Line {
        line,
        message: format!("longer than {MAX_LINE} bytes: skipped"),
    };
    let first = loop {
        match capped_line(&mut reader, &mut buf, MAX_LINE) {
            Ok(None) => return Box::new(std::iter::empty()),
            Ok(Some(fits)) => {
                line_no += 1;
                if !fits {
                    break Err(too_long(line_no));
                }
            }
            Err(e) => return Box::new(std::iter::once(Err(e.into()))),
        }
        let line = String::from_utf8_lossy(&buf);
        if !line.trim().is_empty() {
            break Ok(line.into_owned());
        }
    };
    let first_docs = match first {
        Ok(first) if !first.trim_start().starts_with('{') => {
            let mut text = first + "\n";
            let mut rest = (&mut reader).take((MAX_LINE - text.len().min(MAX_LINE)) as u64 + 1);
            let mut bytes = Vec::new();
            if let Err(e) = rest.read_to_end(&mut bytes) {
                return Box::new(std::iter::once(Err(e.into())));
            }
            text.push_str(&String::from_utf8_lossy(&bytes));
            if text.len() > MAX_LINE {
                return Box::new(std::iter::once(Err(ScanError::Line {
                    line: 1,
                    message: format!("a text document over {MAX_LINE} bytes: not scanned"),
                })));
            }
            return Box::new(std::iter::once(Ok(Document::text(source, text))));
        }
        Ok(first) => hub_line(&first, line_no),
        Err(e) => vec![Err(e)],
    };
    let rest = std::iter::from_fn(move || loop {
        return match capped_line(&mut reader, &mut buf, MAX_LINE) {
            Ok(None) => None,
            Ok(Some(fits)) => {
                line_no += 1;
                if !fits {
                    return Some(vec![Err(too_long(line_no))]);
                }
                let line = String::from_utf8_lossy(&buf);
                if line.trim().is_empty() {
                    continue;
                }
                Some(hub_line(&line, line_no))
            }
            Err(e) => Some(vec![Err(e.into())]),
        };
    })
    .flatten();
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
            .map(|r| Document::from_hub(r).map_err(|e| err(e.to_string())))
            .collect(),
        None => vec![Document::from_hub(&v).map_err(|e| err(e.to_string()))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each object `from_hub` refuses is its own kind, named as before.
    #[test]
    fn refused_objects_are_kinds_with_their_messages() {
        for (v, kind, text) in [
            (json!([]), "NotObject", "not a JSON object"),
            (
                json!({"name": "n"}),
                "NoName",
                "no `namespace` and `name` (nor `repo_name`)",
            ),
            (
                json!({"namespace": "", "name": "n"}),
                "EmptyName",
                "empty `namespace` or `name`",
            ),
        ] {
            let err = Document::from_hub(&v).unwrap_err();
            assert_eq!(format!("{err:?}"), kind);
            assert_eq!(err.to_string(), text);
        }
    }
}
