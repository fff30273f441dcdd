package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/trailaudit/trail/internal/event"
)

// Bits of a sort key below the millisecond: up to 2^21 events of all
// organizations can share one occurred_at millisecond before keys spill into
// the next one.
const slotBits = 21

type pendingRow struct {
	pos      int64
	org      string
	seq      int64
	record   []byte
	mismatch bool // events.schema_mismatch
}

// IndexPending makes up to max more events searchable, in one transaction:
// the search row with its sort key, the target rows, the organization's
// action list and the full-text entry, then the new high-water mark. If the
// process dies before the commit, the next run redoes the same events.
func (s *Store) IndexPending(ctx context.Context, limit int) (int, error) {
	tx, err := s.searchWrite.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin index transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var from int64
	if err := tx.QueryRowContext(ctx, `SELECT indexed_pos FROM search_state WHERE id = 1`).Scan(&from); err != nil {
		return 0, fmt.Errorf("couldn't read search high-water mark: %w", classify(err))
	}
	// The events come from the main file's read pool: a snapshot that
	// holds every event committed so far, in pos order.
	rows, err := s.read.QueryContext(ctx, `SELECT pos, organization_id, seq, record, schema_mismatch FROM events WHERE pos > ? ORDER BY pos LIMIT ?`, from, limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't read events to index: %w", classify(err))
	}
	var pending []pendingRow
	for rows.Next() {
		var p pendingRow
		if err := rows.Scan(&p.pos, &p.org, &p.seq, &p.record, &p.mismatch); err != nil {
			rows.Close()
			return 0, fmt.Errorf("couldn't read event to index: %w", err)
		}
		pending = append(pending, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("couldn't read events to index: %w", classify(err))
	}
	if len(pending) == 0 {
		return 0, nil
	}

	maxKey, err := tx.PrepareContext(ctx, `SELECT max(sort_key) FROM event_search WHERE sort_key >= ? AND sort_key < ?`)
	if err != nil {
		return 0, fmt.Errorf("couldn't prepare index statement: %w", err)
	}
	defer maxKey.Close()

	nextKey := map[int64]int64{} // occurred_at millisecond → next free sort key in it
	allocate := func(msec int64) (int64, error) {
		k, ok := nextKey[msec]
		if !ok {
			lo := msec << slotBits
			var cur sql.NullInt64
			if err := maxKey.QueryRowContext(ctx, lo, lo+1<<slotBits).Scan(&cur); err != nil {
				return 0, fmt.Errorf("couldn't allocate sort key: %w", classify(err))
			}
			k = lo
			if cur.Valid {
				k = cur.Int64 + 1
			}
		}
		if k >= (msec+1)<<slotBits {
			// The millisecond is full: take the first key after every key
			// in use from it on, so the order stays total (if approximate).
			var cur sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT max(sort_key) FROM event_search WHERE sort_key >= ?`, msec<<slotBits).Scan(&cur); err != nil {
				return 0, fmt.Errorf("couldn't allocate sort key: %w", classify(err))
			}
			k = max(k, cur.Int64+1)
			s.logger.Warn("more events share one occurred_at millisecond than sort keys hold; ordering within it is approximate", "millisecond", msec)
		}
		nextKey[msec] = k + 1
		return k, nil
	}

	// Rows are gathered first and written in key order with multi-row
	// INSERTs: B-tree and FTS5 inserts in ascending key order append to
	// the right edge instead of splitting pages all over, and one statement
	// per hundred rows costs far less than one per row.
	type ftsRow struct {
		key  int64
		org  string
		text string
	}
	search := make([]any, 0, len(pending)*7)
	var targets, actions []any
	fts := make([]ftsRow, 0, len(pending))
	seenAction := map[[2]string]bool{}
	var text []byte
	for _, p := range pending {
		rec, err := event.ParseRecord(p.record)
		if err != nil {
			// Stored records were produced by event.AppendRecord; one that
			// does not parse means the database was altered outside Trail.
			return 0, fmt.Errorf("couldn't parse stored record %s/%d for indexing: %w", p.org, p.seq, err)
		}
		key, err := allocate(rec.OccurredAt.UnixMilli())
		if err != nil {
			return 0, err
		}
		search = append(search, key, p.org, p.seq, rec.Action, rec.Actor.ID, rec.Actor.Name, p.mismatch)
		for _, t := range rec.Targets {
			targets = append(targets, p.org, t.Type, t.ID, key)
		}
		if ak := [2]string{p.org, rec.Action}; !seenAction[ak] {
			seenAction[ak] = true
			actions = append(actions, p.org, rec.Action)
		}
		text = rec.AppendSearchText(text[:0])
		fts = append(fts, ftsRow{key, strings.ToLower(p.org), string(text)})
	}
	slices.SortFunc(fts, func(a, b ftsRow) int { return cmp.Compare(a.key, b.key) })
	ftsArgs := make([]any, 0, len(fts)*3)
	for _, r := range fts {
		ftsArgs = append(ftsArgs, r.key, r.org, r.text)
	}
	for _, ins := range []struct {
		what, head string
		cols       int
		args       []any
	}{
		{"events", `INSERT INTO event_search (sort_key, organization_id, seq, action, actor_id, actor_name, schema_mismatch) VALUES `, 7, search},
		{"targets", `INSERT OR IGNORE INTO event_targets (organization_id, target_type, target_id, sort_key) VALUES `, 4, targets},
		{"actions", `INSERT OR IGNORE INTO organization_actions (organization_id, action) VALUES `, 2, actions},
		{"text", `INSERT INTO event_fts (rowid, org, body) VALUES `, 3, ftsArgs},
	} {
		if err := insertRows(ctx, tx, ins.head, ins.cols, ins.args); err != nil {
			return 0, fmt.Errorf("couldn't index %s of %d events: %w", ins.what, len(pending), err)
		}
	}
	last := pending[len(pending)-1].pos
	if _, err := tx.ExecContext(ctx, `UPDATE search_state SET indexed_pos = ? WHERE id = 1`, last); err != nil {
		return 0, fmt.Errorf("couldn't advance search high-water mark: %w", classify(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("couldn't commit index of %d events: %w", len(pending), classify(err))
	}
	return len(pending), nil
}

// IndexLag reports how many accepted events are not searchable yet.
func (s *Store) IndexLag(ctx context.Context) (int64, error) {
	var indexed int64
	if err := s.searchRead.QueryRowContext(ctx, `SELECT indexed_pos FROM search_state WHERE id = 1`).Scan(&indexed); err != nil {
		return 0, fmt.Errorf("couldn't read search high-water mark: %w", classify(err))
	}
	var lag int64
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE pos > ?`, indexed).Scan(&lag); err != nil {
		return 0, fmt.Errorf("couldn't measure index lag: %w", classify(err))
	}
	return lag, nil
}

// rowsPerInsert is how many rows one multi-row INSERT carries; with at most
// 7 columns it stays far below SQLite's limit of 32,766 parameters.
const rowsPerInsert = 200

// insertRows runs head followed by "(?,…),(?,…)…" over args, cols values per
// row, rowsPerInsert rows per statement. Statements are cached per shape by
// the driver's prepared-statement reuse within the transaction.
func insertRows(ctx context.Context, tx *sql.Tx, head string, cols int, args []any) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(args) > 0 {
		n := min(len(args)/cols, rowsPerInsert)
		chunk := args[:n*cols]
		args = args[n*cols:]
		if n == rowsPerInsert {
			if full == nil {
				var err error
				full, err = tx.PrepareContext(ctx, head+strings.TrimSuffix(strings.Repeat(row+",", n), ","))
				if err != nil {
					return classify(err)
				}
			}
			if _, err := full.ExecContext(ctx, chunk...); err != nil {
				return classify(err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, head+strings.TrimSuffix(strings.Repeat(row+",", n), ","), chunk...); err != nil {
			return classify(err)
		}
	}
	return nil
}
