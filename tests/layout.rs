//! The code's shape, checked: data flows one way, so no top-level module of `src/` reaches
//! (through `crate::` paths) a module that reaches back to it, and no module reaches (through
//! `super::` paths) a sibling that reaches back to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module -> modules it names through crate::`, comments left out.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    !rest.starts_with('{'),
                    "{}: name modules one by one (`crate::{{..}}` hides them from this test)",
                    rel.display()
                );
                let is_module = src.join(format!("{name}.rs")).exists() || src.join(&name).is_dir();
                if !name.is_empty() && name != module && is_module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if any: the modules along it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_string());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(graph, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

/// Every cycle of `graph`, each as `a -> b -> a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    graph
        .keys()
        .filter_map(|m| {
            cycle_from(graph, m, m, &mut vec![m.clone()], &mut BTreeSet::new())
                .map(|c| c.join(" -> "))
        })
        .collect()
}

#[test]
fn no_import_cycle_among_src_modules() {
    let graph = graph();
    assert!(graph.len() > 10, "modules found: {graph:?}");
    assert!(
        graph["chain"].contains("fetch"),
        "the graph is read: {graph:?}"
    );
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// `sibling -> siblings it names through super::`, for the modules of each folder of `src/`
/// (`folder/name`); a file's own test module is left out (there `super::` is the file).
fn sibling_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let folder = dir.strip_prefix(&src).unwrap().display().to_string();
        let name_of = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
        let siblings: BTreeSet<String> = entries
            .iter()
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
            .map(|p| name_of(p))
            .filter(|n| n != "mod" && n != "lib" && n != "main")
            .collect();
        for path in &entries {
            if path.is_dir() {
                dirs.push(path.clone());
                continue;
            }
            let module = name_of(path);
            if !siblings.contains(&module) {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let deps = graph.entry(format!("{folder}/{module}")).or_default();
            for line in code.lines() {
                let line = line.split("//").next().unwrap_or("");
                for (i, _) in line.match_indices("super::") {
                    let name: String = line[i + "super::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != module && siblings.contains(&name) {
                        deps.insert(format!("{folder}/{name}"));
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn no_import_cycle_among_sibling_modules() {
    let graph = sibling_graph();
    assert!(
        graph["browser/oxide"].contains("browser/cdp"),
        "the graph is read: {graph:?}"
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles through super::\n{}",
        cycles.join("\n")
    );
}

#[test]
fn config_is_a_leaf() {
    let graph = graph();
    assert_eq!(
        graph["config"],
        BTreeSet::new(),
        "config names no other module"
    );
}

/// The configs shipped in `deploy/` (Compose's file, the TOML inside the Kubernetes Secret)
/// are configs hoptrace accepts.
#[test]
fn deploy_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let compose = std::fs::read_to_string(root.join("hoptrace.toml")).unwrap();
    let secret = std::fs::read_to_string(root.join("kubernetes/hoptrace.yaml")).unwrap();
    // The Secret's `hoptrace.toml: |` block: the lines indented deeper than its key.
    let mut lines = secret
        .lines()
        .skip_while(|l| l.trim() != "hoptrace.toml: |");
    let key = lines.next().expect("the Secret holds hoptrace.toml");
    let indent = key.len() - key.trim_start().len();
    let block: String = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    for (name, text) in [("deploy/hoptrace.toml", compose), ("the Secret", block)] {
        let c = hoptrace::config::Config::parse(&text, Path::new(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(c.storage.backend, hoptrace::config::Backend::Postgres(_)),
            "{name}"
        );
        assert!(
            c.limits
                .shared_url
                .is_some_and(|u| u.starts_with("redis://")),
            "{name}"
        );
    }
}
