-- The foundation schema for PostgreSQL: organizations, API keys, the
-- partitioned event log with its search columns, and idempotency keys.
--
-- Every key leads with organization_id (DESIGN §4), so that a move to a
-- distributed PostgreSQL (Citus, distribution column organization_id) needs
-- no redesign. Identifiers and search keys use the "C" collation: byte order,
-- as SQLite compares them, whatever the database's default collation, so
-- that id-ordered lists page identically on both backends and action
-- prefixes are byte prefixes.
--
-- Unlike SQLite, search columns and indexes are written in the ingest
-- transaction itself (see the package documentation for why).

-- +goose Up
CREATE TABLE organizations (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    external_id text UNIQUE,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- next_seq is the log size: the seq the next accepted event gets. It is
    -- in no index (nor index predicate), so advancing it is a HOT update;
    -- the fill factor leaves room on each page for those new row versions.
    next_seq    bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0)
) WITH (fillfactor = 50);

INSERT INTO organizations (id, name, created_at, updated_at)
VALUES ('org_system', 'Trail system', date_trunc('milliseconds', now()), date_trunc('milliseconds', now()));

CREATE TABLE api_keys (
    id              text COLLATE "C" PRIMARY KEY,
    name            text NOT NULL,
    hash            bytea NOT NULL UNIQUE,
    prefix          text NOT NULL,
    scopes          text NOT NULL, -- space separated
    organization_id text COLLATE "C" REFERENCES organizations (id),
    created_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX api_keys_organization ON api_keys (organization_id, id);

-- The log, partitioned by month of received_at so that retention can drop
-- whole partitions. A unique index of a partitioned table must contain the
-- partition key, so the primary key is (organization_id, seq, received_at);
-- (organization_id, seq) is unique by construction: seqs are handed out
-- under the organization's row lock (see Append). Monthly partitions are
-- created ahead by EnsurePartitions; the DEFAULT partition takes whatever
-- falls outside them, so that an insert never fails for lack of one.
--
-- Search columns (occurred_at, action, actor_id, actor_name, search) are
-- derived from record, which is stored byte for byte as accepted.
CREATE TABLE events (
    seq             bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    occurred_at     timestamptz NOT NULL,
    organization_id text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL,
    action          text COLLATE "C" NOT NULL,
    actor_id        text COLLATE "C" NOT NULL,
    actor_name      text COLLATE "C" NOT NULL,
    -- The record's search text as words (see text.go), plus one lexeme
    -- naming the organization, so that the GIN index narrows to a tenant.
    search          tsvector NOT NULL,
    record          bytea NOT NULL,
    PRIMARY KEY (organization_id, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Event ids are ULIDs of the receiving millisecond: this index grows at its
-- right edge, and a lookup can be narrowed to the partitions of that time.
CREATE INDEX events_id ON events (id);
-- One index per filter, each ending in the result order (occurred_at, seq):
-- a filtered page is one ordered walk that stops after the page.
CREATE INDEX events_org_time ON events (organization_id, occurred_at, seq);
CREATE INDEX events_action ON events (organization_id, action, occurred_at, seq);
CREATE INDEX events_actor_id ON events (organization_id, actor_id, occurred_at, seq);
CREATE INDEX events_actor_name ON events (organization_id, actor_name, occurred_at, seq);
CREATE INDEX events_search ON events USING gin (search);

-- One row per distinct (type, id) target of each event, partitioned like
-- events; received_at lets a join to events prune to one partition.
CREATE TABLE event_targets (
    seq             bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    occurred_at     timestamptz NOT NULL,
    organization_id text COLLATE "C" NOT NULL,
    target_type     text COLLATE "C" NOT NULL,
    target_id       text COLLATE "C" NOT NULL,
    PRIMARY KEY (organization_id, target_type, target_id, occurred_at, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE event_targets_default PARTITION OF event_targets DEFAULT;
CREATE INDEX event_targets_type ON event_targets (organization_id, target_type, occurred_at, seq);
CREATE INDEX event_targets_id ON event_targets (organization_id, target_id, occurred_at, seq);

-- The distinct actions of each organization: expands "user.*" into exact
-- names, each of which is an ordered index range.
CREATE TABLE organization_actions (
    organization_id text COLLATE "C" NOT NULL,
    action          text COLLATE "C" NOT NULL,
    PRIMARY KEY (organization_id, action)
);

-- Idempotency keys. A key is unique on (key, body hash); organization_id is
-- the organization of the submission's first event, which the body
-- determines, so leading with it changes nothing about uniqueness. result
-- is NULL only inside the transaction that claimed the key.
CREATE TABLE idempotency_keys (
    organization_id text COLLATE "C" NOT NULL,
    key             text COLLATE "C" NOT NULL,
    body_hash       bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    result          bytea, -- JSON of the accepted events
    PRIMARY KEY (organization_id, key, body_hash)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE organization_actions;
DROP TABLE event_targets;
DROP TABLE events;
DROP TABLE api_keys;
DROP TABLE organizations;
