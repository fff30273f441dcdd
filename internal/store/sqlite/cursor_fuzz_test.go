package sqlite

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// FuzzSearchCursor sends arbitrary before/after cursors to a real store's
// search: a cursor comes from the client, so anything must end in a page
// or ErrInvalidCursor (a 400), never in another error (a 500) or a panic.
func FuzzSearchCursor(f *testing.F) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(f.TempDir(), "trail.db"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	const org = "org_fuzz"
	now := time.Now().UTC()
	if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: "fuzz", CreatedAt: now, UpdatedAt: now}); err != nil {
		f.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var sub store.Submission
	for j := range 30 {
		d, err := event.ParseEvent(storetest.Event(rng, j), now, event.DefaultLimits())
		if err != nil {
			f.Fatal(err)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
	}
	if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil {
		f.Fatalf("Append: %v %v", err, res)
	}
	for {
		n, err := s.IndexPending(ctx, 1000)
		if err != nil {
			f.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 5})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(page.After, "")
	f.Add("", page.After)
	f.Add(encodeCursor(-1), "")
	f.Add(encodeCursor(1<<62), "")
	f.Add("azE6", "")
	f.Add("!!!", "")
	f.Fuzz(func(t *testing.T, after, before string) {
		if after != "" && before != "" {
			before = "" // the API refuses both at once before the store sees them
		}
		for _, order := range []string{store.OrderDesc, store.OrderAsc} {
			_, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 5, Order: order, After: after, Before: before})
			if err != nil && !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("after=%q before=%q order=%s: %v", after, before, order, err)
			}
			_, err = s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 5, Order: order, After: after, Before: before, ActorID: "user_1", Text: "x"})
			if err != nil && !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("filtered, after=%q before=%q order=%s: %v", after, before, order, err)
			}
		}
	})
}
