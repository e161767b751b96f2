//! URL normalisation of user input: never panics, and is idempotent (a normalised URL
//! normalises to itself), so cache keys are stable.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = hoptrace::input::parse_input(text) {
        let again = hoptrace::input::parse_input(url.as_str()).expect("a normalised URL parses");
        assert_eq!(again.as_str(), url.as_str());
    }
});
