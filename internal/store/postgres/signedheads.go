package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/ledger"
)

var _ ledger.HeadStorage = (*Store)(nil)

// SignedHeads returns the newest checkpoint signed for each origin
// (ledger.HeadStorage).
func (s *Store) SignedHeads(ctx context.Context) ([]ledger.SignedHead, error) {
	rows, err := s.pool.Query(ctx, `SELECT origin, size, root_hash FROM signed_heads ORDER BY origin`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the signed checkpoints: %w", classify(err))
	}
	defer rows.Close()
	var out []ledger.SignedHead
	for rows.Next() {
		var h ledger.SignedHead
		var root []byte
		if err := rows.Scan(&h.Origin, &h.Size, &root); err != nil {
			return nil, fmt.Errorf("couldn't read the signed checkpoints: %w", classify(err))
		}
		if len(root) != len(h.Hash) {
			return nil, fmt.Errorf("the signed checkpoint of %s has a root hash of %d bytes", h.Origin, len(root))
		}
		copy(h.Hash[:], root)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the signed checkpoints: %w", classify(err))
	}
	return out, nil
}

// RecordSignedHeads records heads in one transaction and one round trip,
// never lowering an origin's size (ledger.HeadStorage).
func (s *Store) RecordSignedHeads(ctx context.Context, heads []ledger.SignedHead) error {
	if len(heads) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, h := range heads {
		b.Queue(`INSERT INTO signed_heads (origin, size, root_hash) VALUES ($1, $2, $3)
			ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root_hash = excluded.root_hash
			WHERE excluded.size > signed_heads.size`, h.Origin, h.Size, h.Hash[:])
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("couldn't record %d signed checkpoints: %w", len(heads), classify(err))
	}
	return nil
}
