//! The shared backend: PostgreSQL, for any number of hoptrace processes on one database.
//! A write is one statement (its own transaction), committed before it is reported — or,
//! queued for the next flush (`Durability::NextFlush`, `put_repository_later`), committed
//! with the others queued in one transaction at that flush; the landing-domain index is kept
//! in the same statement as its Trace. Migrations are applied at
//! start, under an advisory lock so replicas starting together apply each once.
//!
//! The database is the operator's, named in the config: its connections do not pass the
//! egress gate (which guards what untrusted links make hoptrace connect to).

mod watches;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{to_sql_checked, IsNull, Json, ToSql, Type};
use tokio_postgres::NoTls;

use super::model::{DomainPage, DomainQuery, DomainRecord, DomainSort, RepositoryRecord};
use super::{Durability, EncodedTrace, Repositories, SearchPage, SearchQuery, StoreError, Traces};
use crate::config::Postgres;
use crate::trace::Trace;

/// The schema, one step per entry, in order; a step is applied once per database.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("0001_init.sql")),
    (2, include_str!("0002_repository_revisions.sql")),
    (3, include_str!("0003_watch_visitors.sql")),
    (4, include_str!("0004_screenshots.sql")),
    (5, include_str!("0005_search.sql")),
    (6, include_str!("0006_repository_replaced.sql")),
];

/// The migration after which Traces stored before it need their search terms written.
const SEARCH_MIGRATION: i32 = 5;

/// Any fixed number: the advisory lock replicas take while migrating.
const MIGRATION_LOCK: i64 = 0x686f_7074_7261_6365; // "hoptrace"

pub struct PgStore {
    pool: Pool,
    /// Writes queued for the next flush (`Durability::NextFlush`), in the order made.
    queued: std::sync::Mutex<Vec<Queued>>,
    /// Held by the flush committing a batch: one batch at a time, so batches never wait on
    /// each other's row locks (a hot landing domain's row).
    turn: tokio::sync::Mutex<()>,
}

/// Queued writes past which the writer that queues one more commits the batch itself: what a
/// batch holds in memory stays bounded whoever forgets to flush (a few MB).
const MAX_QUEUED: usize = 4096;

/// A write waiting for the next flush, with everything its statement needs.
enum Queued {
    Trace(TraceRow),
    Repository {
        name: String,
        json: RawJson<Vec<u8>>,
    },
}

/// The parameters of [`PUT_TRACE`] for one Trace.
struct TraceRow {
    key: String,
    at_ms: i64,
    json: RawJson<Vec<u8>>,
    landing: Option<String>,
    now: String,
    labels: Vec<String>,
    keys: Vec<String>,
    blobs: Vec<Vec<u8>>,
    terms: Vec<String>,
}

impl TraceRow {
    fn of(key: &str, trace: &Trace, encoded: &EncodedTrace) -> TraceRow {
        let now_ms = encoded.stored_at_ms();
        // The screenshot and the landing page's HTML, each under its key.
        let (keys, blobs) = super::blobs(trace)
            .into_iter()
            .map(|(k, b)| (k, b.to_vec()))
            .unzip();
        TraceRow {
            key: key.to_string(),
            at_ms: ms(now_ms),
            json: RawJson(encoded.json().to_vec()),
            landing: crate::labels::landing_domain(trace),
            now: crate::trace::rfc3339(now_ms),
            labels: trace
                .hops
                .last()
                .map(|h| h.labels.iter().map(|l| l.as_str().to_string()).collect())
                .unwrap_or_default(),
            keys,
            blobs,
            terms: super::search::terms(trace),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.key,
            &self.at_ms,
            &self.json,
            &self.landing,
            &self.now,
            &self.labels,
            &self.keys,
            &self.blobs,
            &self.terms,
        ]
    }
}

/// Rows of `name, record` as a page of repositories.
fn page_of(rows: &[tokio_postgres::Row]) -> crate::store::RepositoryPage {
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let record = json_col(r, 1, &format!("repository {name}"));
            (name, record)
        })
        .collect()
}

/// A repository's record, a new revision when it replaces one.
const PUT_REPOSITORY: &str = "INSERT INTO repositories (name, record) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE
     SET record = EXCLUDED.record, rev = nextval('repositories_rev'), replaced = true";

impl PgStore {
    /// Connects (within `storage.connect_timeout_ms`) and brings the schema up to date.
    pub async fn open(config: &Postgres) -> Result<PgStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: redacted(&config.url).into(),
            message,
        };
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_err(e.to_string()))?;
        let timeout = config.connect_timeout;
        pg.connect_timeout(timeout);
        pg.application_name("hoptrace");
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        let store = PgStore {
            pool,
            queued: Default::default(),
            turn: Default::default(),
        };
        let applied = store.migrate().await.map_err(|e| open_err(e.to_string()))?;
        if applied.contains(&SEARCH_MIGRATION) {
            store
                .index_stored()
                .await
                .map_err(|e| open_err(e.to_string()))?;
        }
        Ok(store)
    }

    /// Writes the search terms of every Trace stored before the index existed, a page at a
    /// time (once, when the migration that made the index is applied).
    async fn index_stored(&self) -> Result<(), StoreError> {
        let mut after: Option<String> = None;
        loop {
            let page = self.traces_after(after.as_deref(), 500).await?;
            for (key, trace, _) in &page {
                let terms = super::search::terms(trace);
                self.execute(
                    "INSERT INTO search_terms (term, key) SELECT unnest($2::text[]), $1
                     ON CONFLICT DO NOTHING",
                    &[key, &terms],
                )
                .await?;
            }
            if page.len() < 500 {
                return Ok(());
            }
            after = page.last().map(|(k, _, _)| k.clone());
        }
    }

    /// Applies the migrations this database lacks; returns their versions.
    async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS hoptrace_migrations (
                 version INT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM hoptrace_migrations", &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut now_applied = Vec::new();
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            now_applied.push(*version);
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute(
                "INSERT INTO hoptrace_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(db)?;
            tracing::info!("postgres: applied migration {version}");
        }
        tx.commit().await.map_err(db)?;
        Ok(now_applied)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres: {e}")))
    }

    /// Runs `sql` on a pooled connection (prepared once per connection).
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db)?;
        client.query(&stmt, params).await.map_err(db)
    }

    /// Queues `write` for the next flush; commits the batch now when it is full.
    async fn queue(&self, write: Queued) -> Result<(), StoreError> {
        let full = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.push(write);
            queued.len() >= MAX_QUEUED
        };
        match full {
            true => self.commit_queued().await,
            false => Ok(()),
        }
    }

    /// Commits every queued write in one transaction, its statements pipelined on one
    /// connection (one round trip's wait and one commit for the batch, not one per write).
    /// A failed batch is rolled back whole and its error returned.
    async fn commit_queued(&self) -> Result<(), StoreError> {
        let _turn = self.turn.lock().await;
        let batch = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let put_trace = tx.prepare_cached(PUT_TRACE).await.map_err(db)?;
        let put_repository = tx.prepare_cached(PUT_REPOSITORY).await.map_err(db)?;
        let statements = batch.iter().map(|q| async {
            match q {
                Queued::Trace(row) => tx.execute(&put_trace, &row.params()).await,
                Queued::Repository { name, json } => {
                    let params: [&(dyn ToSql + Sync); 2] = [name, json];
                    tx.execute(&put_repository, &params).await
                }
            }
        });
        futures_util::future::try_join_all(statements)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db)?;
        client.execute(&stmt, params).await.map_err(db)
    }
}

/// A database that cannot be reached (or went away) is `Unavailable`, which the API answers
/// with 503; an error the server reports about a statement is `Statement`.
fn db(e: tokio_postgres::Error) -> StoreError {
    use std::error::Error;
    let unreachable = match e.as_db_error() {
        // The connection failed or went away (an I/O error underneath).
        None => e.source().is_some_and(|s| s.is::<std::io::Error>()),
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
        Some(d) => ["57P01", "57P02", "57P03", "53300"].contains(&d.code().code()),
    };
    if unreachable || e.is_closed() {
        StoreError::Unavailable(format!("postgres: {e}"))
    } else {
        StoreError::Statement(e.to_string())
    }
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A count or position as PostgreSQL's BIGINT (an offset past `i64::MAX` is just "past the
/// end", not a negative number the database refuses).
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn domain_of(r: &tokio_postgres::Row) -> DomainRecord {
    DomainRecord {
        domain: r.get("domain"),
        inputs: unms(r.get("inputs")),
        first_seen: r.get("first_seen"),
        last_seen: r.get("last_seen"),
        labels: r
            .get::<_, Vec<String>>("labels")
            .into_iter()
            .map(crate::trace::Label::from)
            .collect(),
    }
}

/// A Trace, its landing-domain link and the domain's record, in one statement: the link is
/// counted only when it is new, the domain's labels gain what they lacked, in order.
/// JSON already encoded, sent as it is: the Trace's stored bytes rather than the Trace
/// serialised a second time (a `jsonb` parameter's binary form is a version byte, then the
/// text; PostgreSQL parses it either way).
#[derive(Debug)]
struct RawJson<T>(T);

impl<T: AsRef<[u8]> + std::fmt::Debug + Sync> ToSql for RawJson<T> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_ref());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }

    to_sql_checked!();
}

const PUT_TRACE: &str = "
WITH t AS (
    INSERT INTO traces (key, stored_at_ms, trace) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET stored_at_ms = EXCLUDED.stored_at_ms, trace = EXCLUDED.trace
), gone AS (
    DELETE FROM search_terms WHERE key = $1 AND NOT (term = ANY ($9::text[]))
), terms AS (
    INSERT INTO search_terms (term, key) SELECT unnest($9::text[]), $1 ON CONFLICT DO NOTHING
), shot AS (
    INSERT INTO screenshots (sha256, png) SELECT * FROM unnest($7::text[], $8::bytea[])
    ON CONFLICT DO NOTHING
), link AS (
    INSERT INTO domain_inputs (domain, input) SELECT $4::text, $1 WHERE $4::text IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING 1
)
INSERT INTO domains (domain, inputs, first_seen, last_seen, labels)
SELECT $4::text, (SELECT count(*) FROM link), $5, $5, $6 WHERE $4::text IS NOT NULL
ON CONFLICT (domain) DO UPDATE SET
    inputs = domains.inputs + EXCLUDED.inputs,
    last_seen = EXCLUDED.last_seen,
    labels = domains.labels || ARRAY(
        SELECT l FROM unnest(EXCLUDED.labels) WITH ORDINALITY AS x(l, n)
        WHERE NOT (l = ANY (domains.labels)) ORDER BY n)";

#[async_trait]
impl Traces for PgStore {
    async fn latest(&self, key: &str) -> Result<Option<(Trace, u64)>, StoreError> {
        let rows = self
            .query(
                "SELECT trace, stored_at_ms FROM traces WHERE key = $1",
                &[&key],
            )
            .await?;
        match rows.first() {
            None => Ok(None),
            Some(r) => {
                let trace: Json<Trace> = r
                    .try_get(0)
                    .map_err(|e| StoreError::Corrupt(format!("trace {key}: {e}")))?;
                Ok(Some((trace.0, unms(r.get(1)))))
            }
        }
    }

    async fn put_encoded(
        &self,
        key: &str,
        trace: &Trace,
        encoded: &EncodedTrace,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let write = TraceRow::of(key, trace, encoded);
        match durability {
            Durability::Now => self.execute(PUT_TRACE, &write.params()).await.map(drop),
            Durability::NextFlush => self.queue(Queued::Trace(write)).await,
        }
    }

    async fn traces_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Trace, u64)>, StoreError> {
        let rows = self
            .query(
                "SELECT key, trace, stored_at_ms FROM traces WHERE $1::text IS NULL OR key > $1
                 ORDER BY key LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.get(0);
                let trace: Json<Trace> = r
                    .try_get(1)
                    .map_err(|e| StoreError::Corrupt(format!("trace {key}: {e}")))?;
                Ok((key, trace.0, unms(r.get(2))))
            })
            .collect()
    }

    async fn search(&self, q: &SearchQuery) -> Result<SearchPage, StoreError> {
        // The index answers for one exact value, a page of candidates at a time; the other
        // conditions are checked on each. Without one, the store is scanned (bounded).
        let Some(term) = q.terms.first() else {
            return super::scan(self, q).await;
        };
        let mut page = SearchPage::default();
        let mut after = q.after.clone();
        loop {
            let rows = self
                .query(
                    "SELECT t.key, t.trace, t.stored_at_ms FROM search_terms s
                     JOIN traces t ON t.key = s.key
                     WHERE s.term = $1 AND ($2::text IS NULL OR s.key > $2)
                     ORDER BY s.key LIMIT 500",
                    &[term, &after],
                )
                .await?;
            let full = rows.len() == 500;
            after = rows.last().map(|r| r.get(0));
            let candidates = rows.iter().map(|r| {
                let key: String = r.get(0);
                let trace: Json<Trace> = r
                    .try_get(1)
                    .map_err(|e| StoreError::Corrupt(format!("trace {key}: {e}")))?;
                Ok((key, trace.0, unms(r.get(2))))
            });
            if super::search::collect(q, candidates, &mut page)? || !full {
                return Ok(page);
            }
        }
    }

    async fn screenshot(&self, sha256: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        let rows = self
            .query("SELECT png FROM screenshots WHERE sha256 = $1", &[&sha256])
            .await?;
        Ok(rows
            .first()
            .map(|r| bytes::Bytes::from(r.get::<_, Vec<u8>>(0))))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Writes made with `Durability::Now` were committed before they returned; the queued
        // ones are committed here, together.
        self.commit_queued().await
    }

    async fn domain(&self, domain: &str) -> Result<Option<DomainRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT * FROM domains WHERE domain = $1",
                &[&domain.to_ascii_lowercase()],
            )
            .await?;
        Ok(rows.first().map(domain_of))
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        let rows = self
            .query("SELECT * FROM domains ORDER BY domain", &[])
            .await?;
        Ok(rows.iter().map(domain_of).collect())
    }

    async fn domains_page(&self, q: &DomainQuery) -> Result<DomainPage, StoreError> {
        // Each order has its index; ties are broken by name so pages are stable.
        let (dir, name_dir) = match q.descending {
            true => ("DESC", "ASC"),
            false => ("ASC", "DESC"),
        };
        let order = match q.sort {
            DomainSort::Inputs => format!("inputs {dir}, domain {name_dir}"),
            DomainSort::LastSeen => format!("last_seen {dir}, domain {name_dir}"),
            DomainSort::FirstSeen => format!("first_seen {dir}, domain {name_dir}"),
            DomainSort::Domain => format!("domain {dir}"),
        };
        let sql = format!(
            "SELECT *, count(*) OVER () AS total FROM domains ORDER BY {order} LIMIT $1 OFFSET $2"
        );
        let rows = self
            .query(&sql, &[&count(q.limit), &count(q.offset)])
            .await?;
        let total = match rows.first() {
            Some(r) => unms(r.get("total")) as usize,
            // Past the end: the count alone.
            None => unms(self.query("SELECT count(*) FROM domains", &[]).await?[0].get(0)) as usize,
        };
        Ok(DomainPage {
            domains: rows.iter().map(domain_of).collect(),
            total,
        })
    }

    async fn domain_inputs(&self, domain: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "SELECT input FROM domain_inputs WHERE domain = $1 ORDER BY input",
                &[&domain.to_ascii_lowercase()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[async_trait]
impl Repositories for PgStore {
    async fn put_repository(
        &self,
        name: &str,
        record: &RepositoryRecord,
    ) -> Result<(), StoreError> {
        self.execute(PUT_REPOSITORY, &[&name, &Json(record)])
            .await
            .map(|_| ())
    }

    async fn put_repository_later(
        &self,
        name: &str,
        record: &RepositoryRecord,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec(record).map_err(|e| StoreError::encode("repository record", e))?;
        self.queue(Queued::Repository {
            name: name.to_string(),
            json: RawJson(json),
        })
        .await
    }

    async fn repository(&self, name: &str) -> Result<Option<RepositoryRecord>, StoreError> {
        let rows = self
            .query("SELECT record FROM repositories WHERE name = $1", &[&name])
            .await?;
        rows.first()
            .map(|r| json_col(r, 0, "repository"))
            .transpose()
    }

    async fn repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        let rows = self
            .query("SELECT record FROM repositories ORDER BY name", &[])
            .await?;
        rows.iter().map(|r| json_col(r, 0, "repository")).collect()
    }

    async fn repositories_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::store::RepositoryPage, StoreError> {
        let rows = self
            .query(
                "SELECT name, record FROM repositories WHERE $1::text IS NULL OR name > $1
                 ORDER BY name LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        Ok(page_of(&rows))
    }

    async fn repositories_since(
        &self,
        version: u64,
        limit: usize,
    ) -> Result<Option<Vec<crate::store::Written>>, StoreError> {
        let rows = self
            .query(
                "SELECT rev, name, record, replaced FROM repositories WHERE rev > $1
                 ORDER BY rev LIMIT $2",
                &[&ms(version), &count(limit)],
            )
            .await?;
        let written = rows
            .iter()
            .map(|r| {
                let name: String = r.get(1);
                crate::store::Written {
                    version: unms(r.get(0)),
                    record: json_col(r, 2, &format!("repository {name}")),
                    name,
                    replaced: r.get(3),
                }
            })
            .collect();
        Ok(Some(written))
    }

    async fn repositories_at(
        &self,
        namespace: Option<&str>,
        after: Option<&str>,
        version: u64,
        limit: usize,
    ) -> Result<crate::store::RepositoryPage, StoreError> {
        let (first, end) = crate::store::namespace_range(namespace);
        let rows = self
            .query(
                "SELECT name, record FROM repositories
                 WHERE name >= $1 AND ($2::text IS NULL OR name < $2)
                   AND ($3::text IS NULL OR name > $3) AND rev <= $4
                 ORDER BY name LIMIT $5",
                &[&first, &end, &after, &ms(version), &count(limit)],
            )
            .await?;
        Ok(page_of(&rows))
    }

    async fn repositories_version(&self) -> Result<u64, StoreError> {
        let rows = self
            .query("SELECT COALESCE(max(rev), 0) FROM repositories", &[])
            .await?;
        Ok(unms(rows[0].get(0)))
    }
}

/// A JSONB column decoded as `T`.
fn json_col<T: serde::de::DeserializeOwned>(
    r: &tokio_postgres::Row,
    idx: usize,
    what: &str,
) -> Result<T, StoreError> {
    r.try_get::<_, Json<T>>(idx)
        .map(|j| j.0)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
