-- The foundation schema. Times are unix milliseconds.
--
-- Ingest writes only `events` (plus one organization row update per batch);
-- the search indexes live in a separate file (search_migrations/), maintained
-- by the background indexer, so the ingest transaction touches as few B-tree
-- pages as possible and never waits for indexing.

-- +goose Up
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    external_id TEXT UNIQUE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- next_seq is the log size: the seq the next accepted event gets.
    next_seq    INTEGER NOT NULL DEFAULT 0
);

INSERT INTO organizations (id, name, created_at, updated_at)
VALUES ('org_system', 'Trail system', CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER));

-- Names this database, so a search index built from another database (or
-- from this one before it was swapped for a different file) is recognised
-- and rebuilt.
CREATE TABLE database_identity (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value TEXT NOT NULL
);
INSERT INTO database_identity (id, value) VALUES (1, lower(hex(randomblob(16))));

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    hash            BLOB NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    scopes          TEXT NOT NULL, -- space separated
    organization_id TEXT REFERENCES organizations (id),
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);

-- The log. pos is the global insertion order (AUTOINCREMENT so it never goes
-- back, even after retention deletes the newest rows); within one
-- organization it follows seq, which is what the indexer relies on.
CREATE TABLE events (
    pos             INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    record          BLOB NOT NULL
);
CREATE UNIQUE INDEX events_org_seq ON events (organization_id, seq);
-- ULIDs are time-ordered, so this index grows at its right edge.
CREATE UNIQUE INDEX events_id ON events (id);

CREATE TABLE idempotency_keys (
    key        TEXT NOT NULL,
    body_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    result     BLOB NOT NULL, -- JSON of the accepted events
    PRIMARY KEY (key, body_hash)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE api_keys;
DROP TABLE database_identity;
DROP TABLE organizations;
