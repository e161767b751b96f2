-- Migration 6: whether a repository's newest write replaced an earlier record, so a replica
-- that folds the writes after a revision into its campaigns knows when it cannot (a
-- replaced record's old part cannot be taken back out) and walks again instead.
ALTER TABLE repositories ADD COLUMN replaced BOOLEAN NOT NULL DEFAULT false;
