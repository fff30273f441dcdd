-- Exports (package export): one row per requested export. River's job
-- tables live beside it in this database (migrated by rivermigrate, not
-- here), so that an export and its job are inserted in one transaction.

-- +goose Up
CREATE TABLE exports (
    id              text COLLATE "C" PRIMARY KEY,
    organization_id text COLLATE "C" NOT NULL,
    format          text NOT NULL,
    filter          jsonb NOT NULL, -- store.ExportFilter
    up_to           bigint NOT NULL,
    state           text NOT NULL,
    processed       bigint NOT NULL DEFAULT 0,
    exported        bigint NOT NULL DEFAULT 0,
    size            bigint NOT NULL DEFAULT 0,
    error           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX exports_expiry ON exports (state, created_at);

-- +goose Down
DROP TABLE exports;
