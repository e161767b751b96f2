//! Static wrapper decoding: never panics, and every layer taken off is a different URL, so
//! unwrapping a link always ends (the chain also caps hops; this keeps each layer honest).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let candidates = [
        text.to_string(),
        format!("https://www.google.com/url?q={text}&usg=x"),
        format!("https://urldefense.com/v3/__{text}__;!!x"),
    ];
    for c in candidates {
        let Ok(mut url) = url::Url::parse(&c) else {
            continue;
        };
        for _ in 0..8 {
            let Some(layer) = hoptrace::decode::unwrap(&url) else {
                break;
            };
            match url::Url::parse(&layer.target) {
                Ok(next) if next != url => url = next,
                _ => break,
            }
        }
    }
});
