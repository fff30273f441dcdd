-- Admin Portal links (package portal): single-use, short-lived, stored by the
-- SHA-256 hash of their token, never the token itself.

-- +goose Up
CREATE TABLE portal_links (
    token_hash      BLOB PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    intent          TEXT NOT NULL,
    admin_email     TEXT NOT NULL DEFAULT '',
    return_url      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL, -- unix ms
    expires_at      INTEGER NOT NULL, -- unix ms
    used_at         INTEGER           -- unix ms; NULL until redeemed
) WITHOUT ROWID;
CREATE INDEX portal_links_expires ON portal_links (expires_at);

-- +goose Down
DROP TABLE portal_links;
