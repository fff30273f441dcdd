-- The Idempotency-Key alone decides, as WorkOS defines it: a request that
-- reuses a key within 24 hours is answered with the first request's result,
-- whatever its body. Keys are scoped to the organization of the request's
-- first event (as in PostgreSQL), so one organization's key never answers
-- with another's events. Of the rows a key had under the old (key, body)
-- scheme, the earliest is kept: it is the answer the key gave first.

-- +goose Up
CREATE TABLE idempotency_keys_by_key (
    organization_id TEXT NOT NULL,
    key             TEXT NOT NULL,
    body_hash       BLOB NOT NULL, -- SHA-256 of the first request's body
    created_at      INTEGER NOT NULL,
    result          BLOB NOT NULL, -- JSON of the accepted events
    PRIMARY KEY (organization_id, key)
) WITHOUT ROWID;
INSERT OR IGNORE INTO idempotency_keys_by_key (organization_id, key, body_hash, created_at, result)
    SELECT coalesce(json_extract(CAST(result AS TEXT), '$[0].organization_id'), ''), key, body_hash, created_at, result
    FROM idempotency_keys ORDER BY created_at, body_hash;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_by_key RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
CREATE TABLE idempotency_keys_by_body (
    key        TEXT NOT NULL,
    body_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    result     BLOB NOT NULL,
    PRIMARY KEY (key, body_hash)
) WITHOUT ROWID;
INSERT OR IGNORE INTO idempotency_keys_by_body (key, body_hash, created_at, result)
    SELECT key, body_hash, created_at, result FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_by_body RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
