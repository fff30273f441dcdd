package sqlite

import (
	"context"

	"github.com/trailaudit/trail/internal/store"
)

// Leases implements store.LeaseStore: with SQLite one process runs all the
// background work, without leases.
func (s *Store) Leases(context.Context) ([]store.Lease, error) { return nil, nil }
