package postgres

import (
	"context"
	"fmt"

	"github.com/trailaudit/trail/internal/store"
)

// Leases implements store.LeaseStore: the rows package lease keeps
// (migration 00011), whether each is held judged by the database's clock,
// as package lease judges it.
func (s *Store) Leases(ctx context.Context) ([]store.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, holder, token, acquired_at, expires_at, expires_at > now() FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the leases: %w", classify(err))
	}
	defer rows.Close()
	var out []store.Lease
	for rows.Next() {
		var l store.Lease
		if err := rows.Scan(&l.Name, &l.Holder, &l.Token, &l.AcquiredAt, &l.ExpiresAt, &l.Held); err != nil {
			return nil, fmt.Errorf("couldn't read the leases: %w", classify(err))
		}
		l.AcquiredAt, l.ExpiresAt = l.AcquiredAt.UTC(), l.ExpiresAt.UTC()
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the leases: %w", classify(err))
	}
	return out, nil
}
