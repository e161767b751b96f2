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

/// Validates a STIX 2.1 bundle with `stix2-validator` (OASIS's validator, from PyPI): errors
/// fail; answers the count of each object type and the validator's warnings.
pub fn check_stix(bundle: &serde_json::Value) -> String {
    const SCRIPT: &str = r#"
import json, sys, collections
from stix2validator import validate_instance, ValidationOptions, print_results
data = json.load(sys.stdin)
results = validate_instance(data, ValidationOptions(version="2.1"))
if not results.is_valid:
    print_results(results)
    sys.stderr.write("the STIX bundle is not valid\n")
    sys.exit(1)
counts = collections.Counter(o["type"] for o in data["objects"])
print(json.dumps(counts, sort_keys=True))
for w in getattr(results, "warnings", None) or []:
    print("warning:", w)
for r in getattr(results, "object_results", None) or []:
    for w in r.warnings:
        print("warning:", w)
"#;
    run_python(SCRIPT, bundle)
}

/// Loads a MISP event with `pymisp` (MISP's own library, from PyPI), any warning an error,
/// and checks every object against its template in the misp-objects pymisp ships (template
/// uuid, each relation known with its attribute type, the required relations); answers
/// `objects tags to_ids refs` and the object names counted.
pub fn check_misp(event: &serde_json::Value) -> String {
    const SCRIPT: &str = r#"
import json, sys, collections, warnings, pathlib
import pymisp
from pymisp import MISPEvent
data = json.load(sys.stdin)
warnings.simplefilter("error")
e = MISPEvent()
e.load(json.dumps(data))
templates = pathlib.Path(pymisp.__file__).parent / "data" / "misp-objects" / "objects"
for o in e.objects:
    d = json.loads((templates / o.name / "definition.json").read_text())
    assert o.template_uuid == d["uuid"], (o.name, o.template_uuid, d["uuid"])
    rels = {a.object_relation for a in o.attributes}
    for a in o.attributes:
        t = d["attributes"].get(a.object_relation)
        assert t is not None, (o.name, a.object_relation)
        assert a.type == t["misp-attribute"], (o.name, a.object_relation, a.type, t["misp-attribute"])
    for r in d.get("required", []):
        assert r in rels, (o.name, "requires", r)
    if d.get("requiredOneOf"):
        assert rels & set(d["requiredOneOf"]), (o.name, "requires one of", d["requiredOneOf"])
    for ref in o.references:
        assert ref.referenced_uuid in {x.uuid for x in e.objects}, ref
names = collections.Counter(o.name for o in e.objects)
ids = sum(1 for o in e.objects for a in o.attributes if a.to_ids)
refs = sum(len(o.references) for o in e.objects)
print(len(e.objects), len(e.tags), ids, refs, json.dumps(names, sort_keys=True, separators=(",", ":")))
"#;
    run_python(SCRIPT, event)
}
