package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

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
		if refused := errors.Is(err, store.ErrUnavailable); refused != step.refused || err != nil && !refused {
			t.Fatalf("step %d: Append = %v, want refused=%v", i, err, step.refused)
		}
	}
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: "org_a", Limit: 100})
	if err != nil || len(page.Events) != 20 {
		t.Fatalf("SearchEvents = %d events, %v; want the 20 accepted", len(page.Events), err)
	}
}
