package selfaudit

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// capture is a Submitter that keeps what it is given.
type capture struct{ subs []store.Submission }

func (c *capture) Submit(_ context.Context, s store.Submission) (store.AppendResult, error) {
	c.subs = append(c.subs, s)
	return store.AppendResult{}, nil
}

func TestRecordPortal(t *testing.T) {
	now := time.Now().UTC()
	for _, tt := range []struct {
		name, admin, adminID string
		want                 event.Entity
	}{
		{"named admin", "alice@example.com", "", event.Entity{ID: "alice@example.com", Type: "portal_admin", Name: "alice@example.com"}},
		{"unnamed admin", "", "", event.Entity{ID: "portal admin", Type: "portal_admin", Name: "portal admin"}},
		{"named admin with an id", "alice@example.com", "user_42", event.Entity{ID: "user_42", Type: "portal_admin", Name: "alice@example.com"}},
		{"an id alone", "", "user_42", event.Entity{ID: "user_42", Type: "portal_admin", Name: "user_42"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub := &capture{}
			rec := New(sub, Config{Now: func() time.Time { return now }})
			req := httptest.NewRequest("GET", "/portal/x", nil)
			req.RemoteAddr = "203.0.113.7:4000"
			req.Header.Set("User-Agent", "Browser/1.0")
			var noted string
			req = req.WithContext(WithRequest(req.Context(), "req_1", func(org string) { noted = org }))
			rec.RecordPortal(req, PortalAction{OrganizationID: "org_a", Action: "trail.portal_session.started",
				Admin: tt.admin, AdminID: tt.adminID, TargetType: "organization", TargetID: "org_a",
				Metadata: map[string]string{"intent": "audit_logs"}})
			if len(sub.subs) != 1 || len(sub.subs[0].Events) != 1 {
				t.Fatalf("submissions %+v, want one event", sub.subs)
			}
			e := sub.subs[0].Events[0]
			d := e.Draft
			if e.OrganizationID != "org_a" || noted != "org_a" || d.Actor != tt.want || d.Location != "203.0.113.7" ||
				d.UserAgent != "Browser/1.0" || d.Metadata["request_id"] != "req_1" || d.Metadata["intent"] != "audit_logs" {
				t.Errorf("recorded %s in %s (noted %q): actor %+v, location %q, user agent %q, metadata %v; want actor %+v",
					d.Action, e.OrganizationID, noted, d.Actor, d.Location, d.UserAgent, d.Metadata, tt.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	for _, tt := range []struct {
		name   string
		trust  bool
		remote string
		xff    []string
		want   string
	}{
		{"connection", false, "198.51.100.1:1234", nil, "198.51.100.1"},
		{"forwarded header ignored untrusted", false, "198.51.100.1:1234", []string{"203.0.113.9"}, "198.51.100.1"},
		{"last entry of the last header", true, "198.51.100.1:1234", []string{"1.1.1.1", "203.0.113.8, 203.0.113.9"}, "203.0.113.9"},
		{"no header behind a proxy", true, "198.51.100.1:1234", nil, "198.51.100.1"},
		{"no address", false, "", nil, "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := New(&capture{}, Config{TrustProxyHeaders: tt.trust}).ClientIP(req); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecordRefusesAnInvalidEvent(t *testing.T) {
	sub := &capture{}
	err := New(sub, Config{}).Record(t.Context(), Action{Action: "", Actor: Entity{Type: "cli_user", ID: "u"},
		Target: Entity{Type: "organization", ID: "org_a"}, Orgs: []string{"org_a"}, Location: "cli@host"})
	if err == nil || len(sub.subs) != 0 {
		t.Errorf("Record without an action = %v with %d submissions; want an error and none", err, len(sub.subs))
	}
}
