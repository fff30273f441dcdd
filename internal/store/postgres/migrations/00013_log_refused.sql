-- The integrator runs on one replica; when it refuses an organization's log
-- (the database is behind or beside a checkpoint already signed: restored
-- from an older backup) it records why here, and every replica's append
-- reads it with the seq it advances, so no replica acknowledges events the
-- published checkpoint's seqs would collide with. NULL: not refused.

-- +goose Up
ALTER TABLE organizations ADD COLUMN log_refused text;

-- +goose Down
ALTER TABLE organizations DROP COLUMN log_refused;
