//! What a user typed, as a URL: defanged forms refanged, a bare host given `http://`, and —
//! for everything that starts work on a link (resolve, batch, scan, watch) — one check that it
//! is a web URL, so every call refuses `javascript:` and the like with the same words.

use url::Url;

use crate::defang::refang;

/// Turns what a user typed into a URL: defanged forms are refanged, and a bare host gets
/// `http://` (a user pasting `bit.ly/x` means the web).
pub fn parse_input(input: &str) -> Result<Url, String> {
    // The URL parser drops tabs wherever they are; so do we, before refanging, or a tab
    // inside `[\t.]` would leave a `[.]` to refang the next time round.
    let s = refang(&input.replace('\t', ""));
    if s.is_empty() {
        return Err("empty input".into());
    }
    if s.chars().any(char::is_control) {
        return Err("input contains control characters".into());
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
        return Err("URL has no host".into());
    }
    url.set_fragment(None);
    Ok(url)
}

/// Why `input` (parsed as `text`) is no URL, as a sentence that quotes it (escaped, cut to
/// 200 characters).
fn not_a_url(input: &str, text: &str, e: url::ParseError) -> String {
    let host = text.split_once("://").map_or(text, |(_, rest)| rest);
    let host = &host[..host.find(['/', '?', '#']).unwrap_or(host.len())];
    let why = match e {
        url::ParseError::IdnaError if host.contains(char::is_whitespace) => {
            "a host name has no spaces".to_string()
        }
        url::ParseError::IdnaError => "its host is not a valid domain name".to_string(),
        e => e.to_string(),
    };
    let shown: String = input.chars().take(200).collect();
    format!("{shown:?} is not a URL: {why}")
}

/// [`parse_input`] remembered, for a caller that meets the same links again and again: an API
/// cache hit parses its link first, and refanging, the URL parser and IDNA are a visible
/// share of a hit's CPU. Bounded: it starts over when full.
#[derive(Default)]
pub struct Inputs {
    memo: std::sync::Mutex<std::collections::HashMap<String, Result<Url, String>>>,
}

/// Inputs an [`Inputs`] keeps before it starts over.
const INPUTS_MAX: usize = 16_384;

impl Inputs {
    /// What [`parse_input`] answers for `input`.
    pub fn parse(&self, input: &str) -> Result<Url, String> {
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
    pub fn web_url(&self, input: &str) -> Result<Url, String> {
        only_web(self.parse(input)?)
    }
}

/// [`parse_input`], and only `http` or `https`: what the API takes to resolve, scan or watch.
pub fn web_url(input: &str) -> Result<Url, String> {
    only_web(parse_input(input)?)
}

fn only_web(url: Url) -> Result<Url, String> {
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "scheme `{other}` is not followed (only http and https)"
        )),
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
            let e = web_url(bad).unwrap_err();
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
