package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

// testNow is the clock of the indexer tests.
var testNow = testclock.Must()

// openIndexerTest opens a store at path with the given organizations.
func openIndexerTest(t *testing.T, path string, orgs ...string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range orgs {
		if err := s.CreateOrganization(context.Background(), store.Organization{ID: org, Name: org, CreatedAt: testNow, UpdatedAt: testNow}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// indexerEvent is an event of org with the given action and occurred_at,
// with its draft when withDraft.
func indexerEvent(t *testing.T, org, action string, at time.Time, withDraft bool) store.PendingEvent {
	t.Helper()
	raw := fmt.Sprintf(`{"action":%q,"occurred_at":%q,"actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"}}`,
		action, at.Format(time.RFC3339Nano))
	d, err := event.ParseEvent([]byte(raw), testNow, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	pe := store.PendingEvent{OrganizationID: org, ID: event.NewID(testNow), ReceivedAt: testNow, Tail: d.Tail}
	if withDraft {
		pe.Draft = d
	}
	return pe
}

// appendAndIndex appends sub and indexes everything pending, perPass
// events a pass.
func appendAndIndex(t *testing.T, s *Store, sub store.Submission, perPass int) {
	t.Helper()
	ctx := context.Background()
	if len(sub.Events) > 0 {
		if res, err := s.Append(ctx, []store.Submission{sub}, testNow); err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
	}
	for {
		n, err := s.IndexPending(ctx, perPass)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestSortKeysAcrossPasses indexes events that share occurred_at
// milliseconds across many small passes, with timestamps before and after
// everything indexed so far, in two organizations, and with the store
// reopened half way (a cold sort-key cache), once with the cache holding
// every millisecond and once holding two (it forgets the older half at
// every pass). Every sort key must be unique, and each organization's keys
// must order its events by (occurred_at, seq).
func TestSortKeysAcrossPasses(t *testing.T) {
	for _, limit := range []int{0, 2} {
		t.Run(fmt.Sprintf("cache=%d", limit), func(t *testing.T) { testSortKeysAcrossPasses(t, limit) })
	}
}

func testSortKeysAcrossPasses(t *testing.T, cacheLimit int) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	orgs := []string{"org_KeysA", "org_KeysB"}
	s := openIndexerTest(t, path, orgs...)
	defer func() { s.Close() }()
	s.indexCache.limit = cacheLimit
	// Milliseconds visited in the order late, early, same, later still,
	// early again…; each round is appended and indexed in passes of 3
	// events.
	base := testNow.Add(-time.Hour)
	rounds := []time.Duration{10, 0, 10, 20, 0, 5, 30, 25, 40, 20}
	occurred := map[string][]time.Time{} // org → occurred_at by seq
	for round, offset := range rounds {
		if round == 3 {
			s.Close()
			s = openIndexerTest(t, path)
			s.indexCache.limit = cacheLimit
		}
		var sub store.Submission
		for i := range 7 {
			org := orgs[i%2]
			at := base.Add((offset + time.Duration(i%3)) * time.Millisecond)
			sub.Events = append(sub.Events, indexerEvent(t, org, "doc.viewed", at, round%2 == 0))
			occurred[org] = append(occurred[org], at)
		}
		appendAndIndex(t, s, sub, 3)
	}

	seen := map[int64]bool{}
	for _, org := range orgs {
		rows, err := s.searchRead.QueryContext(ctx, `SELECT sort_key, seq FROM event_search WHERE organization_id = ? ORDER BY sort_key`, org)
		if err != nil {
			t.Fatal(err)
		}
		var prev struct {
			at  time.Time
			seq int64
		}
		n := 0
		for rows.Next() {
			var key, seq int64
			if err := rows.Scan(&key, &seq); err != nil {
				t.Fatal(err)
			}
			if seen[key] {
				t.Errorf("sort key %d handed out twice", key)
			}
			seen[key] = true
			at := occurred[org][seq]
			if key>>slotBits != at.UnixMilli() {
				t.Errorf("%s seq %d: key %d is in millisecond %d, occurred_at is %d", org, seq, key, key>>slotBits, at.UnixMilli())
			}
			if n > 0 && (at.Before(prev.at) || at.Equal(prev.at) && seq < prev.seq) {
				t.Errorf("%s: seq %d (%s) sorts after seq %d (%s)", org, seq, at.Format(time.StampMilli), prev.seq, prev.at.Format(time.StampMilli))
			}
			prev.at, prev.seq = at, seq
			n++
		}
		rows.Close()
		if n != len(occurred[org]) {
			t.Errorf("%s: %d search rows, want %d", org, n, len(occurred[org]))
		}
	}
}

// TestIndexerCachesFollowARebuild empties the search file behind a running
// store's back, as a newer version of Trail opening the same data directory
// would rebuild it. The indexer must notice, start its caches over, and
// make every event searchable again, the organization's action list
// included.
func TestIndexerCachesFollowARebuild(t *testing.T) {
	ctx := context.Background()
	const org = "org_Rebuilt"
	s := openIndexerTest(t, filepath.Join(t.TempDir(), "trail.db"), org)
	defer s.Close()
	var sub store.Submission
	for i := range 5 {
		sub.Events = append(sub.Events, indexerEvent(t, org, fmt.Sprintf("doc.viewed_%d", i%2), testNow.Add(time.Duration(i)*time.Millisecond), true))
	}
	appendAndIndex(t, s, sub, 2)
	for _, q := range []string{
		`DELETE FROM event_search`,
		`INSERT INTO event_fts (event_fts) VALUES ('delete-all')`,
		`DELETE FROM organization_actions`,
		`UPDATE search_state SET indexed_pos = 0`,
	} {
		if _, err := s.searchWrite.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	appendAndIndex(t, s, store.Submission{}, 2)
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, ActionPrefixes: []string{"doc."}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 5 {
		t.Fatalf("found %d events after the rebuild, want 5", len(page.Events))
	}
}

// TestSortKeysSpill fills an occurred_at millisecond (its last slot taken,
// as after 2^21 events in it), so that the next event of that millisecond
// gets a key in the following millisecond's range; an event of the
// following millisecond must then get a key after it, whether it is
// indexed in the same pass or a later one.
func TestSortKeysSpill(t *testing.T) {
	for _, perPass := range []int{1, 10} {
		t.Run(fmt.Sprintf("pass=%d", perPass), func(t *testing.T) {
			ctx := context.Background()
			const org = "org_Spill"
			s := openIndexerTest(t, filepath.Join(t.TempDir(), "trail.db"), org)
			defer s.Close()
			at := testNow.Add(-time.Hour)
			msec := at.UnixMilli()
			if _, err := s.searchWrite.ExecContext(ctx, `INSERT INTO event_search (sort_key, organization_id, seq, action, exact) VALUES (?, 'org_Other', 0, 'x', '')`,
				(msec+1)<<slotBits-1); err != nil {
				t.Fatal(err)
			}
			var sub store.Submission
			for _, offset := range []time.Duration{0, time.Millisecond, 0, time.Millisecond} {
				sub.Events = append(sub.Events, indexerEvent(t, org, "doc.viewed", at.Add(offset), true))
			}
			appendAndIndex(t, s, sub, perPass)
			rows, err := s.searchRead.QueryContext(ctx, `SELECT sort_key, seq FROM event_search WHERE organization_id = ? ORDER BY seq`, org)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			keys := map[int64]int64{}
			for rows.Next() {
				var key, seq int64
				if err := rows.Scan(&key, &seq); err != nil {
					t.Fatal(err)
				}
				if key <= (msec+1)<<slotBits-1 {
					t.Errorf("seq %d got key %d, not after the full millisecond", seq, key)
				}
				keys[seq] = key
			}
			if len(keys) != 4 {
				t.Fatalf("%d events indexed, want 4", len(keys))
			}
			// Within the organization the order is (occurred_at, seq) as far
			// as the spill allows: seq 0 before seq 2, seq 1 before seq 3.
			if keys[0] >= keys[2] || keys[1] >= keys[3] {
				t.Errorf("keys out of seq order: %v", keys)
			}
		})
	}
}
