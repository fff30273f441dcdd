-- The verifiable log (package ledger): per-organization Merkle trees stored
-- as C2SP tlog-tiles, the checkpoints signed over them, and how far each
-- organization's log is integrated.
--
-- Retention may delete rows of `events` below integrated_size, never rows of
-- these tables: proofs and bundles need the hashes after the records are gone.

-- +goose Up
-- integrated_size is the tree size of the newest checkpoint: records with
-- seq < integrated_size are in the stored tiles. 0 <= integrated_size <= next_seq.
ALTER TABLE organizations ADD COLUMN integrated_size INTEGER NOT NULL DEFAULT 0;

-- The logs the integrator has work in, without scanning every organization.
CREATE INDEX organizations_unintegrated ON organizations (id) WHERE next_seq > integrated_size;

-- One row per tile (height 8): the widest version written. data is width
-- hashes of 32 bytes, the tile's hashes at tree level 8*level, from hash
-- n*256 on; a narrower version of the tile is a prefix of it.
CREATE TABLE ledger_tiles (
    organization_id TEXT NOT NULL,
    level           INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    width           INTEGER NOT NULL CHECK (width BETWEEN 1 AND 256),
    data            BLOB NOT NULL,
    PRIMARY KEY (organization_id, level, n)
) WITHOUT ROWID;

-- Every checkpoint signed (C2SP tlog-checkpoint notes), kept so that
-- consistency proofs between any two can be served.
CREATE TABLE ledger_checkpoints (
    organization_id TEXT NOT NULL,
    size            INTEGER NOT NULL,
    note            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, size)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_tiles;
DROP INDEX organizations_unintegrated;
ALTER TABLE organizations DROP COLUMN integrated_size;
