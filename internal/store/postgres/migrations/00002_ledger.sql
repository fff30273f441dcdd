-- The verifiable log (package ledger): per-organization Merkle trees stored
-- as C2SP tlog-tiles, the checkpoints signed over them, and how far each
-- organization's log is integrated.
--
-- Retention may delete rows of events below integrated_size, never rows of
-- these tables: proofs and bundles need the hashes after the records are gone.

-- +goose Up
-- integrated_size is the tree size of the newest checkpoint: records with
-- seq < integrated_size are in the stored tiles. 0 <= integrated_size <= next_seq.
-- Like next_seq it is in no index, so that both are advanced by HOT updates;
-- PendingLogs scans the (small, cached) organizations table instead.
ALTER TABLE organizations ADD COLUMN integrated_size bigint NOT NULL DEFAULT 0
    CHECK (integrated_size >= 0 AND integrated_size <= next_seq);

-- One row per tile (height 8): the widest version written. data is width
-- hashes of 32 bytes, the tile's hashes at tree level 8*level, from hash
-- n*256 on; a narrower version of the tile is a prefix of it.
CREATE TABLE ledger_tiles (
    organization_id text COLLATE "C" NOT NULL,
    level           integer NOT NULL,
    n               bigint NOT NULL,
    width           integer NOT NULL CHECK (width BETWEEN 1 AND 256),
    data            bytea NOT NULL,
    PRIMARY KEY (organization_id, level, n)
);

-- Every checkpoint signed (C2SP tlog-checkpoint notes), kept so that
-- consistency proofs between any two can be served.
CREATE TABLE ledger_checkpoints (
    organization_id text COLLATE "C" NOT NULL,
    size            bigint NOT NULL,
    note            bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, size)
);

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_tiles;
ALTER TABLE organizations DROP COLUMN integrated_size;
