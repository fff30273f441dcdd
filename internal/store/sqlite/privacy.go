package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// PrivacyPolicy returns org's policy document, nil when it has none.
func (s *Store) PrivacyPolicy(ctx context.Context, org string) ([]byte, time.Time, error) {
	var doc []byte
	var at sql.NullInt64
	err := s.read.QueryRowContext(ctx,
		`SELECT p.document, p.updated_at FROM organizations o LEFT JOIN privacy_policies p ON p.organization_id = o.id WHERE o.id = ?`, org).Scan(&doc, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("couldn't read the privacy policy of %s: %w", org, classify(err))
	}
	if !at.Valid {
		return nil, time.Time{}, nil
	}
	return doc, fromMS(at.Int64), nil
}

// SetPrivacyPolicy sets or (doc nil) removes org's policy document.
func (s *Store) SetPrivacyPolicy(ctx context.Context, org string, doc []byte, at time.Time) error {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM organizations WHERE id = ?`, org).Scan(&n); err != nil {
		return fmt.Errorf("couldn't look up organization %s: %w", org, classify(err))
	}
	if n == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	var err error
	if doc == nil {
		_, err = s.write.ExecContext(ctx, `DELETE FROM privacy_policies WHERE organization_id = ?`, org)
	} else {
		_, err = s.write.ExecContext(ctx,
			`INSERT INTO privacy_policies (organization_id, document, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (organization_id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`,
			org, doc, ms(at))
	}
	if err != nil {
		return fmt.Errorf("couldn't set the privacy policy of %s: %w", org, classify(err))
	}
	return nil
}

// PrivacyPolicies returns every organization's policy document.
func (s *Store) PrivacyPolicies(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT organization_id, document FROM privacy_policies`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read privacy policies: %w", classify(err))
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var org string
		var doc []byte
		if err := rows.Scan(&org, &doc); err != nil {
			return nil, fmt.Errorf("couldn't read a privacy policy: %w", err)
		}
		out[org] = doc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read privacy policies: %w", classify(err))
	}
	return out, nil
}

const erasureColumns = `id, organization_id, request_id, subject_kind, subject_type, subject_hash, sealed_subject, reason,
	requested_by_type, requested_by_id, requested_by_name, up_to, state, seqs, planned, erased, tombstones,
	created_at, completed_at, error`

func scanErasure(row interface{ Scan(...any) error }) (store.Erasure, error) {
	var e store.Erasure
	var created, completed int64
	err := row.Scan(&e.ID, &e.OrganizationID, &e.RequestID, &e.SubjectKind, &e.SubjectType, &e.SubjectHash, &e.SealedSubject, &e.Reason,
		&e.RequestedByType, &e.RequestedByID, &e.RequestedByName, &e.UpTo, &e.State, &e.Seqs, &e.Planned, &e.Erased, &e.Tombstones,
		&created, &completed, &e.Error)
	e.CreatedAt = fromMS(created)
	if completed != 0 {
		e.CompletedAt = fromMS(completed)
	}
	return e, err
}

// CreateErasure stores a new erasure job, or returns org's job of the same
// request id.
func (s *Store) CreateErasure(ctx context.Context, e store.Erasure) (store.Erasure, bool, error) {
	res, err := s.write.ExecContext(ctx, `INSERT INTO erasures (`+erasureColumns+`)
		SELECT ?, id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ? FROM organizations WHERE id = ?
		ON CONFLICT (organization_id, request_id) DO NOTHING`,
		e.ID, e.RequestID, e.SubjectKind, e.SubjectType, e.SubjectHash, e.SealedSubject, e.Reason,
		e.RequestedByType, e.RequestedByID, e.RequestedByName, e.UpTo, e.State, e.Seqs, e.Planned, e.Erased, e.Tombstones,
		ms(e.CreatedAt), e.Error, e.OrganizationID)
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("couldn't store erasure %s of %s: %w", e.ID, e.OrganizationID, classify(err))
	}
	n, _ := res.RowsAffected()
	stored, err := scanErasure(s.write.QueryRowContext(ctx,
		`SELECT `+erasureColumns+` FROM erasures WHERE organization_id = ? AND request_id = ?`, e.OrganizationID, e.RequestID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Erasure{}, false, fmt.Errorf("organization %s: %w", e.OrganizationID, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("couldn't read erasure request %s of %s: %w", e.RequestID, e.OrganizationID, classify(err))
	}
	return stored, n == 1, nil
}

// Erasure returns org's erasure job id.
func (s *Store) Erasure(ctx context.Context, org, id string) (store.Erasure, error) {
	e, err := scanErasure(s.read.QueryRowContext(ctx, `SELECT `+erasureColumns+` FROM erasures WHERE organization_id = ? AND id = ?`, org, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Erasure{}, fmt.Errorf("erasure %s of %s: %w", id, org, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, fmt.Errorf("couldn't read erasure %s of %s: %w", id, org, classify(err))
	}
	return e, nil
}

// UnfinishedErasures returns the erasure jobs not completed, oldest first.
func (s *Store) UnfinishedErasures(ctx context.Context) ([]store.Erasure, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+erasureColumns+` FROM erasures WHERE state <> 'completed' ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read unfinished erasures: %w", classify(err))
	}
	defer rows.Close()
	var out []store.Erasure
	for rows.Next() {
		e, err := scanErasure(rows)
		if err != nil {
			return nil, fmt.Errorf("couldn't read an erasure: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read unfinished erasures: %w", classify(err))
	}
	return out, nil
}

// UpdateErasure stores an erasure job's progress.
func (s *Store) UpdateErasure(ctx context.Context, e store.Erasure) error {
	var completed int64
	if !e.CompletedAt.IsZero() {
		completed = ms(e.CompletedAt)
	}
	res, err := s.write.ExecContext(ctx, `UPDATE erasures SET state = ?, seqs = ?, planned = ?, erased = ?, sealed_subject = ?,
		tombstones = ?, completed_at = ?, error = ? WHERE organization_id = ? AND id = ?`,
		e.State, e.Seqs, e.Planned, e.Erased, e.SealedSubject, e.Tombstones, completed, e.Error, e.OrganizationID, e.ID)
	if err != nil {
		return fmt.Errorf("couldn't update erasure %s of %s: %w", e.ID, e.OrganizationID, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("erasure %s of %s: %w", e.ID, e.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// EraseRecords deletes the given records of org as PruneRecords deletes
// records past retention: first their search entries (on the search file's
// writer, which keeps the indexer out meanwhile), then the records. Only
// records integrated (seq < integrated_size) and indexed (pos ≤
// indexed_pos) are taken; the others are pending. If the process dies
// between the two commits, the records are no longer searchable but still
// stored, and the next call deletes them.
func (s *Store) EraseRecords(ctx context.Context, org string, seqs []int64) (int, int, error) {
	if len(seqs) == 0 {
		return 0, 0, nil
	}
	var integrated int64
	err := s.read.QueryRowContext(ctx, `SELECT integrated_size FROM organizations WHERE id = ?`, org).Scan(&integrated)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read the log state of %s: %w", org, classify(err))
	}
	tx, err := s.searchWrite.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't begin removing search entries: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	args := make([]any, 0, len(seqs)+1)
	args = append(args, org)
	for _, q := range seqs {
		args = append(args, q)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT pos, seq, record, schema_mismatch FROM events WHERE organization_id = ? AND seq IN (?`+
		strings.Repeat(",?", len(seqs)-1)+`) ORDER BY seq`, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	var due []dueRecord
	pending := 0
	hasher := newFacetHasher()
	for rows.Next() {
		var pos, seq int64
		var raw []byte
		var mismatch bool
		if err := rows.Scan(&pos, &seq, &raw, &mismatch); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("couldn't read a record of %s: %w", org, err)
		}
		if seq >= integrated || pos > indexed {
			pending++
			continue
		}
		rec, err := event.ParseRecord(raw)
		if err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("couldn't parse stored record %s/%d: %w", org, seq, err)
		}
		facets, text := hasher.ftsEntry(org, rec, mismatch)
		due = append(due, dueRecord{seq: seq, occurredMS: rec.OccurredAt.UnixMilli(), facets: string(facets), text: text})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	if len(due) == 0 {
		return 0, pending, nil
	}
	if err := removeSearchEntries(ctx, tx, org, due); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("couldn't commit the removal of %d search entries of %s: %w", len(due), org, classify(err))
	}
	del := make([]any, 0, len(due)+1)
	del = append(del, org)
	for _, d := range due {
		del = append(del, d.seq)
	}
	// secure_delete overwrites the deleted records' bytes in the file (and
	// so in the WAL frames that carry the change) with zeros instead of
	// leaving them on free pages; only for erasures, which are rare, so
	// ingest and retention do not pay for it.
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't take the write connection: %w", classify(err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return 0, 0, fmt.Errorf("couldn't turn secure_delete on: %w", classify(err))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`) //nolint:errcheck // best effort: only costs speed
	if _, err := conn.ExecContext(ctx, `DELETE FROM events WHERE organization_id = ? AND seq IN (?`+
		strings.Repeat(",?", len(due)-1)+`)`, del...); err != nil {
		return 0, 0, fmt.Errorf("couldn't erase %d records of %s: %w", len(due), org, classify(err))
	}
	return len(due), pending, nil
}
