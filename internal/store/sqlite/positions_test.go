package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/store"
)

// TestPositionsNeverGoBack deletes the store's newest rows (after the
// indexer has passed them), then appends and reopens: the new rows' positions
// are above every position handed out before, however the rows were deleted,
// the search index is kept on reopening (its mark is not beyond the highest
// position), and the new events are indexed and found.
func TestPositionsNeverGoBack(t *testing.T) {
	cases := []struct {
		name   string
		delete string // deletes rows with pos >= ?1
	}{
		{"newest rows", `DELETE FROM events WHERE pos >= ?1`},
		{"every row", `DELETE FROM events WHERE pos >= 0 OR ?1 = ?1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "trail.db")
			const org = "org_Floor"
			s := openIndexerTest(t, path, org)
			defer func() { s.Close() }()
			batch := func(action string, n int) store.Submission {
				var sub store.Submission
				for range n {
					sub.Events = append(sub.Events, indexerEvent(t, org, action, testNow, true))
				}
				return sub
			}
			appendAndIndex(t, s, batch("before.deletion", 6), 100)
			var highest int64
			if err := s.read.QueryRowContext(ctx, `SELECT max(pos) FROM events`).Scan(&highest); err != nil {
				t.Fatal(err)
			}
			if _, err := s.write.ExecContext(ctx, tc.delete, highest-2); err != nil {
				t.Fatal(err)
			}
			appendAndIndex(t, s, batch("after.deletion", 2), 100)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openIndexerTest(t, path)
			appendAndIndex(t, s, batch("after.reopening", 2), 100)
			rows, err := s.read.QueryContext(ctx, `SELECT pos FROM events WHERE pos > ?`, highest-3)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for rows.Next() {
				var p int64
				if err := rows.Scan(&p); err != nil {
					t.Fatal(err)
				}
				got = append(got, p)
			}
			rows.Close()
			want := []int64{highest + 1, highest + 2, highest + 3, highest + 4}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("positions after the deletion %v, want %v", got, want)
			}
			for _, action := range []string{"after.deletion", "after.reopening"} {
				page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Actions: []string{action}, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Events) != 2 {
					t.Errorf("search for %s found %d events, want 2", action, len(page.Events))
				}
			}
		})
	}
}
