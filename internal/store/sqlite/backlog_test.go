package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// TestBacklogBound: past the bound of events waiting for the indexer,
// Append refuses with ErrUnavailable and stores nothing; once the indexer
// has caught up it accepts again, and every accepted event is found.
func TestBacklogBound(t *testing.T) {
	ctx := context.Background()
	s := openIndexerTest(t, filepath.Join(t.TempDir(), "trail.db"), "org_a")
	defer s.Close()
	s.backlogLimit = 10
	sub := func(n int) []store.Submission {
		var evs []store.PendingEvent
		for range n {
			evs = append(evs, indexerEvent(t, "org_a", "a.b", testNow, true))
		}
		return []store.Submission{{Events: evs}}
	}
	for i, step := range []struct {
		events  int
		refused bool
		index   bool // IndexPending before the append
	}{
		{6, false, false},
		{4, false, false}, // the backlog reaches 10
		{1, true, false},
		{1, true, false},
		{3, false, true},
		{7, false, false}, // 10 again
		{1, true, false},
	} {
		if step.index {
			if _, err := s.IndexPending(ctx, 1000); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.Append(ctx, sub(step.events), testNow)
		if refused := errors.Is(err, store.ErrUnavailable) && errors.Is(err, store.ErrBacklog); refused != step.refused || err != nil && !refused {
			t.Fatalf("step %d: Append = %v, want refused=%v", i, err, step.refused)
		}
	}
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: "org_a", Limit: 100})
	if err != nil || len(page.Events) != 20 {
		t.Fatalf("SearchEvents = %d events, %v; want the 20 accepted", len(page.Events), err)
	}
}

// TestBacklogMemoryBound: past the memory held for the events waiting
// for the indexer (WithBacklogMemory), Append refuses as it does past the
// bound of events, and accepts again once the indexer has caught up.
func TestBacklogMemoryBound(t *testing.T) {
	ctx := context.Background()
	s := openIndexerTest(t, filepath.Join(t.TempDir(), "trail.db"), "org_a")
	defer s.Close()
	one := indexerEvent(t, "org_a", "a.b", testNow, true)
	// Room for three held events: the fourth Append is refused.
	held := pendingRow{record: event.AppendRecord(nil, event.Accepted{ID: one.ID, OrganizationID: "org_a", Seq: 1, ReceivedAt: one.ReceivedAt}, one.Tail), draft: one.Draft}
	held.hold(nil)
	s.opts.backlog = int64(3 * heldSize(&held))
	sub := func() []store.Submission {
		return []store.Submission{{Events: []store.PendingEvent{indexerEvent(t, "org_a", "a.b", testNow, true)}}}
	}
	for i, step := range []struct {
		refused bool
		index   bool // IndexPending before the append
	}{
		{false, false},
		{false, false},
		{false, false},
		{true, false},
		{false, true},
	} {
		if step.index {
			if _, err := s.IndexPending(ctx, 1000); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.Append(ctx, sub(), testNow)
		if refused := errors.Is(err, store.ErrUnavailable) && errors.Is(err, store.ErrBacklog); refused != step.refused || err != nil && !refused {
			t.Fatalf("step %d: Append = %v (%d bytes held, bound %d), want refused=%v", i, err, s.unindexed.heldBytes(), s.opts.backlog, step.refused)
		}
	}
}

// TestBacklogNotHeld: a backlog this process does not hold in memory (as
// while the search file is rebuilt, or after a restart behind) never stops
// ingest; reads whose tail it would take past the bound from the events
// table answer ErrUnavailable, never a partial page, until the indexer is
// within the bound.
func TestBacklogNotHeld(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	writer := openIndexerTest(t, path, "org_a")
	defer writer.Close()
	reader := openIndexerTest(t, path)
	defer reader.Close()
	writer.backlogLimit, reader.backlogLimit = 10, 10
	// The writer's own backlog is bounded: it refuses past 10.
	for i := range 12 {
		_, err := writer.Append(ctx, []store.Submission{{Events: []store.PendingEvent{indexerEvent(t, "org_a", "a.b", testNow, true)}}}, testNow)
		if refused := errors.Is(err, store.ErrUnavailable); refused != (i >= 10) || err != nil && !refused {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	// The reader holds none of it: ingest through it goes on past the
	// bound, and reads answer ErrUnavailable while its tail is too long.
	for i := range 5 {
		if _, err := reader.Append(ctx, []store.Submission{{Events: []store.PendingEvent{indexerEvent(t, "org_a", "a.b", testNow, true)}}}, testNow); err != nil {
			t.Fatalf("append %d through the reader: %v", i, err)
		}
	}
	search := func() (int, error) {
		page, err := reader.SearchEvents(ctx, store.EventQuery{OrganizationID: "org_a", Limit: 100})
		return len(page.Events), err
	}
	if n, err := search(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("SearchEvents with 15 events to read from the table, bound 10: %d events, %v; want ErrUnavailable", n, err)
	}
	if _, err := reader.IndexPending(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if n, err := search(); err != nil || n != 15 {
		t.Fatalf("SearchEvents with 8 events to read from the table: %d events, %v; want all 15", n, err)
	}
}
