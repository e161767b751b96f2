//! The script engine's budgets on hostile pages, in its real worker processes (the hoptrace
//! binary): each page ends in a deferral naming why, nothing panics, and the next page is
//! decided as before.

mod common;

use std::time::Duration;

use common::REPORT;

use hoptrace::browser::Identity;
use hoptrace::config::Config;
use hoptrace::fetch::Response;
use hoptrace::profile::Profiles;
use hoptrace::script::{Defer, Page, ScriptEngine, Verdict, Visitor};
use hoptrace::trace::Via;

fn visitor() -> Visitor {
    Visitor::from(&Identity::new(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0",
        "en-US",
    ))
}

fn page(html: String) -> Response {
    Response {
        status: 200,
        headers: Default::default(),
        peer: None,
        body: html.into(),
        body_note: None,
        download: None,
        record: Default::default(),
    }
}

async fn judge(engine: &ScriptEngine, url: &str, html: String) -> Verdict {
    let url = url::Url::parse(url).unwrap();
    let profiles = Profiles::from_config(&Config::default());
    let response = page(html);
    let page = Page {
        url: &url,
        response: &response,
        profile: profiles.default_profile(),
        visitor: visitor(),
        settle: Duration::from_secs(3),
    };
    engine.judge(page, Duration::from_secs(2)).await
}

fn engine() -> ScriptEngine {
    ScriptEngine::new(Some(env!("CARGO_BIN_EXE_hoptrace").into()), 1)
}

#[tokio::test]
async fn hostile_scripts_end_in_a_deferral_and_the_next_page_is_decided() {
    // One worker: each hostile page hits the same process the next page needs.
    let engine = engine();
    let fifty_mb = format!("<script>var s = '{}';</script>", "a".repeat(50 << 20));
    // Each case and the reasons it may end with (an unoptimised build may reach the time
    // limit before the iteration limit).
    let cases: Vec<(&str, String, &[Defer])> = vec![
        (
            "endless loop",
            "<script>for (;;) {}</script>".into(),
            &[Defer::Loop, Defer::Time],
        ),
        (
            "endless loop that catches its limit",
            "<script>while (true) { try { for (;;) {} } catch (e) {} }</script>".into(),
            &[Defer::Loop, Defer::Time],
        ),
        (
            "allocation bomb",
            "<script>var kept = []; for (var i = 0; ; i++) kept.push(String(i % 10).repeat(1 << 26));</script>"
                .into(),
            &[Defer::Memory],
        ),
        (
            "deep recursion",
            "<script>function f(n) { return f(n + 1) + 1; } f(0);</script>".into(),
            &[Defer::Recursion],
        ),
        (
            "a million timers",
            "<script>for (var i = 0; i < 1000000; i++) setTimeout('x()', i);</script>".into(),
            &[Defer::Timers, Defer::Time],
        ),
        ("a 50 MB script", fifty_mb, &[Defer::ScriptSize]),
    ];
    for (name, html, want) in cases {
        match judge(&engine, "http://blog.test/p", html).await {
            Verdict::Defer(d) => assert!(want.contains(&d.reason), "{name}: {d}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            judge(&engine, "http://blog.test/p?el=n3xt", REPORT.into()).await,
            Verdict::Navigates {
                target: "https://gohhs.com/n3xt".into(),
                via: Via::Javascript,
                post: None,
            },
            "the page after {name}"
        );
    }
}

#[tokio::test]
async fn a_worker_that_is_not_one_is_a_deferral() {
    let engine = ScriptEngine::new(Some("/bin/cat".into()), 1);
    match judge(&engine, "http://blog.test/p?el=x", REPORT.into()).await {
        Verdict::Defer(d) => assert_eq!(d.reason, Defer::Unavailable, "{d}"),
        other => panic!("{other:?}"),
    }
}
