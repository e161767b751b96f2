//! `docs/configuration.md`, generated from the config types: every key, its type, default and
//! meaning (the field's `///` comment), read from the JSON Schema `schemars` derives from the
//! structs. The test fails when the page differs from what the types say;
//! `HOPTRACE_BLESS=1 cargo test --lib config::reference` writes it anew.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::Config;

const PAGE: &str = "docs/configuration.md";
const BLESS: &str = "HOPTRACE_BLESS=1 cargo test --lib config::reference";

/// One key of the file: its dotted name, type, default and meaning.
struct Key {
    name: String,
    kind: String,
    default: String,
    /// May be left out with no default: unset.
    optional: bool,
    meaning: String,
}

/// A section of the file (`[dns]`) or a table of named entries (`[profiles.NAME]`).
struct Section {
    name: String,
    about: String,
    keys: Vec<Key>,
}

struct Schema<'a> {
    defs: &'a Map<String, Value>,
}

impl<'a> Schema<'a> {
    /// The schema itself, `$ref`s followed and an optional value's "or null" dropped.
    fn resolve(&self, s: &'a Value) -> &'a Value {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            return self.resolve(&self.defs[name]);
        }
        let not_null = |v: &&Value| v.get("type").and_then(Value::as_str) != Some("null");
        match s
            .get("anyOf")
            .and_then(Value::as_array)
            .map(|a| a.as_slice())
        {
            Some([a, b]) if !not_null(&a) || !not_null(&b) => {
                self.resolve([a, b].into_iter().find(not_null).unwrap_or(a))
            }
            _ => s,
        }
    }

    /// Tables hold keys of their own; a map of named tables (`profiles`) holds one per name.
    fn sections(&self, name: &str, s: &'a Value, about: &str, out: &mut Vec<Section>) {
        let s = self.resolve(s);
        let mut section = Section {
            name: name.to_string(),
            about: text(s).unwrap_or(about).to_string(),
            keys: Vec::new(),
        };
        let mut nested = Vec::new();
        for (key, field) in s["properties"].as_object().into_iter().flatten() {
            let full = format!("{name}.{key}");
            let target = self.resolve(field);
            if target.get("properties").is_some() {
                nested.push((full, field, text(field).unwrap_or_default()));
            } else if let Some(entry) = self.named_entries(target) {
                nested.push((
                    format!("{full}.NAME"),
                    entry,
                    text(field).unwrap_or_default(),
                ));
            } else {
                section.keys.push(self.key(&full, field, target));
            }
        }
        if !section.keys.is_empty() {
            out.push(section);
        }
        for (full, field, about) in nested {
            self.sections(&full, field, about, out);
        }
    }

    /// A map whose values are tables: `[profiles.NAME]`, `[egress.points.NAME]`.
    fn named_entries(&self, s: &'a Value) -> Option<&'a Value> {
        let entry = s.get("additionalProperties")?;
        self.resolve(entry).get("properties").map(|_| entry)
    }

    fn key(&self, name: &str, field: &Value, target: &Value) -> Key {
        let mut meaning = text(field).or(text(target)).unwrap_or_default().to_string();
        for (value, about) in self.variants(target) {
            let _ = write!(meaning, " `{value}`: {about}");
        }
        Key {
            name: name.to_string(),
            kind: self.kind(target),
            default: field.get("default").map_or(String::new(), toml_literal),
            optional: field.get("anyOf").is_some()
                || field["type"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t == "null")),
            meaning,
        }
    }

    /// The TOML type a key takes.
    fn kind(&self, s: &Value) -> String {
        let s = self.resolve(s);
        if let Some(alts) = s.get("oneOf").or(s.get("enum")).and_then(Value::as_array) {
            let values: Vec<String> = alts
                .iter()
                .map(|v| toml_literal(v.get("const").unwrap_or(v)))
                .collect();
            return format!("one of {}", values.join(", "));
        }
        if s.get("format").and_then(Value::as_str) == Some("duration") {
            return "duration".to_string();
        }
        let one = |t: &str, s: &Value| match t {
            "array" => match s.get("items") {
                Some(items) => format!("array of {}", self.kind(items)),
                None => "array".to_string(),
            },
            "number" => "float".to_string(),
            other => other.to_string(),
        };
        match &s["type"] {
            Value::String(t) => one(t, s),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(|t| one(t, s))
                .collect::<Vec<_>>()
                .join(" or "),
            _ => "any".to_string(),
        }
    }

    /// The documented values of an enum key, as (value, meaning).
    fn variants(&self, s: &Value) -> Vec<(String, String)> {
        let s = self.resolve(s);
        s.get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| Some((toml_literal(v.get("const")?), text(v)?.to_string())))
            .collect()
    }
}

/// A schema's description, as one line.
fn text(s: &Value) -> Option<&str> {
    s.get("description").and_then(Value::as_str)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value as TOML writes it (numbers, strings, booleans and arrays of them; JSON's
/// spelling is TOML's for these).
fn toml_literal(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap_or_default()),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_literal).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn sections() -> Vec<Section> {
    let schema = schemars::schema_for!(Config);
    let root = schema.as_value();
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let schema = Schema { defs };
    let mut out = Vec::new();
    for (name, field) in root["properties"].as_object().into_iter().flatten() {
        let target = schema.resolve(field);
        match schema.named_entries(target) {
            Some(entry) => schema.sections(&format!("{name}.NAME"), entry, "", &mut out),
            None => schema.sections(name, field, "", &mut out),
        }
    }
    out
}

fn render(sections: &[Section]) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "# Configuration\n\n\
         <!-- Generated from the config types (src/config/mod.rs) by `{BLESS}`; do not edit. -->\n\n\
         One TOML file: `--config PATH`, by default `resolver-config/hoptrace.toml` when it \
         exists (built-in defaults otherwise). Every key is optional and takes the default \
         below when left out. Relative paths resolve against the config file's folder. An \
         unknown key or a bad value stops start-up with an error naming the key, for example \
         ``config hoptrace.toml: key `limits.max_hops`: invalid type: string \"x\", expected u32``. \
         `resolver-config/hoptrace.toml` is a commented copy of the defaults. A duration key \
         (one ending in `_ms` or `_seconds`) takes a whole number in that unit or a string \
         with its unit: `hop_timeout_ms = \"5s\"`, `cache_ttl_seconds = \"6h\"`. A key \
         shown (none) may be left out; `\"\"`, as older files write it, means the same. \
         `[storage]` names its backend with `type` and takes that backend's keys only \
         (`type = \"sled\"`: `path`; `type = \"postgres\"`: `url`, `pool_size`, \
         `connect_timeout_ms`); files that name it `backend` read as before.\n\n\
         For a first resolve against your own resolver: `dns.nameservers`, `tls.extra_ca_files` \
         (a private CA) and `storage.path`.\n"
    );
    for s in sections {
        let header = match s.name.strip_suffix(".NAME") {
            Some(table) => format!("[{table}.NAME]"),
            None => format!("[{}]", s.name),
        };
        let _ = write!(page, "\n## `{header}`\n\n");
        // A section's comment may start by naming it, as the heading does already.
        let about = s
            .about
            .strip_prefix(&format!("`{header}`: "))
            .unwrap_or(&s.about);
        if !about.is_empty() {
            let _ = write!(page, "{}\n\n", capitalised(&one_line(about)));
        }
        page.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for k in &s.keys {
            let default = match k.default.as_str() {
                "" if k.optional => "(none)".to_string(),
                "" => "(required)".to_string(),
                d => format!("`{d}`"),
            };
            let _ = writeln!(
                page,
                "| `{}` | {} | {} | {} |",
                k.name,
                k.kind,
                default.replace('|', "\\|"),
                one_line(&k.meaning).replace('|', "\\|"),
            );
        }
    }
    page
}

#[test]
fn every_key_is_documented_in_the_page_generated_from_the_types() {
    let sections = sections();
    let undocumented: Vec<&str> = sections
        .iter()
        .flat_map(|s| &s.keys)
        .filter(|k| k.meaning.trim().is_empty())
        .map(|k| k.name.as_str())
        .collect();
    assert!(
        undocumented.is_empty(),
        "config keys without a `///` comment saying what they mean (src/config/mod.rs): {undocumented:?}"
    );
    let page = render(&sections);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    if std::env::var_os("HOPTRACE_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == page,
        "{PAGE} is not what the config types say (a key added, removed or changed); run `{BLESS}`"
    );
}

/// The page names every key the file accepts: the default config, written out, has no key
/// the page lacks.
#[test]
fn the_page_names_every_key_of_the_default_config() {
    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        match v.as_table() {
            Some(t) => t
                .iter()
                .for_each(|(k, v)| keys(&format!("{prefix}{k}."), v, out)),
            None => out.push(prefix.trim_end_matches('.').to_string()),
        }
    }
    let mut config = Config::default();
    let profile = crate::config::Profile {
        user_agent: String::new(),
        accept_language: Some(String::new()),
        platform: Some(String::new()),
        viewport: [0, 0],
        mobile: false,
        timezone: Some(String::new()),
        referer: Some(String::new()),
    };
    config.profiles.insert("NAME".into(), profile);
    let point = crate::config::Point {
        proxy: String::new(),
        country: String::new(),
        nameservers: Vec::new(),
    };
    config.egress.points.insert("NAME".into(), point);
    let mut all = Vec::new();
    keys("", &toml::Value::try_from(&config).unwrap(), &mut all);
    let documented: Vec<String> = sections()
        .into_iter()
        .flat_map(|s| s.keys)
        .map(|k| k.name)
        .collect();
    let missing: Vec<&String> = all.iter().filter(|k| !documented.contains(k)).collect();
    assert!(missing.is_empty(), "keys missing from {PAGE}: {missing:?}");
}
