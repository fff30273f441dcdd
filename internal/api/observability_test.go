package api

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

// rejected is trail_events_rejected_total{reason}.
func rejected(t *testing.T, e *env, reason string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trail_events_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// downStore fails API key lookups with ErrUnavailable while down is set, as
// a database outage does.
type downStore struct {
	store.Store
	down *atomic.Bool
}

func (d downStore) APIKeyByHash(ctx context.Context, hash [32]byte) (store.APIKey, error) {
	if d.down.Load() {
		return store.APIKey{}, fmt.Errorf("couldn't read the key: %w", store.ErrUnavailable)
	}
	return d.Store.APIKeyByHash(ctx, hash)
}

// TestLookupOutage: while the database cannot answer key lookups, ingest
// answers 503, each refused request counts in trail_events_rejected_total
// (reason unavailable), and the 503s are logged once, not once per
// request.
func TestLookupOutage(t *testing.T) {
	var down atomic.Bool
	e := newEnv(t, func(_ *Config, e *env) { e.store = downStore{e.st, &down} })
	org := e.org("Acme")
	down.Store(true)
	for _, tc := range []struct {
		path, body string
	}{
		{"/audit_logs/events", e.eventBody(org, "user.signed_in")},
		{"/v1/events/batch", batchBody(`{"organization_id":"` + org + `","event":` + string(innerEvent(e.eventBody(org, "a.b"))) + `}`)},
	} {
		for range 3 {
			// A key never looked up before: the cache cannot answer.
			secret, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
			res := e.do("POST", tc.path, secret, tc.body)
			expectError(t, res, 503, "service_unavailable")
		}
	}
	if got := rejected(t, e, rejectUnavailable); got != 6 {
		t.Errorf("trail_events_rejected_total{reason=unavailable} = %v after 6 refused requests, want 6", got)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "answering 503"); n != 1 {
		t.Errorf("%d log lines of 503s for 6 requests, want 1 (the others summarised):\n%s", n, logs)
	}
	if strings.Contains(logs, `"status":503`) {
		t.Errorf("a 503 was logged as a request line:\n%s", logs)
	}
	// Other routes' lookup failures are 503s too, but not ingest refusals.
	secret, _ := e.key("reader", []string{access.ScopeAdmin}, "")
	expectError(t, e.do("GET", "/organizations/"+org, secret, ""), 503, "service_unavailable")
	if got := rejected(t, e, rejectUnavailable); got != 6 {
		t.Errorf("trail_events_rejected_total{reason=unavailable} = %v after a refused read, want still 6", got)
	}
	down.Store(false)
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")), 201, `{"success":true}`)
}

// TestAccessLogSwitch: with AccessLog off, answered requests log nothing;
// failures still do.
func TestAccessLogSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *env) { c.AccessLog = on })
			org := e.org("Acme")
			e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in"), "X-Request-ID", "req-7")
			if got := strings.Contains(e.logs.String(), `"request_id":"req-7"`); got != on {
				t.Errorf("AccessLog %v: request logged = %v\n%s", on, got, e.logs.String())
			}
		})
	}
}
