//! The formats' own tools, run on what hoptrace exports: Python packages in the virtualenv
//! scripts/setup makes (`HOPTRACE_PYENV`, default `~/.cache/hoptrace/pyenv`).

use std::path::PathBuf;

/// The virtualenv's Python; panics with what to run when it is missing.
pub fn python() -> PathBuf {
    let env = std::env::var_os("HOPTRACE_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/hoptrace/pyenv")
        });
    let python = env.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it makes the tests' Python tools)",
        python.display()
    );
    python
}

/// Runs `script` (Python) with `json` on its stdin; answers its stdout, panicking with its
/// stderr when it fails.
pub fn run_python(script: &str, json: &serde_json::Value) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the check failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Loads `har` with haralyzer (the HAR reader from PyPI) and walks every page and entry as a
/// HAR consumer would; answers one line per entry: `page url status`.
pub fn check_har(har: &serde_json::Value) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys
from haralyzer import HarParser, HarPage
data = json.load(sys.stdin)
parser = HarParser(data)
assert parser.creator["name"] == "hoptrace", parser.creator
for page in parser.pages:
    page.startedDateTime  # parsed as a date
    for e in page.entries:
        # Each property parses its part of the entry (dates, timings, headers).
        assert e.startTime is not None and e.time is not None
        assert isinstance(e.request.headers, list) and isinstance(e.response.headers, list)
        e.request.url; e.response.mimeType; e.timings; e.serverAddress
        print(page.page_id, e.request.url, e.response.status)
"#;
    run_python(SCRIPT, har)
        .lines()
        .map(str::to_string)
        .collect()
}
