package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/trailaudit/trail/internal/store"
)

// CreateSchema stores the next version of (s.Kind, s.Name). The read of the
// latest version and the insert run in one IMMEDIATE transaction on the
// single write connection, so two creates (from this process or the CLI)
// never get one version.
func (s *Store) CreateSchema(ctx context.Context, sc store.Schema) (store.Schema, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return sc, fmt.Errorf("couldn't begin schema transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var latest int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schemas WHERE kind = ? AND name = ?`, sc.Kind, sc.Name).Scan(&latest); err != nil {
		return sc, fmt.Errorf("couldn't read the latest %s schema %q: %w", sc.Kind, sc.Name, classify(err))
	}
	sc.Version = latest + 1
	if _, err := tx.ExecContext(ctx, `INSERT INTO schemas (kind, name, version, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		sc.Kind, sc.Name, sc.Version, sc.Body, ms(sc.CreatedAt)); err != nil {
		return sc, fmt.Errorf("couldn't store %s schema %q version %d: %w", sc.Kind, sc.Name, sc.Version, classify(err))
	}
	if err := tx.Commit(); err != nil {
		return sc, fmt.Errorf("couldn't commit %s schema %q version %d: %w", sc.Kind, sc.Name, sc.Version, classify(err))
	}
	sc.CreatedAt = fromMS(ms(sc.CreatedAt))
	return sc, nil
}

const schemaColumns = `kind, name, version, body, created_at`

func scanSchema(row interface{ Scan(...any) error }) (store.Schema, error) {
	var sc store.Schema
	var created int64
	if err := row.Scan(&sc.Kind, &sc.Name, &sc.Version, &sc.Body, &created); err != nil {
		return sc, err
	}
	sc.CreatedAt = fromMS(created)
	return sc, nil
}

// Schema returns one version of (kind, name), the latest for version 0.
func (s *Store) Schema(ctx context.Context, kind, name string, version int) (store.Schema, error) {
	var row *sql.Row
	if version == 0 {
		row = s.read.QueryRowContext(ctx, `SELECT `+schemaColumns+` FROM schemas WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1`, kind, name)
	} else {
		row = s.read.QueryRowContext(ctx, `SELECT `+schemaColumns+` FROM schemas WHERE kind = ? AND name = ? AND version = ?`, kind, name, version)
	}
	sc, err := scanSchema(row)
	if errors.Is(err, sql.ErrNoRows) {
		return sc, fmt.Errorf("%s schema %q version %d: %w", kind, name, version, store.ErrNotFound)
	}
	if err != nil {
		return sc, fmt.Errorf("couldn't read %s schema %q: %w", kind, name, classify(err))
	}
	return sc, nil
}

// ListSchemas lists the versions of (kind, name), cursors being versions.
func (s *Store) ListSchemas(ctx context.Context, kind, name string, p store.ListParams) (store.ListPage[store.Schema], error) {
	var page store.ListPage[store.Schema]
	cur, err := store.VersionCursor(p)
	if err != nil {
		return page, err
	}
	limit, scanDesc, op := store.ListShape(p)
	q := `SELECT ` + schemaColumns + ` FROM schemas WHERE kind = ? AND name = ?`
	args := []any{kind, name}
	if op != "" {
		q += ` AND version ` + op + ` ?`
		args = append(args, cur)
	}
	q += ` ORDER BY version ` + store.DirWord(scanDesc) + ` LIMIT ` + strconv.Itoa(limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list %s schemas %q: %w", kind, name, classify(err))
	}
	defer rows.Close()
	var data []store.Schema
	for rows.Next() {
		sc, err := scanSchema(rows)
		if err != nil {
			return page, fmt.Errorf("couldn't read %s schema %q: %w", kind, name, err)
		}
		data = append(data, sc)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("couldn't list %s schemas %q: %w", kind, name, classify(err))
	}
	return store.FinishPage(data, limit, p.Before != "", p.After != "",
		func(sc store.Schema) string { return strconv.Itoa(sc.Version) }), nil
}

// ListActions lists the actions with schemas by name, each with its latest
// version and the creation time of its first.
func (s *Store) ListActions(ctx context.Context, p store.ListParams) (store.ListPage[store.ActionSchemas], error) {
	var page store.ListPage[store.ActionSchemas]
	limit, scanDesc, op := store.ListShape(p)
	cond := ""
	args := []any{store.SchemaKindAction}
	if op != "" {
		cond = ` AND name ` + op + ` ?`
		args = append(args, p.After+p.Before)
	}
	dir := store.DirWord(scanDesc)
	q := `SELECT s.kind, s.name, s.version, s.body, s.created_at, a.first
		FROM (SELECT name, max(version) AS latest, min(created_at) AS first FROM schemas
		      WHERE kind = ?` + cond + ` GROUP BY name ORDER BY name ` + dir + ` LIMIT ` + strconv.Itoa(limit+1) + `) a
		JOIN schemas s ON s.kind = 'action' AND s.name = a.name AND s.version = a.latest
		ORDER BY s.name ` + dir
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list actions: %w", classify(err))
	}
	defer rows.Close()
	var data []store.ActionSchemas
	for rows.Next() {
		var a store.ActionSchemas
		var created, first int64
		if err := rows.Scan(&a.Latest.Kind, &a.Latest.Name, &a.Latest.Version, &a.Latest.Body, &created, &first); err != nil {
			return page, fmt.Errorf("couldn't read action: %w", err)
		}
		a.Name, a.Latest.CreatedAt, a.CreatedAt = a.Latest.Name, fromMS(created), fromMS(first)
		data = append(data, a)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("couldn't list actions: %w", classify(err))
	}
	return store.FinishPage(data, limit, p.Before != "", p.After != "",
		func(a store.ActionSchemas) string { return a.Name }), nil
}
