//! What the project says about itself stays true: shell completions and manual pages made by
//! the binary cover every command, every command's long help has an example, every route of
//! the API is in the OpenAPI document and on docs/api.md, and the docs' links lead somewhere.
//! (docs/configuration.md is checked against the config types by a unit test:
//! `cargo test --lib config::reference`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use hoptrace::api::ROUTES;
use hoptrace::cli::Cli;

fn hoptrace(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hoptrace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every command, nested ones included, as the words that run it (`["watch", "add"]`), with
/// its long options.
fn commands() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        for sub in cmd.get_subcommands() {
            let mut words = path.clone();
            words.push(sub.get_name().to_string());
            let longs = sub
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}"))
                .collect();
            out.push((words.clone(), longs));
            walk(sub, words, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn completions_offer_every_command_and_option_in_every_shell() {
    let commands = commands();
    assert!(commands.len() > 10, "{commands:?}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = hoptrace(&["completions", shell]);
        for (words, longs) in &commands {
            let name = words.last().unwrap();
            assert!(script.contains(name.as_str()), "{shell}: no `{name}`");
            for long in longs {
                assert!(
                    script.contains(long.trim_start_matches('-')),
                    "{shell}: no {long} of {words:?}"
                );
            }
        }
    }
}

#[test]
fn a_manual_page_per_command_with_its_options_and_examples() {
    let page = hoptrace(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH hoptrace"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    hoptrace(&["man", "--dir", dir.path().to_str().unwrap()]);
    for (words, longs) in commands() {
        if words == ["help"] {
            continue;
        }
        let file: PathBuf = dir.path().join(format!("hoptrace-{}.1", words.join("-")));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            page.contains(&words[0]),
            "hoptrace.1 lists no `{}`",
            words[0]
        );
        for long in &longs {
            // roff escapes each `-` of an option as `\-`.
            let roff = long.replace('-', "\\-");
            assert!(text.contains(&roff), "{}: no {long}", file.display());
        }
        if words.len() == 1 {
            assert!(
                text.contains("Examples:"),
                "{}: no examples",
                file.display()
            );
        }
    }
}

#[test]
fn every_command_s_long_help_shows_an_example_of_it() {
    for (words, _) in commands() {
        if words.len() != 1 || words[0] == "help" {
            continue;
        }
        let help = hoptrace(&[words[0].as_str(), "--help"]);
        let example = format!("  hoptrace {}", words[0]);
        assert!(
            help.contains("Examples:") && help.contains(&example),
            "hoptrace {} --help has no example:\n{help}",
            words[0]
        );
    }
}

/// Every route of the router's table is in the OpenAPI document (src/api/openapi.json), and
/// docs/api.md links that document and names every route.
#[test]
fn every_route_is_in_the_openapi_document_and_on_the_api_page() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("src/api/openapi.json")).unwrap(),
    )
    .unwrap();
    let page = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    assert!(
        page.contains("(../src/api/openapi.json)"),
        "docs/api.md does not link it"
    );
    for r in ROUTES {
        let method = r.method.to_lowercase();
        assert!(
            doc["paths"][r.path][&method].is_object(),
            "{} {} is not in src/api/openapi.json",
            r.method,
            r.path
        );
        let named = format!("`{} {}", r.method, r.path);
        assert!(
            page.contains(&named),
            "docs/api.md does not name {} {}",
            r.method,
            r.path
        );
    }
}

/// Relative links in the README and the docs lead to files that exist.
#[test]
fn the_docs_links_lead_to_files_that_exist() {
    let mut pages = vec![
        root().join("README.md"),
        root().join("ARCHITECTURE.md"),
        root().join("CHANGELOG.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            let file = target.split('#').next().unwrap_or("");
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            // docs/security.md is written separately; a link to it may come first.
            if file.ends_with("security.md") {
                continue;
            }
            if !page.parent().unwrap().join(file).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
