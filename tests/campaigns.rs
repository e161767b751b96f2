//! `hoptrace campaigns` (the real binary) against the truth of a generated hub in the report's
//! proportions (tests/common/hubmix.rs, the generator `cargo bench --bench hub` measures):
//! grouped as the report grouped.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::hubmix::{Group, Mix, BLOCKED_HOST};
use common::*;
use serde_json::Value;

/// Every generated campaign's repositories (its linkless ones too) in one hoptrace campaign
/// and none of another's; ordinary repositories in none; a linkless repository of a campaign
/// account in by its `publisher`; the metadata address, refused by the egress policy, in no
/// campaign's landings or infrastructure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_hub_is_grouped_as_its_truth() {
    let env = TestEnv::new().await;
    let hub = HubInternet::start(&env.dns).await;
    let cfg = env.write_config("[limits]\nper_host_per_second = 100000.0\n");
    let cfg = cfg.to_str().unwrap();
    let mix = Mix::new(2000);
    let repos: Vec<_> = mix.repositories(hub.server.port()).collect();
    assert!(repos.iter().any(|r| r.linkless) && repos.iter().any(|r| r.blocked));
    let input = env.dir.path().join("hub.jsonl");
    let lines: Vec<&str> = repos.iter().map(|r| r.line.as_str()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();

    let (out, err, ok) =
        run_hoptrace(&["scan", "--json", input.to_str().unwrap(), "--config", cfg]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), repos.len());

    let (out, err, ok) = run_hoptrace(&["campaigns", "--members", "all", "--config", cfg]);
    assert!(ok, "{err}");
    let members: BTreeMap<String, Value> = jsonl(&out)
        .into_iter()
        .map(|m| (m["repository"].as_str().unwrap().to_string(), m))
        .collect();
    let mut ids: BTreeMap<Group, BTreeSet<String>> = BTreeMap::new();
    for r in &repos {
        let m = members.get(&r.repository);
        if !r.group.campaign() {
            assert!(m.is_none(), "{} is in a campaign: {m:?}", r.repository);
            continue;
        }
        let m = m.unwrap_or_else(|| panic!("{} ({:?}) is in no campaign", r.repository, r.group));
        ids.entry(r.group)
            .or_default()
            .insert(m["campaign"].as_str().unwrap().to_string());
        if r.linkless {
            assert_eq!(m["joined"], "publisher", "{m}");
            let namespace = r.repository.split('/').next().unwrap();
            assert!(
                m["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|why| why["kind"] == "publisher" && why["account"] == namespace),
                "{m}"
            );
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    for (group, set) in &ids {
        assert_eq!(set.len(), 1, "{group:?} is split: {set:?}");
    }
    let distinct: BTreeSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), 3, "campaigns merged: {ids:?}");

    let (out, err, ok) = run_hoptrace(&["campaigns", "--json", "--config", cfg]);
    assert!(ok, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    for c in all["campaigns"].as_array().unwrap() {
        for list in ["landing_hosts", "infrastructure"] {
            assert!(
                !c[list].to_string().contains(BLOCKED_HOST),
                "{list} of {}: {}",
                c["id"],
                c[list]
            );
        }
    }
}
