-- Witness cosignatures (package witness, docs/WITNESS.md): what witnesses
-- cosigned of each organization's checkpoints, so that every replica serves
-- them appended to the checkpoint notes and in bundles, and the size each
-- witness holds of each log (origin), the size the next add-checkpoint
-- request proves consistency from, whichever replica integrates. Like
-- ledger_checkpoints, never deleted by retention.

-- +goose Up
CREATE TABLE witness_cosignatures (
    organization_id text COLLATE "C" NOT NULL,
    size            bigint NOT NULL,
    witness         text COLLATE "C" NOT NULL, -- the witness's verifier key
    line            text NOT NULL,             -- the signature line, "— <name> <base64>\n"
    PRIMARY KEY (organization_id, size, witness)
);

CREATE TABLE witness_sizes (
    witness text COLLATE "C" NOT NULL,
    origin  text COLLATE "C" NOT NULL,
    size    bigint NOT NULL,                   -- the size it last cosigned (or told us in a 409)
    PRIMARY KEY (witness, origin)
);

-- +goose Down
DROP TABLE witness_sizes;
DROP TABLE witness_cosignatures;
