-- Retention (package retention): each organization's own retention period.
-- An organization without a row keeps the deployment's default
-- (--retention-default-days). Retention deletes rows of events (bodies) and
-- their search entries, never ledger_tiles or ledger_checkpoints.

-- +goose Up
CREATE TABLE retention_settings (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    days            INTEGER NOT NULL CHECK (days > 0),
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE retention_settings;
