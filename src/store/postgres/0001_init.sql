-- hoptrace's tables (migration 1). Times are milliseconds since the Unix epoch, as in sled;
-- text sorts by bytes (COLLATE "C"), as in sled, whatever the database's locale.

CREATE TABLE traces (
    key          TEXT COLLATE "C" PRIMARY KEY,          -- the normalised input
    stored_at_ms BIGINT NOT NULL,
    trace        JSONB NOT NULL
);

-- The landing-domain index: one row per registrable domain a chain ended on, and the inputs
-- that reached it.
CREATE TABLE domains (
    domain     TEXT COLLATE "C" PRIMARY KEY,
    inputs     BIGINT NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    labels     TEXT[] NOT NULL
);
-- /v1/domains pages by each of its sort orders without sorting the whole index.
CREATE INDEX domains_by_inputs ON domains (inputs DESC, domain);
CREATE INDEX domains_by_last_seen ON domains (last_seen DESC, domain);
CREATE INDEX domains_by_first_seen ON domains (first_seen DESC, domain);

CREATE TABLE domain_inputs (
    domain TEXT COLLATE "C" NOT NULL,
    input  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (domain, input)
);

CREATE TABLE watches (
    url            TEXT COLLATE "C" PRIMARY KEY,
    every_seconds  BIGINT NOT NULL,
    next_due_ms    BIGINT NOT NULL,
    added_ms       BIGINT NOT NULL,
    last_run_ms    BIGINT,
    auto           BOOLEAN NOT NULL,
    -- A replica's claim on a run: others leave the watch alone until then (0: no claim).
    lease_until_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX watches_by_due ON watches (next_due_ms, url);

CREATE TABLE observations (
    seq         BIGSERIAL PRIMARY KEY,
    url         TEXT COLLATE "C" NOT NULL,
    at_ms       BIGINT NOT NULL,
    observation JSONB NOT NULL
);
CREATE INDEX observations_by_url ON observations (url, at_ms, seq);

CREATE TABLE events (
    id    BIGSERIAL PRIMARY KEY,            -- ids only grow, across restarts and replicas
    event JSONB NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE repositories (
    name   TEXT COLLATE "C" PRIMARY KEY,
    record JSONB NOT NULL
);
