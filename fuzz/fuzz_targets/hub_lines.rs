//! Scan input: arbitrary bytes as a Docker Hub JSONL dump or text never panic, and every
//! document read has a repository name.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = std::io::Cursor::new(data.to_vec());
    for doc in hoptrace::scan::documents(input, "fuzz")
        .take(1000)
        .flatten()
    {
        assert!(!doc.repository.is_empty());
        let _ = hoptrace::scan::links_of(&doc, 200);
    }
});
