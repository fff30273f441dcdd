-- The newest checkpoint the deployment signed for each origin (package
-- ledger, the integrator's fork guard): recorded before the commit that
-- stores the checkpoint, so that it is never behind a checkpoint served,
-- and read by every process that integrates. Older versions kept it in
-- <data>/signed-checkpoints; a file found there is copied in on start.
-- Never deleted by retention or compaction.

-- +goose Up
CREATE TABLE signed_heads (
    origin    TEXT NOT NULL PRIMARY KEY,
    size      INTEGER NOT NULL CHECK (size >= 0),
    root_hash BLOB NOT NULL CHECK (length(root_hash) = 32)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE signed_heads;
