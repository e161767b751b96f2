//! What a hop says beside its fields: its notes (`reason` on the wire, `; ` between them)
//! and the requests a page made that policy refused (`url: why` on the wire).

use serde::{Deserialize, Serialize};

/// A request a page made in the browser that policy refused; `url: why` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRequest {
    pub url: String,
    pub why: String,
}

impl std::fmt::Display for BlockedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.why)
    }
}

impl From<&str> for BlockedRequest {
    /// Splits at the first `: ` (a URL as sent carries no space); without one, all of it is
    /// the URL.
    fn from(s: &str) -> BlockedRequest {
        let (url, why) = s.split_once(": ").unwrap_or((s, ""));
        BlockedRequest {
            url: url.to_string(),
            why: why.to_string(),
        }
    }
}

impl Serialize for BlockedRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockedRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlockedRequest, D::Error> {
        String::deserialize(d).map(|s| BlockedRequest::from(s.as_str()))
    }
}

/// One thing a hop's `reason` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopNote {
    /// Policy refused the hop (`blocked: true`): why.
    Blocked(String),
    /// A known wrapper (by its name) decoded without contacting it.
    Decoded(String),
    /// The chain came back to the URL of hop `first`.
    Loop { first: usize },
    /// A file, recognised by (why), whose body was not fetched.
    Download(String),
    /// The response's head was over what is read.
    OversizedHead(String),
    /// Why the body was not read.
    Body(String),
    /// What a next-hop finder said (a browser unavailable, a script cut, no screenshot).
    Finder(FinderNote),
    /// Why the landing page has no icon.
    Favicon(String),
    /// A stored note read back that names none of the patterned kinds above.
    Text(String),
}

/// An error from the stage that made a note, shared by the copies of its note.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// What a next-hop finder says about a page it could not fully decide.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FinderNote {
    /// The page runs script, and no browser can run it (why none can).
    #[error("page runs script that may redirect; no browser available ({0})")]
    NoBrowser(#[source] Cause),
    /// The page's script still ran when its time was up.
    #[error("page script still running at the time limit; cut")]
    Cut,
    /// No browser page was made ready within `browser.launch_timeout_ms`.
    #[error("no browser page became ready within browser.launch_timeout_ms; cut")]
    NoPageInTime,
    /// The browser failed mid-visit with no time left to run the page again.
    #[error("browser failed during the visit ({0}); no time left to run the page again")]
    FailedLate(#[source] Cause),
    /// The landing page's screenshot was over the limit.
    #[error("screenshot of {bytes} bytes not kept (browser.max_screenshot_bytes {max})")]
    ScreenshotTooBig { bytes: usize, max: usize },
    /// The landing page's screenshot could not be taken.
    #[error("no screenshot: {0}")]
    NoScreenshot(#[source] Cause),
}

/// Notes are compared as the wire says them (a cause is an error, not a value).
impl PartialEq for FinderNote {
    fn eq(&self, other: &FinderNote) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for FinderNote {}

const DECODED: &str = " wrapper decoded without contacting it";
const LOOP: &str = "already visited at hop ";
const DOWNLOAD: (&str, &str) = ("download: ", "; body not fetched");

impl std::fmt::Display for HopNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HopNote::Decoded(wrapper) => write!(f, "{wrapper}{DECODED}"),
            HopNote::Loop { first } => write!(f, "{LOOP}{first}"),
            HopNote::Download(why) => write!(f, "{}{why}{}", DOWNLOAD.0, DOWNLOAD.1),
            HopNote::Finder(note) => write!(f, "{note}"),
            HopNote::Blocked(s)
            | HopNote::OversizedHead(s)
            | HopNote::Body(s)
            | HopNote::Favicon(s)
            | HopNote::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for HopNote {
    /// The note a stored text is: a patterned kind where the text has its form, else as
    /// read.
    fn from(s: &str) -> HopNote {
        if let Some(wrapper) = s.strip_suffix(DECODED).filter(|w| !w.contains("; ")) {
            return HopNote::Decoded(wrapper.to_string());
        }
        if let Some(first) = s.strip_prefix(LOOP).and_then(|n| n.parse().ok()) {
            return HopNote::Loop { first };
        }
        let download = s
            .strip_prefix(DOWNLOAD.0)
            .and_then(|w| w.strip_suffix(DOWNLOAD.1));
        if let Some(why) = download.filter(|w| !w.contains("; ")) {
            return HopNote::Download(why.to_string());
        }
        HopNote::Text(s.to_string())
    }
}

/// What a hop's `reason` says: its notes in the order they were made, `; ` between them on
/// the wire (absent when none). Compared by that text.
#[derive(Debug, Clone, Default)]
pub struct Notes(Vec<HopNote>);

impl Notes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn notes(&self) -> &[HopNote] {
        &self.0
    }

    /// Adds `note` after those already made.
    pub fn add(&mut self, note: HopNote) {
        self.0.push(note);
    }

    /// The notes as the wire says them; `None` when there are none.
    pub fn text(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_string())
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl From<HopNote> for Notes {
    fn from(note: HopNote) -> Notes {
        Notes(vec![note])
    }
}

impl std::fmt::Display for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, note) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{note}")?;
        }
        Ok(())
    }
}

impl PartialEq for Notes {
    fn eq(&self, other: &Notes) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for Notes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.is_empty() {
            true => s.serialize_none(),
            false => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Notes {
    /// A stored text is one note (its parts cannot be told apart for certain); `null` is
    /// none.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Notes, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Ok(Notes(
            text.map(|t| HopNote::from(t.as_str()))
                .into_iter()
                .collect(),
        ))
    }
}
