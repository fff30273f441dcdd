package sqlite

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// TestAppendPositions checks that the positions Append hands to its caches
// are the ones the rows got, whatever mix of statement sizes (insertSizes)
// a commit's events are inserted with.
func TestAppendPositions(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int // events of each submission of one Append
	}{
		{"one event", []int{1}},
		{"a statement of each size and single rows", []int{insertSizes[0] + insertSizes[1] + 3}},
		{"many submissions of one event", []int{1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"mixed", []int{7, insertSizes[0], 2, insertSizes[1] + 1}},
	}
	orgs := []string{"org_a", "org_b", "org_c"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Now()
			for _, org := range orgs {
				if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
					t.Fatal(err)
				}
			}
			// Two rounds, so the second starts after positions are taken.
			for round := range 2 {
				var subs []store.Submission
				n := 0
				for _, size := range tt.sizes {
					var sub store.Submission
					for range size {
						d, err := event.ParseEvent(storetest.Event(rng, n), now, event.DefaultLimits())
						if err != nil {
							t.Fatal(err)
						}
						sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: orgs[(n+round)%len(orgs)],
							ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail, Draft: d})
						n++
					}
					subs = append(subs, sub)
				}
				res, err := s.Append(ctx, subs, now)
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range res {
					if r.Err != nil || len(r.Events) != tt.sizes[i] {
						t.Fatalf("submission %d: %d events, err %v", i, len(r.Events), r.Err)
					}
				}
			}
			held := s.unindexed.run(0, 1<<20)
			rows, err := s.read.QueryContext(ctx, `SELECT pos, id, organization_id, seq FROM events ORDER BY pos`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for ; rows.Next(); i++ {
				var pos, seq int64
				var id, org string
				if err := rows.Scan(&pos, &id, &org, &seq); err != nil {
					t.Fatal(err)
				}
				if i >= len(held) {
					t.Fatalf("the cache holds %d events, the table more", len(held))
				}
				if h := held[i]; h.pos != pos || h.id != id || h.org != org || h.seq != seq {
					t.Errorf("row %d: table has pos %d %s (%s #%d), cache pos %d %s (%s #%d)", i, pos, id, org, seq, h.pos, h.id, h.org, h.seq)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if i != len(held) || i != 2*sum(tt.sizes) {
				t.Errorf("table %d rows, cache %d, appended %d", i, len(held), 2*sum(tt.sizes))
			}
		})
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
