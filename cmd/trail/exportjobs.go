package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// exportJobs is the export service of trail serve and what it holds open.
type exportJobs struct {
	svc   *export.Service
	store store.ExportStore
	close func() error
}

// openExports opens the export service: on SQLite, River and the exports
// table in their own file beside the database (<name>.exports.db); on
// PostgreSQL, in the database. Files go to dir (default <data>/exports).
// Jobs read the log through log: the published log (with --replicate),
// whose checkpoints carry the witness cosignatures stored for them, as the
// API's bundles do. River's tables were migrated by `trail migrate` (or
// serve's first start, or --migrate): here they are only checked.
func openExports(ctx context.Context, db *database, log export.Reader, signer ledger.SelectionSigner, sf *storageFlags, dir string, maxRate float64, logger *slog.Logger) (*exportJobs, error) {
	if dir == "" {
		dir = filepath.Join(sf.Data, "exports")
	}
	cfg := export.Config{Log: log, Signer: signer, Dir: dir, MaxEventsPerSecond: maxRate,
		Logger: logger.With("worker", "exports"), RiverSchemaChecked: true}
	if db.pg != nil {
		cfg.Exports = db.pg
		svc, err := export.NewPostgres(ctx, db.pool, cfg)
		if err != nil {
			return nil, err
		}
		return &exportJobs{svc: svc, store: db.pg, close: func() error { return nil }}, nil
	}
	xdb, err := sqlite.OpenExportsCurrent(ctx, sqlite.ExportsPath(sf.databasePath()))
	if err != nil {
		return nil, err
	}
	cfg.Exports = xdb
	svc, err := export.NewSQLite(ctx, xdb.DB(), cfg)
	if err != nil {
		xdb.Close()
		return nil, err
	}
	return &exportJobs{svc: svc, store: xdb, close: xdb.Close}, nil
}

// cosignedLog is a log reader whose checkpoint notes carry the witness
// cosignatures stored for them (witness.Cosigned).
type cosignedLog struct {
	export.Reader
	cosigned ledger.Storage
}

func (c cosignedLog) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	return c.cosigned.Checkpoint(ctx, org, size)
}

func (c cosignedLog) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	return c.cosigned.LatestCheckpoint(ctx, org)
}
