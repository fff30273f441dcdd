-- The exports file (<data>/exports.db): the exports table and River's job
-- tables (migrated by rivermigrate, not here). It is a file of its own so
-- that River's polling and job bookkeeping never take the log's single
-- write lock, which ingest's group commit holds; and so that creating an
-- export and inserting its job are one transaction. Times are unix
-- milliseconds.

-- +goose Up
CREATE TABLE exports (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    format          TEXT NOT NULL,
    filter          TEXT NOT NULL, -- JSON of store.ExportFilter
    up_to           INTEGER NOT NULL,
    state           TEXT NOT NULL,
    processed       INTEGER NOT NULL DEFAULT 0,
    exported        INTEGER NOT NULL DEFAULT 0,
    size            INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX exports_expiry ON exports (state, created_at);

-- +goose Down
DROP TABLE exports;
