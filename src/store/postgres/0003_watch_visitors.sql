-- Migration 3: a watch may name the client profiles and egress points each run resolves as (empty: the
-- default visitor alone).
ALTER TABLE watches
    ADD COLUMN profiles TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN via      TEXT[] NOT NULL DEFAULT '{}';
