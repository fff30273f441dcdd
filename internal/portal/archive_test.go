package portal

import (
	"context"
	"strings"
	"testing"
)

// TestEventsPageSaysWhereArchivedEventsLive: with an archive, the events
// page carries its note; without one (or before anything is archived),
// none.
func TestEventsPageSaysWhereArchivedEventsLive(t *testing.T) {
	const note = "Events before number 7 of this log are kept in the verifiable archive (s3://bucket/prod)."
	cases := []struct {
		name     string
		archived func(context.Context, string) string
		want     bool
	}{
		{"no archive", nil, false},
		{"nothing archived yet", func(context.Context, string) string { return "" }, false},
		{"archived", func(_ context.Context, org string) string {
			if org != "org_01JTARCHIVE0000000000000001" {
				return ""
			}
			return note
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.p.cfg.Archived = c.archived
			e.org("org_01JTARCHIVE0000000000000001", "Acme")
			cl := e.client()
			cl.open("org_01JTARCHIVE0000000000000001")
			res := cl.get("/portal/events")
			if res.status != 200 {
				t.Fatalf("events page: %d", res.status)
			}
			if got := strings.Contains(res.body, "kept in the verifiable archive (s3://bucket/prod)"); got != c.want {
				t.Errorf("note shown %v, want %v", got, c.want)
			}
		})
	}
}
