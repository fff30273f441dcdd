-- Facets of the many-valued kinds (actor id and name, target id, target type
-- and id) leave event_fts: each made a distinct term in every FTS5 segment,
-- and distinct terms are what FTS5 pays for most (the indexer made a third
-- more events searchable a second without them). Their values are lines of
-- the free text already, so a filter on one finds candidates as a phrase of
-- the body, and event_search.exact, the space-separated facet tokens of
-- those kinds, keeps the exact matches (see facets.go). A value without an
-- ASCII letter or digit is not trusted to make a phrase: its facet token
-- stays in event_fts.
--
-- The search file is a projection of the events: this migration drops it
-- and rebuilds it from the first event (indexed_pos back to 0).

-- +goose Up
DROP TABLE event_fts;
DROP TABLE event_search;
DELETE FROM organization_actions;
UPDATE search_state SET indexed_pos = 0 WHERE id = 1;

-- sort_key orders events by (occurred_at, seq) within an organization:
-- (occurred_at in unix ms) << 21 | slot, where slots in one millisecond are
-- handed out in increasing order as the indexer walks each organization's log
-- in seq order. It is also the rowid of event_fts, so facet and free-text
-- matches come out of FTS5 already in result order. action is kept to
-- filter by a long list of actions (more than an FTS5 expression should
-- hold).
CREATE TABLE event_search (
    sort_key        INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    action          TEXT NOT NULL,
    exact           TEXT NOT NULL
);
CREATE INDEX event_search_org ON event_search (organization_id, sort_key);

-- As in 00004_facets.sql: contentless, no per-row sizes; facets holds the
-- tokens of the few-valued kinds (organization, action, target type, schema
-- mismatch) and of many-valued values without a word; body the free text.
CREATE VIRTUAL TABLE event_fts USING fts5 (
    facets, body,
    content = '',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
INSERT INTO event_fts (event_fts, rank) VALUES ('hashsize', 67108864);
INSERT INTO event_fts (event_fts, rank) VALUES ('automerge', 8);

-- +goose Down
DROP TABLE event_fts;
DROP TABLE event_search;
DELETE FROM organization_actions;
UPDATE search_state SET indexed_pos = 0 WHERE id = 1;
CREATE TABLE event_search (
    sort_key        INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    action          TEXT NOT NULL
);
CREATE INDEX event_search_org ON event_search (organization_id, sort_key);
CREATE VIRTUAL TABLE event_fts USING fts5 (
    facets, body,
    content = '',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
INSERT INTO event_fts (event_fts, rank) VALUES ('hashsize', 67108864);
INSERT INTO event_fts (event_fts, rank) VALUES ('automerge', 8);
