//! What the engine needs from a page's markup: its scripts in order, the elements a script
//! can reach (by id, forms and their fields, links), `<body onload>`, and what it cannot
//! model (frames, `<base>`, a script that is not classic JavaScript).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Defer, Deferral};
use crate::extract::html_unescape;

/// One element as a script sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Element {
    pub tag: String,
    pub attrs: std::collections::BTreeMap<String, String>,
    /// The text up to the next tag.
    pub text: String,
    /// A form's named fields (`name`, `value`), in order.
    pub fields: Vec<(String, String)>,
}

/// A classic script: its text, or where to fetch it (`<script src>`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Code {
    Inline(String),
    External(String),
}

impl Code {
    /// Its length as text (a script still to fetch has none yet).
    pub fn len(&self) -> usize {
        match self {
            Code::Inline(text) => text.len(),
            Code::External(_) => 0,
        }
    }
}

/// A page read for the engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Markup {
    /// Classic scripts in the order they run: as they stand, then the deferred ones.
    pub scripts: Vec<Code>,
    pub elements: Vec<Element>,
    pub title: String,
    /// `<body onload="...">`.
    pub onload: Option<String>,
}

static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<!--.*?-->|<(/?)([a-z][a-z0-9-]*)\b((?:[^>"']|"[^"]*"|'[^']*')*)>"#).unwrap()
});
static SCRIPT_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)</script\s*>").unwrap());
static TITLE_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)</title\s*>").unwrap());

/// The attributes with a value (the first of a name counts, as in a browser).
fn attrs_of(raw: &str) -> std::collections::BTreeMap<String, String> {
    let mut attrs = std::collections::BTreeMap::new();
    for (name, value) in crate::discover::attributes(raw) {
        attrs.entry(name).or_insert_with(|| html_unescape(value));
    }
    attrs
}

/// A classic script (what `type` a browser runs as plain JavaScript).
fn is_classic(attrs: &std::collections::BTreeMap<String, String>) -> Option<bool> {
    let Some(t) = attrs.get("type") else {
        return Some(true);
    };
    let t = t.trim().to_ascii_lowercase();
    if t.is_empty()
        || t.ends_with("/javascript")
        || t.ends_with("/ecmascript")
        || t == "text/jscript"
    {
        Some(true)
    } else if t == "module" {
        None // runs, but not as this engine runs scripts
    } else {
        Some(false) // data (`text/template`, JSON): not run
    }
}

/// Reads `html` for the engine, or says why the engine cannot answer for it.
pub fn read(html: &str) -> Result<Markup, Deferral> {
    let mut page = Markup::default();
    let mut deferred = Vec::new();
    let mut form: Option<usize> = None;
    let mut pos = 0;
    while let Some(m) = TAG.find_at(html, pos) {
        pos = m.end();
        let Some(cap) = TAG.captures(m.as_str()) else {
            continue;
        };
        let Some(tag) = cap.get(2).map(|t| t.as_str().to_ascii_lowercase()) else {
            continue; // a comment
        };
        if &cap[1] == "/" {
            if tag == "form" {
                form = None;
            }
            continue;
        }
        let attrs = attrs_of(&cap[3]);
        match tag.as_str() {
            "script" => {
                let end = SCRIPT_END.find_at(html, pos);
                let code = &html[pos..end.map_or(html.len(), |e| e.start())];
                pos = end.map_or(html.len(), |e| e.end());
                match (is_classic(&attrs), attrs.get("src")) {
                    (None, _) => return Err(Defer::Unmodelled.because("module script")),
                    (Some(false), _) => {}
                    (Some(true), None) => page.scripts.push(Code::Inline(code.to_string())),
                    // Runs whenever it arrives: the order is not the page's.
                    (Some(true), Some(_)) if has_flag(&cap[3], "async") => {
                        return Err(Defer::Unmodelled.because("async script"))
                    }
                    (Some(true), Some(src)) if has_flag(&cap[3], "defer") => {
                        deferred.push(Code::External(src.clone()))
                    }
                    (Some(true), Some(src)) => page.scripts.push(Code::External(src.clone())),
                }
                continue;
            }
            "title" => {
                let end = TITLE_END.find_at(html, pos);
                page.title = html_unescape(html[pos..end.map_or(html.len(), |e| e.start())].trim());
                continue;
            }
            "iframe" | "frame" | "frameset" | "object" | "embed" | "portal" => {
                return Err(Defer::Frame.because(&tag))
            }
            "base" if attrs.contains_key("href") => return Err(Defer::Unmodelled.because("<base>")),
            "body" => page.onload = attrs.get("onload").cloned(),
            "form" => form = Some(page.elements.len()),
            _ => {}
        }
        if let (Some(f), "input" | "select" | "textarea") = (form, tag.as_str()) {
            if let Some(name) = attrs.get("name").filter(|n| !n.is_empty()) {
                let value = attrs.get("value").cloned().unwrap_or_default();
                page.elements[f].fields.push((name.clone(), value));
            }
        }
        let named = ["form", "input", "a"].contains(&tag.as_str()) || attrs.contains_key("id");
        if named {
            let text_end = html[pos..].find('<').map_or(html.len(), |i| pos + i);
            page.elements.push(Element {
                tag,
                attrs,
                text: html_unescape(html[pos..text_end].trim()),
                fields: Vec::new(),
            });
        }
    }
    page.scripts.extend(deferred);
    Ok(page)
}

static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#""[^"]*"|'[^']*'"#).unwrap());

/// A boolean attribute (`async`, `defer`) in a tag's raw attributes, outside any value.
fn has_flag(raw: &str, name: &str) -> bool {
    QUOTED
        .replace_all(raw, " ")
        .split(|c: char| c.is_ascii_whitespace() || c == '/')
        .any(|w| {
            w.split('=')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
}

/// Whether markup a script wrote can be judged: it may only add text, styling or a meta
/// refresh; a script, frame, form or element a later script could reach is Chromium's.
pub fn check_written(markup: &str) -> Result<(), Deferral> {
    for m in TAG.captures_iter(markup) {
        let Some(tag) = m.get(2).map(|t| t.as_str().to_ascii_lowercase()) else {
            continue;
        };
        let attrs = attrs_of(m.get(3).map_or("", |a| a.as_str()));
        let plain = matches!(
            tag.as_str(),
            "p" | "br"
                | "b"
                | "i"
                | "em"
                | "strong"
                | "span"
                | "div"
                | "h1"
                | "h2"
                | "h3"
                | "img"
                | "center"
                | "font"
                | "hr"
                | "style"
                | "meta"
                | "a"
        );
        if !plain || attrs.contains_key("id") || attrs.contains_key("name") {
            return Err(Defer::Unmodelled.because(&format!("document.write of <{tag}>")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scripts_elements_and_forms() {
        let page = read(
            "<html><head><title>T &amp; x</title><script>var a = '<b>';</script>\
             <script type=\"text/template\">{{x}}</script><!-- <script>no</script> -->\
             <script type='text/javascript'>b()</script></head>\
             <body onload=\"go()\"><a id=dl href='/f'>Get</a>\
             <form id=f method=POST action=/p><input name=q value=1><input type=submit></form>",
        )
        .unwrap();
        assert_eq!(
            page.scripts,
            vec![
                Code::Inline("var a = '<b>';".into()),
                Code::Inline("b()".into())
            ]
        );
        assert_eq!(page.title, "T & x");
        assert_eq!(page.onload.as_deref(), Some("go()"));
        let form = page.elements.iter().find(|e| e.tag == "form").unwrap();
        assert_eq!(form.fields, vec![("q".to_string(), "1".to_string())]);
        assert_eq!(form.attrs["method"], "POST");
        let a = page.elements.iter().find(|e| e.tag == "a").unwrap();
        assert_eq!((a.text.as_str(), a.attrs["href"].as_str()), ("Get", "/f"));
    }

    #[test]
    fn external_scripts_in_the_order_they_run() {
        let page = read(
            "<script defer src='/late.js'></script><script src=\"/a.js\"></script>\
             <script>x()</script><script src=/b.js data-x=\"async\"></script>",
        )
        .unwrap();
        assert_eq!(
            page.scripts,
            vec![
                Code::External("/a.js".into()),
                Code::Inline("x()".into()),
                Code::External("/b.js".into()),
                Code::External("/late.js".into()),
            ]
        );
    }

    #[test]
    fn what_it_cannot_model_is_said() {
        for (html, reason) in [
            ("<script async src=/x.js></script>", Defer::Unmodelled),
            ("<iframe src=/f></iframe>", Defer::Frame),
            ("<script type=module>x</script>", Defer::Unmodelled),
            ("<base href=http://a.example/>", Defer::Unmodelled),
        ] {
            assert_eq!(read(html).unwrap_err().reason, reason, "{html}");
        }
        assert!(check_written("<p>hi</p><meta http-equiv=refresh content='0;url=/x'>").is_ok());
        assert!(check_written("<script>x()</script>").is_err());
        assert!(check_written("<div id=d></div>").is_err());
    }
}
