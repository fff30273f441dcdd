-- Every filter but the organization alone becomes a full-text "facet" token
-- (see facets.go) instead of a B-tree index of its own. A secondary B-tree
-- keyed by a high-cardinality value (an actor, a target) takes one insert
-- into a page of its own per event; FTS5 buffers a whole transaction's
-- tokens and writes them as one sorted segment, merged in the background.
-- With four such indexes the indexer spent most of its time splitting and
-- writing scattered pages; with facets it writes two append-only B-trees
-- and one segment per pass.
--
-- The search file is a projection of the events: this migration drops it
-- and rebuilds it from the first event (indexed_pos back to 0).

-- +goose Up
DROP TABLE event_fts;
DROP TABLE event_targets;
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
    action          TEXT NOT NULL
);
CREATE INDEX event_search_org ON event_search (organization_id, sort_key);

-- Contentless: the text lives in events.record already, and retention
-- deletes an entry with FTS5's 'delete' command, recomputing its facets and
-- text from the record (so a change to either means a migration that
-- rebuilds this file). No per-row sizes are kept (columnsize = 0): nothing
-- ranks by them, and they cost a B-tree insert per event. facets holds one
-- token per filterable value (organization, action, actor id and name,
-- target type, id and pair, schema mismatch), each a hash of kind,
-- organization and value; body holds the free text.
CREATE VIRTUAL TABLE event_fts USING fts5 (
    facets, body,
    content = '',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
-- A pass of the indexer (up to 5,000 events) is buffered whole and written
-- as one segment (the default 1 MiB buffer would cut it into several), and
-- segments merge eight at a time rather than four: less rewriting per
-- event, a few more segments for a query to open.
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
    action          TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT NOT NULL,
    schema_mismatch INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX event_search_org ON event_search (organization_id, sort_key);
CREATE INDEX event_search_action ON event_search (organization_id, action, sort_key);
CREATE INDEX event_search_actor_id ON event_search (organization_id, actor_id, sort_key);
CREATE INDEX event_search_actor_name ON event_search (organization_id, actor_name, sort_key);
CREATE INDEX event_search_mismatch ON event_search (organization_id, sort_key) WHERE schema_mismatch = 1;
CREATE TABLE event_targets (
    organization_id TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    sort_key        INTEGER NOT NULL,
    PRIMARY KEY (organization_id, target_type, target_id, sort_key)
) WITHOUT ROWID;
CREATE INDEX event_targets_type ON event_targets (organization_id, target_type, sort_key);
CREATE INDEX event_targets_id ON event_targets (organization_id, target_id, sort_key);
CREATE VIRTUAL TABLE event_fts USING fts5 (
    org, body,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
