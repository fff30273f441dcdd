-- The search indexes: a projection of the events table in the main database
-- file, kept in a file of its own (search.db) with its own writer. Everything
-- here can be rebuilt from the events: deleting search.db makes the indexer
-- start over from the first event.

-- +goose Up
-- How far the indexer has got: every event with pos <= indexed_pos (events.pos
-- in the main file) is searchable.
-- source is the database_identity of the main file it was built from.
CREATE TABLE search_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_pos INTEGER NOT NULL,
    source      TEXT NOT NULL DEFAULT ''
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
-- A target type alone, or a target id alone, narrows as well; both walk in
-- sort-key order.
CREATE INDEX event_targets_type ON event_targets (organization_id, target_type, sort_key);
CREATE INDEX event_targets_id ON event_targets (organization_id, target_id, sort_key);

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
