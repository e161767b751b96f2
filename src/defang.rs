//! Defanging: a URL written so that nothing turns it into a live link (`hxxp://evil[.]example`),
//! and back. Every printed form (exports, the web view, `--defang`) and every reader of
//! defanged input (the CLI, scan's link finder) goes through here.

/// Bracketed defanging and what it stands for; the last two only inside a single URL.
pub(crate) const DEFANGED: &[(&str, &str)] = &[
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

/// Replaces every defanged form in one left-to-right pass, re-checking the end of the output
/// after each replacement, so nested forms (`[[.].]`) come out as they would after any number
/// of passes: refanging twice changes nothing (cache keys stay stable).
pub(crate) fn undo_brackets(text: &str, table: &[(&str, &str)]) -> String {
    if !text.contains(['[', '(', '{']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        out.push(c);
        if !matches!(c, ']' | ')' | '}' | '/') {
            continue;
        }
        while let Some((from, to)) = table.iter().find(|(from, _)| out.ends_with(from)) {
            out.truncate(out.len() - from.len());
            out.push_str(to);
        }
    }
    out
}

/// A URL made safe to paste into a report or a chat: `hxxp(s)://` and every dot of the host
/// as `[.]`, so nothing turns it into a link — and the same for every URL nested in its path,
/// query or fragment (a wrapper's `?q=http://…`, plain or percent-encoded). What was
/// defanged already is undone first, so nothing is defanged twice. [`refang`] undoes it.
pub fn defang(url: &str) -> String {
    let url = refang(url);
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return url.replace('.', "[.]"),
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "hxxp".to_string(),
        "https" => "hxxps".to_string(),
        other => other.to_string(),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!(
        "{scheme}://{}{}",
        rest[..end].replace('.', "[.]"),
        nested(&rest[end..], Nested::Defang)
    )
}

/// What [`nested`] does to the URLs inside a URL.
#[derive(Clone, Copy, PartialEq)]
enum Nested {
    Defang,
    Refang,
}

/// `tail` with each URL nested in it defanged (`http` -> `hxxp`, the host's dots as `[.]`)
/// or refanged (`hxxp` -> `http`; the dots are undone with the rest of the brackets).
fn nested(tail: &str, how: Nested) -> String {
    let (from, to) = match how {
        Nested::Defang => ("http", "hxxp"),
        Nested::Refang => ("hxxp", "http"),
    };
    let mut out = String::with_capacity(tail.len() + 16);
    let mut rest = tail;
    loop {
        let lower = rest.to_ascii_lowercase();
        let found = ["s://", "://", "s%3a%2f%2f", "%3a%2f%2f"]
            .iter()
            .filter_map(|sep| {
                let marker = format!("{from}{sep}");
                lower.find(&marker).map(|i| (i, marker.len()))
            })
            .min_by_key(|&(i, len)| (i, std::cmp::Reverse(len)));
        let Some((i, len)) = found else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        out.push_str(to);
        out.push_str(&rest[i + from.len()..i + len]);
        let host = &rest[i + len..];
        let end = host
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-.:[]_".contains(c)))
            .unwrap_or(host.len());
        match how {
            Nested::Defang => out.push_str(&host[..end].replace('.', "[.]")),
            Nested::Refang => out.push_str(&host[..end]),
        }
        rest = &host[end..];
    }
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
    // URLs nested in this one, defanged with it.
    match s.find("://") {
        Some(i) if s[i..].to_ascii_lowercase().contains("hxxp") => {
            let (head, tail) = s.split_at(i + 3);
            format!("{head}{}", nested(tail, Nested::Refang))
        }
        _ => s,
    }
}

/// Keys whose string values (or arrays of strings) name a link, a host or a domain in what
/// hoptrace answers: a Trace and its hops, a scan's reasons and provenance, a comparison, a
/// campaign, a watch and its history, the landing-domain index.
const LINK_KEYS: &[&str] = &[
    "input",
    "url",
    "final_url",
    "final_host",
    "host",
    "imitates",
    "written",
    "domain",
    "landing_hosts",
    "infrastructure",
    "distinct_final_hosts",
];

/// Keys whose values are sentences that may name hosts (`passes through blltly.com (...)`,
/// `evil.example resolves to 10.0.0.1, ...`): each word with a dot is defanged.
const TEXT_KEYS: &[&str] = &["why", "reason", "message", "title"];

/// `text` with every word that holds a URL or a dotted name defanged (`see a.example` ->
/// `see a[.]example`); the spaces between words are kept.
pub fn defang_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let dotted = word
            .as_bytes()
            .windows(3)
            .any(|w| w[1] == b'.' && w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric());
        match (word.contains("://"), dotted) {
            (true, _) => out.push_str(&nested(&refang(word), Nested::Defang)),
            (false, true) => out.push_str(&defang(word)),
            (false, false) => out.push_str(word),
        }
    }
    out
}

/// Every link in a JSON document defanged, in place: the values of [`LINK_KEYS`], the names
/// in the sentences of [`TEXT_KEYS`], a recorded
/// `Host` header, and the http(s) URLs inside any other string (a `Location` or `Refresh`
/// header, a page title). The one way every
/// printed or served document is defanged (`--defang`, `[output] defang`, `?defang=true`),
/// so no output has its own list of fields to forget one from.
pub fn defang_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    fn strings(v: &mut Value, f: &impl Fn(&str) -> String) {
        match v {
            Value::String(s) => *s = f(s),
            Value::Array(items) => items.iter_mut().for_each(|i| strings(i, f)),
            _ => {}
        }
    }
    match value {
        // A recorded header: `{"name": "host", "value": "evil.example:8080"}`.
        Value::Object(map)
            if map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("host")) =>
        {
            if let Some(v) = map.get_mut("value") {
                strings(v, &|s| defang(s));
            }
        }
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if TEXT_KEYS.contains(&key.as_str()) && !v.is_object() {
                    strings(v, &defang_words);
                } else if LINK_KEYS.contains(&key.as_str()) && !v.is_object() {
                    strings(v, &|s| match s.is_empty() {
                        true => String::new(),
                        false => defang(s),
                    });
                } else {
                    defang_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(defang_json),
        Value::String(s) => {
            let lower = s.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                *s = defang(s);
            } else if lower.contains("http://") || lower.contains("https://") {
                *s = nested(s, Nested::Defang);
            }
        }
        _ => {}
    }
}

/// `value` with every link in it defanged ([`defang_json`]), as the same type: what the
/// human forms of `--defang` print. Fields not serialised (a screenshot's bytes) are lost.
pub fn defanged<T>(value: &T) -> Result<T, serde_json::Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut json = serde_json::to_value(value)?;
    defang_json(&mut json);
    serde_json::from_value(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defang_and_back() {
        for url in [
            "http://rd.lesac.ru/go?x=a.b",
            "https://cdn.failhostingpolp.ru:8443/setup.exe#f.g",
            "http://[::1]/",
        ] {
            assert_eq!(refang(&defang(url)), url);
        }
        assert_eq!(
            defang("https://a.b.example/p.q"),
            "hxxps://a[.]b[.]example/p.q"
        );
    }

    #[test]
    fn defanged_once_nested_urls_included() {
        // Already defanged input is not defanged again.
        assert_eq!(
            defang("hxxp://blltly[.]com/acad2"),
            "hxxp://blltly[.]com/acad2"
        );
        assert_eq!(defang(&defang("http://a.b.c/x")), defang("http://a.b.c/x"));
        // A URL inside another, plain or percent-encoded, is defanged too.
        let wrapped = "https://www.google.com/url?q=http://blltly.com/acad2&sa=D";
        assert_eq!(
            defang(wrapped),
            "hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com/acad2&sa=D"
        );
        assert_eq!(
            defang("https://l.example/?u=HTTPS%3A%2F%2Fevil.example.ru%2Fp.exe"),
            "hxxps://l[.]example/?u=hxxpS%3A%2F%2Fevil[.]example[.]ru%2Fp.exe"
        );
        assert_eq!(refang(&defang(wrapped)), wrapped);
        // The path's own dots are left alone.
        assert_eq!(
            defang("http://a.example/x.y?z=1.2"),
            "hxxp://a[.]example/x.y?z=1.2"
        );
    }

    #[test]
    fn a_document_is_defanged_by_its_keys_and_its_urls() {
        let mut doc = serde_json::json!({
            "input": "bit.ly/x",
            "hops": [{"url": "https://www.google.com/url?q=http://blltly.com/a", "host": "www.google.com",
                      "http": {"request_headers": [{"name": "Host", "value": "blltly.com:8080"},
                                                   {"name": "refresh", "value": "0; url=http://gohhs.com/x"}]}}],
            "reasons": [{"why": "passes through blltly.com (fake-shortener imitating bitly.com)"}],
            "landing_hosts": ["failhostingpolp.ru"],
            "repository": "ns/name.with.dots",
            "labels": ["fake-shortener"],
        });
        defang_json(&mut doc);
        let text = doc.to_string();
        for live in [
            "bit.ly",
            "http://",
            "https://",
            "blltly.com",
            "gohhs.com",
            "failhostingpolp.ru",
        ] {
            assert!(!text.contains(live), "{live}: {text}");
        }
        assert_eq!(
            doc["hops"][0]["url"],
            "hxxps://www[.]google[.]com/url?q=hxxp://blltly[.]com/a"
        );
        assert_eq!(
            doc["reasons"][0]["why"],
            "passes through blltly[.]com (fake-shortener imitating bitly[.]com)"
        );
        // Not a link: left alone.
        assert_eq!(doc["repository"], "ns/name.with.dots");
        // Twice is once.
        let again = {
            let mut d = doc.clone();
            defang_json(&mut d);
            d
        };
        assert_eq!(again, doc);
    }

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
        // Found by fuzzing: nested forms refang completely in one go.
        assert_eq!(refang("a[[.]]b[[/]]c"), "a.b/c");
        assert_eq!(refang(&refang("x[[[.].].]y")), refang("x[[[.].].]y"));
    }
}
