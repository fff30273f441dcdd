-- +goose Up
-- The deployment's identity: settings every server of this database must
-- agree on, recorded by the first to start (store.DeploymentStore).
CREATE TABLE deployment_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE deployment_settings;
