-- The newest checkpoint the deployment signed for each origin (package
-- ledger, the integrator's fork guard): recorded before the commit that
-- stores the checkpoint, so that it is never behind a checkpoint served,
-- and read by whichever replica integrates, including one started with an
-- empty data directory. Older versions kept it in <data>/signed-checkpoints
-- of the integrating replica; a file found there is copied in on start.
-- Never deleted by retention or compaction.

-- +goose Up
CREATE TABLE signed_heads (
    origin    text COLLATE "C" PRIMARY KEY,
    size      bigint NOT NULL CHECK (size >= 0),
    root_hash bytea NOT NULL CHECK (length(root_hash) = 32)
);

-- +goose Down
DROP TABLE signed_heads;
