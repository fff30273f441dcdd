-- Organization lifecycle and the verifiable archive (docs/ORGANIZATIONS.md,
-- docs/ARCHIVE.md). Times are unix milliseconds.
--
-- deleted_at marks an organization deleted: ingest treats it as unknown and
-- the API as gone; its tree hashes and newest checkpoint stay, so that
-- earlier bundles still verify. organization_deletions records each
-- deletion and the step its worker has reached, so it resumes after a crash.
-- archive_state holds each organization's own archive setting and the seq
-- below which the archive holds its records: while held, retention deletes
-- no record at or above it.

-- +goose Up
ALTER TABLE organizations ADD COLUMN deleted_at INTEGER;

CREATE TABLE organization_deletions (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    name            TEXT NOT NULL,
    requested_at    INTEGER NOT NULL,
    requested_by    TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    forced          INTEGER NOT NULL DEFAULT 0,
    final_bundle    INTEGER NOT NULL DEFAULT 0,
    step            TEXT NOT NULL,
    final_location  TEXT NOT NULL DEFAULT '',
    final_size      INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    finished_at     INTEGER
);

CREATE TABLE archive_state (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    enabled         INTEGER,           -- the organization's own setting; NULL: the deployment's
    archived_to     INTEGER NOT NULL DEFAULT 0 CHECK (archived_to >= 0),
    held            INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

-- +goose Down
DROP TABLE archive_state;
DROP TABLE organization_deletions;
ALTER TABLE organizations DROP COLUMN deleted_at;
