package api

import (
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// TestHandOverDrafts: drafts go to the store with their events unless the
// request body, which their strings keep alive, is much larger than they
// are.
func TestHandOverDrafts(t *testing.T) {
	const ev = `{"action":"user.signed_in","occurred_at":"2026-11-25T18:43:09.709Z","actor":{"id":"user_1","type":"user"},"targets":[],"context":{"location":"203.0.113.7"}}`
	for _, tc := range []struct {
		name string
		body string
		keep bool
	}{
		{"compact", `{"organization_id":"org_1","event":` + ev + `}`, true},
		{"pretty printed", "{\n  \"organization_id\": \"org_1\",\n  \"event\": " + ev + "\n}\n", true},
		{"padded", `{"organization_id":"org_1","event":` + ev + strings.Repeat(" ", 64<<10) + `}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, d, err := event.ParseCreate([]byte(tc.body), time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), event.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sub := store.Submission{Events: []store.PendingEvent{{Tail: d.Tail}}}
			handOverDrafts(&sub, []*event.Draft{d}, len(tc.body))
			if got := sub.Events[0].Draft != nil; got != tc.keep {
				t.Fatalf("draft handed over: %v, want %v", got, tc.keep)
			}
		})
	}
}
