//! A campaign over time: repositories per day (Docker Hub's `date_registered`, else
//! `last_updated`, else the scan's day), with the days at [`FACTOR`] times the trailing median
//! or more flagged, as the report found its campaigns (10x spikes per day).
//!
//! The baseline of a day is the median of the [`WINDOW_DAYS`] calendar days before it (days
//! without a repository count as 0), counting only days since the campaign's first; with
//! fewer than [`MIN_HISTORY_DAYS`] of those there is no baseline and the day is not flagged.
//! A median of 0 counts as 1, so a day needs [`FACTOR`] repositories at least.

use std::collections::BTreeMap;

use serde::Serialize;

/// Calendar days before a day that make its baseline.
pub const WINDOW_DAYS: i64 = 28;
/// Days of a campaign's own history a baseline needs.
pub const MIN_HISTORY_DAYS: i64 = 7;
/// How many times the baseline makes a day an anomaly.
pub const FACTOR: u64 = 10;

/// One day with repositories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub repositories: u64,
    /// The trailing median the day is compared with (`None`: too short a history).
    pub baseline: Option<u64>,
    pub anomaly: bool,
}

/// A campaign's timeline: its days with repositories, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub campaign: String,
    pub window_days: i64,
    pub factor: u64,
    pub days: Vec<Day>,
    /// Repositories whose day was no `YYYY-MM-DD` date (left out of `days`).
    pub undated: u64,
}

/// The timeline of campaign `id` from its repositories per day (keys as `YYYY-MM-DD`).
/// Work is bounded by the days with repositories times the window, whatever span they cover.
pub fn timeline(id: &str, per_day: &BTreeMap<String, u64>) -> Timeline {
    let mut undated = 0;
    let mut dated: BTreeMap<i64, (&str, u64)> = BTreeMap::new();
    for (day, &n) in per_day {
        match day_number(day) {
            Some(d) => {
                dated.insert(d, (day.as_str(), n));
            }
            None => undated += n,
        }
    }
    let first = dated.keys().next().copied().unwrap_or(0);
    let days = dated
        .iter()
        .map(|(&d, &(day, n))| {
            let baseline = (d - first >= MIN_HISTORY_DAYS).then(|| {
                let from = (d - WINDOW_DAYS).max(first);
                let mut window: Vec<u64> = (from..d)
                    .map(|x| dated.get(&x).map_or(0, |v| v.1))
                    .collect();
                window.sort_unstable();
                window[window.len() / 2]
            });
            Day {
                day: day.to_string(),
                repositories: n,
                baseline,
                anomaly: baseline.is_some_and(|b| n >= FACTOR.saturating_mul(b.max(1))),
            }
        })
        .collect();
    Timeline {
        campaign: id.to_string(),
        window_days: WINDOW_DAYS,
        factor: FACTOR,
        days,
        undated,
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian), if it is one.
pub fn day_number(day: &str) -> Option<i64> {
    let b = day.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| day.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2021-03-01"), Some(18_687));
        assert_eq!(
            day_number("2020-02-29").map(|d| d + 1),
            day_number("2020-03-01")
        );
        assert_eq!(day_number("2021-13-01"), None);
        assert_eq!(day_number("garbage!!!"), None);
    }

    #[test]
    fn a_tenfold_day_is_an_anomaly_and_a_short_history_has_no_baseline() {
        let mut per_day = BTreeMap::new();
        for d in 1..=20 {
            per_day.insert(format!("2023-01-{d:02}"), 3);
        }
        per_day.insert("2023-01-21".into(), 30);
        per_day.insert("2023-01-22".into(), 29);
        per_day.insert("not a day".into(), 4);
        let t = timeline("c-1", &per_day);
        assert_eq!(t.undated, 4);
        let day = |s: &str| t.days.iter().find(|d| d.day == s).unwrap();
        assert!(day("2023-01-21").anomaly);
        assert_eq!(day("2023-01-21").baseline, Some(3));
        assert!(!day("2023-01-22").anomaly, "29 < 10 x 3");
        // The first week has no baseline, however big a day is.
        assert_eq!(day("2023-01-05").baseline, None);
        assert!(t.days.iter().filter(|d| d.anomaly).count() == 1);
        // A lone spike after a long quiet: the median of empty days counts as 1.
        let mut sparse = BTreeMap::new();
        sparse.insert("2021-01-01".to_string(), 1);
        sparse.insert("2023-06-01".to_string(), 12);
        let t = timeline("c-2", &sparse);
        assert!(t.days[1].anomaly && t.days[1].baseline == Some(0));
    }
}
