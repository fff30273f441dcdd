-- The Idempotency-Key alone decides, as WorkOS defines it: a request that
-- reuses a key within 24 hours (in the organization of its first event) is
-- answered with the first request's result, whatever its body. Of the rows
-- a key had under the old (key, body) scheme, the earliest is kept: it is
-- the answer the key gave first.

-- +goose Up
DELETE FROM idempotency_keys k USING idempotency_keys e
    WHERE k.organization_id = e.organization_id AND k.key = e.key
      AND (e.created_at, e.body_hash) < (k.created_at, k.body_hash);
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (organization_id, key);

-- +goose Down
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (organization_id, key, body_hash);
