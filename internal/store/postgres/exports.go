package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

var _ store.ExportStore = (*Store)(nil)

// CreateExport implements store.ExportStore; tx is a pgx.Tx.
func (s *Store) CreateExport(ctx context.Context, e store.Export, enqueue func(ctx context.Context, tx any) error) error {
	filter, err := json.Marshal(e.Filter)
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("couldn't begin creating export: %w", classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `INSERT INTO exports (id, organization_id, format, filter, up_to, state, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.ID, e.OrganizationID, e.Format, filter, e.UpTo, e.State, e.CreatedAt, e.UpdatedAt); err != nil {
		return fmt.Errorf("couldn't store export %s: %w", e.ID, classify(err))
	}
	if err := enqueue(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("couldn't commit export %s: %w", e.ID, classify(err))
	}
	return nil
}

const exportColumns = `id, organization_id, format, filter, up_to, state, processed, exported, size, error, created_at, updated_at`

func scanExport(row pgx.Row) (store.Export, error) {
	var e store.Export
	var filter []byte
	if err := row.Scan(&e.ID, &e.OrganizationID, &e.Format, &filter, &e.UpTo, &e.State, &e.Processed, &e.Exported,
		&e.Size, &e.Error, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return e, err
	}
	if err := json.Unmarshal(filter, &e.Filter); err != nil {
		return e, fmt.Errorf("stored filter of export %s: %w", e.ID, err)
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, nil
}

// Export implements store.ExportStore.
func (s *Store) Export(ctx context.Context, id string) (store.Export, error) {
	e, err := scanExport(s.pool.QueryRow(ctx, `SELECT `+exportColumns+` FROM exports WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("export %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("couldn't read export %s: %w", id, classify(err))
	}
	return e, nil
}

// UpdateExportProgress implements store.ExportStore.
func (s *Store) UpdateExportProgress(ctx context.Context, id string, processed, exported int64, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE exports SET processed = $1, exported = $2, updated_at = $3 WHERE id = $4 AND state = 'pending'`,
		processed, exported, now, id); err != nil {
		return fmt.Errorf("couldn't record progress of export %s: %w", id, classify(err))
	}
	return nil
}

// FinishExport implements store.ExportStore.
func (s *Store) FinishExport(ctx context.Context, e store.Export, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE exports SET state = $1, processed = $2, exported = $3, size = $4, error = $5, updated_at = $6
		WHERE id = $7 AND state = 'pending'`, e.State, e.Processed, e.Exported, e.Size, e.Error, now, e.ID)
	if err != nil {
		return false, fmt.Errorf("couldn't finish export %s: %w", e.ID, classify(err))
	}
	return tag.RowsAffected() > 0, nil
}

// ExpireExports implements store.ExportStore.
func (s *Store) ExpireExports(ctx context.Context, cutoff, now time.Time) ([]store.Export, error) {
	rows, err := s.pool.Query(ctx, `UPDATE exports SET state = 'expired', updated_at = $1
		WHERE state IN ('ready', 'error') AND created_at < $2 RETURNING `+exportColumns, now, cutoff)
	if err != nil {
		return nil, fmt.Errorf("couldn't expire exports: %w", classify(err))
	}
	defer rows.Close()
	var out []store.Export
	for rows.Next() {
		e, err := scanExport(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't expire exports: %w", classify(err))
	}
	return out, nil
}

// OrganizationExports implements store.ExportStore.
func (s *Store) OrganizationExports(ctx context.Context, org string) ([]store.Export, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+exportColumns+` FROM exports WHERE organization_id = $1 ORDER BY created_at, id`, org)
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
func (s *Store) ExpireOrganizationExports(ctx context.Context, org string, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE exports SET state = 'expired', updated_at = $2 WHERE organization_id = $1 AND state <> 'expired'`, org, now)
	if err != nil {
		return 0, fmt.Errorf("couldn't expire the exports of %s: %w", org, classify(err))
	}
	return tag.RowsAffected(), nil
}
