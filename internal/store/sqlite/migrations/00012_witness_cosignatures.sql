-- Witness cosignatures (package witness, docs/WITNESS.md): what witnesses
-- cosigned of each organization's checkpoints, served appended to the
-- checkpoint notes and in bundles, and the size each witness holds of each
-- log (origin), the size the next add-checkpoint request proves consistency
-- from. Like ledger_checkpoints, never deleted by retention.

-- +goose Up
CREATE TABLE witness_cosignatures (
    organization_id TEXT NOT NULL,
    size            INTEGER NOT NULL,
    witness         TEXT NOT NULL,  -- the witness's verifier key
    line            TEXT NOT NULL,  -- the signature line, "— <name> <base64>\n"
    PRIMARY KEY (organization_id, size, witness)
) WITHOUT ROWID;

CREATE TABLE witness_sizes (
    witness TEXT NOT NULL,
    origin  TEXT NOT NULL,
    size    INTEGER NOT NULL,      -- the size it last cosigned (or told us in a 409)
    PRIMARY KEY (witness, origin)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE witness_sizes;
DROP TABLE witness_cosignatures;
