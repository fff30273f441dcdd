package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

var _ store.CheckpointCompactor = (*Store)(nil)

// CheckpointsAfter lists org's checkpoints above size after, by size.
func (s *Store) CheckpointsAfter(ctx context.Context, org string, after int64, limit int) ([]store.StoredCheckpoint, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT size, created_at FROM ledger_checkpoints WHERE organization_id = $1 AND size > $2 ORDER BY size LIMIT $3`, org, after, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the checkpoints of %s: %w", org, classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.StoredCheckpoint, error) {
		var c store.StoredCheckpoint
		err := r.Scan(&c.Size, &c.CreatedAt)
		c.CreatedAt = c.CreatedAt.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't list the checkpoints of %s: %w", org, classify(err))
	}
	return out, nil
}

// DeleteCheckpoints deletes org's checkpoints of sizes, never the newest.
func (s *Store) DeleteCheckpoints(ctx context.Context, org string, sizes []int64) (int, error) {
	if len(sizes) == 0 {
		return 0, nil
	}
	var n int
	err := retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM ledger_checkpoints WHERE organization_id = $1
			AND size < (SELECT max(size) FROM ledger_checkpoints WHERE organization_id = $1)
			AND size = ANY($2::bigint[])`, org, sizes)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("couldn't delete %d checkpoints of %s: %w", len(sizes), org, classify(err))
	}
	return n, nil
}
