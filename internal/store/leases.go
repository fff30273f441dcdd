package store

import (
	"context"
	"time"
)

// Lease is one lease of background work that one replica at a time runs
// (package lease: the integrator, log streams, retention), as the database
// has it.
type Lease struct {
	Name       string
	Holder     string // the replica that took it last (host:pid)
	Token      int64  // grows with every change of holder
	AcquiredAt time.Time
	ExpiresAt  time.Time
	// Held reports whether the lease had not expired, on the database's
	// clock, when it was read: Holder runs the work.
	Held bool
}

// LeaseStore reads the leases, for operators (the console's system page).
type LeaseStore interface {
	// Leases returns every lease ever taken, by name. A backend whose
	// single process runs all the work without leases (SQLite) returns
	// none.
	Leases(ctx context.Context) ([]Lease, error)
}
