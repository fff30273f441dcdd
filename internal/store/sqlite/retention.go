package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Retention returns org's own retention period, if it has one.
func (s *Store) Retention(ctx context.Context, org string) (int, bool, error) {
	var days sql.NullInt64
	err := s.read.QueryRowContext(ctx,
		`SELECT r.days FROM organizations o LEFT JOIN retention_settings r ON r.organization_id = o.id WHERE o.id = ?`, org).Scan(&days)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the retention of %s: %w", org, classify(err))
	}
	return int(days.Int64), days.Valid, nil
}

// SetRetention sets org's retention period.
func (s *Store) SetRetention(ctx context.Context, org string, days int, at time.Time) error {
	if days <= 0 {
		return fmt.Errorf("retention of %s: %d days: the period must be at least one day", org, days)
	}
	res, err := s.write.ExecContext(ctx,
		`INSERT INTO retention_settings (organization_id, days, updated_at) SELECT id, ?, ? FROM organizations WHERE id = ?
		ON CONFLICT (organization_id) DO UPDATE SET days = excluded.days, updated_at = excluded.updated_at`,
		days, ms(at), org)
	if err != nil {
		return fmt.Errorf("couldn't set the retention of %s: %w", org, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}

// RetentionSettings returns every organization's own retention period.
func (s *Store) RetentionSettings(ctx context.Context) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT organization_id, days FROM retention_settings`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read retention settings: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var org string
		var days int
		if err := rows.Scan(&org, &days); err != nil {
			return nil, fmt.Errorf("couldn't read a retention setting: %w", err)
		}
		out[org] = days
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read retention settings: %w", classify(err))
	}
	return out, nil
}

// betweenPruneCommits, set by tests, runs in PruneRecords between the
// commit of the search entries' removal and the records' deletion, where
// the indexer may run.
var betweenPruneCommits func()

// dueRecord is a record PruneRecords deletes, with what locates its search
// entries.
type dueRecord struct {
	seq          int64
	occurredMS   int64
	facets, text string // exactly what IndexPending gave event_fts
}

// PruneRecords deletes the due records at the start of org's log, in two
// short transactions: first their search entries (in the search file, on its
// writer, which also keeps the indexer out meanwhile), then the records. Only
// records the indexer has already covered (pos ≤ indexed_pos) are taken, so
// the indexer can never index a record after its entries were removed; the
// rest wait for the next call. If the process dies between the two commits,
// the records are no longer searchable but still stored, and the next call
// deletes them (finding no search entries left to delete).
func (s *Store) PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var integrated int64
	// A held archive (store.ArchiveStore) bounds what may go, as the
	// integrated size does.
	err := s.read.QueryRowContext(ctx, `SELECT CASE WHEN a.held THEN min(o.integrated_size, a.archived_to) ELSE o.integrated_size END
		FROM organizations o LEFT JOIN archive_state a ON a.organization_id = o.id WHERE o.id = ?`, org).Scan(&integrated)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read the log state of %s: %w", org, classify(err))
	}
	// Most calls find nothing due: decide that from the first stored
	// record, without taking the search writer.
	var first []byte
	err = s.read.QueryRowContext(ctx, `SELECT record FROM events WHERE organization_id = ? AND seq < ? ORDER BY seq LIMIT 1`, org, integrated).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read the first record of %s: %w", org, classify(err))
	}
	if rec, err := event.ParseRecord(first); err != nil {
		return 0, fmt.Errorf("couldn't parse the first stored record of %s: %w", org, err)
	} else if !rec.ReceivedAt.Before(cutoff) {
		return 0, nil
	}

	tx, err := s.searchWrite.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin removing search entries: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return 0, err
	}
	due, err := s.dueRecords(ctx, org, integrated, indexed, cutoff, limit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	if err := removeSearchEntries(ctx, tx, org, due); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("couldn't commit the removal of %d search entries of %s: %w", len(due), org, classify(err))
	}
	if betweenPruneCommits != nil {
		betweenPruneCommits()
	}
	// The due records are the first stored ones, contiguous in stored
	// order, so the range holds exactly them. If the process dies before
	// this commits, they stay stored and the next call deletes them.
	if _, err := s.write.ExecContext(ctx, `DELETE FROM events WHERE organization_id = ? AND seq >= ? AND seq <= ?`,
		org, due[0].seq, due[len(due)-1].seq); err != nil {
		return 0, fmt.Errorf("couldn't delete %d records of %s: %w", len(due), org, classify(err))
	}
	return len(due), nil
}

// dueRecords reads, in seq order from the first stored record of org, up to
// limit records that are integrated (seq < integrated), indexed (pos ≤
// indexed) and received before cutoff, stopping at the first that is not.
func (s *Store) dueRecords(ctx context.Context, org string, integrated, indexed int64, cutoff time.Time, limit int) ([]dueRecord, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT pos, seq, record, schema_mismatch FROM events WHERE organization_id = ? AND seq < ? ORDER BY seq LIMIT ?`, org, integrated, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	defer rows.Close()
	var due []dueRecord
	hasher := newFacetHasher()
	for rows.Next() {
		var pos, seq int64
		var raw []byte
		var mismatch bool
		if err := rows.Scan(&pos, &seq, &raw, &mismatch); err != nil {
			return nil, fmt.Errorf("couldn't read a record of %s: %w", org, err)
		}
		if pos > indexed {
			break // not searchable yet: the indexer must cover it first
		}
		rec, err := event.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse stored record %s/%d: %w", org, seq, err)
		}
		if !rec.ReceivedAt.Before(cutoff) {
			break
		}
		facets, text := hasher.ftsEntry(org, rec, mismatch)
		due = append(due, dueRecord{seq: seq, occurredMS: rec.OccurredAt.UnixMilli(), facets: string(facets), text: text})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	return due, nil
}

// removeSearchEntries deletes the search row and full-text entry of each due
// record. event_fts is contentless: FTS5's 'delete' command takes the
// values the entry was indexed with, recomputed from the record. A record's sort key is found in the range of its
// occurred_at millisecond; only when that millisecond's keys are all taken
// (more than 2^21 events in it, see IndexPending) can it lie beyond.
func removeSearchEntries(ctx context.Context, tx *sql.Tx, org string, due []dueRecord) error {
	prep := func(q string) (*sql.Stmt, error) {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("couldn't prepare search removal: %w", classify(err))
		}
		return st, nil
	}
	var stmts [5]*sql.Stmt
	defer func() {
		for _, st := range stmts {
			if st != nil {
				st.Close()
			}
		}
	}()
	for i, q := range []string{
		`SELECT sort_key FROM event_search WHERE organization_id = ? AND sort_key >= ? AND sort_key < ? AND seq = ?`,
		`SELECT max(sort_key) FROM event_search WHERE sort_key >= ? AND sort_key < ?`,
		`SELECT sort_key FROM event_search WHERE organization_id = ? AND sort_key >= ? AND seq = ? ORDER BY sort_key LIMIT 1`,
		`DELETE FROM event_search WHERE sort_key = ?`,
		`INSERT INTO event_fts (event_fts, rowid, facets, body) VALUES ('delete', ?, ?, ?)`,
	} {
		var err error
		if stmts[i], err = prep(q); err != nil {
			return err
		}
	}
	inMS, maxInMS, beyond, delSearch, delText := stmts[0], stmts[1], stmts[2], stmts[3], stmts[4]
	for _, d := range due {
		lo, hi := d.occurredMS<<slotBits, (d.occurredMS+1)<<slotBits
		var key int64
		err := inMS.QueryRowContext(ctx, org, lo, hi, d.seq).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			var top sql.NullInt64
			if err := maxInMS.QueryRowContext(ctx, lo, hi).Scan(&top); err != nil {
				return fmt.Errorf("couldn't look up the search entry of %s/%d: %w", org, d.seq, classify(err))
			}
			if !top.Valid || top.Int64 != hi-1 {
				continue // no entry left: removed by an earlier call that died before deleting the record
			}
			err = beyond.QueryRowContext(ctx, org, hi, d.seq).Scan(&key)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("couldn't look up the search entry of %s/%d: %w", org, d.seq, classify(err))
		}
		if _, err := delSearch.ExecContext(ctx, key); err != nil {
			return fmt.Errorf("couldn't remove the search entry of %s/%d: %w", org, d.seq, classify(err))
		}
		if _, err := delText.ExecContext(ctx, key, d.facets, d.text); err != nil {
			return fmt.Errorf("couldn't remove the text entry of %s/%d: %w", org, d.seq, classify(err))
		}
	}
	return nil
}

// DropPartitions is store.PartitionDropper's: SQLite keeps the events in one
// table, without time partitions, so there is never one to drop;
// PruneRecords deletes them.
func (s *Store) DropPartitions(ctx context.Context, cutoff time.Time) (store.PartitionDrop, error) {
	return store.PartitionDrop{}, nil
}
