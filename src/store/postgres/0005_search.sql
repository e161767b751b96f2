-- Migration 5: the search index, one row per value a Trace holds (see store::search), kept in
-- the statement that writes the Trace. Traces stored before it are indexed once at start.
CREATE TABLE search_terms (
    term TEXT COLLATE "C" NOT NULL,
    key  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (term, key)
);
CREATE INDEX search_terms_by_key ON search_terms (key);
