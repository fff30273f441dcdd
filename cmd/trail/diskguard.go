package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/diskguard"
	"github.com/trailaudit/trail/internal/ledger"
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

// admittedSubmitter refuses submissions that hold an event for an
// organization whose log the integrator refuses to extend, or that arrive
// before the integrator has checked the stored logs: an acknowledged event
// must be one the next checkpoint can cover.
type admittedSubmitter struct {
	next  api.Submitter
	admit func(org string) error
}

func (a admittedSubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	var last string
	for _, e := range s.Events {
		if e.OrganizationID == last {
			continue
		}
		last = e.OrganizationID
		if err := a.admit(e.OrganizationID); err != nil {
			if errors.Is(err, ledger.ErrChecking) {
				return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
			}
			return store.AppendResult{}, err
		}
	}
	return a.next.Submit(ctx, s)
}
