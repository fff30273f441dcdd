-- Versioned schemas (package schema): WorkOS action schemas and the
-- deployment-wide actor schema, each version immutable. Schemas are
-- deployment-wide, not per organization, as in WorkOS (a small reference
-- table: under Citus it would be a reference table).
--
-- events.schema_mismatch records that an event named no schema version and
-- did not match its action's latest schema. It lives beside the record,
-- never in it: the record's bytes are fixed at acceptance (DESIGN §2).
-- Adding a column with a constant default rewrites nothing.

-- +goose Up
CREATE TABLE schemas (
    kind       text COLLATE "C" NOT NULL,   -- 'action' or 'actor'
    name       text COLLATE "C" NOT NULL,   -- the action; '' for the actor schema
    version    integer NOT NULL CHECK (version > 0),
    body       bytea NOT NULL,              -- the definition as JSON (package schema)
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, name, version)
);

ALTER TABLE events ADD COLUMN schema_mismatch boolean NOT NULL DEFAULT false;
-- Only the mismatches, in result order: schema_mismatch=true walks them
-- alone however rare they are.
CREATE INDEX events_schema_mismatch ON events (organization_id, occurred_at, seq) WHERE schema_mismatch;

-- +goose Down
DROP INDEX events_schema_mismatch;
ALTER TABLE events DROP COLUMN schema_mismatch;
DROP TABLE schemas;
