//! Turning text people and attackers write into URLs: refanging defanged indicators
//! (`hxxp`, `[.]`, ...), decoding HTML entities, and finding the links in a description.

use std::sync::LazyLock;

use regex::Regex;

/// Bare links: with a scheme, or starting `www.`; they end at whitespace, quotes, angle
/// brackets or the markup that closes them.
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"'`\]\[{}|\\^]+"#).expect("valid regex")
});

/// `hxxp` / `hxxps` anywhere in text.
static HXXP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bhxxp(s?)\b").expect("valid regex"));

/// The distinct links in `text` (markdown, HTML, bare and defanged forms), in the order they
/// first appear, refanged and with entities decoded; `www.` links get `http://`. Trailing
/// punctuation that belongs to the sentence (`.`, `,`, `)` without a matching `(`...) is not
/// part of the link.
pub fn links(text: &str) -> Vec<String> {
    // In prose `[:]` and `[/]` are too likely to be something else: only the forms that
    // cannot be.
    let text = undo_brackets(&html_unescape(text), &DEFANGED[..DEFANGED.len() - 2]);
    let text = HXXP.replace_all(&text, "http$1");
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for m in LINK.find_iter(&text) {
        let link = trim_link(m.as_str());
        if link.len() < 8 {
            continue;
        }
        let link = if link.to_ascii_lowercase().starts_with("www.") {
            format!("http://{link}")
        } else {
            link.to_string()
        };
        if seen.insert(link.clone()) {
            out.push(link);
        }
    }
    out
}

/// Drops sentence punctuation from the end of a link, and a closing parenthesis that has
/// no opening one inside the link (markdown `[x](url)`, prose "(see url)").
fn trim_link(mut s: &str) -> &str {
    loop {
        let before = s;
        s = s.trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_', '~']);
        if s.ends_with(')') && s.matches('(').count() < s.matches(')').count() {
            s = &s[..s.len() - 1];
        }
        if s == before {
            return s;
        }
    }
}

/// Bracketed defanging and what it stands for; the last two only inside a single URL.
const DEFANGED: &[(&str, &str)] = &[
    ("[://]", "://"),
    ("[:]//", "://"),
    ("[:/]/", "://"),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("[:]", ":"),
    ("[/]", "/"),
];

fn undo_brackets(text: &str, table: &[(&str, &str)]) -> String {
    let mut s = text.to_string();
    for (from, to) in table {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

/// Undoes the usual ways of defanging a URL so it can be parsed: `hxxp(s)`, `[.]`, `(.)`,
/// `{.}`, `[dot]`, `[://]`, `[:]//`, `[:]`. Text that was never defanged comes back unchanged.
pub fn refang(input: &str) -> String {
    let mut s = undo_brackets(input.trim(), DEFANGED);
    // Scheme spellings: hxxp and hxxps in any case (hXXp, HXXPS).
    let lower = s.to_ascii_lowercase();
    for (from, to) in [
        ("hxxps://", "https://"),
        ("hxxp://", "http://"),
        ("hxxps:", "https:"),
        ("hxxp:", "http:"),
    ] {
        if lower.starts_with(from) {
            s = format!("{to}{}", &s[from.len()..]);
            break;
        }
    }
    s
}

/// Decodes HTML character references: the named ones URLs contain in practice and all
/// numeric forms. Unknown references are kept as written.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1);
        let (name, consumed) = match end {
            Some(e) if rest[e..].starts_with(';') => (&rest[1..e], e + 1),
            Some(e) => (&rest[1..e], e),
            None => (&rest[1..], rest.len()),
        };
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "sol" => Some('/'),
            "colon" => Some(':'),
            "period" => Some('.'),
            "quest" => Some('?'),
            "equals" => Some('='),
            "num" => Some('#'),
            "percnt" => Some('%'),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) if !name.is_empty() => {
                out.push(c);
                rest = &rest[consumed..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refang_forms() {
        assert_eq!(
            refang("hxxp://blltly[.]com/1w1w1"),
            "http://blltly.com/1w1w1"
        );
        assert_eq!(
            refang("hXXps[://]rd(.)lesac{.}ru/x"),
            "https://rd.lesac.ru/x"
        );
        assert_eq!(refang("https[:]//a[dot]b/"), "https://a.b/");
        assert_eq!(refang("  http://plain.example/  "), "http://plain.example/");
    }

    #[test]
    fn links_in_descriptions() {
        let text = "Get it [here](https://bit.ly/abc). Mirror: hxxps://blltly[.]com/1w1w1, \
            or <a href=\"http://a.example/x?y=1&amp;z=2\">this</a> (see www.b.example/p). \
            Again: https://bit.ly/abc";
        assert_eq!(
            links(text),
            vec![
                "https://bit.ly/abc",
                "https://blltly.com/1w1w1",
                "http://a.example/x?y=1&z=2",
                "http://www.b.example/p",
            ]
        );
        assert!(links("no links here, just www. and http:// alone").is_empty());
        assert_eq!(
            links("https://en.wikipedia.org/wiki/Foo_(bar)."),
            vec!["https://en.wikipedia.org/wiki/Foo_(bar)"]
        );
    }

    #[test]
    fn entities() {
        assert_eq!(html_unescape("a?x=1&amp;y=2&#x2F;&#47;"), "a?x=1&y=2//");
        assert_eq!(html_unescape("AT&T &bogus; &"), "AT&T &bogus; &");
        assert_eq!(html_unescape("&amp"), "&");
    }
}
