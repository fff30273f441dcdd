package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
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

// TestAppendAfterAFailedTransaction: Append runs its transaction on the
// writer's driver connection (writertx.go). A transaction that fails —
// here an event id already stored, which OR ROLLBACK ends inside SQLite
// before Append's own ROLLBACK, and an unknown organization beside known
// ones — stores nothing of its batch and leaves the writer usable: the
// next appends, of every size, are numbered on from where the log was,
// and other writers get the connection.
func TestAppendAfterAFailedTransaction(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	s := openWithOrgs(t, now, "org_a", "org_b")
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	pending := func(org, id string) store.PendingEvent {
		d, err := event.ParseEvent(storetest.Event(rng, n), now, event.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		n++
		if id == "" {
			id = event.NewID(now)
		}
		return store.PendingEvent{OrganizationID: org, ID: id, ReceivedAt: now, Tail: d.Tail, Draft: d}
	}
	first := pending("org_a", "")
	if _, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{first}}}, now); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		// A batch of several statements' worth whose last event repeats a
		// stored id: the whole transaction fails.
		var evs []store.PendingEvent
		for range insertSizes[0] + 2 {
			evs = append(evs, pending("org_b", ""))
		}
		evs = append(evs, pending("org_a", first.ID))
		if _, err := s.Append(ctx, []store.Submission{{Events: evs}}, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("round %d: appending an id already stored: %v, want ErrConflict", round, err)
		}
		// An unknown organization fails its submission alone.
		res, err := s.Append(ctx, []store.Submission{
			{Events: []store.PendingEvent{pending("org_b", "")}},
			{Events: []store.PendingEvent{pending("org_missing", "")}},
			{Events: []store.PendingEvent{pending("org_a", ""), pending("org_b", "")}},
		}, now)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res[0].Err != nil || !errors.Is(res[1].Err, store.ErrNotFound) || res[2].Err != nil {
			t.Fatalf("round %d: results %+v, want the unknown organization's alone to fail", round, res)
		}
		if got, want := res[2].Events[0].Seq, int64(1+round); got != want {
			t.Errorf("round %d: org_a's next event got seq %d, want %d (nothing of the failed batch taken)", round, got, want)
		}
		// Another writer gets the connection.
		if _, err := s.ExpireIdempotencyKeys(ctx, now.Add(-time.Hour)); err != nil {
			t.Fatalf("round %d: another write after a failed append: %v", round, err)
		}
	}
	var stored, nextA, nextB int64
	if err := s.write.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM events), (SELECT next_seq FROM organizations WHERE id = 'org_a'), (SELECT next_seq FROM organizations WHERE id = 'org_b')`).Scan(&stored, &nextA, &nextB); err != nil {
		t.Fatal(err)
	}
	if stored != 1+3*3 || nextA != 4 || nextB != 6 {
		t.Errorf("%d events stored, next seqs %d and %d; want 10, 4 and 6", stored, nextA, nextB)
	}
}

// TestAppendConnFinish: finish rolls back what a failed transaction did
// and commits a good one, and the connection begins again after either.
func TestAppendConnFinish(t *testing.T) {
	ctx := context.Background()
	s := openWithOrgs(t, time.Now(), "org_a")
	nextSeq := func() (n int64) {
		t.Helper()
		if err := s.read.QueryRowContext(ctx, `SELECT next_seq FROM organizations WHERE id = 'org_a'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	refused := errors.New("refused")
	for _, tc := range []struct {
		name   string
		cause  error
		wantIs error
		want   int64
	}{
		{"failed", refused, refused, 0},
		{"failed again", refused, refused, 0},
		{"committed", nil, nil, 5},
		{"failed after a commit", refused, refused, 5},
	} {
		conn, err := s.write.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Raw(func(dc any) error {
			if err := s.stmts.writer.prepareOn(ctx, dc.(driver.Conn)); err != nil {
				return err
			}
			tx := &appendConn{ctx: ctx, st: &s.stmts.writer}
			if _, err := tx.exec(tx.st.begin); err != nil {
				return err
			}
			seq := int64(99)
			if tc.cause == nil {
				seq = 5
			}
			if _, err := tx.exec(tx.st.setSeq, seq, "org_a"); err != nil {
				return err
			}
			return tx.finish(tc.cause)
		})
		conn.Close()
		if !errors.Is(err, tc.wantIs) || (tc.wantIs == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.wantIs)
		}
		if got := nextSeq(); got != tc.want {
			t.Errorf("%s: next_seq %d, want %d", tc.name, got, tc.want)
		}
	}
}

// openWithOrgs opens a fresh store holding the organizations orgs.
func openWithOrgs(t *testing.T, now time.Time, orgs ...string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, org := range orgs {
		if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
