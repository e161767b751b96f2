//! Turning text people and attackers write into URLs: refanging defanged indicators
//! (`hxxp`, `[.]`, ...), decoding HTML entities, and finding the links in a description.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::defang::{undo_brackets, DEFANGED};

/// A dot as attackers and analysts defang it.
const DOT: &str = r"(?:\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))";
const DEFANGED_DOT: &str = r"(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))";
/// What may follow the start of a link: anything but whitespace, quotes, angle brackets and
/// the brackets markup closes with, except where brackets spell a defanged `.`, `:` or `/`.
const BODY: &str = r#"(?:\[\.\]|\{\.\}|\[dot\]|\[:\]|\[/\]|[^\s<>"'`\[\]{}|\\^])*"#;

/// Where a link may start: a scheme (plain, defanged or percent-encoded), `www.`, a host
/// name with at least one defanged dot (`evil[.]com/x` is a link nobody would write by
/// accident), or a plain `host.tld` with or without a path, which [`plain_host_link`] then
/// judges (a word with a dot is usually no link).
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    let scheme = r"\bh(?:tt|xx)ps?(?:://|\[://\]|\[:\]//|\[:/\]/|%3a%2f%2f)";
    let www = format!(r"\bwww{DOT}");
    let host = format!(
        r"\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:{DOT}[a-z0-9-]+)*{DEFANGED_DOT}[a-z]{{2,}}\b(?:[/?#:]{BODY})?"
    );
    let plain = format!(
        r"\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.[a-z]{{2,}}\b(?:[/?#:]{BODY})?"
    );
    Regex::new(&format!("(?i)(?:{scheme}|{www}){BODY}|{host}|{plain}")).expect("valid regex")
});

/// Top-level domains that are also file extensions or method names in prose and code
/// (`README.md`, `main.rs`, `install.sh`, `setup.py`, `client.get(...)`, `foo.bar`): a plain
/// `name.tld` ending in one is a link only with a path (`docs.rs/serde` is one).
const WORDLIKE_TLDS: &[&str] = &[
    "am", "app", "bar", "build", "bz", "call", "cc", "data", "foo", "gd", "get", "in", "map", "md",
    "mk", "ml", "mov", "new", "now", "nu", "one", "open", "pl", "play", "pm", "pro", "ps", "py",
    "read", "rs", "run", "save", "sc", "sh", "show", "so", "st", "tf", "zip",
];

/// Whether `written`, a host with no scheme and no defanging found at `start` of `text`, is a
/// link: an all-lowercase name whose suffix is on the public suffix list, not part of a
/// path, an address or a code span, and — without a path — not a file name or a method call.
fn plain_host_link(text: &str, start: usize, written: &str, code: &CodeSpans) -> bool {
    let end = written.find(['/', '?', '#', ':']).unwrap_or(written.len());
    let host = &written[..end];
    let before = text[..start].chars().next_back();
    if before.is_some_and(|c| "@./\\_-~#$%".contains(c)) || code.contains(start) {
        return false;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let Some(suffix) = psl::suffix(host.as_bytes()) else {
        return false;
    };
    if !suffix.is_known() || psl::domain(host.as_bytes()).is_none() {
        return false;
    }
    let with_path = written[end..].starts_with(['/', '?']);
    let tld = host.rsplit('.').next().unwrap_or(host);
    let called = text[start + written.len()..].starts_with('(');
    with_path || !(WORDLIKE_TLDS.contains(&tld) || called)
}

/// The byte ranges of markdown code (fenced blocks and inline spans) in a text: a plain
/// `name.tld` there is code, not a link.
struct CodeSpans(Vec<(usize, usize)>);

impl CodeSpans {
    fn of(text: &str) -> CodeSpans {
        let mut spans = Vec::new();
        let mut at = 0;
        while let Some(i) = text[at..].find('`').map(|i| at + i) {
            let ticks = text[i..].bytes().take_while(|&b| b == b'`').count();
            let fence = &text[i..i + ticks];
            let close = text[i + ticks..]
                .find(fence)
                .map(|j| i + ticks + j + ticks)
                // An unclosed fence runs to the end; an unclosed tick is a tick.
                .or_else(|| (ticks >= 3).then_some(text.len()));
            match close {
                Some(end) => {
                    spans.push((i, end));
                    at = end;
                }
                None => at = i + ticks,
            }
        }
        CodeSpans(spans)
    }

    fn contains(&self, at: usize) -> bool {
        self.0.iter().any(|&(s, e)| s <= at && at < e)
    }
}

/// Just before a link: markdown's `](`, a reference definition `[id]: `, or `[` of a link
/// whose text is the link itself.
static MARKDOWN_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\]\(\s*<?|(?m:^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?)|\[)$").expect("valid regex")
});

/// Just before a link: an HTML attribute that holds a URL, or a meta refresh's `url=`.
static HTML_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:\b(?:href|src|action|formaction|poster|data-[a-z-]+)\s*=\s*["']?|;\s*url\s*=\s*)$"#,
    )
    .expect("valid regex")
});

/// `hxxp` / `hxxps` at the start of a link.
static HXXP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^hxxp(s?)").expect("valid regex"));

/// How a link was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// Markdown: inline `[text](url)`, image, reference definition or `<url>` autolink.
    Markdown,
    /// An HTML attribute (`href`, `src`, `action`, ...).
    Html,
    /// A URL in running text.
    Bare,
    /// Written defanged (`hxxp`, `[.]`, `[://]`, ...), whatever markup it sits in.
    Defanged,
}

/// Where a link was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The field it came from (`description`, `full_description`, `text`, ...).
    pub field: String,
    pub form: Form,
    /// The link as written there (before refanging and decoding).
    pub written: String,
}

/// One distinct link and every place it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Normalised: refanged, entities and percent-encoding decoded, `http://` added to
    /// schemeless forms, parsed and printed by the URL parser.
    pub url: String,
    pub found_in: Vec<Provenance>,
}

/// The distinct links in `text` (markdown, HTML, bare and defanged forms), in the order they
/// first appear. See [`find`].
pub fn links(text: &str) -> Vec<String> {
    find(&[("text", text)]).into_iter().map(|l| l.url).collect()
}

/// The distinct links in named fields, in order of first appearance, each with every
/// (field, form) it was found in. Entities are decoded before looking (`&#104;ttp` is a
/// link); percent-encoded links (`https%3A%2F%2F...`) are decoded when they stand alone;
/// trailing punctuation that belongs to the sentence is left out.
pub fn find(fields: &[(&str, &str)]) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (field, text) in fields {
        let text = html_unescape(text);
        let code = std::cell::OnceCell::new();
        for m in LINK.find_iter(&text) {
            let written = trim_link(m.as_str());
            let Some((url, defanged)) = normalise(written) else {
                continue;
            };
            // Written with no scheme, no `www.` and no defanging: judged on its name.
            let lower = written.get(..10).unwrap_or(written).to_ascii_lowercase();
            let plain = !defanged
                && !["http://", "https://", "http%3a", "https%3a", "www."]
                    .iter()
                    .any(|p| lower.starts_with(p));
            if plain {
                let code = code.get_or_init(|| CodeSpans::of(&text));
                if !plain_host_link(&text, m.start(), written, code) {
                    continue;
                }
            }
            let form = if defanged {
                Form::Defanged
            } else {
                form_at(&text, m.start(), m.start() + written.len())
            };
            let place = Provenance {
                field: field.to_string(),
                form,
                written: written.to_string(),
            };
            let i = *index.entry(url.clone()).or_insert_with(|| {
                out.push(Link {
                    url,
                    found_in: Vec::new(),
                });
                out.len() - 1
            });
            let seen = &mut out[i].found_in;
            if !seen
                .iter()
                .any(|p| p.field == place.field && p.form == place.form)
            {
                seen.push(place);
            }
        }
    }
    out
}

/// The markup around `text[start..end]`.
fn form_at(text: &str, start: usize, end: usize) -> Form {
    let mut from = start.saturating_sub(80);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = &text[from..start];
    let after = &text[end..];
    if MARKDOWN_BEFORE.is_match(before) || (before.ends_with('<') && after.starts_with('>')) {
        Form::Markdown
    } else if HTML_BEFORE.is_match(before) {
        Form::Html
    } else {
        Form::Bare
    }
}

/// A link as written -> the URL it stands for, and whether it was defanged; `None` when it
/// is not an http(s) URL with a host after all.
fn normalise(written: &str) -> Option<(String, bool)> {
    let mut s = written.to_string();
    let lower = s.to_ascii_lowercase();
    let encoded_scheme =
        lower.starts_with("http%3a") || lower.starts_with("https%3a") || lower.starts_with("hxxp");
    if encoded_scheme && lower.contains("%3a%2f%2f") {
        s = percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned();
    }
    let plain = HXXP
        .replace(&undo_brackets(&s, DEFANGED), "http$1")
        .into_owned();
    let defanged = plain != s;
    let schemeless = !plain.to_ascii_lowercase().starts_with("http");
    let full = if schemeless {
        format!("http://{plain}")
    } else {
        plain
    };
    let url = url::Url::parse(&full).ok()?;
    let host = url.host_str()?;
    let named =
        host.contains('.') || matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
    if !matches!(url.scheme(), "http" | "https") || (schemeless && !named) || host.is_empty() {
        return None;
    }
    Some((url.into(), defanged))
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

    fn forms(fields: &[(&str, &str)]) -> Vec<(String, Vec<(String, Form)>)> {
        find(fields)
            .into_iter()
            .map(|l| {
                let places = l.found_in.into_iter().map(|p| (p.field, p.form)).collect();
                (l.url, places)
            })
            .collect()
    }

    #[test]
    fn every_form_with_provenance() {
        let full = "# Tool\n\
            Inline [download](https://a.example/dl) and ![img](https://img.example/x.png \"t\")\n\
            Reference [mirror][1] and autolink <https://auto.example/p>.\n\
            \n\
            [1]: https://ref.example/r\n\
            <a href='https://html.example/a'>x</a> <img src=https://html.example/i.gif>\n\
            <form action=\"http://post.example/f\"></form>\n\
            Defanged: hxxp://evil[.]example/1, bltlly(.)com/abc, hXXps[://]c2{.}example\n\
            Encoded: https%3A%2F%2Fenc.example%2Fpath%3Fa%3D1 and &#104;ttps&#58;//ent.example/e\n\
            Bare www.bare.example/w; again https://a.example/dl.";
        let got = forms(&[
            ("description", "see https://a.example/dl"),
            ("full_description", full),
        ]);
        let want: Vec<(&str, Vec<(&str, Form)>)> = vec![
            (
                "https://a.example/dl",
                vec![
                    ("description", Form::Bare),
                    ("full_description", Form::Markdown),
                    ("full_description", Form::Bare),
                ],
            ),
            (
                "https://img.example/x.png",
                vec![("full_description", Form::Markdown)],
            ),
            (
                "https://auto.example/p",
                vec![("full_description", Form::Markdown)],
            ),
            (
                "https://ref.example/r",
                vec![("full_description", Form::Markdown)],
            ),
            (
                "https://html.example/a",
                vec![("full_description", Form::Html)],
            ),
            (
                "https://html.example/i.gif",
                vec![("full_description", Form::Html)],
            ),
            (
                "http://post.example/f",
                vec![("full_description", Form::Html)],
            ),
            (
                "http://evil.example/1",
                vec![("full_description", Form::Defanged)],
            ),
            (
                "http://bltlly.com/abc",
                vec![("full_description", Form::Defanged)],
            ),
            (
                "https://c2.example/",
                vec![("full_description", Form::Defanged)],
            ),
            (
                "https://enc.example/path?a=1",
                vec![("full_description", Form::Bare)],
            ),
            (
                "https://ent.example/e",
                vec![("full_description", Form::Bare)],
            ),
            (
                "http://www.bare.example/w",
                vec![("full_description", Form::Bare)],
            ),
        ];
        let want: Vec<(String, Vec<(String, Form)>)> = want
            .into_iter()
            .map(|(u, p)| {
                (
                    u.to_string(),
                    p.into_iter().map(|(f, k)| (f.to_string(), k)).collect(),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn written_is_kept_and_junk_is_not_a_link() {
        let l = find(&[("text", "go to hxxps://blltly[.]com/1w1w1!")]);
        assert_eq!(l[0].url, "https://blltly.com/1w1w1");
        assert_eq!(l[0].found_in[0].written, "hxxps://blltly[.]com/1w1w1");
        for junk in [
            "ftp://files.example/x",
            "version 1.2.3 (see notes) e.g. foo.bar",
            "http://",
            "www.",
            "mailto:someone@example.com",
            "(.)(.) [.] {.}",
        ] {
            assert!(links(junk).is_empty(), "{junk}: {:?}", links(junk));
        }
        // A link inside another stays inside it (the Google wrapper is decoded later).
        assert_eq!(
            links("https://www.google.com/url?q=https%3A%2F%2Fevil.example%2F&usg=x"),
            vec!["https://www.google.com/url?q=https%3A%2F%2Fevil.example%2F&usg=x"]
        );
    }

    #[test]
    fn entities() {
        assert_eq!(html_unescape("a?x=1&amp;y=2&#x2F;&#47;"), "a?x=1&y=2//");
        assert_eq!(html_unescape("AT&T &bogus; &"), "AT&T &bogus; &");
        assert_eq!(html_unescape("&amp"), "&");
    }
}
