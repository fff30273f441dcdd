-- The foundation schema. Times are unix milliseconds.
--
-- Ingest writes only `events` (plus one organization row update per batch); the
-- search tables below it are maintained by the background indexer in larger
-- batches, so the ingest transaction touches as few B-tree pages as possible.

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

-- How far the indexer has got: every event with pos <= indexed_pos is searchable.
CREATE TABLE search_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_pos INTEGER NOT NULL
);
INSERT INTO search_state (id, indexed_pos) VALUES (1, 0);

-- sort_key orders events by (occurred_at, seq) within an organization:
-- (occurred_at in unix ms) << 21 | slot, where slots in one millisecond are
-- handed out in increasing order as the indexer walks each organization's log
-- in seq order. It is also the rowid of event_fts, so free-text matches come
-- out of FTS5 already in result order.
CREATE TABLE event_search (
    sort_key        INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    action          TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT NOT NULL
);
CREATE INDEX event_search_org ON event_search (organization_id, sort_key);
CREATE INDEX event_search_action ON event_search (organization_id, action, sort_key);
CREATE INDEX event_search_actor_id ON event_search (organization_id, actor_id, sort_key);
CREATE INDEX event_search_actor_name ON event_search (organization_id, actor_name, sort_key);

CREATE TABLE event_targets (
    organization_id TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    sort_key        INTEGER NOT NULL,
    PRIMARY KEY (organization_id, target_type, target_id, sort_key)
) WITHOUT ROWID;

-- The distinct actions of each organization: expands "user.*" into exact
-- names, each of which is an ordered index range.
CREATE TABLE organization_actions (
    organization_id TEXT NOT NULL,
    action          TEXT NOT NULL,
    PRIMARY KEY (organization_id, action)
) WITHOUT ROWID;

-- Contentless: the text lives in events.record already.
CREATE VIRTUAL TABLE event_fts USING fts5 (
    org, body,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

-- +goose Down
DROP TABLE event_fts;
DROP TABLE organization_actions;
DROP TABLE event_targets;
DROP TABLE event_search;
DROP TABLE search_state;
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE api_keys;
DROP TABLE organizations;
