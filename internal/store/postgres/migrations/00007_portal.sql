-- Admin Portal links (package portal): single-use, short-lived, stored by the
-- SHA-256 hash of their token, never the token itself.

-- +goose Up
CREATE TABLE portal_links (
    token_hash      bytea PRIMARY KEY,
    organization_id text COLLATE "C" NOT NULL REFERENCES organizations (id),
    intent          text NOT NULL,
    admin_email     text NOT NULL DEFAULT '',
    return_url      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz -- NULL until redeemed
);
CREATE INDEX portal_links_expires ON portal_links (expires_at);

-- +goose Down
DROP TABLE portal_links;
