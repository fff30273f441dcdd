-- Events recorded with a schema mismatch (events.schema_mismatch in the main
-- file), searchable with schema_mismatch=true: a partial index holds only
-- them, in sort-key order, so the filter walks the mismatches alone however
-- rare they are. Numbered 00003 like the main file's schema migration.

-- +goose Up
ALTER TABLE event_search ADD COLUMN schema_mismatch INTEGER NOT NULL DEFAULT 0;
CREATE INDEX event_search_mismatch ON event_search (organization_id, sort_key) WHERE schema_mismatch = 1;

-- +goose Down
DROP INDEX event_search_mismatch;
ALTER TABLE event_search DROP COLUMN schema_mismatch;
