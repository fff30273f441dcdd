package portal

import (
	"context"
	"strings"
	"testing"
)

// TestEventsPageSaysWhereArchivedEventsLive: with an archive, the events
// page carries its note, in the page's language; without one (or before
// anything is archived), none.
func TestEventsPageSaysWhereArchivedEventsLive(t *testing.T) {
	const org = "org_01JTARCHIVE0000000000000001"
	archived := func(_ context.Context, o string) (ArchivedEvents, bool) {
		if o != org {
			return ArchivedEvents{}, false
		}
		return ArchivedEvents{Before: 7, Where: "s3://bucket/prod"}, true
	}
	cases := []struct {
		name     string
		archived func(context.Context, string) (ArchivedEvents, bool)
		lang     string
		want     string // "" for no note
	}{
		{"no archive", nil, "en", ""},
		{"nothing archived yet", func(context.Context, string) (ArchivedEvents, bool) { return ArchivedEvents{}, false }, "en", ""},
		{"archived", archived, "en", "Events before number 7 of this log are past its retention period and are kept in the verifiable archive (s3://bucket/prod)"},
		{"archived, in German", archived, "de", "Ereignisse vor Nummer 7 dieses Protokolls"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.p.cfg.Archived = c.archived
			e.org(org, "Acme")
			cl := e.client()
			cl.open(org)
			cl.do("GET", "/portal/events?lang="+c.lang, nil) // sets the language, then redirects
			res := cl.get("/portal/events")
			if res.status != 200 {
				t.Fatalf("events page: %d", res.status)
			}
			shown := strings.Contains(res.body, "s3://bucket/prod")
			switch {
			case c.want == "" && shown:
				t.Errorf("a note is shown without archived events")
			case c.want != "" && !strings.Contains(res.body, c.want):
				t.Errorf("the note %q is missing from the events page", c.want)
			}
		})
	}
}
