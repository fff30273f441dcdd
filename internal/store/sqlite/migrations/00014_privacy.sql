-- Privacy (package privacy, docs/PRIVACY.md): each organization's field
-- policy, applied to its events before they are stored, and erasure jobs,
-- which delete the bodies of one subject's events (their leaf hashes stay,
-- as with retention) and record a signed tombstone event.

-- +goose Up
CREATE TABLE privacy_policies (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    document        BLOB NOT NULL,   -- the policy as JSON
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE erasures (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    request_id        TEXT NOT NULL,
    subject_kind      TEXT NOT NULL,
    subject_type      TEXT NOT NULL,
    subject_hash      TEXT NOT NULL,
    sealed_subject    BLOB,          -- cleared when the job completes
    reason            TEXT NOT NULL,
    requested_by_type TEXT NOT NULL,
    requested_by_id   TEXT NOT NULL,
    requested_by_name TEXT NOT NULL,
    up_to             INTEGER NOT NULL,
    state             TEXT NOT NULL,
    seqs              TEXT NOT NULL,
    planned           INTEGER NOT NULL,
    erased            INTEGER NOT NULL,
    tombstones        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    completed_at      INTEGER NOT NULL, -- 0 until completed
    error             TEXT NOT NULL,
    UNIQUE (organization_id, request_id)
) WITHOUT ROWID;

CREATE INDEX erasures_unfinished ON erasures (created_at) WHERE state <> 'completed';

-- +goose Down
DROP TABLE erasures;
DROP TABLE privacy_policies;
