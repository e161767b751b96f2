//! The watchlist, observations, events and counters in PostgreSQL. A due watch is claimed
//! with `FOR UPDATE SKIP LOCKED` and a lease, so of the replicas on one database exactly one
//! runs it; a new event is announced with `NOTIFY hoptrace_events`.

use super::*;
use crate::store::model::{Event, Observation, WatchRecord};
use crate::store::Watches;

const WATCH_COLUMNS: &str =
    "url, every_seconds, next_due_ms, added_ms, last_run_ms, auto, profiles, via";

fn watch_of(r: &tokio_postgres::Row) -> WatchRecord {
    WatchRecord {
        url: r.get("url"),
        every_seconds: unms(r.get("every_seconds")),
        next_due_ms: unms(r.get("next_due_ms")),
        added_ms: unms(r.get("added_ms")),
        last_run_ms: r.get::<_, Option<i64>>("last_run_ms").map(unms),
        auto: r.get("auto"),
        profiles: r.get("profiles"),
        via: r.get("via"),
    }
}

/// The due watches, claimed: each gets its next due time (its interval give or take 10%) and
/// a lease; rows another replica is claiming at this moment are skipped, not waited for.
const CLAIM_DUE: &str = "
UPDATE watches w SET
    next_due_ms = $1 + GREATEST(1, (w.every_seconds * 1000 * (0.9 + random() * 0.2))::bigint),
    lease_until_ms = $1 + $3
FROM (
    SELECT url FROM watches
    WHERE next_due_ms <= $1 AND lease_until_ms <= $1
    ORDER BY next_due_ms, url
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) due
WHERE w.url = due.url
RETURNING w.url, w.every_seconds, w.next_due_ms, w.added_ms, w.last_run_ms, w.auto,
    w.profiles, w.via";

/// An observation, and the oldest beyond `keep` dropped (the new row is not yet visible to
/// the DELETE, hence `keep - 1`).
const OBSERVE: &str = "
WITH ins AS (
    INSERT INTO observations (url, at_ms, observation) VALUES ($1, $2, $3)
)
DELETE FROM observations WHERE seq IN (
    SELECT seq FROM observations WHERE url = $1
    ORDER BY at_ms DESC, seq DESC OFFSET GREATEST($4::bigint - 1, 0))";

const PUSH_EVENT: &str = "
WITH ins AS (
    INSERT INTO events (event) VALUES ($1) RETURNING id
), trimmed AS (
    DELETE FROM events WHERE id <= (SELECT id FROM ins) - $2
), told AS (
    SELECT pg_notify('hoptrace_events', (SELECT id FROM ins)::text)
)
SELECT ins.id FROM ins CROSS JOIN told";

impl PgStore {
    /// Inserts `w`, doing `on_conflict` when its URL is watched already; rows written.
    async fn insert_watch(&self, w: &WatchRecord, on_conflict: &str) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO watches ({WATCH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) {on_conflict}"
        );
        self.execute(
            &sql,
            &[
                &w.url,
                &ms(w.every_seconds),
                &ms(w.next_due_ms),
                &ms(w.added_ms),
                &w.last_run_ms.map(ms),
                &w.auto,
                &w.profiles,
                &w.via,
            ],
        )
        .await
    }
}

#[async_trait]
impl Watches for PgStore {
    fn shared(&self) -> bool {
        true
    }

    async fn put_watch(&self, w: &WatchRecord) -> Result<(), StoreError> {
        // Writing a watch ends any claim on it: the run that held it is recording itself.
        self.insert_watch(
            w,
            "ON CONFLICT (url) DO UPDATE SET every_seconds = EXCLUDED.every_seconds,
                 next_due_ms = EXCLUDED.next_due_ms, added_ms = EXCLUDED.added_ms,
                 last_run_ms = EXCLUDED.last_run_ms, auto = EXCLUDED.auto,
                 profiles = EXCLUDED.profiles, via = EXCLUDED.via, lease_until_ms = 0",
        )
        .await
        .map(|_| ())
    }

    async fn add_watch_if_absent(&self, w: &WatchRecord) -> Result<bool, StoreError> {
        Ok(self.insert_watch(w, "ON CONFLICT (url) DO NOTHING").await? == 1)
    }

    async fn watch(&self, url: &str) -> Result<Option<WatchRecord>, StoreError> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watches WHERE url = $1");
        Ok(self.query(&sql, &[&url]).await?.first().map(watch_of))
    }

    async fn remove_watch(&self, url: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute("DELETE FROM watches WHERE url = $1", &[&url])
            .await?
            == 1)
    }

    async fn watches(&self) -> Result<Vec<WatchRecord>, StoreError> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watches ORDER BY url");
        Ok(self.query(&sql, &[]).await?.iter().map(watch_of).collect())
    }

    async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "SELECT url FROM watches WHERE next_due_ms <= $1 ORDER BY next_due_ms, url LIMIT $2",
                &[&ms(now_ms), &count(limit)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        // A claimed watch is not due before its lease ends.
        let rows = self
            .query(
                "SELECT min(GREATEST(next_due_ms, lease_until_ms)) FROM watches",
                &[],
            )
            .await?;
        Ok(rows[0].get::<_, Option<i64>>(0).map(unms))
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        let rows = self
            .query(CLAIM_DUE, &[&ms(now_ms), &count(limit), &ms(lease_ms)])
            .await?;
        let mut claimed: Vec<WatchRecord> = rows.iter().map(watch_of).collect();
        claimed.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(claimed)
    }

    async fn observe(
        &self,
        url: &str,
        at_ms: u64,
        observation: &Observation,
        keep: usize,
    ) -> Result<(), StoreError> {
        self.execute(
            OBSERVE,
            &[&url, &ms(at_ms), &Json(observation), &count(keep)],
        )
        .await
        .map(|_| ())
    }

    async fn observations(&self, url: &str) -> Result<Vec<Observation>, StoreError> {
        let rows = self
            .query(
                "SELECT observation FROM observations WHERE url = $1 ORDER BY at_ms, seq",
                &[&url],
            )
            .await?;
        rows.iter().map(|r| json_col(r, 0, "observation")).collect()
    }

    async fn push_event(&self, keep: usize, event: Event) -> Result<u64, StoreError> {
        let rows = self
            .query(PUSH_EVENT, &[&Json(&event), &count(keep)])
            .await?;
        Ok(unms(rows[0].get(0)))
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        let rows = self
            .query("SELECT COALESCE(max(id), 0) FROM events", &[])
            .await?;
        Ok(unms(rows[0].get(0)))
    }

    async fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let rows = self
            .query(
                "SELECT id, event FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&ms(after), &count(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id = unms(r.get(0));
                let mut e: Event = json_col(r, 1, "event")?;
                e.id = id;
                Ok((id, e))
            })
            .collect()
    }

    async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let rows = self
            .query("SELECT value FROM counters WHERE name = $1", &[&name])
            .await?;
        Ok(rows.first().map(|r| unms(r.get(0))).unwrap_or(0))
    }

    async fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO counters (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &ms(value)],
        )
        .await
        .map(|_| ())
    }
}
