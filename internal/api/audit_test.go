package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

func TestSelfAudit(t *testing.T) {
	e := newEnv(t)
	admin := e.admin
	// The bootstrap admin does the actions; find its id.
	k, err := e.st.APIKeyByHash(t.Context(), access.HashSecret(admin))
	if err != nil {
		t.Fatal(err)
	}
	res := e.do("POST", "/organizations", admin, `{"name":"Acme"}`, "User-Agent", "trail-test/1", "X-Request-ID", "req-org")
	var o struct{ ID string }
	decode(t, res, &o)
	org := o.ID

	orgKey := e.do("POST", "/v1/api_keys", admin, `{"name":"acme backend","scopes":["events:write"],"organization_id":"`+org+`"}`)
	globalKey := e.do("POST", "/v1/api_keys", admin, `{"name":"ops reader","scopes":["events:read"]}`)
	var ok, gk keyBody
	decode(t, orgKey, &ok)
	decode(t, globalKey, &gk)
	e.do("DELETE", "/v1/api_keys/"+ok.ID, admin, "")

	sys := "/v1/events?organization_id=" + store.SystemOrganizationID + "&action=trail.*&order=asc"
	orgLog := "/v1/events?organization_id=" + org + "&action=trail.*&order=asc"
	sysEvents := e.search(admin, sys, 2).records(t)
	orgEvents := e.search(admin, orgLog, 3).records(t)

	type want struct{ action, targetType, targetID, targetName string }
	check := func(log string, got []record, wants []want) {
		t.Helper()
		for i, w := range wants {
			r := got[i]
			if r.Action != w.action || len(r.Targets) != 1 || r.Targets[0].Type != w.targetType || r.Targets[0].ID != w.targetID || r.Targets[0].Name != w.targetName {
				t.Errorf("%s log, event %d: %+v, want %+v", log, i, r, w)
			}
			if r.Actor.Type != "api_key" || r.Actor.ID != k.ID || r.Actor.Name != "bootstrap admin" {
				t.Errorf("%s log, event %d: actor %+v, want the bootstrap admin key", log, i, r.Actor)
			}
			if r.Context.Location != "192.0.2.1" {
				t.Errorf("%s log, event %d: location %q, want the client address", log, i, r.Context.Location)
			}
		}
	}
	check("system", sysEvents, []want{
		{"trail.organization.created", "organization", org, "Acme"},
		{"trail.api_key.created", "api_key", gk.ID, "ops reader"},
	})
	check("organization", orgEvents, []want{
		{"trail.organization.created", "organization", org, "Acme"},
		{"trail.api_key.created", "api_key", ok.ID, "acme backend"},
		{"trail.api_key.revoked", "api_key", ok.ID, "acme backend"},
	})
	if ua := sysEvents[0].Context.UserAgent; ua != "trail-test/1" {
		t.Errorf("user agent %q", ua)
	}
	if id := orgEvents[0].Metadata["request_id"]; id != "req-org" {
		t.Errorf("metadata request_id %v", id)
	}
}

func TestSelfAuditClientAddress(t *testing.T) {
	for _, trust := range []bool{false, true} {
		e := newEnv(t, func(c *Config, _ *env) { c.TrustProxyHeaders = trust })
		res := e.do("POST", "/organizations", e.admin, `{"name":"Acme"}`, "X-Forwarded-For", "198.51.100.1, 203.0.113.9")
		var o struct{ ID string }
		decode(t, res, &o)
		r := e.search(e.admin, "/v1/events?organization_id="+o.ID, 1).records(t)[0]
		want := "192.0.2.1"
		if trust {
			want = "203.0.113.9"
		}
		if r.Context.Location != want {
			t.Errorf("TrustProxyHeaders=%v: location %q, want %q", trust, r.Context.Location, want)
		}
	}
}

// auditFailingSubmitter fails the submissions of Trail's own events.
type auditFailingSubmitter struct{ Submitter }

func (s auditFailingSubmitter) Submit(ctx context.Context, sub store.Submission) (store.AppendResult, error) {
	return store.AppendResult{}, errors.New("log unavailable")
}

func TestSelfAuditFailureStillAnswers(t *testing.T) {
	e := newEnv(t, func(_ *Config, e *env) { e.subOverride = auditFailingSubmitter{e.com} })
	res := e.do("POST", "/organizations", e.admin, `{"name":"Acme"}`)
	if res.Code != 201 {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	logs := e.logs.String()
	for _, want := range []string{`"level":"ERROR"`, "couldn't record an audit event", "trail.organization.created", "log unavailable", `"organizations":"org_`} {
		if !strings.Contains(logs, want) {
			t.Errorf("error log lacks %s: %s", want, logs)
		}
	}
}
