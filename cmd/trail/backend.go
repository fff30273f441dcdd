package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// backend is what trail serve needs of a database: the store, the
// ledger's storage, what export jobs read and the deployment's settings.
// Both backends implement all, checked at compile time below.
type backend interface {
	store.Store
	ledger.Storage
	export.Reader
	store.DeploymentStore
}

var (
	_ backend = (*sqlite.Store)(nil)
	_ backend = (*postgres.Store)(nil)
)

// openBackend opens the database named by the storage flags, migrating it.
// pool is set for PostgreSQL (replicas coordinate through it), indexer for
// SQLite (search is indexed behind ingest; PostgreSQL indexes in the ingest
// transaction).
func openBackend(ctx context.Context, sf *storageFlags, logger *slog.Logger) (st backend, pool *pgxpool.Pool, indexer store.SearchIndexer, err error) {
	if err := sf.validate(); err != nil {
		return nil, nil, nil, usageError{err}
	}
	if sf.postgres() {
		pg, err := postgres.Open(ctx, sf.Database, logger)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("couldn't open the PostgreSQL database %s: %w", redactURL(sf.Database), err)
		}
		return pg, pg.Pool(), nil, nil
	}
	lite, err := sqlite.Open(ctx, sf.databasePath(), logger)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't open the database: %w", err)
	}
	return lite, nil, lite, nil
}
