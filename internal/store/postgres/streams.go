package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trailaudit/trail/internal/store"
)

const streamColumns = `id, organization_id, type, name, config, secrets, state, cursor_seq, version,
	last_synced_at, last_error, last_error_at, created_at, updated_at`

func scanStream(row pgx.Row) (store.Stream, error) {
	var s store.Stream
	var synced, errAt *time.Time
	err := row.Scan(&s.ID, &s.OrganizationID, &s.Type, &s.Name, &s.Config, &s.Secrets, &s.State, &s.Cursor, &s.Version,
		&synced, &s.LastError, &errAt, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return s, err
	}
	if synced != nil {
		s.LastSyncedAt = synced.UTC()
	}
	if errAt != nil {
		s.LastErrorAt = errAt.UTC()
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateStream stores a new stream; the organization must exist.
func (s *Store) CreateStream(ctx context.Context, st store.Stream) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO log_streams (`+streamColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12, $13 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $2)`,
		st.ID, st.OrganizationID, st.Type, st.Name, st.Config, st.Secrets, st.State, st.Cursor,
		nullTime(st.LastSyncedAt), st.LastError, nullTime(st.LastErrorAt), st.CreatedAt, st.UpdatedAt)
	if err != nil {
		return fmt.Errorf("couldn't create log stream %s: %w", st.ID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", st.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// Stream returns one stream.
func (s *Store) Stream(ctx context.Context, id string) (store.Stream, error) {
	st, err := scanStream(s.pool.QueryRow(ctx, `SELECT `+streamColumns+` FROM log_streams WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("couldn't read log stream %s: %w", id, classify(err))
	}
	return st, nil
}

// ListStreams pages through one organization's streams.
func (s *Store) ListStreams(ctx context.Context, org string, p store.ListParams) (store.ListPage[store.Stream], error) {
	return listByID(ctx, s, "log_streams", streamColumns, "organization_id = $1", []any{org}, p, scanStream,
		func(st store.Stream) string { return st.ID })
}

// StreamPositions returns every stream's cursor beside its log's size.
func (s *Store) StreamPositions(ctx context.Context) ([]store.StreamPosition, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.id, l.organization_id, l.type, l.state, l.version, l.cursor_seq, o.next_seq
		FROM log_streams l JOIN organizations o ON o.id = l.organization_id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read stream positions: %w", classify(err))
	}
	defer rows.Close()
	var out []store.StreamPosition
	for rows.Next() {
		var p store.StreamPosition
		if err := rows.Scan(&p.ID, &p.OrganizationID, &p.Type, &p.State, &p.Version, &p.Cursor, &p.LogSize); err != nil {
			return nil, fmt.Errorf("couldn't read stream positions: %w", classify(err))
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read stream positions: %w", classify(err))
	}
	return out, nil
}

// UpdateStream replaces a stream's settings and state.
func (s *Store) UpdateStream(ctx context.Context, st store.Stream) error {
	tag, err := s.pool.Exec(ctx, `UPDATE log_streams SET name = $1, config = $2, secrets = $3,
		last_error = CASE WHEN $4 = 'active' AND state IN ('error', 'invalid') THEN '' ELSE last_error END,
		state = $4, version = version + 1, updated_at = $5 WHERE id = $6`,
		st.Name, st.Config, st.Secrets, st.State, st.UpdatedAt, st.ID)
	return rowsOrNotFound(tag, err, "update", st.ID)
}

// DeleteStream removes a stream.
func (s *Store) DeleteStream(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM log_streams WHERE id = $1`, id)
	return rowsOrNotFound(tag, err, "delete", id)
}

// AdvanceStream moves the cursor from → to if it is still at from.
func (s *Store) AdvanceStream(ctx context.Context, id string, from, to int64, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE log_streams SET cursor_seq = $1, last_synced_at = $2, last_error = '',
		state = CASE WHEN state = 'error' THEN 'active' ELSE state END WHERE id = $3 AND cursor_seq = $4`,
		to, at, id, from)
	if err != nil {
		return fmt.Errorf("couldn't advance log stream %s: %w", id, classify(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := s.Stream(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("log stream %s: cursor is no longer %d: %w", id, from, store.ErrConflict)
}

// SetStreamFailure records a failed delivery.
func (s *Store) SetStreamFailure(ctx context.Context, id, state, msg string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE log_streams SET last_error = $1, last_error_at = $2,
		state = CASE WHEN state = 'inactive' THEN state ELSE $3 END WHERE id = $4`, msg, at, state, id)
	return rowsOrNotFound(tag, err, "record the failure of", id)
}

func rowsOrNotFound(tag pgconn.CommandTag, err error, verb, id string) error {
	if err != nil {
		return fmt.Errorf("couldn't %s log stream %s: %w", verb, id, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	return nil
}
