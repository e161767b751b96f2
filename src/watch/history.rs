//! What a watch's observations add up to: the summary `/v1/history` answers and the event a
//! new observation raises (a new landing host, or new labels on a known one).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{EventKind, Observation, WatchCell};
use crate::trace::{rfc3339_ms, Outcome, Trace};

impl Observation {
    pub(super) fn of(trace: &Trace, at_ms: u64) -> Observation {
        Observation {
            at: rfc3339_ms(at_ms),
            final_url: trace.final_url.clone(),
            final_host: trace.final_host.clone(),
            outcome: trace.outcome,
            labels: trace.labels.clone(),
            hop_hosts: trace.hops.iter().map(|h| h.host.clone()).collect(),
            landing_labels: trace
                .hops
                .last()
                .map(|h| h.labels.clone())
                .unwrap_or_default(),
            cell: None,
        }
    }

    /// A landed observation (for tests).
    #[cfg(test)]
    pub(crate) fn sample(at: &str, url: &str, host: &str) -> Observation {
        Observation {
            at: at.into(),
            final_url: url.into(),
            final_host: host.into(),
            outcome: Outcome::Landed,
            labels: vec![],
            hop_hosts: vec![],
            landing_labels: vec![],
            cell: None,
        }
    }

    /// Whether it reached somewhere (a page or a file).
    fn landed(&self) -> bool {
        matches!(self.outcome, Outcome::Landed | Outcome::Download) && !self.final_host.is_empty()
    }
}

/// A new landing host in a link's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewHost {
    pub host: String,
    pub first_seen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub observations: usize,
    pub distinct_final_urls: usize,
    pub distinct_final_hosts: Vec<String>,
    /// The final URL changed between observations.
    pub rotating: bool,
    pub first_seen: String,
    pub last_seen: String,
    /// Landing hosts that appeared after the first run, when each first did.
    pub new_hosts: Vec<NewHost>,
    /// The newest run's visitors (a watch naming profiles or points) ended on different
    /// registrable domains or with different outcomes.
    #[serde(default)]
    pub cloaked: bool,
}

/// A watched link's observations, oldest first, and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub url: String,
    pub observations: Vec<Observation>,
    pub summary: Summary,
}

/// What `obs` (oldest first) add up to. A watch naming several visitors has one observation
/// per visitor and run: rotation is one visitor's final URL changing between its runs, not
/// two visitors differing (that is cloaking, judged on the newest run).
pub fn summarize(obs: &[Observation]) -> Summary {
    let mut urls = HashSet::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut new_hosts = Vec::new();
    let first_run = obs.first().map(|o| o.at.as_str());
    let mut last_url: HashMap<&Option<WatchCell>, &str> = HashMap::new();
    let mut rotating = false;
    for o in obs {
        urls.insert(o.final_url.as_str());
        if !o.final_host.is_empty() && !hosts.contains(&o.final_host) {
            hosts.push(o.final_host.clone());
            if Some(o.at.as_str()) != first_run {
                new_hosts.push(NewHost {
                    host: o.final_host.clone(),
                    first_seen: o.at.clone(),
                });
            }
        }
        if let Some(before) = last_url.insert(&o.cell, &o.final_url) {
            rotating |= before != o.final_url;
        }
    }
    let last_run = obs.last().map(|o| o.at.as_str());
    let newest = obs.iter().filter(|o| Some(o.at.as_str()) == last_run);
    Summary {
        observations: obs.len(),
        distinct_final_urls: urls.len(),
        distinct_final_hosts: hosts,
        rotating,
        first_seen: obs.first().map(|o| o.at.clone()).unwrap_or_default(),
        last_seen: obs.last().map(|o| o.at.clone()).unwrap_or_default(),
        new_hosts,
        cloaked: crate::compare::ends_differ(newest.map(|o| (o.outcome, o.final_host.as_str()))),
    }
}

/// The event one new observation raises against the ones before it, if any: none for the
/// first (there is nothing to compare with) or when it did not land.
pub(super) fn event_for(
    before: &[Observation],
    now: &Observation,
) -> Option<(EventKind, Vec<String>)> {
    if before.is_empty() || !now.landed() {
        return None;
    }
    let seen: Vec<String> = before
        .iter()
        .filter(|o| o.landed())
        .map(|o| o.final_host.clone())
        .fold(Vec::new(), |mut v, h| {
            if !v.contains(&h) {
                v.push(h);
            }
            v
        });
    match before
        .iter()
        .rev()
        .find(|o| o.landed() && o.final_host == now.final_host)
    {
        None => Some((EventKind::NewLandingHost, seen)),
        Some(last) if sorted(&last.landing_labels) != sorted(&now.landing_labels) => {
            let before = last.landing_labels.iter().map(ToString::to_string);
            Some((EventKind::Relabel, before.collect()))
        }
        Some(_) => None,
    }
}

fn sorted<T: Ord>(v: &[T]) -> Vec<&T> {
    let mut s: Vec<&T> = v.iter().collect();
    s.sort();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(at: &str, url: &str, host: &str, labels: &[&str]) -> Observation {
        Observation {
            landing_labels: labels
                .iter()
                .map(|s| crate::trace::Label::from(*s))
                .collect(),
            ..Observation::sample(at, url, host)
        }
    }

    #[test]
    fn summary_and_events() {
        let a1 = obs("t1", "http://a/1", "a", &[]);
        let a2 = obs("t2", "http://a/2", "a", &[]);
        let b3 = obs("t3", "http://b/3", "b", &[]);
        let s = summarize(&[a1.clone(), a2.clone(), b3.clone()]);
        assert_eq!(s.observations, 3);
        assert_eq!(s.distinct_final_urls, 3);
        assert_eq!(s.distinct_final_hosts, vec!["a", "b"]);
        assert!(s.rotating);
        assert_eq!(
            s.new_hosts,
            vec![NewHost {
                host: "b".into(),
                first_seen: "t3".into()
            }]
        );
        assert!(!summarize(&[a1.clone(), a1.clone()]).rotating);

        assert_eq!(
            event_for(&[], &a1),
            None,
            "the first observation is the baseline"
        );
        assert_eq!(event_for(std::slice::from_ref(&a1), &a2), None);
        assert_eq!(
            event_for(&[a1.clone(), a2.clone()], &b3),
            Some((EventKind::NewLandingHost, vec!["a".into()]))
        );
        let a_bad = obs("t4", "http://a/4", "a", &["payload-host"]);
        assert_eq!(
            event_for(&[a1.clone(), b3.clone()], &a_bad),
            Some((EventKind::Relabel, vec![]))
        );
        let mut failed = a1.clone();
        failed.outcome = Outcome::Error;
        assert_eq!(event_for(&[a1], &failed), None);
    }

    #[test]
    fn visitors_apart_are_cloaking_not_rotation() {
        let as_ = |mut o: Observation, via: &str| {
            o.cell = Some(WatchCell {
                profile: "windows-chrome".into(),
                via: via.into(),
            });
            o
        };
        // Two runs; each point lands on its own domain, the same URL both times.
        let run = |at: &str| {
            vec![
                as_(obs(at, "http://a.example/", "a.example", &[]), "nl"),
                as_(obs(at, "http://b.example/", "b.example", &[]), "us"),
            ]
        };
        let two: Vec<Observation> = run("t1").into_iter().chain(run("t2")).collect();
        let s = summarize(&two);
        assert!(!s.rotating, "each visitor saw the same URL both times");
        assert!(s.cloaked, "the visitors of the newest run landed apart");
        assert!(
            s.new_hosts.is_empty(),
            "both hosts were there from the first run"
        );
        // The newest run agrees: not cloaked now.
        let mut agree = two.clone();
        agree.push(as_(obs("t3", "http://a.example/", "a.example", &[]), "nl"));
        agree.push(as_(obs("t3", "http://a.example/x", "a.example", &[]), "us"));
        let s = summarize(&agree);
        assert!(!s.cloaked);
        assert!(s.rotating, "us's final URL changed");
        // A default watch is never cloaked.
        assert!(!summarize(&[obs("t1", "http://a/", "a", &[])]).cloaked);
    }
}
