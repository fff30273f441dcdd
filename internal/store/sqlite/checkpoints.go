package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/trailaudit/trail/internal/store"
)

var _ store.CheckpointCompactor = (*Store)(nil)

// CheckpointsAfter lists org's checkpoints above size after, by size.
func (s *Store) CheckpointsAfter(ctx context.Context, org string, after int64, limit int) ([]store.StoredCheckpoint, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT size, created_at FROM ledger_checkpoints WHERE organization_id = ? AND size > ? ORDER BY size LIMIT ?`, org, after, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the checkpoints of %s: %w", org, classify(err))
	}
	defer rows.Close()
	var out []store.StoredCheckpoint
	for rows.Next() {
		var c store.StoredCheckpoint
		var created int64
		if err := rows.Scan(&c.Size, &created); err != nil {
			return nil, fmt.Errorf("couldn't read a checkpoint of %s: %w", org, classify(err))
		}
		c.CreatedAt = fromMS(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list the checkpoints of %s: %w", org, classify(err))
	}
	return out, nil
}

// DeleteCheckpoints deletes org's checkpoints of sizes, never the newest.
func (s *Store) DeleteCheckpoints(ctx context.Context, org string, sizes []int64) (int, error) {
	if len(sizes) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(sizes)+2)
	args = append(args, org, org)
	for _, n := range sizes {
		args = append(args, n)
	}
	res, err := s.write.ExecContext(ctx, `DELETE FROM ledger_checkpoints WHERE organization_id = ?
		AND size < (SELECT max(size) FROM ledger_checkpoints WHERE organization_id = ?)
		AND size IN (?`+strings.Repeat(", ?", len(sizes)-1)+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("couldn't delete %d checkpoints of %s: %w", len(sizes), org, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("couldn't delete %d checkpoints of %s: %w", len(sizes), org, classify(err))
	}
	return int(n), nil
}
