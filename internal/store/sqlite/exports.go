package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/trailaudit/trail/internal/store"
)

//go:embed exports_migrations/*.sql
var exportsMigrations embed.FS

// Exports is the exports file: the exports table, and the database River
// keeps its jobs in (see exports_migrations/00001_exports.sql for why it is
// a file of its own). It implements store.ExportStore.
type Exports struct {
	path string
	db   *sql.DB // exactly one connection, shared with River
}

var _ store.ExportStore = (*Exports)(nil)

// ExportsPath is the exports file that belongs to the database at path.
func ExportsPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".exports.db"
}

// OpenExports opens (creating if needed) the exports file at path and
// migrates its exports table. River's tables are migrated by the caller
// (rivermigrate) on DB().
func OpenExports(ctx context.Context, path string) (*Exports, error) {
	return openExports(ctx, path, applyPending)
}

// OpenExportsCurrent opens the exports file at path as OpenExports does,
// but migrates its exports table only when the file is new (empty);
// pending migrations of an existing one are refused (store.ErrSchemaBehind),
// for `trail migrate` to apply (MigrateExports).
func OpenExportsCurrent(ctx context.Context, path string) (*Exports, error) {
	empty, err := fileSchemaEmpty(ctx, path)
	if err != nil {
		return nil, err
	}
	if empty {
		return openExports(ctx, path, applyPending)
	}
	return openExports(ctx, path, requireCurrent)
}

// ExportsSchemaStatus reads where the exports file at path stands,
// changing nothing.
func ExportsSchemaStatus(ctx context.Context, path string) (store.SchemaStatus, error) {
	return fileStatus(ctx, path, exportsDir)
}

// exportsDir names the exports file's migrations in fileStatus.
const exportsDir = "exports_migrations"

func openExports(ctx context.Context, path string, mode migrationMode) (*Exports, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(path, false, true, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	// One connection: River's own advice for SQLite, and the exports
	// table is small and rarely written.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if mode == requireCurrent {
		st, err := schemaStatus(ctx, db, exportsDir)
		if err == nil {
			err = st.Check()
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &Exports{path: path, db: db}, nil
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, mustSub(exportsMigrations, exportsDir), goose.WithDisableGlobalRegistry(true))
	if err == nil {
		err = store.CheckSchemaVersion(ctx, p)
	}
	if err == nil {
		_, err = p.Up(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't migrate %s: %w", path, err)
	}
	return &Exports{path: path, db: db}, nil
}

// DB is the exports file's connection, for River's SQLite driver.
func (x *Exports) DB() *sql.DB { return x.db }

// Path is the exports file.
func (x *Exports) Path() string { return x.path }

// Close closes the connection; River must be stopped first.
func (x *Exports) Close() error { return x.db.Close() }

// CreateExport implements store.ExportStore; tx is a *sql.Tx.
func (x *Exports) CreateExport(ctx context.Context, e store.Export, enqueue func(ctx context.Context, tx any) error) error {
	filter, err := json.Marshal(e.Filter)
	if err != nil {
		return err
	}
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't begin creating export: %w", classify(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO exports (id, organization_id, format, filter, up_to, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.OrganizationID, e.Format, string(filter), e.UpTo, e.State, ms(e.CreatedAt), ms(e.UpdatedAt)); err != nil {
		return fmt.Errorf("couldn't store export %s: %w", e.ID, classify(err))
	}
	if err := enqueue(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't commit export %s: %w", e.ID, classify(err))
	}
	return nil
}

const exportColumns = `id, organization_id, format, filter, up_to, state, processed, exported, size, error, created_at, updated_at`

func scanExport(row interface{ Scan(...any) error }) (store.Export, error) {
	var e store.Export
	var filter string
	var created, updated int64
	if err := row.Scan(&e.ID, &e.OrganizationID, &e.Format, &filter, &e.UpTo, &e.State, &e.Processed, &e.Exported,
		&e.Size, &e.Error, &created, &updated); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(filter), &e.Filter); err != nil {
		return e, fmt.Errorf("stored filter of export %s: %w", e.ID, err)
	}
	e.CreatedAt, e.UpdatedAt = fromMS(created), fromMS(updated)
	return e, nil
}

// Export implements store.ExportStore.
func (x *Exports) Export(ctx context.Context, id string) (store.Export, error) {
	e, err := scanExport(x.db.QueryRowContext(ctx, `SELECT `+exportColumns+` FROM exports WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("export %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("couldn't read export %s: %w", id, classify(err))
	}
	return e, nil
}

// UpdateExportProgress implements store.ExportStore.
func (x *Exports) UpdateExportProgress(ctx context.Context, id string, processed, exported int64, now time.Time) error {
	if _, err := x.db.ExecContext(ctx, `UPDATE exports SET processed = ?, exported = ?, updated_at = ? WHERE id = ? AND state = 'pending'`,
		processed, exported, ms(now), id); err != nil {
		return fmt.Errorf("couldn't record progress of export %s: %w", id, classify(err))
	}
	return nil
}

// FinishExport implements store.ExportStore.
func (x *Exports) FinishExport(ctx context.Context, e store.Export, now time.Time) (bool, error) {
	res, err := x.db.ExecContext(ctx, `UPDATE exports SET state = ?, processed = ?, exported = ?, size = ?, error = ?, updated_at = ?
		WHERE id = ? AND state = 'pending'`, e.State, e.Processed, e.Exported, e.Size, e.Error, ms(now), e.ID)
	if err != nil {
		return false, fmt.Errorf("couldn't finish export %s: %w", e.ID, classify(err))
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// ExpireExports implements store.ExportStore.
func (x *Exports) ExpireExports(ctx context.Context, cutoff, now time.Time) ([]store.Export, error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin expiring exports: %w", classify(err))
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `UPDATE exports SET state = 'expired', updated_at = ?
		WHERE state IN ('ready', 'error') AND created_at < ? RETURNING `+exportColumns, ms(now), ms(cutoff))
	if err != nil {
		return nil, fmt.Errorf("couldn't expire exports: %w", classify(err))
	}
	var out []store.Export
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't expire exports: %w", classify(err))
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't commit expiring exports: %w", classify(err))
	}
	return out, nil
}

// OrganizationExports implements store.ExportStore.
func (x *Exports) OrganizationExports(ctx context.Context, org string) ([]store.Export, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT `+exportColumns+` FROM exports WHERE organization_id = ? ORDER BY created_at, id`, org)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the exports of %s: %w", org, classify(err))
	}
	defer rows.Close()
	var out []store.Export
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			return nil, fmt.Errorf("couldn't read an export of %s: %w", org, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list the exports of %s: %w", org, classify(err))
	}
	return out, nil
}

// ExpireOrganizationExports implements store.ExportStore.
func (x *Exports) ExpireOrganizationExports(ctx context.Context, org string, now time.Time) (int64, error) {
	res, err := x.db.ExecContext(ctx, `UPDATE exports SET state = 'expired', updated_at = ? WHERE organization_id = ? AND state <> 'expired'`, ms(now), org)
	if err != nil {
		return 0, fmt.Errorf("couldn't expire the exports of %s: %w", org, classify(err))
	}
	return res.RowsAffected()
}
