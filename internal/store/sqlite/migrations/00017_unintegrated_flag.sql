-- The integrator's list of pending logs without a page write per append.
--
-- The partial index organizations_unintegrated was over `next_seq >
-- integrated_size`: every append's update of next_seq rewrote its entry
-- (SQLite deletes and inserts a partial index's entry whenever a column of
-- its WHERE clause is set), one more page in every one-event commit. The
-- index is now over a flag, unintegrated = (next_seq > integrated_size),
-- which an append sets only when its log had nothing pending and the
-- integrator clears when it catches up: a log that already has pending
-- records costs the append no write to the index.

-- +goose Up
ALTER TABLE organizations ADD COLUMN unintegrated INTEGER NOT NULL DEFAULT 0;
UPDATE organizations SET unintegrated = 1 WHERE next_seq > integrated_size;
DROP INDEX organizations_unintegrated;
CREATE INDEX organizations_unintegrated ON organizations (id) WHERE unintegrated;

-- +goose Down
DROP INDEX organizations_unintegrated;
CREATE INDEX organizations_unintegrated ON organizations (id) WHERE next_seq > integrated_size;
ALTER TABLE organizations DROP COLUMN unintegrated;
