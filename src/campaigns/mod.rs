//! Campaigns: repositories grouped by the infrastructure their links share. Two flagged
//! repositories are in one campaign when any key of [`crate::scan::infrastructure`] (landing
//! domain, fake-shortener domain, redirector) or publishing signature is the same; grouping
//! is transitive (union-find over the keys). Clean repositories join no campaign: everyone
//! links to GitHub.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::scan::{Fnv, RepositoryRecord, Verdict};

/// One cluster of repositories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Stable while the campaign keeps its earliest-sorting infrastructure key.
    pub id: String,
    pub landing_hosts: Vec<String>,
    pub repositories: Vec<String>,
    /// Publishing users (namespaces).
    pub users: Vec<String>,
    pub labels: Vec<String>,
    /// Span of the repositories' Docker Hub `last_updated` (scan time where the input had
    /// none).
    pub first_seen: String,
    pub last_seen: String,
    /// The shared keys (`landing:`, `fake-shortener:`, `redirector:`, `signature:`).
    pub infrastructure: Vec<String>,
    pub repository_count: usize,
    pub user_count: usize,
    /// How many of the repositories are malicious (the rest are suspicious).
    pub malicious: usize,
}

/// Groups `records` into campaigns of at least `min_repositories`, largest first.
pub fn cluster(
    records: impl IntoIterator<Item = RepositoryRecord>,
    min_repositories: usize,
) -> Vec<Campaign> {
    let records: Vec<RepositoryRecord> = records
        .into_iter()
        .filter(|r| r.verdict > Verdict::Clean && !r.infrastructure.is_empty())
        .collect();
    let mut sets = UnionFind::new(records.len());
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        for key in &r.infrastructure {
            match owner.get(key.as_str()) {
                Some(&j) => sets.union(i, j),
                None => {
                    owner.insert(key, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..records.len() {
        groups.entry(sets.find(i)).or_default().push(i);
    }
    let mut out: Vec<Campaign> = groups
        .into_values()
        .filter(|members| members.len() >= min_repositories.max(1))
        .map(|members| campaign(&records, &members))
        .collect();
    out.sort_by(|a, b| {
        b.repository_count
            .cmp(&a.repository_count)
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

fn campaign(records: &[RepositoryRecord], members: &[usize]) -> Campaign {
    let mut hosts = BTreeSet::new();
    let mut repos = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let mut infra = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut malicious = 0;
    for &i in members {
        let r = &records[i];
        hosts.extend(r.landing_hosts.iter().cloned());
        repos.insert(r.repository.clone());
        if !r.namespace.is_empty() {
            users.insert(r.namespace.clone());
        }
        labels.extend(r.labels.iter().cloned());
        infra.extend(r.infrastructure.iter().cloned());
        seen.insert(
            r.last_updated
                .clone()
                .unwrap_or_else(|| r.scanned_at.clone()),
        );
        malicious += usize::from(r.verdict == Verdict::Malicious);
    }
    let mut id = Fnv::default();
    id.write(infra.first().map_or("", String::as_str).as_bytes());
    Campaign {
        id: format!("c-{:012x}", id.0 & 0xffff_ffff_ffff),
        landing_hosts: hosts.into_iter().collect(),
        repository_count: repos.len(),
        repositories: repos.into_iter().collect(),
        user_count: users.len(),
        users: users.into_iter().collect(),
        labels: labels.into_iter().collect(),
        first_seen: seen.first().cloned().unwrap_or_default(),
        last_seen: seen.last().cloned().unwrap_or_default(),
        infrastructure: infra.into_iter().collect(),
        malicious,
    }
}

/// Disjoint sets with path halving and union by size.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(repo: &str, verdict: Verdict, infra: &[&str], when: &str) -> RepositoryRecord {
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
            infrastructure: infra.iter().map(|s| s.to_string()).collect(),
            labels: vec![],
            scanned_at: "2026-01-01T00:00:00Z".into(),
            last_updated: Some(when.into()),
        }
    }

    #[test]
    fn shared_keys_join_transitively_and_clean_stays_out() {
        let m = Verdict::Malicious;
        let records = vec![
            rec(
                "u1/a",
                m,
                &["fake-shortener:bitly.com", "landing:x.ru"],
                "2021-03-01T00:00:00Z",
            ),
            rec("u2/b", m, &["landing:x.ru"], "2021-01-01T00:00:00Z"),
            // Joins the first two through the fake shortener only.
            rec(
                "u3/c",
                m,
                &["fake-shortener:bitly.com", "landing:y.com"],
                "2023-06-01T00:00:00Z",
            ),
            rec(
                "u4/d",
                Verdict::Suspicious,
                &["redirector:lesac.ru"],
                "2023-01-01T00:00:00Z",
            ),
            rec(
                "u5/e",
                m,
                &["redirector:lesac.ru", "landing:pay.example"],
                "2023-02-01T00:00:00Z",
            ),
            rec("u6/f", m, &["landing:lone.example"], "2023-02-01T00:00:00Z"),
            rec(
                "u7/g",
                Verdict::Clean,
                &["landing:x.ru"],
                "2023-02-01T00:00:00Z",
            ),
        ];
        let got = cluster(records.clone(), 2);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].repositories, vec!["u1/a", "u2/b", "u3/c"]);
        assert_eq!(got[0].users, vec!["u1", "u2", "u3"]);
        assert_eq!(got[0].landing_hosts, vec!["x.ru", "y.com"]);
        assert_eq!(got[0].first_seen, "2021-01-01T00:00:00Z");
        assert_eq!(got[0].last_seen, "2023-06-01T00:00:00Z");
        assert_eq!(got[1].repositories, vec!["u4/d", "u5/e"]);
        assert_eq!(got[1].malicious, 1);
        assert_eq!(cluster(records.clone(), 1).len(), 3);
        // Ids do not depend on input order.
        let mut reversed = records;
        reversed.reverse();
        assert_eq!(cluster(reversed, 2)[0].id, got[0].id);
    }
}
