//! The script engine on arbitrary scripts (in process, as a worker runs them): it never
//! panics, whatever the script (run with `-rss_limit_mb` above the worker's 1 GiB: the
//! address-space limit is the worker's, not the engine's).
#![no_main]
use libfuzzer_sys::fuzz_target;

use hoptrace::browser::Identity;
use hoptrace::script::{evaluate, Request, Verdict, Visitor};

fuzz_target!(|data: &[u8]| {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    let visitor = Visitor::from(&Identity::new(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0",
        "en-US",
    ));
    let url = url::Url::parse("http://blog.test/p?el=x").unwrap();
    let html = format!("<html><body><a id=a href=/x>x</a><form id=f action=/s><input name=q value=1></form><script>{code}</script></body></html>");
    let Ok(request) = Request::new(&url, &html, visitor, std::time::Duration::from_secs(3)) else {
        return;
    };
    // Any verdict is an answer; a panic or a hang is the finding.
    let _: Verdict = evaluate(&request);
});
