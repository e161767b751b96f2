-- Migration 4: landing-page screenshots (PNG), by SHA-256, as a Trace's evidence names them;
-- written in the statement that writes the Trace.
CREATE TABLE screenshots (
    sha256 TEXT COLLATE "C" PRIMARY KEY,
    png    BYTEA NOT NULL
);
