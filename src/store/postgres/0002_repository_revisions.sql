-- Migration 2: every write of a repository takes a new revision, so the newest revision tells
-- a replica whether the campaigns it computed are still current (one indexed read, not a scan).
CREATE SEQUENCE repositories_rev;
ALTER TABLE repositories ADD COLUMN rev BIGINT NOT NULL DEFAULT nextval('repositories_rev');
CREATE INDEX repositories_by_rev ON repositories (rev);
