-- An organization's Admin Portal settings over the deployment's: its
-- product name, accent colour and logo, and the origins whose pages may
-- frame the portal (store.PortalSettings; docs/PORTAL.md, docs/EMBEDDING.md).

-- +goose Up
CREATE TABLE portal_settings (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    product_name    TEXT NOT NULL DEFAULT '',
    accent          TEXT NOT NULL DEFAULT '',
    logo            BLOB,
    logo_type       TEXT NOT NULL DEFAULT '',
    frame_origins   TEXT NOT NULL DEFAULT '', -- space-separated
    updated_at      INTEGER NOT NULL          -- unix ms
) WITHOUT ROWID;

-- +goose Down
DROP TABLE portal_settings;
