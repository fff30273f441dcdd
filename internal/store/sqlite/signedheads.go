package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/trailaudit/trail/internal/ledger"
)

var _ ledger.HeadStorage = (*Store)(nil)

// SignedHeads returns the newest checkpoint signed for each origin
// (ledger.HeadStorage).
func (s *Store) SignedHeads(ctx context.Context) ([]ledger.SignedHead, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT origin, size, root_hash FROM signed_heads ORDER BY origin`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the signed checkpoints: %w", classify(err))
	}
	defer rows.Close()
	var out []ledger.SignedHead
	for rows.Next() {
		var h ledger.SignedHead
		var root []byte
		if err := rows.Scan(&h.Origin, &h.Size, &root); err != nil {
			return nil, fmt.Errorf("couldn't read the signed checkpoints: %w", err)
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

// RecordSignedHeads records heads in one transaction, never lowering an
// origin's size (ledger.HeadStorage). The commit is not synced (see
// Store.unsynced): the integrator records the same heads in its state file,
// synced, before it stores the checkpoints, and a later durable commit
// syncs this one with the rest of the WAL.
func (s *Store) RecordSignedHeads(ctx context.Context, heads []ledger.SignedHead) error {
	if len(heads) == 0 {
		return nil
	}
	return s.unsynced(ctx, "record of signed checkpoints", func(tx *sql.Tx) error {
		// Prepared once for the batch: a pass may record a thousand heads, and
		// parsing the statement again for each cost more than executing it.
		put, err := tx.PrepareContext(ctx, `INSERT INTO signed_heads (origin, size, root_hash) VALUES (?, ?, ?)
		ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root_hash = excluded.root_hash
		WHERE excluded.size > signed_heads.size`)
		if err != nil {
			return fmt.Errorf("couldn't prepare recording signed checkpoints: %w", classify(err))
		}
		defer put.Close()
		for _, h := range heads {
			if _, err := put.ExecContext(ctx, h.Origin, h.Size, h.Hash[:]); err != nil {
				return fmt.Errorf("couldn't record signed checkpoint %d of %s: %w", h.Size, h.Origin, classify(err))
			}
		}
		return nil
	})
}
