package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// exportJobs is the export service of trail serve and what it holds open.
type exportJobs struct {
	svc   *export.Service
	close func() error
}

// openExports opens the export service: on SQLite, River and the exports
// table in their own file beside the database (<name>.exports.db); on
// PostgreSQL, in the database. Files go to dir (default <data>/exports).
func openExports(ctx context.Context, db *database, sf *storageFlags, dir string, maxRate float64, logger *slog.Logger) (*exportJobs, error) {
	if dir == "" {
		dir = filepath.Join(sf.Data, "exports")
	}
	cfg := export.Config{Log: db, Dir: dir, MaxEventsPerSecond: maxRate, Logger: logger.With("worker", "exports")}
	if db.pg != nil {
		cfg.Exports = db.pg
		svc, err := export.NewPostgres(ctx, db.pool, cfg)
		if err != nil {
			return nil, err
		}
		return &exportJobs{svc: svc, close: func() error { return nil }}, nil
	}
	xdb, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(sf.databasePath()))
	if err != nil {
		return nil, err
	}
	cfg.Exports = xdb
	svc, err := export.NewSQLite(ctx, xdb.DB(), cfg)
	if err != nil {
		xdb.Close()
		return nil, err
	}
	return &exportJobs{svc: svc, close: xdb.Close}, nil
}
