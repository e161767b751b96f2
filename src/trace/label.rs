//! Labels: the ones hoptrace gives or acts on (`Builtin`) and the ones only a list names,
//! each written on the wire as its name.

use serde::{Deserialize, Serialize};

use crate::wire::wire_enum;

wire_enum! {
    /// The labels hoptrace itself gives or acts on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Builtin {
        /// Listed as imitating a real shortener (with `imitates`).
        FakeShortener = "fake-shortener",
        /// Detected as resembling a real shortener, not listed.
        LookalikeShortener = "lookalike-shortener",
        /// A real shortener.
        Shortener = "shortener",
        PayloadHost = "payload-host",
        Phishing = "phishing",
        C2 = "c2",
        /// Visitors of one link end in different places (`hoptrace compare`).
        Cloaked = "cloaked",
        /// A hop answered with a response head beyond what hoptrace (or a browser) reads: a
        /// server hiding what it sends. Counted as suspicious.
        OversizedHead = "oversized-head",
        /// A well-known wrapper that forwards anywhere (Google `/url` and the like).
        OpenRedirect = "open-redirect",
    }
}

impl Builtin {
    /// Whether this label makes a link, and its repository, malicious.
    pub fn is_malicious(self) -> bool {
        matches!(
            self,
            Builtin::FakeShortener
                | Builtin::LookalikeShortener
                | Builtin::PayloadHost
                | Builtin::Phishing
                | Builtin::C2
        )
    }
}

/// A label on a hop or a Trace: one hoptrace knows, or one an indicator list names beyond
/// them. On the wire every label is its name; a listed label never bears a built-in's name
/// (construction maps those to [`Label::Builtin`]). Compared, hashed and ordered by name.
#[derive(Debug, Clone)]
pub enum Label {
    Builtin(Builtin),
    /// A label only a list names (`labels.extra_files`).
    Listed(String),
}

impl Label {
    pub fn as_str(&self) -> &str {
        match self {
            Label::Builtin(b) => b.as_str(),
            Label::Listed(s) => s,
        }
    }

    /// Whether this label makes a link, and its repository, malicious (no listed-only
    /// label does).
    pub fn is_malicious(&self) -> bool {
        matches!(self, Label::Builtin(b) if b.is_malicious())
    }

    /// Whether any of `labels` is malicious.
    pub fn any_malicious<'a>(labels: impl IntoIterator<Item = &'a Label>) -> bool {
        labels.into_iter().any(Label::is_malicious)
    }
}

impl From<Builtin> for Label {
    fn from(b: Builtin) -> Label {
        Label::Builtin(b)
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Label {
        s.parse()
            .map_or_else(|_| Label::Listed(s.to_string()), Label::Builtin)
    }
}

impl From<String> for Label {
    fn from(s: String) -> Label {
        s.parse().map_or(Label::Listed(s), Label::Builtin)
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<Builtin> for Label {
    fn eq(&self, other: &Builtin) -> bool {
        matches!(self, Label::Builtin(b) if b == other)
    }
}

/// Compares with the wire name, as users (and tests) read it.
impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Label {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
        String::deserialize(d).map(Label::from)
    }
}
