package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/pressly/goose/v3"

	"github.com/trailaudit/trail/internal/store"
)

// schemaStatus reads which of dir's migrations db has, changing nothing
// (goose's own status calls create its version table).
func schemaStatus(ctx context.Context, db *sql.DB, dir string) (store.SchemaStatus, error) {
	src, what := mustSub(migrations, dir), "Trail"
	switch dir {
	case "search_migrations":
		what = "search index"
	case exportsDir:
		src, what = mustSub(exportsMigrations, exportsDir), "exports file"
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, src, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return store.SchemaStatus{}, fmt.Errorf("couldn't load migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		return store.SchemaStatus{}, err
	}
	return store.NewSchemaStatus(what, applied, p), nil
}

func appliedVersions(ctx context.Context, db *sql.DB) ([]int64, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("couldn't read the schema version: %w", classify(err))
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version_id FROM goose_db_version WHERE is_applied AND version_id > 0`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the schema version: %w", classify(err))
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("couldn't read the schema version: %w", classify(err))
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// fileSchemaEmpty reports whether the file at path is missing, empty or
// has no migration applied.
func fileSchemaEmpty(ctx context.Context, path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return true, nil
	}
	db, err := sql.Open("sqlite", dsn(path, true, false, 2<<20))
	if err != nil {
		return false, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	defer db.Close()
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return len(applied) == 0, nil
}

// ReadSchemaStatus reads where the database at path and its search index
// stand, changing nothing; a missing file has nothing applied.
func ReadSchemaStatus(ctx context.Context, path string) ([]store.SchemaStatus, error) {
	var out []store.SchemaStatus
	for _, f := range []struct{ path, dir string }{{path, "migrations"}, {SearchPath(path), "search_migrations"}} {
		st, err := fileStatus(ctx, f.path, f.dir)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func fileStatus(ctx context.Context, path, dir string) (store.SchemaStatus, error) {
	if empty, err := fileSchemaEmpty(ctx, path); err != nil {
		return store.SchemaStatus{}, err
	} else if empty {
		// Read the sources from a database that has nothing.
		db, err := sql.Open("sqlite", "file::memory:")
		if err != nil {
			return store.SchemaStatus{}, err
		}
		defer db.Close()
		return schemaStatus(ctx, db, dir)
	}
	db, err := sql.Open("sqlite", dsn(path, true, false, 2<<20))
	if err != nil {
		return store.SchemaStatus{}, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	defer db.Close()
	st, err := schemaStatus(ctx, db, dir)
	if err != nil {
		return store.SchemaStatus{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// Migrate applies the pending migrations of the database at path (created
// if missing) and of its search index, and returns the statuses they had
// before. With onlyIfEmpty it does so only for a database that has no
// migration applied yet (trail serve initialising a new data directory),
// and leaves any other as it is.
func Migrate(ctx context.Context, path string, onlyIfEmpty bool) ([]store.SchemaStatus, error) {
	if onlyIfEmpty {
		empty, err := fileSchemaEmpty(ctx, path)
		if err != nil || !empty {
			return nil, err
		}
	}
	before, err := ReadSchemaStatus(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, path, nil) // applies them
	if err != nil {
		return nil, err
	}
	return before, s.Close()
}
