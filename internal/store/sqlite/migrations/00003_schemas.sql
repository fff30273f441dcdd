-- Versioned schemas (package schema): WorkOS action schemas and the
-- deployment-wide actor schema, each version immutable. Schemas are
-- deployment-wide, not per organization, as in WorkOS.
--
-- events.schema_mismatch records that an event named no schema version and
-- did not match its action's latest schema. It lives beside the record,
-- never in it: the record's bytes are fixed at acceptance (DESIGN §2).

-- +goose Up
CREATE TABLE schemas (
    kind       TEXT NOT NULL,    -- 'action' or 'actor'
    name       TEXT NOT NULL,    -- the action; '' for the actor schema
    version    INTEGER NOT NULL, -- 1, 2, … without gaps
    body       BLOB NOT NULL,    -- the definition as JSON (package schema)
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name, version)
) WITHOUT ROWID;

ALTER TABLE events ADD COLUMN schema_mismatch INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE events DROP COLUMN schema_mismatch;
DROP TABLE schemas;
