-- Privacy (package privacy, docs/PRIVACY.md): each organization's field
-- policy, applied to its events before they are stored, and erasure jobs,
-- which delete the bodies of one subject's events (their leaf hashes stay,
-- as with retention) and record a signed tombstone event.

-- +goose Up
CREATE TABLE privacy_policies (
    organization_id text COLLATE "C" PRIMARY KEY REFERENCES organizations (id),
    document        bytea NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE erasures (
    id                text COLLATE "C" PRIMARY KEY,
    organization_id   text COLLATE "C" NOT NULL REFERENCES organizations (id),
    request_id        text NOT NULL,
    subject_kind      text NOT NULL,
    subject_type      text NOT NULL,
    subject_hash      text NOT NULL,
    sealed_subject    bytea,            -- cleared when the job completes
    reason            text NOT NULL,
    requested_by_type text NOT NULL,
    requested_by_id   text NOT NULL,
    requested_by_name text NOT NULL,
    up_to             bigint NOT NULL,
    state             text NOT NULL,
    seqs              text NOT NULL,
    planned           bigint NOT NULL,
    erased            bigint NOT NULL,
    tombstones        text NOT NULL,
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    error             text NOT NULL,
    UNIQUE (organization_id, request_id)
);

CREATE INDEX erasures_unfinished ON erasures (created_at) WHERE state <> 'completed';

-- +goose Down
DROP TABLE erasures;
DROP TABLE privacy_policies;
