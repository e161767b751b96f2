//! `hoptrace export` (the binary) and `GET /v1/export` over the store of a fixture hub scan:
//! the STIX bundle passes OASIS's `stix2-validator`, the MISP event loads in `pymisp` with
//! MISP's schema, and the CSV and text exports carry each indicator once with its labels.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::tools::{check_misp, check_stix};
use common::*;

fn hoptrace(args: &[&str], config: &Path) -> (String, String, bool) {
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    run_hoptrace(&all)
}

/// A MISP export: one event a line.
fn misp_events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many objects of STIX type `t` a bundle holds.
fn objects_of(bundle: &serde_json::Value, t: &str) -> usize {
    bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == t)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_the_hub_scan_validate() {
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let cfg = env.write_config("[limits]\nper_host_per_second = 1000.0\n");
    let dump = env.dir.path().join("hub.jsonl");
    std::fs::write(&dump, hub.dump()).unwrap();
    let (_, err, ok) = hoptrace(&["scan", "--json", dump.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");
    let port = hub.server.port();

    // STIX 2.1.
    let (out, err, ok) = hoptrace(&["export", "--format", "stix"], &cfg);
    assert!(ok, "{err}");
    let bundle: serde_json::Value = serde_json::from_str(&out).unwrap();
    if let Some(dir) = std::env::var_os("HOPTRACE_KEEP_EXPORTS") {
        std::fs::write(Path::new(&dir).join("hub.stix.json"), &out).unwrap();
    }
    let counts: serde_json::Value =
        serde_json::from_str(check_stix(&bundle).lines().next().unwrap()).unwrap();
    for t in [
        "url",
        "domain-name",
        "ipv4-addr",
        "indicator",
        "relationship",
        "infrastructure",
    ] {
        assert!(counts[t].as_u64().unwrap_or(0) > 0, "no {t}: {counts}");
    }
    let objects = bundle["objects"].as_array().unwrap();
    let pattern_of = |value: &str| {
        objects
            .iter()
            .filter(|o| o["type"] == "indicator")
            .find(|o| o["pattern"] == format!("[domain-name:value = '{value}']"))
            .map(|o| o["indicator_types"].clone())
    };
    assert_eq!(
        pattern_of("failhostingpolp.ru"),
        Some(serde_json::json!(["malicious-activity"])),
        "a payload host"
    );
    assert!(pattern_of("blltly.com").is_some(), "a fake shortener");
    assert!(
        pattern_of("docs.docker.com").is_none(),
        "an ordinary site is no indicator"
    );
    assert!(objects
        .iter()
        .any(|o| o["relationship_type"] == "redirects-to"));

    // MISP.
    let (out, err, ok) = hoptrace(&["export", "--format", "misp"], &cfg);
    assert!(ok, "{err}");
    if let Some(dir) = std::env::var_os("HOPTRACE_KEEP_EXPORTS") {
        std::fs::write(Path::new(&dir).join("hub.misp.jsonl"), &out).unwrap();
    }
    // One event a line: one per campaign, one per landing domain of the other chains.
    let events = misp_events(&out);
    let infos: Vec<&str> = events
        .iter()
        .map(|e| e["Event"]["info"].as_str().unwrap())
        .collect();
    assert!(
        infos.iter().filter(|i| i.contains(": campaign c-")).count() >= 4,
        "{infos:?}"
    );
    assert!(
        infos.iter().any(|i| i.contains(": landing domain ")),
        "{infos:?}"
    );
    let (mut objects, mut tags, mut to_ids, mut refs) = (0, 0, 0, 0);
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    for event in &events {
        let said = check_misp(event);
        let mut f = said.split_whitespace();
        let mut next = || f.next().unwrap().to_string();
        objects += next().parse::<usize>().unwrap();
        tags += next().parse::<usize>().unwrap();
        to_ids += next().parse::<usize>().unwrap();
        refs += next().parse::<usize>().unwrap();
        let counted: BTreeMap<String, u64> = serde_json::from_str(&next()).unwrap();
        for (k, v) in counted {
            *names.entry(k).or_default() += v;
        }
    }
    assert!(
        objects > 10 && tags > 2 && refs > 0,
        "{objects} {tags} {refs}"
    );
    assert!(names["url"] > 0 && names["domain-ip"] > 0, "{names:?}");
    assert!(
        names.get("file").copied().unwrap_or(0) > 0,
        "the hub's downloads: {names:?}"
    );
    // `to_ids` only on what a malicious label marks.
    let all_attrs: Vec<&serde_json::Value> = events
        .iter()
        .flat_map(|e| e["Event"]["Object"].as_array().unwrap())
        .flat_map(|o| o["Attribute"].as_array().unwrap())
        .collect();
    assert_eq!(
        all_attrs.iter().filter(|a| a["to_ids"] == true).count(),
        to_ids
    );
    assert!(to_ids > 0);
    assert!(!all_attrs
        .iter()
        .any(|a| a["to_ids"] == true && a["value"].as_str().unwrap().contains("docs.docker.com")));

    // CSV and text, one indicator a line, filtered by label, defanged on request.
    let (csv, err, ok) = hoptrace(
        &["export", "--format", "csv", "--label", "payload-host"],
        &cfg,
    );
    assert!(ok, "{err}");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some(r#""indicator","type","first_seen","last_seen","labels","inputs""#)
    );
    let rows: Vec<&str> = rows.collect();
    assert!(
        rows.iter()
            .any(|r| r.starts_with(r#""failhostingpolp.ru","domain","#)),
        "{csv}"
    );
    assert!(rows.iter().all(|r| r.contains("payload-host")), "{csv}");
    let (txt, err, ok) = hoptrace(&["export", "--format", "txt", "--defang"], &cfg);
    assert!(ok, "{err}");
    assert!(
        txt.contains(&format!("hxxp://failhostingpolp[.]ru:{port}/")),
        "{txt}"
    );
    assert!(
        !txt.contains("http://failhostingpolp.ru"),
        "everything defanged"
    );
    // The text export's names read back as a list (named for its label).
    let list = env.dir.path().join("payload-host.txt");
    let (names_only, _, _) = hoptrace(
        &["export", "--format", "txt", "--label", "payload-host"],
        &cfg,
    );
    let domains: String = names_only
        .lines()
        .filter(|l| l.contains("# domain"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&list, domains).unwrap();
    let labels = hoptrace::labels::Labels::load(&[&list]).unwrap();
    assert_eq!(
        labels.classify("failhostingpolp.ru").labels,
        vec!["payload-host"]
    );

    // Since a time after everything: nothing. An unknown format or campaign: a usage error.
    let (out, _, ok) = hoptrace(
        &[
            "export",
            "--format",
            "csv",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
        &cfg,
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "the header alone: {out}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args([
            "export",
            "--format",
            "yaml",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("misp, stix, csv or txt"));

    // A campaign's chains alone, and the same through the API.
    let (out, _, ok) = hoptrace(&["campaigns", "--json"], &cfg);
    assert!(ok);
    let campaigns: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = campaigns["campaigns"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (one, err, ok) = hoptrace(&["export", "--format", "stix", "--campaign", &id], &cfg);
    assert!(ok, "{err}");
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    check_stix(&one);
    let infra = objects_of(&one, "infrastructure");
    assert_eq!(infra, 1, "the one campaign");
    let (_serving, addr) = serve_binary(&cfg);
    let path = format!("/v1/export?format=misp&campaign={id}");
    let api = call(addr, "GET", &path, None, None).await;
    assert_eq!(api.status, 200);
    assert_eq!(api.headers["content-type"], "application/x-ndjson");
    // One campaign, one event: its one line reads as one JSON value.
    assert!(api.body["Event"]["info"]
        .as_str()
        .unwrap()
        .contains(&format!("campaign {id}")));
    check_misp(&api.body);
    let bad = get(addr, "/v1/export?format=stix&defang=1", None).await;
    assert_eq!((bad.status, error_code(&bad)), (400, "bad_request"));
}

/// Exports hold a turn each until the document is sent: with `server.max_exports = 1` a
/// second export while the first one's client is still reading gets 429 with `Retry-After`,
/// and one after it is done runs. MISP and STIX stream as CSV does: more chains than
/// `limits.max_export_chains` (no longer read) export whole, from the binary and the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_export_at_a_time_and_a_bounded_document() {
    use hoptrace::trace::{Hop, Outcome, Trace, Via};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = TestEnv::new().await;
    let store = hoptrace::store::Store::open(&env.config.storage)
        .await
        .unwrap();
    // Long URLs: a CSV export of some 10 MB, more than the socket buffers between a server
    // and a client that does not read.
    let pad = "p".repeat(3000);
    for n in 0..400u64 {
        let input = format!("http://in-{n}.test/{pad}");
        let hops = (0..3)
            .map(|h| {
                let host = format!("h{n}-{h}.test");
                Hop::new(format!("http://{host}/{pad}"), host, Via::HttpRedirect)
            })
            .collect();
        let trace = Trace::from_hops(&input, hops, Outcome::Landed);
        store.put(&input, &trace, 1_000 + n).await.unwrap();
    }
    drop(store);
    let cfg = env.write_config("[server]\nmax_exports = 1\n[limits]\nmax_export_chains = 100\n");

    let (out, err, ok) = hoptrace(&["export", "--format", "stix"], &cfg);
    assert!(ok, "{err}");
    let bundle: serde_json::Value = serde_json::from_str(&out).unwrap();
    let urls = objects_of(&bundle, "url");
    assert_eq!(urls, 400 * 3, "every hop's URL");

    let (_serving, addr) = serve_binary(&cfg);
    let r = get(addr, "/v1/export?format=misp", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = misp_events(r.body.as_str().unwrap());
    assert_eq!(events.len(), 400, "one event per landing domain");

    // The first export's client reads its answer's head, then nothing for a while.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(b"GET /v1/export?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1024];
        let n = slow.read(&mut b).await.unwrap();
        assert!(n > 0, "the connection closed");
        head.extend_from_slice(&b[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let second = get(addr, "/v1/export?format=csv", None).await;
    assert_eq!(
        second.status, 429,
        "a second export while the first is being sent"
    );
    assert!(second.headers.contains_key("retry-after"));

    // Read to the end: the turn is given back.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut b = vec![0u8; 1 << 16];
        loop {
            match slow.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&b[..n]),
            }
            if rest.ends_with(b"\r\n0\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(head.len() + rest.len() > 8_000_000, "{}", rest.len());
    let third = get(addr, "/v1/export?format=csv", None).await;
    assert_eq!(third.status, 200);
    let rows = third.body.as_str().unwrap().lines().count();
    assert_eq!(
        rows,
        1 + 400 * 3 * 2,
        "a header, then a URL and a domain a hop"
    );
}

/// A spreadsheet runs a CSV cell that starts with `=`, `+`, `-` or `@` (or their full-width
/// forms). Links put such cells in an export: an input is exported as typed (`=5.evil.test/y`,
/// a bare host), and a redirect may lead to a host named `=1+1.…`. Each way out (the binary,
/// defanged, the API) quotes every cell and writes those after a `'`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_never_start_a_formula() {
    let env = TestEnv::new().await;
    let short = redirector("http://=1+1.failhostingpolp.ru:8081/x").await;
    let cfg = env.write_config("");
    let typed = [
        "=5.formula.test:8081/y",
        "+4.formula.test:8081/z",
        "-3.formula.test:8081/w",
        "@2.formula.test:8081/v",
        "\u{ff1d}1.formula.test:8081/u",
    ];
    let mut stdin = format!("http://127.0.0.1:{}/s\n", short.port());
    for t in typed {
        stdin.push_str(&format!("{t}\n"));
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(["resolve", "--json", "-", "--config", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Nothing answers (hickory does not look such names up): the chains are stored all the same.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    let (plain, err, ok) = hoptrace(&["export", "--format", "csv"], &cfg);
    assert!(ok, "{err}");
    let (defanged, err, ok) = hoptrace(&["export", "--format", "csv", "--defang"], &cfg);
    assert!(ok, "{err}");
    let (_serving, addr) = serve_binary(&cfg);
    let api = get(addr, "/v1/export?format=csv&defang=1", None).await;
    assert_eq!(api.status, 200);
    let api = api.body.as_str().unwrap().to_string();
    for (how, csv) in [("plain", &plain), ("defanged", &defanged), ("api", &api)] {
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv.as_bytes());
        let cells: Vec<String> = rows
            .records()
            .flat_map(|r| r.unwrap().iter().map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert!(cells.len() > 6, "{how}: {csv}");
        let formula = |c: &&String| {
            c.starts_with([
                '=', '+', '-', '@', '\t', '\r', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
            ])
        };
        assert_eq!(cells.iter().find(formula), None, "{how}: {csv}");
        // Every cell is quoted: a separator inside one cannot start another.
        assert!(csv.lines().all(|l| l.starts_with('"')), "{how}: {csv}");
        for t in typed {
            let start: String = t.chars().take(2).collect();
            assert!(
                cells.iter().any(|c| c.starts_with(&format!("'{start}"))),
                "{how}: {t} as typed, after a ': {csv}"
            );
        }
    }
}

/// One hostile hop must not spoil a whole export. Hops to an ordinary PHP-style query
/// (`?a[]=1`), `|`, `^`, `%zz` and a second `#` in a URL, an emoji IDN, names no resolver
/// takes (`my_host.…`, `=1+1.…`) and an IPv6 literal: the STIX bundle passes stix2-validator
/// (URLs as RFC 3986 has them, such hosts only inside their URLs, an address as an address)
/// and the MISP event loads in pymisp with MISP's templates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_urls_and_hosts_keep_stix_and_misp_valid() {
    let env = TestEnv::new().await;
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let p = port.clone();
    let server = Server::start("127.0.0.1", move |req| {
        let port = *p.get().unwrap();
        let host = req.headers()["host"].to_str().unwrap().to_string();
        let host = host.split(':').next().unwrap().to_string();
        let path = req.uri().path().to_string();
        let to = |host: &str, rest: &str| format!("http://{host}:{port}{rest}");
        let location = match (host.as_str(), path.as_str()) {
            (_, "/start") => to("failhostingpolp.ru", "/land?a[]=1&b[x]=|^`"),
            ("failhostingpolp.ru", _) => to("xn--ls8h.failhostingpolp.ru", "/p|a^t%zz#a#b"),
            (_, "/to-underscore") => to("my_host.failhostingpolp.ru", "/u"),
            (_, "/to-formula") => to("=1+1.failhostingpolp.ru", "/x"),
            (_, "/to-v6") => format!("http://[::1]:{port}/v6"),
            _ => String::new(),
        };
        async move {
            match location.is_empty() {
                true => html("<html>a page</html>"),
                false => redirect(302, location.as_bytes()),
            }
        }
    })
    .await;
    port.set(server.port()).unwrap();
    for host in [
        "failhostingpolp.ru",
        "xn--ls8h.failhostingpolp.ru",
        "my_host.failhostingpolp.ru",
    ] {
        env.dns.set(host, &["127.0.0.1"]);
    }
    let cfg = env.write_config("");
    let inputs: Vec<String> = ["/start", "/to-underscore", "/to-formula", "/to-v6"]
        .iter()
        .map(|p| format!("http://127.0.0.1:{}{p}", server.port()))
        .collect();
    let mut args = vec!["resolve", "--json"];
    args.extend(inputs.iter().map(String::as_str));
    let (out, err, ok) = hoptrace(&args, &cfg);
    assert!(ok, "{err}");
    let hops: Vec<String> = out
        .lines()
        .flat_map(|l| {
            let t: serde_json::Value = serde_json::from_str(l).unwrap();
            let urls: Vec<String> = t["hops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["url"].as_str().unwrap().to_string())
                .collect();
            urls
        })
        .collect();
    for part in ["/land?a[]=1", "xn--ls8h.", "my_host.", "=1+1.", "[::1]"] {
        assert!(hops.iter().any(|u| u.contains(part)), "{part} in {hops:?}");
    }

    let (out, err, ok) = hoptrace(&["export", "--format", "stix"], &cfg);
    assert!(ok, "{err}");
    let bundle: serde_json::Value = serde_json::from_str(&out).unwrap();
    check_stix(&bundle);
    let values: Vec<(&str, &str)> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| Some((o["type"].as_str()?, o["value"].as_str()?)))
        .collect();
    let land = format!(
        "http://failhostingpolp.ru:{}/land?a%5B%5D=1&b%5Bx%5D=%7C%5E%60",
        server.port()
    );
    assert!(values.contains(&("url", land.as_str())), "{values:?}");
    assert!(values.contains(&("ipv6-addr", "::1")), "{values:?}");
    assert!(
        values.contains(&("domain-name", "failhostingpolp.ru")),
        "the registrable domain of each: {values:?}"
    );
    for odd in ["xn--ls8h.", "my_host.", "=1+1.", "127.0.0.1", "[::1]"] {
        assert!(
            !values
                .iter()
                .any(|(t, v)| *t == "domain-name" && v.contains(odd)),
            "{odd} is no domain name: {values:?}"
        );
        assert!(
            values.iter().any(|(t, v)| *t == "url" && v.contains(odd)),
            "{odd} is in its URL: {values:?}"
        );
    }

    let (out, err, ok) = hoptrace(&["export", "--format", "misp"], &cfg);
    assert!(ok, "{err}");
    let events = misp_events(&out);
    for event in &events {
        check_misp(event);
    }
    let attrs: Vec<(&str, &str)> = events
        .iter()
        .flat_map(|e| e["Event"]["Object"].as_array().unwrap())
        .flat_map(|o| o["Attribute"].as_array().unwrap())
        .map(|a| (a["type"].as_str().unwrap(), a["value"].as_str().unwrap()))
        .collect();
    for odd in [
        "xn--ls8h.",
        "my_host.",
        "=1+1.",
        "127.0.0.1",
        "[::1]",
        "::1",
    ] {
        assert!(
            !attrs
                .iter()
                .any(|(t, v)| matches!(*t, "hostname" | "domain") && v.contains(odd)),
            "{odd} is no hostname: {attrs:?}"
        );
    }
    assert!(attrs.contains(&("ip-dst", "::1")), "{attrs:?}");
}

/// A campaign of more chains than an event holds (a generated hub in the report's
/// proportions) is several MISP events, each of at most 1,000 chains, each saying which of
/// the campaign's chains it holds, together all of them, each loading in `pymisp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_of_many_chains_is_several_bounded_events() {
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let cfg = env.write_config("[limits]\nper_host_per_second = 100000.0\n");
    let mix = common::hubmix::Mix::new(3500);
    let lines: Vec<String> = mix
        .repositories(hub.server.port())
        .map(|r| r.line)
        .collect();
    let input = env.dir.path().join("hub.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (_, err, ok) = hoptrace(&["scan", "--json", input.to_str().unwrap()], &cfg);
    assert!(ok, "{err}");

    let (out, err, ok) = hoptrace(&["export", "--format", "misp"], &cfg);
    assert!(ok, "{err}");
    let events = misp_events(&out);
    // campaign id -> (chains its events hold, the total they name, parts).
    let mut campaigns: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut checked = 0;
    for e in &events {
        let info = e["Event"]["info"].as_str().unwrap();
        let chains: usize = info
            .rsplit(": ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{info}"));
        assert!(chains <= 1000, "{info}");
        let Some(rest) = info.strip_prefix("hoptrace: campaign ") else {
            continue;
        };
        let id = rest.split([',', ':']).next().unwrap().to_string();
        let total = rest
            .split_once(" of ")
            .and_then(|(_, t)| t.split(')').next())
            .map_or(chains, |t| t.parse().unwrap());
        let c = campaigns.entry(id).or_default();
        *c = (c.0 + chains, total, c.2 + 1);
        if c.2 == 2 && checked < 1 {
            check_misp(e);
            checked += 1;
        }
    }
    let split: Vec<_> = campaigns.iter().filter(|(_, c)| c.2 > 1).collect();
    assert!(
        !split.is_empty(),
        "no campaign past one event: {campaigns:?}"
    );
    assert_eq!(checked, 1);
    for (id, (held, total, parts)) in &campaigns {
        assert_eq!(held, total, "{id}: its events hold all its chains");
        assert_eq!(*parts, total.div_ceil(1000), "{id}");
    }
}
