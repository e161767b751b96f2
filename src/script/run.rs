//! Running one page in boa: the surface first, then the page's scripts in order, then
//! DOMContentLoaded and load, then the timers on virtual time up to the settle time. The
//! first navigation ends the run (the browser stage records a navigation as soon as it is
//! requested, too).

use std::cell::RefCell;
use std::sync::LazyLock;

use boa_engine::{js_string, Context, JsArgs, JsError, JsResult, JsValue, NativeFunction, Source};
use regex::Regex;

use super::{page, Defer, Deferral, Request, Verdict};
use crate::discover::MAX_FORM_BYTES;
use crate::trace::Via;

/// Iterations one loop may run (a loop past it is not a redirect page's).
const LOOP_LIMIT: u64 = 1_000_000;
/// Nested calls.
const RECURSION_LIMIT: usize = 400;

const SURFACE: &str = include_str!("surface.js");
/// `URL` and `URLSearchParams`, evaluated on a page's first use (see `__module`).
const SURFACE_URL: &str = include_str!("surface-url.js");

/// The first navigation a page asked for: where, and the form body it POSTs.
struct Nav {
    target: String,
    post: Option<String>,
}

#[derive(Default)]
struct State {
    nav: Option<Nav>,
    defer: Option<Deferral>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn arg(args: &[JsValue], i: usize, ctx: &mut Context) -> JsResult<String> {
    Ok(args
        .get_or_undefined(i)
        .to_string(ctx)?
        .to_std_string_escaped())
}

/// `__nav(kind, url, body, base)`: the page asks to go somewhere (`kind` "post": a form
/// POSTing `body`; `base`: the frame's URL a frame's target is relative to); the first ask
/// counts.
fn nav(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let mut target = arg(args, 1, ctx)?;
    if let Some(base) = args.get(3).and_then(JsValue::as_string) {
        let joined =
            url::Url::parse(&base.to_std_string_escaped()).and_then(|b| b.join(target.trim()));
        if let Ok(url) = joined {
            target = url.to_string();
        }
    }
    let post = match arg(args, 0, ctx)?.as_str() {
        "post" => {
            // Past the bound the hop refuses it anyway: keep no more than shows that.
            let mut body = arg(args, 2, ctx)?;
            if body.len() > MAX_FORM_BYTES {
                let mut end = MAX_FORM_BYTES + 1;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
            }
            Some(body)
        }
        _ => None,
    };
    STATE.with_borrow_mut(|s| {
        if s.nav.is_none() {
            s.nav = Some(Nav { target, post });
        }
    });
    Ok(JsValue::undefined())
}

/// `__defer(reason, what)`: the surface met something it cannot answer for.
fn defer(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let reason = Defer::from_str(&arg(args, 0, ctx)?);
    let what = arg(args, 1, ctx)?;
    STATE.with_borrow_mut(|s| {
        if s.defer.is_none() {
            s.defer = Some(reason.because(&what));
        }
    });
    Ok(JsValue::undefined())
}

fn invalid_character() -> JsError {
    boa_engine::JsNativeError::typ()
        .with_message("InvalidCharacterError")
        .into()
}

/// `atob`: base64 to a string of bytes (Latin-1), whitespace and missing padding forgiven.
fn atob(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    use base64::Engine;
    let text: String = arg(args, 0, ctx)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(text).map_err(|_| invalid_character())?;
    let s: String = bytes.into_iter().map(char::from).collect();
    Ok(JsValue::from(js_string!(s)))
}

/// `btoa`: a string of bytes to base64; a character above U+00FF throws, as in a browser.
fn btoa(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    use base64::Engine;
    let bytes = arg(args, 0, ctx)?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| invalid_character()))
        .collect::<JsResult<Vec<u8>>>()?;
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(JsValue::from(js_string!(s)))
}

/// Why an evaluation error ended the run.
fn why(e: &JsError) -> Deferral {
    if let Some(d) = STATE.with_borrow(|s| s.defer.clone()) {
        return d;
    }
    if let Some(native) = e.as_native().filter(|n| n.is_runtime_limit()) {
        let message = native.message().to_string();
        let reason = if message.contains("loop") {
            Defer::Loop
        } else {
            Defer::Recursion
        };
        return reason.because(&message);
    }
    Defer::ScriptError.because(&e.to_string())
}

/// A document's data for the surface, as a JavaScript expression (JSON): the page's, or
/// (with `top`, the top page's URL) a frame's.
fn page_data(req: &Request, href: &str, markup: &page::Markup, top: Option<&str>) -> String {
    let v = &req.visitor;
    let languages = if v.languages.is_empty() {
        vec!["en-US".to_string()]
    } else {
        v.languages.clone()
    };
    let mut data = serde_json::json!({
        "href": href,
        "top": top,
        "frames": req.frames.len(),
        "title": markup.title,
        "elements": markup.elements,
        "epoch": 1_700_000_000_000u64,
        "navigator": {
            "userAgent": v.user_agent,
            "platform": v.platform,
            "languages": languages,
            "screen": v.screen,
            "viewport": v.viewport,
            "mobile": v.mobile,
        },
    });
    if let (Ok(url), Some(map)) = (url::Url::parse(href), data.as_object_mut()) {
        let mut parts = url_parts(&url);
        parts.remove("href");
        map.extend(parts);
    }
    data.to_string()
}

/// A URL's parts as `location` and `URL` show them.
fn url_parts(u: &url::Url) -> serde_json::Map<String, serde_json::Value> {
    let host = u.host_str().unwrap_or("");
    let prefixed =
        |p: &str, s: Option<&str>| s.filter(|s| !s.is_empty()).map(|s| format!("{p}{s}"));
    let serde_json::Value::Object(map) = serde_json::json!({
        "href": u.as_str(),
        "protocol": format!("{}:", u.scheme()),
        "username": u.username(),
        "password": u.password().unwrap_or(""),
        "host": match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        },
        "hostname": host,
        "port": u.port().map(|p| p.to_string()).unwrap_or_default(),
        "pathname": u.path(),
        "search": prefixed("?", u.query()).unwrap_or_default(),
        "hash": prefixed("#", u.fragment()).unwrap_or_default(),
        "origin": u.origin().ascii_serialization(),
    }) else {
        unreachable!("an object literal")
    };
    map
}

/// `__url(input, base)`: `input` parsed as `new URL` does (relative to `base` when given),
/// as the JSON of its parts; a TypeError when it is no URL.
fn url(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let input = arg(args, 0, ctx)?;
    let base = match args.get(1) {
        Some(b) if !b.is_undefined() => Some(b.to_string(ctx)?.to_std_string_escaped()),
        _ => None,
    };
    let parsed = match base {
        Some(base) => url::Url::parse(&base).and_then(|b| b.join(&input)),
        None => url::Url::parse(&input),
    };
    let url = parsed.map_err(|_| {
        boa_engine::JsNativeError::typ()
            .with_message(format!("Failed to construct 'URL': Invalid URL {input:?}"))
    })?;
    let json = serde_json::Value::Object(url_parts(&url)).to_string();
    Ok(JsValue::from(js_string!(json)))
}

/// `__write(markup)`: what `document.write` adds, read as a page is: the JSON of its elements
/// and its scripts' code; what the engine does not model there (a frame, an external
/// script, a script cut between writes) defers.
fn write(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let markup = arg(args, 0, ctx)?;
    let read = page::read_written(&markup);
    let written = match read {
        Ok(w) => w,
        Err(d) => {
            let what = d.what.clone();
            STATE.with_borrow_mut(|s| {
                if s.defer.is_none() {
                    s.defer = Some(d);
                }
            });
            return Err(boa_engine::JsNativeError::error()
                .with_message(format!("hoptrace: {what}"))
                .into());
        }
    };
    let json = serde_json::json!({
        "elements": written.elements,
        "scripts": written.scripts,
    })
    .to_string();
    Ok(JsValue::from(js_string!(json)))
}

/// `__module(name)`: the source of a part of the surface a page needs only sometimes (the
/// surface evaluates it on first use: an expression, a function it calls with what it shares).
fn module(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    match arg(args, 0, ctx)?.as_str() {
        "url" => Ok(JsValue::from(js_string!(SURFACE_URL))),
        other => Err(boa_engine::JsNativeError::error()
            .with_message(format!("no surface module {other}"))
            .into()),
    }
}

static REFRESH_DELAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<meta\b[^>]*\bcontent\s*=\s*["']?\s*(\d+(?:\.\d+)?)"#).unwrap()
});

/// Where the run stands after a step: `Some` ends it.
fn settled() -> Option<Verdict> {
    STATE.with_borrow(|s| {
        if let Some(d) = &s.defer {
            return Some(Verdict::Defer(d.clone()));
        }
        s.nav.as_ref().map(|nav| {
            if nav
                .target
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("javascript:")
            {
                Verdict::Defer(Defer::ScriptUrl.because(&nav.target))
            } else {
                Verdict::Navigates {
                    target: nav.target.clone(),
                    via: Via::Javascript,
                    post: nav.post.clone(),
                }
            }
        })
    })
}

/// Runs `code` to its end (and the promise jobs it queued); `Some` ends the run.
fn step(ctx: &mut Context, code: &str) -> Option<Verdict> {
    let result = ctx.eval(Source::from_bytes(code)).map(|_| ());
    let result = result.and_then(|_| ctx.run_jobs());
    if let Err(e) = result {
        return Some(Verdict::Defer(why(&e)));
    }
    settled()
}

/// A fresh engine (its own realm: nothing of another page's) with the natives the surface
/// uses.
fn engine() -> Result<Context, Verdict> {
    let mut ctx = Context::default();
    // Constant folding walks every script once more, to save time on a script run once.
    ctx.set_optimizer_options(boa_engine::optimizer::OptimizerOptions::empty());
    ctx.runtime_limits_mut()
        .set_loop_iteration_limit(LOOP_LIMIT);
    ctx.runtime_limits_mut()
        .set_recursion_limit(RECURSION_LIMIT);
    for (name, f) in [
        (
            js_string!("__nav"),
            nav as boa_engine::native_function::NativeFunctionPointer,
        ),
        (js_string!("__defer"), defer),
        (js_string!("atob"), atob),
        (js_string!("btoa"), btoa),
        (js_string!("__url"), url),
        (js_string!("__write"), write),
        (js_string!("__module"), module),
    ] {
        if let Err(e) = ctx.register_global_callable(name, 1, NativeFunction::from_fn_ptr(f)) {
            return Err(Verdict::Defer(Defer::Crashed.because(&e.to_string())));
        }
    }
    Ok(ctx)
}

/// A document in a fresh engine: the surface on `data`, then its scripts in order.
fn document(data: String, markup: &page::Markup) -> Result<Context, Verdict> {
    let mut ctx = engine()?;
    let setup = format!("var __page = {data};\n{SURFACE}");
    if let Some(v) = step(&mut ctx, &setup) {
        return Err(v);
    }
    for script in &markup.scripts {
        let code = match script {
            page::Code::Inline(code) => code,
            page::Code::External(src) => {
                return Err(Verdict::Defer(
                    Defer::ExternalScript.because(&format!("{src} not fetched")),
                ))
            }
        };
        if let Some(v) = step(&mut ctx, code) {
            return Err(v);
        }
    }
    Ok(ctx)
}

/// `<body onload>` as an argument of `__hoptrace.loaded`.
fn onload_of(markup: &page::Markup) -> String {
    markup
        .onload
        .as_ref()
        .map(|code| serde_json::Value::from(code.as_str()).to_string())
        .unwrap_or_else(|| "null".into())
}

/// When the next timer of `ctx` is due (virtual ms), if one is set.
fn due(ctx: &mut Context) -> Result<Option<f64>, Verdict> {
    let at = ctx
        .eval(Source::from_bytes("__hoptrace.due()"))
        .map_err(|e| Verdict::Defer(why(&e)))?;
    Ok(at.as_number().filter(|d| *d >= 0.0))
}

/// Runs the timers of the page and its frames on virtual time, in the order they fall due
/// (the page first on a tie), up to `until`; `Some` ends the run.
fn run_timers(docs: &mut [Context], until: u64) -> Option<Verdict> {
    let next = format!("__hoptrace.step({until})");
    loop {
        let at = if docs.len() == 1 {
            0
        } else {
            let mut first: Option<(f64, usize)> = None;
            for (i, ctx) in docs.iter_mut().enumerate() {
                match due(ctx) {
                    Ok(Some(d)) if first.is_none_or(|(f, _)| d < f) => first = Some((d, i)),
                    Ok(_) => {}
                    Err(v) => return Some(v),
                }
            }
            match first {
                Some((d, i)) if d <= until as f64 => i,
                _ => return None,
            }
        };
        let ctx = &mut docs[at];
        match ctx.eval(Source::from_bytes(&next)) {
            Ok(ran) if ran.as_boolean() == Some(true) => {}
            Ok(_) => return None,
            Err(e) => return Some(Verdict::Defer(why(&e))),
        }
        if let Err(e) = ctx.run_jobs() {
            return Some(Verdict::Defer(why(&e)));
        }
        if let Some(v) = settled() {
            return Some(v);
        }
    }
}

/// Runs the page in a fresh engine and says where it leads.
pub fn evaluate(req: &Request) -> Verdict {
    STATE.with_borrow_mut(|s| *s = State::default());
    let mut top = match document(page_data(req, &req.url, &req.markup, None), &req.markup) {
        Ok(ctx) => ctx,
        Err(v) => return v,
    };
    // What the scripts wrote while the page was parsed: a meta refresh navigates after its
    // delay, once the page has loaded.
    let written = top
        .eval(Source::from_bytes("__hoptrace.written()"))
        .ok()
        .and_then(|w| w.as_string().map(|s| s.to_std_string_escaped()))
        .unwrap_or_default();
    let refresh = crate::discover::meta_refresh(&written).map(|target| {
        let delay = REFRESH_DELAY
            .captures(&written)
            .and_then(|c| c[1].parse::<f64>().ok())
            .unwrap_or(0.0);
        (target, (delay * 1000.0) as u64)
    });
    if let Some(v) = step(&mut top, "__hoptrace.parsed()") {
        return v;
    }
    // Then the frames load, each in its own engine, and then the page's load event.
    let mut docs = vec![top];
    for frame in &req.frames {
        let data = page_data(req, &frame.url, &frame.markup, Some(&req.url));
        let mut ctx = match document(data, &frame.markup) {
            Ok(ctx) => ctx,
            Err(v) => return v,
        };
        let load = format!(
            "__hoptrace.parsed(); __hoptrace.loaded({})",
            onload_of(&frame.markup)
        );
        if let Some(v) = step(&mut ctx, &load) {
            return v;
        }
        docs.push(ctx);
    }
    let load = format!("__hoptrace.loaded({})", onload_of(&req.markup));
    if let Some(v) = step(&mut docs[0], &load) {
        return v;
    }
    let until = match &refresh {
        Some((_, delay)) => (*delay).min(req.settle_ms),
        None => req.settle_ms,
    };
    if let Some(v) = run_timers(&mut docs, until) {
        return v;
    }
    match refresh {
        Some((target, delay)) if delay <= req.settle_ms => Verdict::Navigates {
            target,
            via: Via::MetaRefresh,
            post: None,
        },
        _ => Verdict::Stays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitor() -> super::super::Visitor {
        super::super::Visitor {
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0".into(),
            platform: "Win32".into(),
            languages: vec!["en-US".into(), "en".into()],
            screen: (1366, 768),
            viewport: (1366, 657),
            mobile: false,
        }
    }

    fn judge(url: &str, html: &str) -> Verdict {
        let url = url::Url::parse(url).unwrap();
        match Request::new(&url, html, visitor(), std::time::Duration::from_secs(3)) {
            Ok(req) => evaluate(&req),
            Err(d) => Verdict::Defer(d),
        }
    }

    fn goes(target: &str) -> Verdict {
        Verdict::Navigates {
            target: target.into(),
            via: Via::Javascript,
            post: None,
        }
    }

    /// The report's blogger page (the tests' fixture).
    const REPORT: &str = include_str!("../../tests/fixtures/report.html");

    #[test]
    fn the_reports_page_with_and_without_el() {
        assert_eq!(
            judge("http://blog.test/p?el=a1b2", REPORT),
            goes("https://gohhs.com/a1b2")
        );
        assert_eq!(judge("http://blog.test/p", REPORT), Verdict::Stays);
    }

    #[test]
    fn forms_of_script_redirects() {
        for (html, want) in [
            ("<script>location.href = atob('L2F0b2I=');</script>", "/atob"),
            ("<script>eval(atob('bG9jYXRpb24uYXNzaWduKCIvZXZhbCIp'));</script>", "/eval"),
            ("<script>new Function('u', 'window.location.replace(u)')('/fn');</script>", "/fn"),
            ("<script>window.location = '/w';</script>", "/w"),
            ("<script>top.location.href = '/top';</script>", "/top"),
            ("<script>document.location = '/doc';</script>", "/doc"),
            ("<script>var n = 3; var t = setInterval(function () { n--; if (n <= 0) { clearInterval(t); location.href = '/countdown'; } }, 1000);</script>", "/countdown"),
            ("<script>window.addEventListener('load', function () { location.href = '/load'; });</script>", "/load"),
            ("<script>document.addEventListener('DOMContentLoaded', function () { location.href = '/dcl'; });</script>", "/dcl"),
            ("<html><body onload=\"location.href='/onload'\">x</body></html>", "/onload"),
            ("<form id=f action='/s'><input name=q value='a b'></form><script>document.getElementById('f').submit();</script>", "/s?q=a+b"),
            ("<script>if (/Windows/.test(navigator.userAgent)) location.href = '/win'; else location.href = '/other';</script>", "/win"),
            ("<script>document.cookie = 'a=1'; if (document.cookie.indexOf('a=1') >= 0) location.href = '/c';</script>", "/c"),
            ("<script>var u = new URL('/x?a=1', location.href); u.searchParams.set('b', '2 3'); u.searchParams.append('c', \"it's\"); location.href = u.href;</script>", "http://blog.test/x?a=1&b=2+3&c=it%27s"),
            ("<script>var p = new URLSearchParams('?id=42&x=y+z'); location.href = '/q/' + p.get('id') + '/' + p.get('x') + '/' + p.has('no');</script>", "/q/42/y z/false"),
            ("<script>location.href = new URL('../up#h', 'http://blog.test/a/b/c').toString();</script>", "http://blog.test/a/up#h"),
            ("<script>var u = new URL('https://a.example/p?q=1'); u.search = 'r=2'; u.hash = 'f'; location.assign(u);</script>", "https://a.example/p?r=2#f"),
            ("<script>try { new URL('nope'); } catch (e) { location.href = '/' + (e instanceof TypeError); }</script>", "/true"),
            ("<script>document.write('<scr' + 'ipt>location.href = \"/written\";</scr' + 'ipt>');</script>", "/written"),
            ("<script>document.write('<scr' + 'ipt>var w = \"/w2\"; function f() { return w; }</scr' + 'ipt>'); location.href = f();</script>", "/w2"),
            ("<script>document.write('<form id=w action=/wf><input name=a value=1></form>'); document.getElementById('w').submit();</script>", "/wf?a=1"),
            ("<script>var w = window.open('/popup'); if (!w) location.href = '/blocked';</script>", "/blocked"),
            ("<script>window.open('/self', '_self');</script>", "/self"),
        ] {
            assert_eq!(judge("http://blog.test/", html), goes(want), "{html}");
        }
        assert_eq!(
            judge("http://blog.test/", "<script>var u = '/m'; document.write('<meta http-equiv=\"refresh\" content=\"0;url=' + u + '\">');</script>"),
            Verdict::Navigates { target: "/m".into(), via: Via::MetaRefresh, post: None }
        );
    }

    /// A page with same-origin frames, as the engine gets it (the frames fetched).
    fn judge_framed(url: &str, html: &str, frames: &[(&str, &str)]) -> Verdict {
        let url = url::Url::parse(url).unwrap();
        let mut req =
            Request::new(&url, html, visitor(), std::time::Duration::from_secs(3)).unwrap();
        for (src, html) in frames {
            req.frames.push(super::super::Frame {
                url: url.join(src).unwrap().to_string(),
                markup: page::read(html).unwrap(),
            });
        }
        evaluate(&req)
    }

    #[test]
    fn a_frame_navigates_the_top_page() {
        let top = "<iframe src=/in/f></iframe><script>var mine = 1;</script>";
        for (frame, want) in [
            ("<script>top.location.href = 'next';</script>", "http://blog.test/in/next"),
            ("<script>parent.location.replace('/up');</script>", "http://blog.test/up"),
            ("<script>setTimeout(function () { top.location = 'https://b.example/t'; }, 100);</script>", "https://b.example/t"),
            // The frame's globals are its own, and the top page's are not the frame's.
            ("<script>if (Object.getOwnPropertyNames(globalThis).indexOf('mine') < 0) top.location.assign('/own');</script>", "http://blog.test/own"),
        ] {
            assert_eq!(judge_framed("http://blog.test/p", top, &[("/in/f", frame)]), goes(want), "{frame}");
        }
        // The page's own timer, due first, wins over the frame's later one.
        assert_eq!(
            judge_framed(
                "http://blog.test/p",
                "<iframe src=/f></iframe><script>setTimeout(function () { location.href = '/page'; }, 50);</script>",
                &[("/f", "<script>setTimeout(function () { top.location.href = '/frame'; }, 500);</script>")]
            ),
            goes("/page")
        );
        match judge_framed(
            "http://blog.test/p",
            top,
            &[("/in/f", "<script>location.href = '/self';</script>")],
        ) {
            Verdict::Defer(d) => assert_eq!(d.reason, Defer::Frame, "{d}"),
            other => panic!("a frame navigating itself: {other:?}"),
        }
        assert_eq!(
            judge_framed("http://blog.test/p", top, &[("/in/f", "<p>nothing</p>")]),
            Verdict::Stays
        );
    }

    /// Pages run one after another in one worker: nothing one page leaves reaches the next.
    #[test]
    fn a_page_sees_nothing_of_the_page_before() {
        let first = "<script>window.leaked = 1; Array.prototype.leaked = 1; Object.prototype.leaked2 = 1; String.prototype.trim = function () { return 'x'; }; location.href = '/first';</script>";
        let second = "<script>if (Object.getOwnPropertyNames(globalThis).indexOf('leaked') >= 0 || [].leaked || ({}).leaked2 || ' a '.trim() !== 'a') location.href = '/leak'; else location.href = '/clean';</script>";
        assert_eq!(judge("http://blog.test/", first), goes("/first"));
        assert_eq!(judge("http://blog.test/", second), goes("/clean"));
    }

    #[test]
    fn a_form_submitted_with_post_carries_its_body() {
        assert_eq!(
            judge(
                "http://blog.test/p?x=1",
                "<form id=f method=POST action='/s?k=v'><input name=q value='a b&c'><input name=t value=\"it's\"></form>\
                 <script>document.forms[0].submit();</script>"
            ),
            Verdict::Navigates {
                target: "/s?k=v".into(),
                via: Via::Javascript,
                post: Some("q=a+b%26c&t=it%27s".into()),
            }
        );
        // Past the bound, the verdict keeps just enough to be refused for it.
        let big = "x".repeat(MAX_FORM_BYTES * 2);
        let html = format!("<form id=f method=post action=/s><input name=q value='{big}'></form><script>document.getElementById('f').submit();</script>");
        match judge("http://blog.test/", &html) {
            Verdict::Navigates {
                post: Some(body), ..
            } => assert_eq!(body.len(), MAX_FORM_BYTES + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn code_that_does_not_run_is_no_hop() {
        for html in [
            "<script>function go() { location.replace('https://a.example/'); }</script>",
            "<script>if (false) { location.href = 'https://a.example/'; }</script>",
            "<script>// location.href = 'https://a.example/';\n/* location.assign('https://b.example/') */</script>",
            "<script>setTimeout(function () { location.href = '/late'; }, 60000);</script>",
            "<script>history.pushState({}, '', '/p');</script>",
            "<script>window.open('https://a.example/popup');</script>",
        ] {
            assert_eq!(judge("http://blog.test/", html), Verdict::Stays, "{html}");
        }
    }

    #[test]
    fn what_is_not_modelled_defers() {
        for (html, reason) in [
            ("<script>requestAnimationFrame(function () {});</script>", Defer::Unmodelled),
            ("<script>if (typeof chrome === 'undefined') location.href = '/bot';</script>", Defer::Unmodelled),
            ("<script>try { navigator.hardwareConcurrency } catch (e) {} location.href = '/x';</script>", Defer::Unmodelled),
            ("<script>undefinedFunction();</script>", Defer::Unmodelled),
            ("<script>throw new Error('x');</script>", Defer::ScriptError),
            ("<form id=f method=post enctype=multipart/form-data action=/p></form><script>document.getElementById('f').submit();</script>", Defer::Unmodelled),
            ("<script>location.href = 'javascript:alert(1)';</script>", Defer::ScriptUrl),
            ("<script>while (true) {}</script>", Defer::Loop),
            ("<script>function f() { return f() + 1; } f();</script>", Defer::Recursion),
            ("<script>for (var i = 0; i < 1000000; i++) setTimeout(function () {}, i);</script>", Defer::Timers),
        ] {
            match judge("http://blog.test/", html) {
                Verdict::Defer(d) => assert_eq!(d.reason, reason, "{html}: {d}"),
                other => panic!("{html}: {other:?}"),
            }
        }
    }
}
