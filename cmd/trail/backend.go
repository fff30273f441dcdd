package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// backend is what trail serve and the tools need of a database: the whole
// contract, which both backends implement (checked at compile time in each).
type backend = store.Backend

// database is an open database: the backend, and what only one of the two
// has, known from the one that was opened.
type database struct {
	backend
	pool    *pgxpool.Pool       // PostgreSQL: replicas coordinate through it
	indexer store.SearchIndexer // SQLite: search is indexed behind ingest
	pg      *postgres.Store     // PostgreSQL: exports and time partitions live in it
	lite    *sqlite.Store       // SQLite: the file --replicate copies
}

// openBackend opens the database named by the storage flags (see
// openDatabase). pool is set for PostgreSQL (replicas coordinate through
// it), indexer for SQLite (search is indexed behind ingest; PostgreSQL
// indexes in the ingest transaction).
func openBackend(ctx context.Context, sf *storageFlags, logger *slog.Logger) (st backend, pool *pgxpool.Pool, indexer store.SearchIndexer, err error) {
	db, err := openDatabase(ctx, sf, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	return db.backend, db.pool, db.indexer, nil
}

// openDatabase opens the database named by the storage flags. It migrates
// nothing: a schema that is not exactly this binary's is refused, naming
// the versions (see migrate.go).
func openDatabase(ctx context.Context, sf *storageFlags, logger *slog.Logger) (*database, error) {
	if err := sf.validate(); err != nil {
		return nil, usageError{err}
	}
	if sf.postgres() {
		pg, err := postgres.OpenCurrent(ctx, sf.Database, logger)
		if err != nil {
			return nil, fmt.Errorf("couldn't open the PostgreSQL database %s: %w", redactURL(sf.Database), err)
		}
		return &database{backend: pg, pool: pg.Pool(), pg: pg}, nil
	}
	opts, err := sf.sqliteOptions()
	if err != nil {
		return nil, usageError{err}
	}
	lite, err := sqlite.OpenCurrent(ctx, sf.databasePath(), logger, opts...)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the database: %w", err)
	}
	return &database{backend: lite, indexer: lite, lite: lite}, nil
}
