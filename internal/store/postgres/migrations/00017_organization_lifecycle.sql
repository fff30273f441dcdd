-- Organization lifecycle and the verifiable archive (docs/ORGANIZATIONS.md,
-- docs/ARCHIVE.md).
--
-- deleted_at marks an organization deleted: ingest treats it as unknown and
-- the API as gone; its tree hashes and newest checkpoint stay, so that
-- earlier bundles still verify. It is in no index, so advancing next_seq
-- stays a HOT update. organization_deletions records each deletion and the
-- step its worker has reached, so it resumes after a crash. archive_state
-- holds each organization's own archive setting and the seq below which the
-- archive holds its records: while held, retention deletes no record at or
-- above it.

-- +goose Up
ALTER TABLE organizations ADD COLUMN deleted_at timestamptz;

CREATE TABLE organization_deletions (
    organization_id text COLLATE "C" PRIMARY KEY REFERENCES organizations (id),
    name            text NOT NULL,
    requested_at    timestamptz NOT NULL,
    requested_by    text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    forced          boolean NOT NULL DEFAULT false,
    final_bundle    boolean NOT NULL DEFAULT false,
    step            text NOT NULL,
    final_location  text NOT NULL DEFAULT '',
    final_size      bigint NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    finished_at     timestamptz
);

CREATE TABLE archive_state (
    organization_id text COLLATE "C" PRIMARY KEY REFERENCES organizations (id),
    enabled         boolean,           -- the organization's own setting; NULL: the deployment's
    archived_to     bigint NOT NULL DEFAULT 0 CHECK (archived_to >= 0),
    held            boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL
);

-- +goose Down
DROP TABLE archive_state;
DROP TABLE organization_deletions;
ALTER TABLE organizations DROP COLUMN deleted_at;
