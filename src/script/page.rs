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
    /// `<iframe src>`s, in order, as written (their documents are fetched and run by the
    /// engine when same-origin).
    pub frames: Vec<String>,
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
/// Event handlers a visitor never fires: they wait for a click, a key or a form's submit
/// button, and a visit presses none.
const BY_VISITOR: &[&str] = &[
    "onclick",
    "ondblclick",
    "onauxclick",
    "oncontextmenu",
    "onmousedown",
    "onmouseup",
    "onmouseover",
    "onmouseout",
    "onmouseenter",
    "onmouseleave",
    "onmousemove",
    "onkeydown",
    "onkeyup",
    "onkeypress",
    "onsubmit",
    "onreset",
    "onchange",
    "oninput",
    "ontouchstart",
    "ontouchend",
    "ontouchmove",
    "onpointerdown",
    "onpointerup",
    "onwheel",
    "ondrag",
    "ondrop",
    "oncopy",
    "onpaste",
    "oncut",
];

/// An event handler on this element that can fire by itself (an image's `onerror`, an
/// animation's start, an element's `onload`): the engine runs `<body onload>` only, so a page
/// holding another is not decided here. Frames say their own reasons.
fn unrun_handler<'a>(
    tag: &str,
    attrs: &'a std::collections::BTreeMap<String, String>,
) -> Option<&'a str> {
    if tag == "iframe" {
        return None;
    }
    attrs.keys().map(String::as_str).find(|name| {
        name.starts_with("on")
            && !BY_VISITOR.contains(name)
            && !(tag == "body" && *name == "onload")
    })
}

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
        if let Some(on) = unrun_handler(&tag, &attrs) {
            return Err(Defer::Unmodelled.because(&format!("{on} on <{tag}>")));
        }
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
            "iframe" => {
                if let Some(why) = unmodelled_frame(&attrs, &cap[3]) {
                    return Err(Defer::Frame.because(why));
                }
                // Without a source a frame is an empty document: nothing in it runs.
                if let Some(src) = attrs.get("src").filter(|s| !s.trim().is_empty()) {
                    page.frames.push(src.trim().to_string());
                }
            }
            "frame" | "frameset" | "object" | "embed" | "portal" => {
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

/// What about an `<iframe>` the engine does not model: its own markup (`srcdoc`), a sandbox
/// (which may forbid or allow what its scripts do), handlers on the element.
fn unmodelled_frame(
    attrs: &std::collections::BTreeMap<String, String>,
    raw: &str,
) -> Option<&'static str> {
    if has_flag(raw, "srcdoc") {
        Some("iframe srcdoc")
    } else if has_flag(raw, "sandbox") {
        Some("sandboxed iframe")
    } else if attrs.keys().any(|k| k.starts_with("on")) {
        Some("iframe with an event handler")
    } else {
        None
    }
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

/// What `document.write` added: elements a script can reach, and scripts to run now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub elements: Vec<Element>,
    pub scripts: Vec<String>,
}

static SCRIPT_OPEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)<script\b").unwrap());

/// Reads markup a script wrote, or says why the engine cannot follow it: a frame, a script
/// to fetch, a script cut between two writes, a `<body onload>` written.
pub fn read_written(markup: &str) -> Result<Written, Deferral> {
    if SCRIPT_OPEN.find_iter(markup).count() != SCRIPT_END.find_iter(markup).count() {
        return Err(Defer::Unmodelled.because("document.write of a script cut between writes"));
    }
    let page = read(markup)?;
    if !page.frames.is_empty() {
        return Err(Defer::Frame.because("document.write of a frame"));
    }
    if page.onload.is_some() {
        return Err(Defer::Unmodelled.because("document.write of <body onload>"));
    }
    let mut scripts = Vec::new();
    for code in page.scripts {
        match code {
            Code::Inline(code) => scripts.push(code),
            Code::External(src) => {
                return Err(
                    Defer::ExternalScript.because(&format!("document.write of <script src={src}>"))
                )
            }
        }
    }
    Ok(Written {
        elements: page.elements,
        scripts,
    })
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
    fn frames_with_a_source_are_listed() {
        let page =
            read("<iframe src=' /f?a=1 '></iframe><iframe></iframe><iframe src=/g></iframe>")
                .unwrap();
        assert_eq!(page.frames, vec!["/f?a=1".to_string(), "/g".to_string()]);
    }

    #[test]
    fn what_it_cannot_model_is_said() {
        for (html, reason) in [
            ("<script async src=/x.js></script>", Defer::Unmodelled),
            (
                "<iframe srcdoc='<script>top.location=1</script>'></iframe>",
                Defer::Frame,
            ),
            ("<iframe src=/f sandbox></iframe>", Defer::Frame),
            ("<iframe src=/f onload=go()></iframe>", Defer::Frame),
            ("<object data=/f></object>", Defer::Frame),
            ("<script type=module>x</script>", Defer::Unmodelled),
            ("<base href=http://a.example/>", Defer::Unmodelled),
            ("<img src=x onerror=\"location='/p'\">", Defer::Unmodelled),
            ("<body onpageshow=go()>", Defer::Unmodelled),
            ("<svg onload=go()></svg>", Defer::Unmodelled),
        ] {
            assert_eq!(read(html).unwrap_err().reason, reason, "{html}");
        }
        // Handlers that wait for a visitor's click never fire: such a page is still decided.
        assert!(read("<body onload=go()><a href=/x onclick=go()>x</a>").is_ok());
        let w = read_written("<p>hi</p><meta http-equiv=refresh content='0;url=/x'><div id=d></div><script>x()</script>").unwrap();
        assert_eq!((w.elements.len(), w.scripts), (1, vec!["x()".to_string()]));
        for (markup, reason) in [
            ("<script src=/a.js></script>", Defer::ExternalScript),
            ("<iframe src=/f></iframe>", Defer::Frame),
            ("<script>var a = 1;", Defer::Unmodelled),
        ] {
            assert_eq!(read_written(markup).unwrap_err().reason, reason, "{markup}");
        }
    }
}
