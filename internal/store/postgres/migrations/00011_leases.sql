-- +goose Up
-- Leases for background work that one replica at a time runs (integrator,
-- log streams, retention): the holder, a fencing token that grows with
-- every change of holder, and an expiry on the database's clock. A holder
-- that dies or stalls loses its lease when it expires (package lease).
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    token       bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE leases;
