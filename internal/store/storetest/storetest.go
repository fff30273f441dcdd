// Package storetest is the conformance suite of store.Backend: every backend
// runs Run against fresh databases and must pass the same cases, so that
// callers can rely on the contract written in package store rather than on
// one implementation's behaviour.
//
// A backend's test calls
//
//	storetest.Run(t, storetest.Driver[*mybackend.Store]{Open: … a fresh, empty, migrated store …, …})
//
// The suite is written against the contract only. Where the contract leaves a
// choice open (how search tokenises unusual text, what a limit above 100
// gives), the cases accept every reasonable answer and say so.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Driver is what a backend gives the suite: how to open it, and how to do
// behind its back what only its own tests know how to. S is the backend's
// store type.
type Driver[S store.Backend] struct {
	// Open returns a fresh, empty, migrated store and arranges for it to be
	// closed (t.Cleanup) when t ends; it is called once per group of cases
	// that need their own database.
	Open func(t *testing.T) S
	// OpenExports returns a fresh, empty, migrated export store (SQLite
	// keeps exports in a file of their own), closed when t ends.
	OpenExports func(t *testing.T) store.ExportStore
	// DeleteRecord deletes the stored record of (org, seq) behind the
	// store's back, as retention or tampering would.
	DeleteRecord func(t *testing.T, s S, org string, seq int64)
	// InsertCheckpoint stores a checkpoint row behind the store's back, so
	// that a later Integrate to that size fails on it.
	InsertCheckpoint func(t *testing.T, s S, org string, size int64, note string)
	// EnsurePartitions, for a backend with time partitions, creates the
	// partitions of the months around now; nil when it has none (then
	// whole-partition drops are not checked).
	EnsurePartitions func(ctx context.Context, s S, now time.Time) error
	// Sweeper returns one sweep of the retention sweeper (package
	// retention, which is above this suite) over s, with the default
	// retention in days, the records per transaction and the clock given.
	Sweeper func(s S, defaultDays, batch int, now func() time.Time) Sweep
}

// Sweep runs one retention sweep and returns how many records it deleted
// and the partitions it dropped.
type Sweep func(ctx context.Context) (records int64, partitions []string, err error)

// Run runs the whole conformance suite over the backend d opens.
//
// The search cases run with everything indexed, part of it and none of it
// (store.SearchIndexer), and with indexer passes between the pages of a
// walk: every read includes every event acknowledged before it began,
// whatever the indexer has reached.
func Run[S store.Backend](t *testing.T, d Driver[S]) {
	open := func(t *testing.T) store.Backend { return d.Open(t) }
	t.Run("Organizations", func(t *testing.T) { testOrganizations(t, open) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, open) })
	t.Run("Append", func(t *testing.T) { testAppend(t, open) })
	runSearch(t, open)
	t.Run("FirstSeqSince", func(t *testing.T) { testFirstSeqSince(t, open) })
	t.Run("Deployment", func(t *testing.T) { runDeployment(t, open) })
	t.Run("Leases", func(t *testing.T) { runLeases(t, open) })
	t.Run("Ledger", func(t *testing.T) { runLedger(t, d) })
	t.Run("Retention", func(t *testing.T) { runRetention(t, d) })
	t.Run("Streams", func(t *testing.T) { runStreams(t, open) })
	t.Run("Portal", func(t *testing.T) { runPortal(t, open) })
	t.Run("Schemas", func(t *testing.T) { runSchemas(t, open) })
	t.Run("Exports", func(t *testing.T) { runExports(t, d.OpenExports) })
	t.Run("Privacy", func(t *testing.T) { runPrivacy(t, open) })
	t.Run("Lifecycle", func(t *testing.T) { runLifecycle(t, open) })
}

func runSearch(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Search", func(t *testing.T) { testSearch(t, open, indexedFully) })
	t.Run("SearchPartlyIndexed", func(t *testing.T) { testSearch(t, open, indexedPartly) })
	t.Run("SearchNotIndexed", func(t *testing.T) { testSearch(t, open, indexedNone) })
	t.Run("SearchIndexedBetweenPages", func(t *testing.T) { testSearchIndexedBetweenPages(t, open) })
	t.Run("SearchAllEvents", func(t *testing.T) { testSearchAll(t, open) })
}

// RunSearch runs only the search cases of Run, for a backend that checks
// another configuration of its search (it also runs Run).
func RunSearch[S store.Backend](t *testing.T, open func(t *testing.T) S) {
	runSearch(t, func(t *testing.T) store.Backend { return open(t) })
}

// t0 is a fixed instant of millisecond precision (what every backend keeps).
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func ctxOf(t *testing.T) context.Context { return t.Context() }

// orgID returns the id of the i-th test organization. Ids sort in i order,
// as time-ordered ULIDs sort in creation order.
func orgID(prefix string, i int) string { return fmt.Sprintf("org_01JT%s%014d", prefix, i) }

// mustCreateOrg creates an organization named after its id.
func mustCreateOrg(t *testing.T, s store.Backend, id string, created time.Time) store.Organization {
	t.Helper()
	o := store.Organization{ID: id, Name: "Org " + id, CreatedAt: created, UpdatedAt: created}
	if err := s.CreateOrganization(ctxOf(t), o); err != nil {
		t.Fatalf("CreateOrganization(%s): %v", id, err)
	}
	return o
}

// draft validates raw (an event object) as the ingest path does.
func draft(t testing.TB, raw []byte) *event.Draft {
	t.Helper()
	d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
	if err != nil {
		t.Fatalf("event.ParseEvent: %v\n%s", err, raw)
	}
	return d
}

// pending makes an event of org ready for Append, received at received.
//
// Events received at an even millisecond carry their draft, as the HTTP
// handlers' do; the others only their tail, so that a store that indexes
// from drafts is tested both ways.
func pending(org string, d *event.Draft, received time.Time) store.PendingEvent {
	pe := store.PendingEvent{OrganizationID: org, ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail}
	if received.UnixMilli()%2 == 0 {
		pe.Draft = d
	}
	return pe
}

// record is the canonical record an accepted event must be stored as.
func record(a event.Accepted, tail []byte) []byte { return event.AppendRecord(nil, a, tail) }

// indexAll brings search up to date when the store indexes after the fact.
// batch bounds each IndexPending call; small values exercise batch edges.
func indexAll(t *testing.T, ix store.SearchIndexer, batch int) int {
	t.Helper()
	total := 0
	for range 1_000_000 {
		n, err := ix.IndexPending(ctxOf(t), batch)
		if err != nil {
			t.Fatalf("IndexPending(%d): %v", batch, err)
		}
		if n < 0 || n > batch {
			t.Fatalf("IndexPending(%d) = %d, want 0…%d", batch, n, batch)
		}
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatalf("IndexPending never reported 0")
	return total
}

// wantErr fails unless err matches target (errors.Is).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want one matching %q", what, err, target)
	}
}

func sameTime(a, b time.Time) bool { return a.Equal(b) }

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
