//! What a user typed, as a URL: defanged forms refanged, a bare host given `http://`, and —
//! for everything that starts work on a link (resolve, batch, scan, watch) — one check that it
//! is a web URL, so every call refuses `javascript:` and the like with the same words.

use url::Url;

use crate::defang::refang;

/// Why what a user typed is not a link to follow. The messages are what users see (a Trace's
/// `error.message`, an API 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("empty input")]
    Empty,
    #[error("input contains control characters")]
    ControlCharacters,
    /// `shown` is the input, cut to 200 characters (quoted escaped in the message).
    #[error("{shown:?} is not a URL: {why}")]
    NotAUrl { shown: String, why: UrlProblem },
    #[error("URL has no host")]
    NoHost,
    #[error("scheme `{0}` is not followed (only http and https)")]
    NotWeb(String),
}

/// What the URL parser found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("a host name has no spaces")]
    SpaceInHost,
    #[error("its host is not a valid domain name")]
    BadDomain,
    #[error(transparent)]
    Parse(url::ParseError),
}

/// A link as it flows through resolution: what the user gave (`input`, echoed in the Trace)
/// and what it was parsed into once (`url`, also the cache and store key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    input: String,
    url: Url,
}

impl Link {
    /// `input` parsed by [`parse_input`] (any scheme: a `file:` link is refused later, by
    /// the egress policy, as a blocked hop).
    pub fn parse(input: impl Into<String>) -> Result<Link, InputError> {
        let input = input.into();
        let url = parse_input(&input)?;
        Ok(Link { input, url })
    }

    /// `input` parsed by [`web_url`]: only `http` and `https`.
    pub fn web(input: impl Into<String>) -> Result<Link, InputError> {
        let input = input.into();
        let url = web_url(&input)?;
        Ok(Link { input, url })
    }

    /// A link already parsed (`url` is what [`parse_input`] made of `input`).
    pub fn parsed(input: impl Into<String>, url: Url) -> Link {
        Link {
            input: input.into(),
            url,
        }
    }

    /// As the user gave it.
    pub fn input(&self) -> &str {
        &self.input
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The normalised URL: the key the cache, the store and single flight use.
    pub fn key(&self) -> &str {
        self.url.as_str()
    }
}

/// Turns what a user typed into a URL: defanged forms are refanged, and a bare host gets
/// `http://` (a user pasting `bit.ly/x` means the web).
pub fn parse_input(input: &str) -> Result<Url, InputError> {
    // The URL parser drops tabs wherever they are; so do we, before refanging, or a tab
    // inside `[\t.]` would leave a `[.]` to refang the next time round.
    let s = refang(&input.replace('\t', ""));
    if s.is_empty() {
        return Err(InputError::Empty);
    }
    if s.chars().any(char::is_control) {
        return Err(InputError::ControlCharacters);
    }
    // `mailto:x`, `javascript:x`, `http://x` have a scheme; `localhost:8080/x` is a host and
    // port; `a.example/x?u=http://b` has none (the `://` is not at the front).
    let has_scheme = s.split_once(':').is_some_and(|(head, tail)| {
        head.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && (tail.starts_with("//")
                || (!tail.starts_with(|c: char| c.is_ascii_digit()) && !head.contains('.')))
    });
    let text = if has_scheme { s } else { format!("http://{s}") };
    let mut url = Url::parse(&text).map_err(|e| not_a_url(input, &text, e))?;
    // The parser's own clean-up (dot segments) can put a defanged form back together
    // (`/[[/./]]` -> `/[[/]]`); refang and parse again until nothing changes, so a
    // normalised URL normalises to itself (cache keys are stable). Each round shortens it.
    for _ in 0..64 {
        let again = refang(url.as_str());
        if again == url.as_str() {
            break;
        }
        url = Url::parse(&again).map_err(|e| not_a_url(input, &again, e))?;
    }
    if matches!(url.scheme(), "http" | "https") && url.host_str().is_none_or(str::is_empty) {
        return Err(InputError::NoHost);
    }
    url.set_fragment(None);
    Ok(url)
}

/// Why `input` (parsed as `text`) is no URL, quoting it (cut to 200 characters).
fn not_a_url(input: &str, text: &str, e: url::ParseError) -> InputError {
    let host = text.split_once("://").map_or(text, |(_, rest)| rest);
    let host = &host[..host.find(['/', '?', '#']).unwrap_or(host.len())];
    let why = match e {
        url::ParseError::IdnaError if host.contains(char::is_whitespace) => UrlProblem::SpaceInHost,
        url::ParseError::IdnaError => UrlProblem::BadDomain,
        e => UrlProblem::Parse(e),
    };
    InputError::NotAUrl {
        shown: input.chars().take(200).collect(),
        why,
    }
}

/// [`parse_input`] remembered, for a caller that meets the same links again and again: an API
/// cache hit parses its link first, and refanging, the URL parser and IDNA are a visible
/// share of a hit's CPU. Bounded: it starts over when full.
#[derive(Default)]
pub struct Inputs {
    memo: std::sync::Mutex<std::collections::HashMap<String, Result<Url, InputError>>>,
}

/// Inputs an [`Inputs`] keeps before it starts over.
const INPUTS_MAX: usize = 16_384;

impl Inputs {
    /// What [`parse_input`] answers for `input`.
    pub fn parse(&self, input: &str) -> Result<Url, InputError> {
        let lock = || self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = lock().get(input) {
            return known.clone();
        }
        let parsed = parse_input(input);
        // Long inputs are parsed each time rather than kept.
        if input.len() <= 2048 {
            let mut memo = lock();
            if memo.len() >= INPUTS_MAX {
                memo.clear();
            }
            memo.insert(input.to_string(), parsed.clone());
        }
        parsed
    }

    /// What [`web_url`] answers for `input`.
    pub fn web_url(&self, input: &str) -> Result<Url, InputError> {
        only_web(self.parse(input)?)
    }
}

/// [`parse_input`], and only `http` or `https`: what the API takes to resolve, scan or watch.
pub fn web_url(input: &str) -> Result<Url, InputError> {
    only_web(parse_input(input)?)
}

fn only_web(url: Url) -> Result<Url, InputError> {
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(InputError::NotWeb(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_inputs_parse_as_parse_input_does() {
        let inputs = Inputs::default();
        for _ in 0..2 {
            for i in [
                "hxxp://a[.]example/x",
                "bit.ly/abc#f",
                "javascript:alert(1)",
                "",
                "a\u{7}b",
            ] {
                assert_eq!(inputs.parse(i), parse_input(i), "{i}");
                assert_eq!(inputs.web_url(i), web_url(i), "{i}");
            }
        }
    }

    /// The words users see (a Trace's `error.message`, an API 400) come from the error kinds.
    #[test]
    fn input_errors_are_kinds_with_their_words() {
        for (input, kind, words) in [
            ("", InputError::Empty, "empty input"),
            (
                "a\u{7}b",
                InputError::ControlCharacters,
                "input contains control characters",
            ),
            (
                "mailto:a@b.c",
                InputError::NotWeb("mailto".into()),
                "scheme `mailto` is not followed (only http and https)",
            ),
        ] {
            let e = web_url(input).unwrap_err();
            assert_eq!((&e, e.to_string().as_str()), (&kind, words), "{input:?}");
        }
        let e = web_url("not a url").unwrap_err();
        assert!(
            matches!(
                e,
                InputError::NotAUrl {
                    why: UrlProblem::SpaceInHost,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "\"not a url\" is not a URL: a host name has no spaces"
        );
        let link = Link::web("hxxp://a[.]example/x#f").unwrap();
        assert_eq!(
            (link.input(), link.key()),
            ("hxxp://a[.]example/x#f", "http://a.example/x")
        );
    }

    #[test]
    fn inputs() {
        assert_eq!(
            parse_input("hxxp://blltly[.]com/1w1w1").unwrap().as_str(),
            "http://blltly.com/1w1w1"
        );
        assert_eq!(
            parse_input("bit.ly/abc#frag").unwrap().as_str(),
            "http://bit.ly/abc"
        );
        assert_eq!(
            parse_input("localhost:8080/x").unwrap().as_str(),
            "http://localhost:8080/x"
        );
        assert_eq!(
            parse_input("HTTP://EXAMPLE.com:80/a/../b")
                .unwrap()
                .as_str(),
            "http://example.com/b"
        );
        assert_eq!(parse_input("file:///etc/passwd").unwrap().scheme(), "file");
        assert_eq!(
            parse_input("javascript:alert(1)").unwrap().scheme(),
            "javascript"
        );
        assert_eq!(
            parse_input("http://2130706433/").unwrap().as_str(),
            "http://127.0.0.1/"
        );
        assert!(parse_input("").is_err());
        assert!(parse_input("http://").is_err());
        assert!(parse_input("http://exa mple.com/").is_err());
        assert!(parse_input("a\u{0}b").is_err());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,x",
            "mailto:a@b.c",
        ] {
            let e = web_url(bad).unwrap_err().to_string();
            assert!(e.contains("only http and https"), "{bad}: {e}");
        }
        assert_eq!(
            web_url("hxxps://a[.]example/x").unwrap().as_str(),
            "https://a.example/x"
        );
        // Found by fuzzing (fuzz/corpus/normalise): a `://` after the front is no scheme; a
        // tab the URL parser drops must not leave a defanged form behind.
        assert_eq!(
            parse_input("hxxp://a[\t.]example/").unwrap().as_str(),
            "http://a.example/"
        );
        assert_eq!(
            parse_input("lot:808#frhxxp://m0/xg").unwrap().as_str(),
            "http://lot:808/"
        );
        assert_eq!(
            parse_input("a.example/go?u=http://b.example/")
                .unwrap()
                .as_str(),
            "http://a.example/go?u=http://b.example/"
        );
    }
}
