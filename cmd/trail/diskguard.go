package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/diskguard"
	"github.com/trailaudit/trail/internal/store"
)

// diskGuardedSubmitter refuses submissions while the disk guard says the
// disk is short, and tells the guard at once when a commit failed for lack
// of space.
type diskGuardedSubmitter struct {
	next  api.Submitter
	guard *diskguard.Guard
}

// guardedSubmitter wraps next with guard; with no guard it is next.
func guardedSubmitter(next api.Submitter, guard *diskguard.Guard) api.Submitter {
	if guard == nil {
		return next
	}
	return diskGuardedSubmitter{next: next, guard: guard}
}

func (d diskGuardedSubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	if err := d.guard.Check(); err != nil {
		// ErrUnavailable: the API answers 503 with Retry-After; nothing
		// was stored.
		return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	res, err := d.next.Submit(ctx, s)
	if err != nil && diskFull(err) {
		d.guard.Trip()
	}
	return res, err
}

// diskFull reports whether err says the disk is full: the store's
// ErrDiskFull (SQLite's SQLITE_FULL), or ENOSPC from a file write.
func diskFull(err error) bool {
	return errors.Is(err, store.ErrDiskFull) || errors.Is(err, syscall.ENOSPC)
}

// registerDiskGuard exports the guard's state (trail_disk_guard_short,
// trail_disk_guard_free_bytes) with reg.
func registerDiskGuard(reg prometheus.Registerer, guard *diskguard.Guard) {
	reg.MustRegister(guard.Collectors()...)
}
