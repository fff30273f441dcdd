package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// PrivacyPolicy returns org's policy document, nil when it has none.
func (s *Store) PrivacyPolicy(ctx context.Context, org string) ([]byte, time.Time, error) {
	var doc []byte
	var at *time.Time
	err := s.pool.QueryRow(ctx,
		`SELECT p.document, p.updated_at FROM organizations o LEFT JOIN privacy_policies p ON p.organization_id = o.id WHERE o.id = $1`, org).Scan(&doc, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("couldn't read the privacy policy of %s: %w", org, classify(err))
	}
	if at == nil {
		return nil, time.Time{}, nil
	}
	return doc, at.UTC(), nil
}

// SetPrivacyPolicy sets or (doc nil) removes org's policy document.
func (s *Store) SetPrivacyPolicy(ctx context.Context, org string, doc []byte, at time.Time) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)`, org).Scan(&exists); err != nil {
		return fmt.Errorf("couldn't look up organization %s: %w", org, classify(err))
	}
	if !exists {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	var err error
	if doc == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM privacy_policies WHERE organization_id = $1`, org)
	} else {
		_, err = s.pool.Exec(ctx,
			`INSERT INTO privacy_policies (organization_id, document, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (organization_id) DO UPDATE SET document = EXCLUDED.document, updated_at = EXCLUDED.updated_at`,
			org, doc, at)
	}
	if err != nil {
		return fmt.Errorf("couldn't set the privacy policy of %s: %w", org, classify(err))
	}
	return nil
}

// PrivacyPolicies returns every organization's policy document.
func (s *Store) PrivacyPolicies(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT organization_id, document FROM privacy_policies`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read privacy policies: %w", classify(err))
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var org string
		var doc []byte
		if err := rows.Scan(&org, &doc); err != nil {
			return nil, fmt.Errorf("couldn't read a privacy policy: %w", classify(err))
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

func scanErasure(row pgx.Row) (store.Erasure, error) {
	var e store.Erasure
	var completed *time.Time
	err := row.Scan(&e.ID, &e.OrganizationID, &e.RequestID, &e.SubjectKind, &e.SubjectType, &e.SubjectHash, &e.SealedSubject, &e.Reason,
		&e.RequestedByType, &e.RequestedByID, &e.RequestedByName, &e.UpTo, &e.State, &e.Seqs, &e.Planned, &e.Erased, &e.Tombstones,
		&e.CreatedAt, &completed, &e.Error)
	e.CreatedAt = e.CreatedAt.UTC()
	if completed != nil {
		e.CompletedAt = completed.UTC()
	}
	return e, err
}

// CreateErasure stores a new erasure job, or returns org's job of the same
// request id.
func (s *Store) CreateErasure(ctx context.Context, e store.Erasure) (store.Erasure, bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO erasures (`+erasureColumns+`)
		SELECT $1, id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, $18 FROM organizations WHERE id = $19
		ON CONFLICT (organization_id, request_id) DO NOTHING`,
		e.ID, e.RequestID, e.SubjectKind, e.SubjectType, e.SubjectHash, e.SealedSubject, e.Reason,
		e.RequestedByType, e.RequestedByID, e.RequestedByName, e.UpTo, e.State, e.Seqs, e.Planned, e.Erased, e.Tombstones,
		e.CreatedAt, e.Error, e.OrganizationID)
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("couldn't store erasure %s of %s: %w", e.ID, e.OrganizationID, classify(err))
	}
	stored, err := scanErasure(s.pool.QueryRow(ctx,
		`SELECT `+erasureColumns+` FROM erasures WHERE organization_id = $1 AND request_id = $2`, e.OrganizationID, e.RequestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Erasure{}, false, fmt.Errorf("organization %s: %w", e.OrganizationID, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, false, fmt.Errorf("couldn't read erasure request %s of %s: %w", e.RequestID, e.OrganizationID, classify(err))
	}
	return stored, tag.RowsAffected() == 1, nil
}

// Erasure returns org's erasure job id.
func (s *Store) Erasure(ctx context.Context, org, id string) (store.Erasure, error) {
	e, err := scanErasure(s.pool.QueryRow(ctx, `SELECT `+erasureColumns+` FROM erasures WHERE organization_id = $1 AND id = $2`, org, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Erasure{}, fmt.Errorf("erasure %s of %s: %w", id, org, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, fmt.Errorf("couldn't read erasure %s of %s: %w", id, org, classify(err))
	}
	return e, nil
}

// UnfinishedErasures returns the erasure jobs not completed, oldest first.
func (s *Store) UnfinishedErasures(ctx context.Context) ([]store.Erasure, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+erasureColumns+` FROM erasures WHERE state <> 'completed' ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read unfinished erasures: %w", classify(err))
	}
	defer rows.Close()
	var out []store.Erasure
	for rows.Next() {
		e, err := scanErasure(rows)
		if err != nil {
			return nil, fmt.Errorf("couldn't read an erasure: %w", classify(err))
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
	var completed *time.Time
	if !e.CompletedAt.IsZero() {
		completed = &e.CompletedAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE erasures SET state = $3, seqs = $4, planned = $5, erased = $6, sealed_subject = $7,
		tombstones = $8, completed_at = $9, error = $10 WHERE organization_id = $1 AND id = $2`,
		e.OrganizationID, e.ID, e.State, e.Seqs, e.Planned, e.Erased, e.SealedSubject, e.Tombstones, completed, e.Error)
	if err != nil {
		return fmt.Errorf("couldn't update erasure %s of %s: %w", e.ID, e.OrganizationID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("erasure %s of %s: %w", e.ID, e.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// EraseRecords deletes the given integrated records of org, with their
// target rows (the search columns are in the events rows themselves), in
// one transaction.
func (s *Store) EraseRecords(ctx context.Context, org string, seqs []int64) (int, int, error) {
	if len(seqs) == 0 {
		return 0, 0, nil
	}
	var erased, pending int
	err := retry(ctx, func() error {
		var err error
		erased, pending, err = s.eraseTx(ctx, org, seqs)
		return err
	})
	return erased, pending, err
}

func (s *Store) eraseTx(ctx context.Context, org string, seqs []int64) (int, int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't begin erasing records of %s: %w", org, classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var integrated int64
	err = tx.QueryRow(ctx, `SELECT integrated_size FROM organizations WHERE id = $1`, org).Scan(&integrated)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read the log state of %s: %w", org, classify(err))
	}
	rows, err := tx.Query(ctx, `SELECT seq, received_at, occurred_at, record FROM events WHERE organization_id = $1 AND seq = ANY($2) ORDER BY seq`, org, seqs)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	var (
		pending            int
		eSeqs              []int64
		eRecv              []time.Time
		tTypes, tIDs       []string
		tOccurred, tRecv   []time.Time
		tSeqs              []int64
		seq                int64
		received, occurred time.Time
		raw                []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &received, &occurred, &raw); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("couldn't read a record of %s: %w", org, classify(err))
		}
		if seq >= integrated {
			pending++
			continue
		}
		rec, err := event.ParseRecord(raw)
		if err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("couldn't parse stored record %s/%d: %w", org, seq, err)
		}
		eSeqs, eRecv = append(eSeqs, seq), append(eRecv, received)
		for _, t := range rec.Targets {
			tTypes, tIDs = append(tTypes, t.Type), append(tIDs, t.ID)
			tOccurred, tSeqs, tRecv = append(tOccurred, occurred), append(tSeqs, seq), append(tRecv, received)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	if len(eSeqs) == 0 {
		return 0, pending, nil
	}
	if len(tSeqs) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM event_targets t
			USING unnest($2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::timestamptz[]) AS d (target_type, target_id, occurred_at, seq, received_at)
			WHERE t.organization_id = $1 AND t.target_type = d.target_type AND t.target_id = d.target_id
			AND t.occurred_at = d.occurred_at AND t.seq = d.seq AND t.received_at = d.received_at`,
			org, tTypes, tIDs, tOccurred, tSeqs, tRecv); err != nil {
			return 0, 0, fmt.Errorf("couldn't delete target rows of %d records of %s: %w", len(eSeqs), org, classify(err))
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM events e USING unnest($2::bigint[], $3::timestamptz[]) AS d (seq, received_at)
		WHERE e.organization_id = $1 AND e.seq = d.seq AND e.received_at = d.received_at`, org, eSeqs, eRecv); err != nil {
		return 0, 0, fmt.Errorf("couldn't erase %d records of %s: %w", len(eSeqs), org, classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("couldn't commit the erasure of %d records of %s: %w", len(eSeqs), org, classify(err))
	}
	return len(eSeqs), pending, nil
}
