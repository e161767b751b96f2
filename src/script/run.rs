//! Running one page in boa: the surface first, then the page's scripts in order, then
//! DOMContentLoaded and load, then the timers on virtual time up to the settle time. The
//! first navigation ends the run (the browser stage records a navigation as soon as it is
//! requested, too).

use std::cell::RefCell;
use std::sync::LazyLock;

use boa_engine::{js_string, Context, JsArgs, JsError, JsResult, JsValue, NativeFunction, Source};
use regex::Regex;

use super::{page, Defer, Deferral, Request, Verdict};
use crate::trace::Via;

/// Iterations one loop may run (a loop past it is not a redirect page's).
const LOOP_LIMIT: u64 = 1_000_000;
/// Nested calls.
const RECURSION_LIMIT: usize = 400;

const SURFACE: &str = include_str!("surface.js");

#[derive(Default)]
struct State {
    nav: Option<(String, Via)>,
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

/// `__nav(kind, url)`: the page asks to go somewhere; the first ask counts.
fn nav(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let url = arg(args, 1, ctx)?;
    STATE.with_borrow_mut(|s| {
        if s.nav.is_none() {
            s.nav = Some((url, Via::Javascript));
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

/// The page's data for the surface, as a JavaScript expression (JSON).
fn page_data(req: &Request) -> String {
    let url = url::Url::parse(&req.url).ok();
    let part = |f: fn(&url::Url) -> String| url.as_ref().map(f).unwrap_or_default();
    let v = &req.visitor;
    let languages = if v.languages.is_empty() {
        vec!["en-US".to_string()]
    } else {
        v.languages.clone()
    };
    serde_json::json!({
        "href": req.url,
        "protocol": part(|u| format!("{}:", u.scheme())),
        "host": part(|u| match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
            None => u.host_str().unwrap_or("").to_string(),
        }),
        "hostname": part(|u| u.host_str().unwrap_or("").to_string()),
        "port": part(|u| u.port().map(|p| p.to_string()).unwrap_or_default()),
        "pathname": part(|u| u.path().to_string()),
        "search": part(|u| u.query().map(|q| format!("?{q}")).unwrap_or_default()),
        "hash": part(|u| u.fragment().map(|f| format!("#{f}")).unwrap_or_default()),
        "origin": part(|u| u.origin().ascii_serialization()),
        "title": req.markup.title,
        "elements": req.markup.elements,
        "epoch": 1_700_000_000_000u64,
        "navigator": {
            "userAgent": v.user_agent,
            "platform": v.platform,
            "languages": languages,
            "screen": v.screen,
            "viewport": v.viewport,
            "mobile": v.mobile,
        },
    })
    .to_string()
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
        s.nav.as_ref().map(|(target, via)| {
            if target
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("javascript:")
            {
                Verdict::Defer(Defer::ScriptUrl.because(target))
            } else {
                Verdict::Navigates {
                    target: target.clone(),
                    via: *via,
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

/// Runs the page in a fresh engine and says where it leads.
pub fn evaluate(req: &Request) -> Verdict {
    STATE.with_borrow_mut(|s| *s = State::default());
    let mut ctx = Context::default();
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
    ] {
        if let Err(e) = ctx.register_global_callable(name, 1, NativeFunction::from_fn_ptr(f)) {
            return Verdict::Defer(Defer::Crashed.because(&e.to_string()));
        }
    }
    let setup = format!("var __page = {};\n{SURFACE}", page_data(req));
    if let Some(v) = step(&mut ctx, &setup) {
        return v;
    }
    for script in &req.markup.scripts {
        let code = match script {
            page::Code::Inline(code) => code,
            page::Code::External(src) => {
                return Verdict::Defer(Defer::ExternalScript.because(&format!("{src} not fetched")))
            }
        };
        if let Some(v) = step(&mut ctx, code) {
            return v;
        }
    }
    // What the scripts wrote while the page was parsed: a meta refresh navigates after its
    // delay, once the page has loaded.
    let written = ctx
        .eval(Source::from_bytes("__hoptrace.written()"))
        .ok()
        .and_then(|w| w.as_string().map(|s| s.to_std_string_escaped()))
        .unwrap_or_default();
    if let Err(d) = page::check_written(&written) {
        return Verdict::Defer(d);
    }
    let refresh = crate::discover::meta_refresh(&written).map(|target| {
        let delay = REFRESH_DELAY
            .captures(&written)
            .and_then(|c| c[1].parse::<f64>().ok())
            .unwrap_or(0.0);
        (target, (delay * 1000.0) as u64)
    });
    let onload = req
        .markup
        .onload
        .as_ref()
        .map(|code| serde_json::Value::from(code.as_str()).to_string())
        .unwrap_or_else(|| "null".into());
    if let Some(v) = step(&mut ctx, &format!("__hoptrace.loaded({onload})")) {
        return v;
    }
    let until = match &refresh {
        Some((_, delay)) => (*delay).min(req.settle_ms),
        None => req.settle_ms,
    };
    let next = format!("__hoptrace.step({until})");
    loop {
        match ctx.eval(Source::from_bytes(&next)) {
            Ok(ran) if ran.as_boolean() == Some(true) => {}
            Ok(_) => break,
            Err(e) => return Verdict::Defer(why(&e)),
        }
        if let Err(e) = ctx.run_jobs() {
            return Verdict::Defer(why(&e));
        }
        if let Some(v) = settled() {
            return v;
        }
    }
    match refresh {
        Some((target, delay)) if delay <= req.settle_ms => Verdict::Navigates {
            target,
            via: Via::MetaRefresh,
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
        ] {
            assert_eq!(judge("http://blog.test/", html), goes(want), "{html}");
        }
        assert_eq!(
            judge("http://blog.test/", "<script>var u = '/m'; document.write('<meta http-equiv=\"refresh\" content=\"0;url=' + u + '\">');</script>"),
            Verdict::Navigates { target: "/m".into(), via: Via::MetaRefresh }
        );
    }

    #[test]
    fn code_that_does_not_run_is_no_hop() {
        for html in [
            "<script>function go() { location.replace('https://a.example/'); }</script>",
            "<script>if (false) { location.href = 'https://a.example/'; }</script>",
            "<script>// location.href = 'https://a.example/';\n/* location.assign('https://b.example/') */</script>",
            "<script>setTimeout(function () { location.href = '/late'; }, 60000);</script>",
            "<script>history.pushState({}, '', '/p');</script>",
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
            ("<form id=f method=post action=/p></form><script>document.getElementById('f').submit();</script>", Defer::PostForm),
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
