-- +goose Up
-- The deployment's identity: settings every replica must agree on,
-- recorded by the first to start (store.DeploymentStore).
CREATE TABLE deployment_settings (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE deployment_settings;
