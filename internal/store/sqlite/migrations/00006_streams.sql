-- Log streams (package stream): one row per stream, with its sealed
-- destination secrets and its durable delivery cursor.

-- +goose Up
-- cursor_seq is the seq of the next event to deliver: every event of the
-- organization with a smaller seq was delivered at least once.
-- version grows with every settings change so the deliverer reloads.
CREATE TABLE log_streams (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    type            TEXT NOT NULL,
    name            TEXT NOT NULL,
    config          BLOB NOT NULL,
    secrets         BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'error', 'invalid', 'inactive')),
    cursor_seq      INTEGER NOT NULL CHECK (cursor_seq >= 0),
    version         INTEGER NOT NULL DEFAULT 1,
    last_synced_at  INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    last_error_at   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX log_streams_organization ON log_streams (organization_id, id);

-- +goose Down
DROP TABLE log_streams;
