-- An organization's Admin Portal settings over the deployment's: its
-- product name, accent colour and logo, and the origins whose pages may
-- frame the portal (store.PortalSettings; docs/PORTAL.md, docs/EMBEDDING.md).

-- +goose Up
CREATE TABLE portal_settings (
    organization_id text COLLATE "C" PRIMARY KEY REFERENCES organizations (id),
    product_name    text NOT NULL DEFAULT '',
    accent          text NOT NULL DEFAULT '',
    logo            bytea,
    logo_type       text NOT NULL DEFAULT '',
    frame_origins   text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL
);

-- +goose Down
DROP TABLE portal_settings;
