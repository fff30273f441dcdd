package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store"
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
func openExports(ctx context.Context, st backend, pool *pgxpool.Pool, sf *storageFlags, dir string, maxRate float64, logger *slog.Logger) (*exportJobs, error) {
	if dir == "" {
		dir = filepath.Join(sf.Data, "exports")
	}
	cfg := export.Config{Log: st, Dir: dir, MaxEventsPerSecond: maxRate, Logger: logger.With("worker", "exports")}
	if pool != nil {
		xs, ok := st.(store.ExportStore)
		if !ok {
			return nil, fmt.Errorf("this database backend (%T) does not store exports", st)
		}
		cfg.Exports = xs
		svc, err := export.NewPostgres(ctx, pool, cfg)
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
