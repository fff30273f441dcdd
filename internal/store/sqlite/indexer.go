package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/trailaudit/trail/internal/event"
)

// Bits of a sort key below the millisecond: up to 2^21 events of all
// organizations can share one occurred_at millisecond before keys spill into
// the next one.
const slotBits = 21

type pendingRow struct {
	pos    int64
	org    string
	seq    int64
	record []byte
}

// IndexPending makes up to max more events searchable, in one transaction:
// the search row with its sort key, the target rows, the organization's
// action list and the full-text entry, then the new high-water mark. If the
// process dies before the commit, the next run redoes the same events.
func (s *Store) IndexPending(ctx context.Context, limit int) (int, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin index transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var from int64
	if err := tx.QueryRowContext(ctx, `SELECT indexed_pos FROM search_state WHERE id = 1`).Scan(&from); err != nil {
		return 0, fmt.Errorf("couldn't read search high-water mark: %w", classify(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT pos, organization_id, seq, record FROM events WHERE pos > ? ORDER BY pos LIMIT ?`, from, limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't read events to index: %w", classify(err))
	}
	var pending []pendingRow
	for rows.Next() {
		var p pendingRow
		if err := rows.Scan(&p.pos, &p.org, &p.seq, &p.record); err != nil {
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

	ins := struct{ search, target, action, fts, maxKey *sql.Stmt }{}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&ins.search, `INSERT INTO event_search (sort_key, organization_id, seq, action, actor_id, actor_name) VALUES (?, ?, ?, ?, ?, ?)`},
		{&ins.target, `INSERT OR IGNORE INTO event_targets (organization_id, target_type, target_id, sort_key) VALUES (?, ?, ?, ?)`},
		{&ins.action, `INSERT OR IGNORE INTO organization_actions (organization_id, action) VALUES (?, ?)`},
		{&ins.fts, `INSERT INTO event_fts (rowid, org, body) VALUES (?, ?, ?)`},
		{&ins.maxKey, `SELECT max(sort_key) FROM event_search WHERE sort_key >= ? AND sort_key < ?`},
	} {
		st, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			return 0, fmt.Errorf("couldn't prepare index statement: %w", err)
		}
		defer st.Close()
		*p.st = st
	}

	nextKey := map[int64]int64{} // occurred_at millisecond → next free sort key in it
	allocate := func(msec int64) (int64, error) {
		k, ok := nextKey[msec]
		if !ok {
			lo := msec << slotBits
			var cur sql.NullInt64
			if err := ins.maxKey.QueryRowContext(ctx, lo, lo+1<<slotBits).Scan(&cur); err != nil {
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
		if _, err := ins.search.ExecContext(ctx, key, p.org, p.seq, rec.Action, rec.Actor.ID, rec.Actor.Name); err != nil {
			return 0, fmt.Errorf("couldn't index event %s/%d: %w", p.org, p.seq, classify(err))
		}
		for _, t := range rec.Targets {
			if _, err := ins.target.ExecContext(ctx, p.org, t.Type, t.ID, key); err != nil {
				return 0, fmt.Errorf("couldn't index targets of %s/%d: %w", p.org, p.seq, classify(err))
			}
		}
		if ak := [2]string{p.org, rec.Action}; !seenAction[ak] {
			seenAction[ak] = true
			if _, err := ins.action.ExecContext(ctx, p.org, rec.Action); err != nil {
				return 0, fmt.Errorf("couldn't record action of %s/%d: %w", p.org, p.seq, classify(err))
			}
		}
		text = rec.AppendSearchText(text[:0])
		if _, err := ins.fts.ExecContext(ctx, key, strings.ToLower(p.org), text); err != nil {
			return 0, fmt.Errorf("couldn't index text of %s/%d: %w", p.org, p.seq, classify(err))
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
	var lag sql.NullInt64
	err := s.read.QueryRowContext(ctx,
		`SELECT (SELECT count(*) FROM events WHERE pos > (SELECT indexed_pos FROM search_state WHERE id = 1))`).Scan(&lag)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("couldn't measure index lag: %w", classify(err))
	}
	return lag.Int64, nil
}
