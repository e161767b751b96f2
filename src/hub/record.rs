//! What the crawl prints: one repository a record, in the shape `scan` reads, built from the
//! Hub's list, repository and tags answers. Every field from the Hub is bounded; names are
//! held to Docker Hub's own syntax, so none can steer a URL or a terminal.

use serde::Serialize;
use serde_json::Value;

/// Characters kept of `full_description` (the Hub caps it at 25 000).
pub const MAX_FULL_DESCRIPTION: usize = 100_000;
/// Characters kept of `description` (the Hub caps it at 100).
pub const MAX_DESCRIPTION: usize = 1_000;
/// Characters kept of a date.
const MAX_DATE: usize = 64;

/// One repository, as `hoptrace hub` prints it (one JSON object a line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubRecord {
    pub namespace: String,
    pub name: String,
    pub description: String,
    pub full_description: String,
    pub date_registered: Option<String>,
    pub last_updated: Option<String>,
    /// Tags the Hub counts for the repository.
    pub tag_count: u64,
    /// No tag, or no tag with an image: a repository that is only its description.
    pub imageless: bool,
    pub pull_count: u64,
    pub star_count: u64,
}

/// A repository listed on a page, before its details are asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub namespace: String,
    pub name: String,
    pub last_updated: Option<String>,
}

pub use crate::config::hub_name as valid_name;

/// What is wrong with an answer of the Hub's (the page it came from is named by the caller).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("no `results` array")]
    NoResults,
    #[error("the tags page has no `results` array")]
    NoTagResults,
    #[error("`next` is not a string")]
    NextNotString,
    /// A listed result that is not an object.
    #[error("not a JSON object")]
    NotObject,
    #[error("no `namespace` and `name` (nor `repo_name`)")]
    NoName,
    /// A name outside the Hub's syntax, held escaped and cut to 80 characters a part.
    #[error("`{namespace}/{name}` is not a Docker Hub repository name")]
    BadName { namespace: String, name: String },
    /// The `index`th result of a page (from 0) is malformed.
    #[error("result {index}: {kind}")]
    Result {
        index: usize,
        kind: Box<RecordError>,
    },
    #[error("the repository is not a JSON object")]
    RepositoryNotObject,
}

/// `s` with control characters other than newline and tab removed, at most `max` chars.
fn bounded(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(max)
        .collect()
}

fn text(v: &Value, key: &str, max: usize) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(|s| bounded(s, max))
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A page of a listing: its repositories and its `next` link. A page that is not a JSON
/// object with a `results` array is malformed; so is a result without a usable name (a
/// name outside the Hub's syntax is refused, not cleaned: it would name another
/// repository).
pub fn page(
    v: &Value,
    namespace: Option<&str>,
) -> Result<(Vec<Listed>, Option<String>), RecordError> {
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or(RecordError::NoResults)?;
    let next = next_of(v)?;
    let listed = results
        .iter()
        .enumerate()
        .map(|(index, r)| {
            listed(r, namespace).map_err(|kind| RecordError::Result {
                index,
                kind: Box::new(kind),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((listed, next))
}

/// A page's `next` link: none when absent, null or empty.
fn next_of(v: &Value) -> Result<Option<String>, RecordError> {
    match v.get("next") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RecordError::NextNotString),
    }
}

fn listed(r: &Value, namespace: Option<&str>) -> Result<Listed, RecordError> {
    if !r.is_object() {
        return Err(RecordError::NotObject);
    }
    let field = |k: &str| r.get(k).and_then(Value::as_str);
    let (ns, name) = match (field("namespace").or(namespace), field("name")) {
        (Some(ns), Some(name)) if !name.contains('/') => (ns, name),
        _ => field("repo_name")
            .and_then(|r| r.split_once('/'))
            .ok_or(RecordError::NoName)?,
    };
    if !valid_name(ns) || !valid_name(name) {
        return Err(RecordError::BadName {
            namespace: ns.escape_debug().take(80).collect(),
            name: name.escape_debug().take(80).collect(),
        });
    }
    Ok(Listed {
        namespace: ns.to_string(),
        name: name.to_string(),
        last_updated: text(r, "last_updated", MAX_DATE),
    })
}

/// What one page of a repository's tags says.
#[derive(Debug, Clone, PartialEq)]
pub struct TagsPage {
    /// Tags the Hub counts for the repository (`count`; the page's own when absent).
    pub count: u64,
    /// Tags on this page.
    pub listed: u64,
    /// One of them has an image.
    pub any_image: bool,
    pub next: Option<String>,
}

/// A page of tags; malformed without a `results` array.
pub fn tags_page(v: &Value) -> Result<TagsPage, RecordError> {
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or(RecordError::NoTagResults)?;
    let has_image = |t: &Value| {
        t.get("images")
            .and_then(Value::as_array)
            .is_some_and(|i| !i.is_empty())
    };
    Ok(TagsPage {
        count: v
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(results.len() as u64),
        listed: results.len() as u64,
        any_image: results.iter().any(has_image),
        next: next_of(v)?,
    })
}

/// The record of `listed` from its repository answer, the Hub's count of its tags and
/// whether it is imageless (judged by the caller over the tag pages).
pub fn record(
    listed: &Listed,
    repo: &Value,
    tag_count: u64,
    imageless: bool,
) -> Result<HubRecord, RecordError> {
    if !repo.is_object() {
        return Err(RecordError::RepositoryNotObject);
    }
    Ok(HubRecord {
        namespace: listed.namespace.clone(),
        name: listed.name.clone(),
        description: text(repo, "description", MAX_DESCRIPTION).unwrap_or_default(),
        full_description: text(repo, "full_description", MAX_FULL_DESCRIPTION).unwrap_or_default(),
        date_registered: text(repo, "date_registered", MAX_DATE),
        last_updated: text(repo, "last_updated", MAX_DATE).or(listed.last_updated.clone()),
        tag_count,
        imageless,
        pull_count: count(repo, "pull_count"),
        star_count: count(repo, "star_count"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_outside_the_hubs_syntax_make_the_page_malformed() {
        for bad in ["a\u{1b}[31m", "../x", "a/b", "", "A"] {
            let v = json!({"results": [{"namespace": "ns", "name": bad}]});
            assert!(page(&v, None).is_err(), "{bad:?}");
        }
        let v = json!({"results": [{"namespace": "ns", "name": "ok-1.x_y"}], "next": null});
        assert_eq!(page(&v, None).unwrap().0[0].name, "ok-1.x_y");
    }

    /// Each malformed shape is its own kind, named as before.
    #[test]
    fn malformed_answers_are_kinds_with_their_messages() {
        let v = json!({"results": [{}, {"namespace": "ns", "name": "A\u{1b}"}]});
        let err = page(&v, None).unwrap_err();
        assert!(
            matches!(&err, RecordError::Result { index: 0, kind } if matches!(**kind, RecordError::NoName)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "result 0: no `namespace` and `name` (nor `repo_name`)"
        );
        let v = json!({"results": [{"namespace": "ns", "name": "A\u{1b}"}]});
        assert_eq!(
            page(&v, None).unwrap_err().to_string(),
            "result 0: `ns/A\\u{1b}` is not a Docker Hub repository name"
        );
        let err = tags_page(&json!({"results": [], "next": 1})).unwrap_err();
        assert!(matches!(err, RecordError::NextNotString), "{err:?}");
        assert_eq!(err.to_string(), "`next` is not a string");
        let err = tags_page(&json!([])).unwrap_err();
        assert_eq!(err.to_string(), "the tags page has no `results` array");
    }

    #[test]
    fn long_and_control_laden_text_is_bounded() {
        let listed = Listed {
            namespace: "ns".into(),
            name: "n".into(),
            last_updated: None,
        };
        let huge = format!("\u{1b}]0;x\u{7}{}", "a".repeat(MAX_FULL_DESCRIPTION * 3));
        let r = record(&listed, &json!({"full_description": huge}), 0, true).unwrap();
        assert_eq!(r.full_description.chars().count(), MAX_FULL_DESCRIPTION);
        assert!(!r.full_description.chars().any(char::is_control));
    }
}
