package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

const streamColumns = `id, organization_id, type, name, config, secrets, state, cursor_seq, version,
	last_synced_at, last_error, last_error_at, created_at, updated_at`

func scanStream(row interface{ Scan(...any) error }) (store.Stream, error) {
	var s store.Stream
	var synced, errAt sql.NullInt64
	var created, updated int64
	err := row.Scan(&s.ID, &s.OrganizationID, &s.Type, &s.Name, &s.Config, &s.Secrets, &s.State, &s.Cursor, &s.Version,
		&synced, &s.LastError, &errAt, &created, &updated)
	if err != nil {
		return s, err
	}
	s.LastSyncedAt, s.LastErrorAt = fromNullMS(synced), fromNullMS(errAt)
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	return s, nil
}

func nullMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ms(t)
}

// CreateStream stores a new stream; the organization must exist.
func (s *Store) CreateStream(ctx context.Context, st store.Stream) error {
	res, err := s.write.ExecContext(ctx, `INSERT INTO log_streams (`+streamColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM organizations WHERE id = ?)`,
		st.ID, st.OrganizationID, st.Type, st.Name, st.Config, st.Secrets, st.State, st.Cursor,
		nullMS(st.LastSyncedAt), st.LastError, nullMS(st.LastErrorAt), ms(st.CreatedAt), ms(st.UpdatedAt), st.OrganizationID)
	if err != nil {
		return fmt.Errorf("couldn't create log stream %s: %w", st.ID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %s: %w", st.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// Stream returns one stream.
func (s *Store) Stream(ctx context.Context, id string) (store.Stream, error) {
	st, err := scanStream(s.read.QueryRowContext(ctx, `SELECT `+streamColumns+` FROM log_streams WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("couldn't read log stream %s: %w", id, classify(err))
	}
	return st, nil
}

// ListStreams pages through one organization's streams.
func (s *Store) ListStreams(ctx context.Context, org string, p store.ListParams) (store.ListPage[store.Stream], error) {
	return listByID(ctx, s.read, "log_streams", streamColumns, "organization_id = ?", []any{org}, p, scanStream,
		func(st store.Stream) string { return st.ID })
}

// streamPositionsSQL is prepared once (Store.prepare): the stream engine
// reads the positions after every burst of commits.
const streamPositionsSQL = `SELECT l.id, l.organization_id, l.type, l.state, l.version, l.cursor_seq, o.next_seq
	FROM log_streams l JOIN organizations o ON o.id = l.organization_id`

// StreamPositions returns every stream's cursor beside its log's size.
func (s *Store) StreamPositions(ctx context.Context) ([]store.StreamPosition, error) {
	rows, err := s.stmts.streamPositions.QueryContext(ctx)
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
	res, err := s.write.ExecContext(ctx, `UPDATE log_streams SET name = ?, config = ?, secrets = ?,
		last_error = CASE WHEN ? = 'active' AND state IN ('error', 'invalid') THEN '' ELSE last_error END,
		state = ?, version = version + 1, updated_at = ? WHERE id = ?`,
		st.Name, st.Config, st.Secrets, st.State, st.State, ms(st.UpdatedAt), st.ID)
	return rowsOrNotFound(res, err, "update", st.ID)
}

// DeleteStream removes a stream.
func (s *Store) DeleteStream(ctx context.Context, id string) error {
	res, err := s.write.ExecContext(ctx, `DELETE FROM log_streams WHERE id = ?`, id)
	return rowsOrNotFound(res, err, "delete", id)
}

// AdvanceStream moves the cursor from → to if it is still at from.
func (s *Store) AdvanceStream(ctx context.Context, id string, from, to int64, at time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE log_streams SET cursor_seq = ?, last_synced_at = ?, last_error = '',
		state = CASE WHEN state = 'error' THEN 'active' ELSE state END WHERE id = ? AND cursor_seq = ?`,
		to, ms(at), id, from)
	if err != nil {
		return fmt.Errorf("couldn't advance log stream %s: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := s.Stream(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("log stream %s: cursor is no longer %d: %w", id, from, store.ErrConflict)
}

// SetStreamFailure records a failed delivery.
func (s *Store) SetStreamFailure(ctx context.Context, id, state, msg string, at time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE log_streams SET last_error = ?, last_error_at = ?,
		state = CASE WHEN state = 'inactive' THEN state ELSE ? END WHERE id = ?`, msg, ms(at), state, id)
	return rowsOrNotFound(res, err, "record the failure of", id)
}

func rowsOrNotFound(res sql.Result, err error, verb, id string) error {
	if err != nil {
		return fmt.Errorf("couldn't %s log stream %s: %w", verb, id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	return nil
}
