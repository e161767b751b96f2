//! Campaigns: repositories grouped by the infrastructure their links share and by the
//! accounts that publish them. Two flagged repositories are in one campaign when any key of
//! [`crate::scan::infrastructure`] (landing domain, fake-shortener domain, redirector) or
//! publishing signature is the same, or when one account published both; grouping is
//! transitive (union-find). An account that published a flagged repository carries its other
//! repositories into the campaign too (as the report grouped: every repository of a campaign
//! account is the campaign's), each with its own verdict and a `publisher` reason naming the
//! account, kept apart from what its links showed. Other clean repositories join no campaign:
//! everyone links to GitHub.
//!
//! Built in bounded memory from two walks over the store ([`Clusters::build`]): the first
//! unites keys and accounts (memory grows with distinct keys and accounts, never with
//! repositories), the second sums each campaign up, its lists capped at [`SAMPLE`]; members
//! are streamed by a further walk when asked ([`Clusters::members`]). The timeline of each
//! campaign is in [`timeline`].

pub mod timeline;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::scan::{
    infrastructure, Fnv, InfraKey, InfraKind, Reason, ReasonKind, RepositoryRecord, Verdict,
};
use crate::store::{Store, StoreError};
use crate::trace::{Label, Trace};

/// Entries each list of a campaign summary holds at most (`landing_hosts`, `repositories`,
/// `users`, `infrastructure`, `labels`): the first in name order. Counts are exact.
pub const SAMPLE: usize = 100;

/// Repositories read from the store per call while walking it.
const PAGE: usize = 1000;

/// Damaged records named in a walk's summary at most (all are counted).
const DAMAGED_NAMED: usize = 20;

/// One cluster of repositories, summed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Stable while the campaign keeps its earliest-sorting infrastructure key.
    pub id: String,
    /// The first [`SAMPLE`] landing hosts, in name order.
    pub landing_hosts: Vec<String>,
    /// The first [`SAMPLE`] repositories, in name order (all of them: [`Clusters::members`]).
    pub repositories: Vec<String>,
    /// The first [`SAMPLE`] publishing users (namespaces), in name order.
    pub users: Vec<String>,
    pub labels: Vec<Label>,
    /// Span of the repositories' Docker Hub `last_updated` (scan time where the input had
    /// none).
    pub first_seen: String,
    pub last_seen: String,
    /// The first [`SAMPLE`] shared keys (`landing:`, `fake-shortener:`, `redirector:`,
    /// `signature:`).
    pub infrastructure: Vec<InfraKey>,
    pub repository_count: usize,
    pub user_count: usize,
    /// How many of the repositories are malicious (the rest are suspicious, or joined through
    /// their publisher alone).
    pub malicious: usize,
    /// Repositories in by their publisher alone (their own links showed nothing to group by).
    #[serde(default)]
    pub publisher_repositories: usize,
    /// Whether a list above was cut at [`SAMPLE`].
    #[serde(default)]
    pub truncated: bool,
}

/// How a repository came into its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Joined {
    /// Its own links passed the campaign's infrastructure.
    Links,
    /// Its account published repositories that did.
    Publisher,
}

/// One repository of a campaign, as [`Clusters::members`] streams them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub campaign: String,
    pub repository: String,
    pub namespace: String,
    pub joined: Joined,
    /// Its verdict in the campaign: its own, or suspicious for a publisher's repository whose
    /// own links were clean.
    pub verdict: Verdict,
    /// What its links showed, then (for [`Joined::Publisher`]) the `publisher` reason.
    pub reasons: Vec<Reason>,
    /// When it was created on Docker Hub (else last updated, else scanned).
    pub day: String,
}

/// Why a walk could not read every record: damaged ones are skipped and named here.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Damaged {
    pub count: usize,
    /// The first [`DAMAGED_NAMED`] errors, each naming its record.
    pub errors: Vec<String>,
}

impl Damaged {
    fn note(&mut self, e: StoreError) {
        self.count += 1;
        if self.errors.len() < DAMAGED_NAMED {
            self.errors.push(e.to_string());
        }
    }
}

/// Every record of the store, a page at a time, damaged ones noted in `damaged` and skipped.
pub async fn walk(
    store: &Store,
    damaged: &mut Damaged,
    each: impl FnMut(RepositoryRecord),
) -> Result<(), StoreError> {
    walk_at(store, None, None, damaged, each).await
}

/// [`walk`], of the store as it was at `version` (of `namespace` alone when given).
async fn walk_at(
    store: &Store,
    version: Option<u64>,
    namespace: Option<&str>,
    damaged: &mut Damaged,
    mut each: impl FnMut(RepositoryRecord),
) -> Result<(), StoreError> {
    let mut after: Option<String> = None;
    loop {
        let page = match version {
            Some(v) => {
                let after = after.as_deref();
                store.repositories_at(namespace, after, v, PAGE).await?
            }
            None => store.repositories_after(after.as_deref(), PAGE).await?,
        };
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (_, record) in page {
            match record {
                Ok(r) => each(r),
                Err(e) => damaged.note(e),
            }
        }
    }
}

/// Whether `r`'s own links place it in a campaign.
fn linked(r: &RepositoryRecord) -> bool {
    r.verdict > Verdict::Clean && !r.infrastructure.is_empty()
}

fn account_key(namespace: &str) -> InfraKey {
    InfraKey::new(InfraKind::Account, namespace)
}

/// The day a repository counts on in a timeline: created, else updated, else scanned.
fn day_of(r: &RepositoryRecord) -> String {
    let when = r
        .date_registered
        .as_deref()
        .or(r.last_updated.as_deref())
        .unwrap_or(&r.scanned_at);
    when.get(..10).unwrap_or(when).to_string()
}

/// `set` with `item`, kept to its first `cap` entries; whether anything was cut.
fn capped<T: Ord + Clone>(set: &mut BTreeSet<T>, item: &T, cap: usize) -> bool {
    if set.len() >= cap && set.last().is_some_and(|l| l <= item) {
        return !set.contains(item);
    }
    set.insert(item.clone());
    if set.len() > cap {
        set.pop_last();
        return true;
    }
    false
}

/// One campaign's sums while the store is walked.
#[derive(Default)]
struct Sums {
    repositories: usize,
    linked: usize,
    publisher: usize,
    malicious: usize,
    first: Option<String>,
    last: Option<String>,
    hosts: BTreeSet<String>,
    repos: BTreeSet<String>,
    labels: BTreeSet<Label>,
    truncated: bool,
    days: BTreeMap<String, u64>,
}

/// The keys and accounts of every campaign, united: what a record, a chain or an id belongs
/// to. Holds one entry per distinct key and account, and the sums of each set.
pub struct Clusters {
    ids: HashMap<InfraKey, u32>,
    sets: UnionFind,
    /// Set root -> what its repositories add up to (kept to fold later writes in).
    sums: HashMap<u32, Sums>,
    /// The store's repository version the clusters cover.
    pub version: u64,
    /// The least size of the campaigns in `campaigns`.
    min: usize,
    /// Repositories read by the last full walk, and folded in since.
    walked: usize,
    folded: usize,
    /// Campaign summaries of at least the asked size, largest first.
    pub campaigns: Vec<Campaign>,
    /// Per campaign (as in `campaigns`), repositories per day.
    pub days: Vec<BTreeMap<String, u64>>,
    /// Set root -> index in `campaigns`.
    roots: HashMap<u32, usize>,
    pub damaged: Damaged,
}

impl Clusters {
    /// No campaigns yet, for the store at `version`.
    fn empty(version: u64, min_repositories: usize) -> Clusters {
        Clusters {
            ids: HashMap::new(),
            sets: UnionFind::default(),
            sums: HashMap::new(),
            version,
            min: min_repositories.max(1),
            walked: 0,
            folded: 0,
            campaigns: Vec::new(),
            days: Vec::new(),
            roots: HashMap::new(),
            damaged: Damaged::default(),
        }
    }

    /// Campaigns of at least `min_repositories` repositories whose own links group them, from
    /// two walks over the store as it was when they began.
    pub async fn build(store: &Store, min_repositories: usize) -> Result<Clusters, StoreError> {
        let version = store.repositories_version().await?;
        let mut c = Clusters::empty(version, min_repositories);
        let mut damaged = Damaged::default();
        let at = Some(version);
        walk_at(store, at, None, &mut damaged, |r| {
            c.unite(&r);
        })
        .await?;
        // A record damaged in the first walk is damaged in the second: noted once.
        walk_at(store, at, None, &mut Damaged::default(), |r| {
            c.walked += 1;
            c.add(&r);
        })
        .await?;
        c.damaged = damaged;
        c.sum_up(c.min);
        Ok(c)
    }

    /// Folds the repositories written since [`Clusters::version`] in, a page of writes at a
    /// time, instead of walking the store again: each write is united and placed as the walks
    /// would, and an account that joins a campaign for the first time brings its earlier
    /// repositories in by its name's range of the store. False, with the clusters left to be
    /// built again, when the writes cannot be folded: the store keeps no log of them, a write
    /// replaced a record (its old part cannot be taken back out), or more were written than
    /// the last full walk read (walking again is as cheap then, and catches a write another
    /// process committed out of order).
    pub async fn fold(&mut self, store: &Store) -> Result<bool, StoreError> {
        loop {
            let Some(page) = store.repositories_since(self.version, PAGE).await? else {
                return Ok(false);
            };
            let Some(last) = page.last().map(|w| w.version) else {
                break;
            };
            self.folded += page.len();
            if page.iter().any(|w| w.replaced) || self.folded > self.walked.max(PAGE) {
                return Ok(false);
            }
            let before = self.version;
            let mut records = Vec::with_capacity(page.len());
            for w in page {
                match w.record {
                    Ok(r) => records.push(r),
                    Err(e) => self.damaged.note(e),
                }
            }
            let mut joined = Vec::new();
            for r in &records {
                joined.extend(self.unite(r));
            }
            for r in &records {
                self.add(r);
            }
            // An account new to the campaigns: its repositories written before this page
            // (those of the page were just placed; later ones are placed as they come).
            for namespace in joined {
                let mut earlier = Vec::new();
                // Damaged ones were noted by the walk or fold that first read them.
                let damaged = &mut Damaged::default();
                walk_at(store, Some(before), Some(&namespace), damaged, |r| {
                    if !linked(&r) {
                        earlier.push(r);
                    }
                })
                .await?;
                for r in &earlier {
                    self.add(r);
                }
            }
            self.version = last;
        }
        self.sum_up(self.min);
        Ok(true)
    }

    /// Sums the campaigns of at least `min` repositories up again (no walk).
    pub fn summarize(&mut self, min: usize) {
        self.sum_up(min.max(1));
    }

    /// `r` counted in its set's sums, if it is in one.
    fn add(&mut self, r: &RepositoryRecord) {
        if let Some((root, joined)) = self.place(r) {
            self.sums.entry(root).or_default().add(r, joined);
        }
    }

    /// The set of `key`, made on first sight.
    fn node(&mut self, key: &InfraKey) -> u32 {
        if let Some(&n) = self.ids.get(key) {
            return n;
        }
        let n = self.sets.push();
        self.ids.insert(key.clone(), n);
        n
    }

    /// First walk: a repository whose links group it unites its keys and its account; the
    /// account's name when it is new to the campaigns.
    fn unite(&mut self, r: &RepositoryRecord) -> Option<String> {
        if !linked(r) {
            return None;
        }
        let first = self.node(&r.infrastructure[0]);
        for key in &r.infrastructure[1..] {
            let n = self.node(key);
            self.join(first, n);
        }
        if r.namespace.is_empty() {
            return None;
        }
        let account = account_key(&r.namespace);
        let new = !self.ids.contains_key(&account);
        let n = self.node(&account);
        self.join(first, n);
        new.then(|| r.namespace.clone())
    }

    /// Unites the sets of `a` and `b`, their sums too.
    fn join(&mut self, a: u32, b: u32) {
        if let Some((root, gone)) = self.sets.union(a, b) {
            if let Some(sums) = self.sums.remove(&gone) {
                self.sums.entry(root).or_default().merge(sums);
            }
        }
    }

    /// The set `r` belongs to, and how: by its links, or by its account.
    fn place(&mut self, r: &RepositoryRecord) -> Option<(u32, Joined)> {
        let (key, joined) = match linked(r) {
            true => (r.infrastructure[0].clone(), Joined::Links),
            false if r.namespace.is_empty() => return None,
            false => (account_key(&r.namespace), Joined::Publisher),
        };
        let n = *self.ids.get(&key)?;
        Some((self.sets.find(n), joined))
    }

    /// The campaigns from each set's sums and its keys.
    fn sum_up(&mut self, min: usize) {
        self.min = min;
        self.campaigns.clear();
        self.days.clear();
        self.roots.clear();
        let sums = &self.sums;
        #[derive(Default)]
        struct Keys {
            infra: BTreeSet<InfraKey>,
            users: BTreeSet<String>,
            user_count: usize,
            truncated: bool,
        }
        let mut keys: HashMap<u32, Keys> = HashMap::new();
        let ids: Vec<(&InfraKey, &u32)> = self.ids.iter().collect();
        for (key, &n) in ids {
            let root = self.sets.find(n);
            if sums.get(&root).is_none_or(|s| s.linked < min) {
                continue;
            }
            let k = keys.entry(root).or_default();
            match key.kind {
                InfraKind::Account => {
                    k.user_count += 1;
                    k.truncated |= capped(&mut k.users, &key.name, SAMPLE);
                }
                _ => k.truncated |= capped(&mut k.infra, key, SAMPLE),
            }
        }
        let mut all: Vec<(u32, Campaign, BTreeMap<String, u64>)> = sums
            .iter()
            .filter(|(_, s)| s.linked >= min)
            .map(|(&root, s)| {
                let k = keys.remove(&root).unwrap_or_default();
                let mut id = Fnv::default();
                let first = k.infra.first().map(ToString::to_string);
                id.write(first.unwrap_or_default().as_bytes());
                let campaign = Campaign {
                    id: format!("c-{:012x}", id.0 & 0xffff_ffff_ffff),
                    landing_hosts: s.hosts.iter().cloned().collect(),
                    repositories: s.repos.iter().cloned().collect(),
                    users: k.users.into_iter().collect(),
                    labels: s.labels.iter().cloned().collect(),
                    first_seen: s.first.clone().unwrap_or_default(),
                    last_seen: s.last.clone().unwrap_or_default(),
                    infrastructure: k.infra.into_iter().collect(),
                    repository_count: s.repositories,
                    user_count: k.user_count,
                    malicious: s.malicious,
                    publisher_repositories: s.publisher,
                    truncated: s.truncated || k.truncated,
                };
                (root, campaign, s.days.clone())
            })
            .collect();
        all.sort_by(|a, b| {
            b.1.repository_count
                .cmp(&a.1.repository_count)
                .then_with(|| a.1.id.cmp(&b.1.id))
        });
        for (i, (root, campaign, days)) in all.into_iter().enumerate() {
            self.roots.insert(root, i);
            self.campaigns.push(campaign);
            self.days.push(days);
        }
    }

    /// The campaign with this id and its index.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.campaigns.iter().position(|c| c.id == id)
    }

    /// `r` as a member of its campaign, if it is in one.
    pub fn member(&mut self, r: RepositoryRecord) -> Option<(usize, Member)> {
        let (root, joined) = self.place(&r)?;
        let &i = self.roots.get(&root)?;
        let campaign = &self.campaigns[i].id;
        let mut verdict = r.verdict;
        let mut reasons = r.reasons.clone();
        if joined == Joined::Publisher {
            verdict = verdict.max(Verdict::Suspicious);
            reasons.push(Reason {
                verdict: Verdict::Suspicious,
                url: None,
                why: format!(
                    "published by {}, an account whose other repositories' links are campaign {campaign}'s",
                    r.namespace
                ),
                kind: ReasonKind::Publisher,
                account: Some(r.namespace.clone()),
            });
        }
        let member = Member {
            campaign: campaign.clone(),
            day: day_of(&r),
            repository: r.repository,
            namespace: r.namespace,
            joined,
            verdict,
            reasons,
        };
        Some((i, member))
    }

    /// Every member of campaign `index` (or of every campaign), in name order, from one more
    /// walk over the store.
    pub async fn members(
        &mut self,
        store: &Store,
        index: Option<usize>,
        mut each: impl FnMut(Member),
    ) -> Result<(), StoreError> {
        walk(store, &mut Damaged::default(), |r| {
            if let Some((i, m)) = self.member(r) {
                if index.is_none_or(|want| want == i) {
                    each(m);
                }
            }
        })
        .await
    }

    /// The campaign a chain's infrastructure belongs to, if any.
    pub fn of_trace(&mut self, trace: &Trace) -> Option<usize> {
        infrastructure(trace).iter().find_map(|key| {
            let n = *self.ids.get(key)?;
            let root = self.sets.find(n);
            self.roots.get(&root).copied()
        })
    }
}

impl Sums {
    fn add(&mut self, r: &RepositoryRecord, joined: Joined) {
        self.repositories += 1;
        match joined {
            Joined::Links => self.linked += 1,
            Joined::Publisher => self.publisher += 1,
        }
        self.malicious += usize::from(r.verdict == Verdict::Malicious);
        self.seen(r.last_updated.as_deref().unwrap_or(&r.scanned_at));
        let mut cut = capped(&mut self.repos, &r.repository, SAMPLE);
        for h in &r.landing_hosts {
            cut |= capped(&mut self.hosts, h, SAMPLE);
        }
        for l in &r.labels {
            cut |= capped(&mut self.labels, l, SAMPLE);
        }
        self.truncated |= cut;
        *self.days.entry(day_of(r)).or_default() += 1;
    }

    /// `seen` within the first and last seen.
    fn seen(&mut self, seen: &str) {
        if self.first.as_deref().is_none_or(|f| seen < f) {
            self.first = Some(seen.to_string());
        }
        if self.last.as_deref().is_none_or(|l| seen > l) {
            self.last = Some(seen.to_string());
        }
    }

    /// `other`'s repositories counted here too (two sets united).
    fn merge(&mut self, other: Sums) {
        self.repositories += other.repositories;
        self.linked += other.linked;
        self.publisher += other.publisher;
        self.malicious += other.malicious;
        for seen in [other.first, other.last].iter().flatten() {
            self.seen(seen);
        }
        let mut cut = other.truncated;
        for (mine, theirs) in [
            (&mut self.repos, other.repos),
            (&mut self.hosts, other.hosts),
        ] {
            for item in theirs {
                cut |= capped(mine, &item, SAMPLE);
            }
        }
        for label in other.labels {
            cut |= capped(&mut self.labels, &label, SAMPLE);
        }
        self.truncated |= cut;
        for (day, n) in other.days {
            *self.days.entry(day).or_default() += n;
        }
    }
}

/// Disjoint sets with path halving and union by size.
#[derive(Default)]
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn push(&mut self) -> u32 {
        let n = self.parent.len() as u32;
        self.parent.push(n);
        self.size.push(1);
        n
    }

    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let up = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = up;
            i = up;
        }
        i
    }

    /// Unites the sets of `a` and `b`; the root kept and the root merged into it, when they
    /// were apart.
    fn union(&mut self, a: u32, b: u32) -> Option<(u32, u32)> {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return None;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
        Some((a, b))
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
            infrastructure: infra.iter().map(|s| s.parse().unwrap()).collect(),
            labels: vec![],
            scanned_at: "2026-01-01T00:00:00Z".into(),
            last_updated: Some(when.into()),
            date_registered: None,
        }
    }

    /// A sled store holding `records` (and `damaged` names whose records are not JSON).
    async fn store_of(
        dir: &std::path::Path,
        records: &[RepositoryRecord],
        damaged: &[&str],
    ) -> Store {
        {
            let db = ::sled::open(dir).unwrap();
            let tree = db.open_tree("repositories").unwrap();
            for name in damaged {
                tree.insert(name.as_bytes(), &b"{\"repository\": 7"[..])
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let store = Store::open_sled(dir).unwrap();
        for r in records {
            store.put_repository(&r.repository, r).await.unwrap();
        }
        store
    }

    async fn cluster(records: Vec<RepositoryRecord>, min: usize) -> Vec<Campaign> {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), &records, &[]).await;
        Clusters::build(&store, min).await.unwrap().campaigns
    }

    #[tokio::test]
    async fn shared_keys_join_transitively_and_clean_stays_out() {
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
        let got = cluster(records.clone(), 2).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].repositories, vec!["u1/a", "u2/b", "u3/c"]);
        assert_eq!(got[0].users, vec!["u1", "u2", "u3"]);
        assert_eq!(got[0].landing_hosts, vec!["x.ru", "y.com"]);
        assert_eq!(got[0].first_seen, "2021-01-01T00:00:00Z");
        assert_eq!(got[0].last_seen, "2023-06-01T00:00:00Z");
        assert_eq!(got[1].repositories, vec!["u4/d", "u5/e"]);
        assert_eq!(got[1].malicious, 1);
        assert_eq!(cluster(records.clone(), 1).await.len(), 3);
        // Ids do not depend on what else is stored.
        let fewer = cluster(records[..3].to_vec(), 2).await;
        assert_eq!(fewer[0].id, got[0].id);
    }

    /// An account that published campaign repositories carries its others into the campaign
    /// (one without any link too), each with its own verdict and a `publisher` reason naming
    /// the account; an account with nothing flagged stays out.
    #[tokio::test]
    async fn a_publishers_other_repositories_join_with_a_reason_of_their_own() {
        let m = Verdict::Malicious;
        let when = "2023-01-01T00:00:00Z";
        let records = vec![
            rec("dl1/crack-a", m, &["landing:pay.ru"], when),
            rec("dl2/crack-b", m, &["landing:pay.ru"], when),
            rec("dl1/no-link", Verdict::Clean, &[], when),
            rec("bystander/tool", Verdict::Clean, &[], when),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), &records, &[]).await;
        let mut c = Clusters::build(&store, 2).await.unwrap();
        assert_eq!(c.campaigns.len(), 1);
        let one = c.campaigns[0].clone();
        assert_eq!(one.repository_count, 3);
        assert_eq!(one.publisher_repositories, 1);
        assert_eq!(
            one.repositories,
            ["dl1/crack-a", "dl1/no-link", "dl2/crack-b"]
        );
        let mut members = Vec::new();
        c.members(&store, Some(0), |m| members.push(m))
            .await
            .unwrap();
        assert_eq!(members.len(), 3);
        let linkless = members
            .iter()
            .find(|m| m.repository == "dl1/no-link")
            .unwrap();
        assert_eq!(linkless.joined, Joined::Publisher);
        assert_eq!(linkless.verdict, Verdict::Suspicious);
        let reason = linkless.reasons.last().unwrap();
        assert_eq!(reason.kind, ReasonKind::Publisher);
        assert_eq!(reason.account.as_deref(), Some("dl1"));
        assert!(reason.why.contains("dl1") && reason.why.contains(&one.id));
        let linked = members
            .iter()
            .find(|m| m.repository == "dl2/crack-b")
            .unwrap();
        assert_eq!(linked.joined, Joined::Links);
        assert!(linked
            .reasons
            .iter()
            .all(|r| r.kind != ReasonKind::Publisher));
        let wire = serde_json::to_value(reason).unwrap();
        assert_eq!(wire["kind"], "publisher");
    }

    /// A damaged record is skipped and named; a campaign's lists stop at the sample size while
    /// its counts stay exact.
    #[tokio::test]
    async fn damaged_records_are_named_and_big_campaigns_capped() {
        let m = Verdict::Malicious;
        let records: Vec<RepositoryRecord> = (0..SAMPLE + 50)
            .map(|i| {
                let host = format!("landing:h{i:04}.example");
                rec(
                    &format!("u{i:04}/r"),
                    m,
                    &["redirector:hub.example", &host],
                    "2023-01-01T00:00:00Z",
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), &records, &["broken/one"]).await;
        let c = Clusters::build(&store, 2).await.unwrap();
        assert_eq!(c.damaged.count, 1);
        assert!(
            c.damaged.errors[0].contains("broken/one"),
            "{:?}",
            c.damaged
        );
        let big = &c.campaigns[0];
        assert_eq!(
            (big.repository_count, big.user_count),
            (SAMPLE + 50, SAMPLE + 50)
        );
        assert!(big.truncated);
        for len in [
            big.repositories.len(),
            big.users.len(),
            big.landing_hosts.len(),
            big.infrastructure.len(),
        ] {
            assert_eq!(len, SAMPLE);
        }
        assert_eq!(big.repositories[0], "u0000/r");
        assert_eq!(big.infrastructure[0].to_string(), "landing:h0000.example");
    }

    /// A campaign of a million repositories from 1,000 accounts (the eBook campaign's
    /// proportions) sharing one landing, grouped as `build`'s two walks group them but from
    /// memory (a store of a million records is minutes of a debug build): no panic, counts
    /// exact, every list cut at `SAMPLE`, the timeline one entry per day.
    #[test]
    fn a_campaign_of_a_million_members_is_counted_exactly_and_listed_in_part() {
        const MEMBERS: usize = 1_000_000;
        const PUBLISHERS: usize = 1_000;
        let template = rec(
            "x/y",
            Verdict::Malicious,
            &["landing:rd.lesac.ru"],
            "2023-05-01T00:00:00Z",
        );
        let records = || {
            let template = &template;
            (0..MEMBERS).map(move |i| {
                let mut r = template.clone();
                r.namespace = format!("ebk{:04}", i % PUBLISHERS);
                r.repository = format!("{}/book-{i:07}", r.namespace);
                r.date_registered = Some(format!("2023-05-{:02}", 1 + i % 28));
                r
            })
        };
        let mut c = Clusters::empty(0, 2);
        records().for_each(|r| {
            c.unite(&r);
        });
        records().for_each(|r| c.add(&r));
        c.sum_up(2);
        assert_eq!(c.ids.len(), PUBLISHERS + 1, "one node per account and key");
        assert_eq!(c.campaigns.len(), 1);
        let one = &c.campaigns[0];
        assert_eq!(
            (one.repository_count, one.user_count, one.malicious),
            (MEMBERS, PUBLISHERS, MEMBERS)
        );
        assert!(one.truncated);
        assert_eq!((one.repositories.len(), one.users.len()), (SAMPLE, SAMPLE));
        assert_eq!(one.repositories[0], "ebk0000/book-0000000");
        assert_eq!(one.landing_hosts, ["rd.lesac.ru"]);
        assert_eq!(c.days[0].len(), 28);
        assert_eq!(c.days[0].values().sum::<u64>(), MEMBERS as u64);
    }
}
