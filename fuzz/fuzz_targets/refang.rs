//! Refanging and entity decoding: never panic; text without defanging or entities comes
//! back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = hoptrace::defang::refang(text);
    let plain = !text.contains(['[', '(', '{']) && !text.to_ascii_lowercase().contains("hxxp");
    if plain {
        assert_eq!(out, text.trim());
    }
    let unescaped = hoptrace::extract::html_unescape(text);
    if !text.contains('&') {
        assert_eq!(unescaped, text);
    }
    assert!(unescaped.len() <= text.len() + 3 * text.matches('&').count());
});
