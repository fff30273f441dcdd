-- Retention (package retention): each organization's own retention period.
-- An organization without a row keeps the deployment's default
-- (--retention-default-days). Retention deletes rows of events and
-- event_targets (or whole monthly partitions of both), never ledger_tiles or
-- ledger_checkpoints.

-- +goose Up
CREATE TABLE retention_settings (
    organization_id text COLLATE "C" PRIMARY KEY REFERENCES organizations (id),
    days            integer NOT NULL CHECK (days > 0),
    updated_at      timestamptz NOT NULL
);

-- +goose Down
DROP TABLE retention_settings;
