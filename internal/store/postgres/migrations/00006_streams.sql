-- Log streams (package stream): one row per stream, with its sealed
-- destination secrets and its durable delivery cursor.

-- +goose Up
-- cursor_seq is the seq of the next event to deliver: every event of the
-- organization with a smaller seq was delivered at least once.
-- version grows with every settings change so the deliverer reloads.
CREATE TABLE log_streams (
    id              text COLLATE "C" PRIMARY KEY,
    organization_id text COLLATE "C" NOT NULL REFERENCES organizations (id),
    type            text NOT NULL,
    name            text NOT NULL,
    config          bytea NOT NULL,
    secrets         bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('active', 'error', 'invalid', 'inactive')),
    cursor_seq      bigint NOT NULL CHECK (cursor_seq >= 0),
    version         bigint NOT NULL DEFAULT 1,
    last_synced_at  timestamptz,
    last_error      text NOT NULL DEFAULT '',
    last_error_at   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX log_streams_organization ON log_streams (organization_id, id);

-- +goose Down
DROP TABLE log_streams;
