package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trailaudit/trail/internal/store"
)

// maxVersionAttempts bounds how often CreateSchema retries after another
// replica took the version it computed.
const maxVersionAttempts = 10

// CreateSchema stores the next version of (s.Kind, s.Name): the version is
// computed and inserted in one statement; if a concurrent create (on any
// replica) took it first, the primary key refuses the insert and the
// statement runs again.
func (s *Store) CreateSchema(ctx context.Context, sc store.Schema) (store.Schema, error) {
	sc.CreatedAt = sc.CreatedAt.UTC().Truncate(1000) // microseconds, what timestamptz keeps
	var err error
	for range maxVersionAttempts {
		err = s.pool.QueryRow(ctx, `INSERT INTO schemas (kind, name, version, body, created_at)
			SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM schemas WHERE kind = $1 AND name = $2
			RETURNING version`, sc.Kind, sc.Name, sc.Body, sc.CreatedAt).Scan(&sc.Version)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			continue
		}
		break
	}
	if err != nil {
		return sc, fmt.Errorf("couldn't store the next %s schema %q: %w", sc.Kind, sc.Name, classify(err))
	}
	return sc, nil
}

const schemaColumns = `kind, name, version, body, created_at`

func scanSchema(row pgx.Row) (store.Schema, error) {
	var sc store.Schema
	if err := row.Scan(&sc.Kind, &sc.Name, &sc.Version, &sc.Body, &sc.CreatedAt); err != nil {
		return sc, err
	}
	sc.CreatedAt = sc.CreatedAt.UTC()
	return sc, nil
}

// Schema returns one version of (kind, name), the latest for version 0.
func (s *Store) Schema(ctx context.Context, kind, name string, version int) (store.Schema, error) {
	var row pgx.Row
	if version == 0 {
		row = s.pool.QueryRow(ctx, `SELECT `+schemaColumns+` FROM schemas WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, kind, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+schemaColumns+` FROM schemas WHERE kind = $1 AND name = $2 AND version = $3`, kind, name, version)
	}
	sc, err := scanSchema(row)
	if errors.Is(err, pgx.ErrNoRows) {
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
	q := `SELECT ` + schemaColumns + ` FROM schemas WHERE kind = $1 AND name = $2`
	args := []any{kind, name}
	if op != "" {
		q += ` AND version ` + op + ` $3`
		args = append(args, cur)
	}
	q += ` ORDER BY version ` + store.DirWord(scanDesc) + ` LIMIT ` + strconv.Itoa(limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list %s schemas %q: %w", kind, name, classify(err))
	}
	data, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Schema, error) { return scanSchema(r) })
	if err != nil {
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
		cond = ` AND name ` + op + ` $2`
		args = append(args, p.After+p.Before)
	}
	dir := store.DirWord(scanDesc)
	q := `SELECT s.kind, s.name, s.version, s.body, s.created_at, a.first
		FROM (SELECT name, max(version) AS latest, min(created_at) AS first FROM schemas
		      WHERE kind = $1` + cond + ` GROUP BY name ORDER BY name ` + dir + ` LIMIT ` + strconv.Itoa(limit+1) + `) a
		JOIN schemas s ON s.kind = 'action' AND s.name = a.name AND s.version = a.latest
		ORDER BY s.name ` + dir
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list actions: %w", classify(err))
	}
	data, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ActionSchemas, error) {
		var a store.ActionSchemas
		err := r.Scan(&a.Latest.Kind, &a.Latest.Name, &a.Latest.Version, &a.Latest.Body, &a.Latest.CreatedAt, &a.CreatedAt)
		a.Name, a.Latest.CreatedAt, a.CreatedAt = a.Latest.Name, a.Latest.CreatedAt.UTC(), a.CreatedAt.UTC()
		return a, err
	})
	if err != nil {
		return page, fmt.Errorf("couldn't list actions: %w", classify(err))
	}
	return store.FinishPage(data, limit, p.Before != "", p.After != "",
		func(a store.ActionSchemas) string { return a.Name }), nil
}
