//! `hoptrace campaigns` (the real binary) against the truth of a generated hub in the report's
//! proportions (tests/common/hubmix.rs, the generator `cargo bench --bench hub` measures):
//! grouped as the report grouped.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::hubmix::{Group, Mix, BLOCKED_HOST};
use common::*;
use hoptrace::campaigns::Clusters;
use hoptrace::scan::{RepositoryRecord, Verdict};
use hoptrace::store::Store;
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

/// A repository record as a scan keeps it, with its infrastructure keys.
fn record(repo: &str, verdict: Verdict, infra: &[&str], when: &str) -> RepositoryRecord {
    RepositoryRecord {
        repository: repo.into(),
        namespace: repo.split('/').next().unwrap().into(),
        digest: String::new(),
        verdict,
        reasons: vec![],
        links: vec![],
        links_left_out: 0,
        landing_hosts: infra
            .iter()
            .filter_map(|k| k.strip_prefix("landing:"))
            .map(str::to_string)
            .collect(),
        infrastructure: infra.iter().map(|s| s.parse().unwrap()).collect(),
        labels: vec![],
        scanned_at: "2026-01-01T00:00:00Z".into(),
        last_updated: Some(when.into()),
        date_registered: None,
    }
}

/// Writes after a build are folded in without walking the store and count as a walk counts
/// them: an account new to a campaign brings its earlier linkless repository in by its
/// publisher, a record linking two campaigns merges them (sums, samples and days); a record
/// written again cannot be folded (its old part cannot be taken out): walked again.
#[tokio::test]
async fn later_writes_fold_in_as_a_walk_counts_them() {
    let m = Verdict::Malicious;
    let (early, late) = ("2023-01-01T00:00:00Z", "2023-03-01T00:00:00Z");
    let first = [
        record("a1/x", m, &["landing:one.ru"], early),
        record("a2/y", m, &["landing:one.ru"], early),
        record("b1/x", m, &["landing:two.ru"], early),
        record("b2/y", m, &["landing:two.ru"], early),
        record("c1/plain", Verdict::Clean, &[], early),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled(&dir.path().join("db")).unwrap();
    for r in &first {
        store.put_repository(&r.repository, r).await.unwrap();
    }
    let mut c = Clusters::build(&store, 2).await.unwrap();
    assert_eq!(c.campaigns.len(), 2);
    let later = [
        record("c1/crack", m, &["landing:one.ru"], late),
        record("d1/bridge", m, &["landing:one.ru", "landing:two.ru"], late),
        record("e1/none", Verdict::Clean, &[], late),
    ];
    for r in &later {
        store.put_repository(&r.repository, r).await.unwrap();
    }
    assert!(c.fold(&store).await.unwrap(), "folded without a walk");
    let walked = Clusters::build(&store, 2).await.unwrap();
    assert_eq!(c.campaigns, walked.campaigns);
    assert_eq!(c.days, walked.days);
    assert_eq!(c.campaigns.len(), 1);
    let one = &c.campaigns[0];
    assert_eq!((one.repository_count, one.publisher_repositories), (7, 1));
    assert_eq!(one.last_seen, late);
    assert!(one.repositories.contains(&"c1/plain".to_string()));
    assert!(c.fold(&store).await.unwrap(), "nothing new");
    store.put_repository("a1/x", &first[0]).await.unwrap();
    assert!(!c.fold(&store).await.unwrap(), "a rewrite is walked again");
}
