-- An "expand" migration that exists only in binaries built with the
-- trail_upgrade_test tag (test/ops's rolling upgrade): additive, so that
-- replicas of the previous release keep working beside it.

-- +goose Up
ALTER TABLE organizations ADD COLUMN upgrade_probe text;
CREATE TABLE upgrade_probe (id bigint PRIMARY KEY, note text NOT NULL);

-- +goose Down
DROP TABLE upgrade_probe;
ALTER TABLE organizations DROP COLUMN upgrade_probe;
