package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/privacy"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// privacyFor builds the privacy part of a Config over st.
func privacyFor(t *testing.T, st interface {
	store.Store
	store.PrivacyStore
}) PrivacyConfig {
	t.Helper()
	keys, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.LoadOrCreateSigner(t.TempDir(), "test.example")
	if err != nil {
		t.Fatal(err)
	}
	pols := privacy.NewPolicies(st, nil)
	if err := pols.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return PrivacyConfig{Store: st, Policies: pols, Hasher: keys.FieldHasher(),
		Eraser: privacy.NewEraser(st, selfaudit.AppendTo(st), keys, signer, privacy.EraserOptions{}, nil)}
}

func withPrivacy(t *testing.T) envOption {
	return func(c *Config, e *env) { c.Privacy = privacyFor(t, e.st) }
}

func TestPrivacyPolicyAppliesAtIngest(t *testing.T) {
	e := newEnv(t, withPrivacy(t))
	org := e.org("Acme")
	base := "/v1/organizations/" + org + "/privacy_policy"
	for _, tt := range []struct {
		name, body, field string
	}{
		{"unknown mode", `{"fields":{"actor.id":"encrypt"}}`, "fields.actor.id"},
		{"unknown path", `{"fields":{"action":"hmac"}}`, "fields.action"},
		{"bad action", `{"actions":{"":{"actor.id":"hmac"}}}`, "actions."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := expectError(t, e.do("PUT", base, e.admin, tt.body), http.StatusUnprocessableEntity, "invalid_request_parameters")
			if len(body.Errors) == 0 || body.Errors[0].Field != tt.field {
				t.Errorf("errors %+v, want field %q", body.Errors, tt.field)
			}
		})
	}
	reader, _ := e.key("reader", []string{"events:read"}, org)
	expectError(t, e.do("PUT", base, reader, `{"fields":{}}`), http.StatusForbidden, "forbidden")

	res := e.do("PUT", base, e.admin, `{"fields":{"actor.id":"hmac","actor.name":"redact","metadata.email":"hmac"},"actions":{"user.*":{"context.location":"redact"}}}`)
	if res.Code != http.StatusOK {
		t.Fatalf("PUT policy: %d %s", res.Code, res.Body)
	}
	res = e.do("GET", base, e.admin, "")
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `"actor.id":"hmac"`) {
		t.Fatalf("GET policy: %d %s", res.Code, res.Body)
	}

	body := e.eventBody(org, "user.signed_in", func(ev map[string]any) {
		ev["actor"] = map[string]any{"id": "alice@example.com", "type": "user", "name": "Alice Secret"}
		ev["metadata"] = map[string]any{"email": "alice@example.com", "plan": "pro"}
		ev["context"] = map[string]any{"location": "198.51.100.23"}
	})
	if res := e.do("POST", "/audit_logs/events", e.admin, body); res.Code != http.StatusCreated {
		t.Fatalf("POST event: %d %s", res.Code, res.Body)
	}
	// The hash endpoint gives what was stored, and search finds it.
	res = e.do("POST", "/v1/organizations/"+org+"/hmac", reader, `{"value":"alice@example.com"}`)
	var h struct {
		HMAC   string
		Hashes []keyring.KeyedHash
	}
	decode(t, res, &h)
	if !strings.HasPrefix(h.HMAC, keyring.FieldHashPrefix) || len(h.Hashes) != 1 {
		t.Fatalf("hmac answer %d %s", res.Code, res.Body)
	}
	list := e.search(reader, "/v1/events?organization_id="+org+"&actor_id="+url.QueryEscape(h.HMAC), 1)
	raw := string(list.Data[0])
	for _, secret := range []string{"alice@example.com", "Alice Secret", "198.51.100.23"} {
		if strings.Contains(raw, secret) {
			t.Errorf("stored record holds %q: %s", secret, raw)
		}
	}
	for _, want := range []string{`"privacy":{"hashed":["actor.id","metadata.email"],"redacted":["actor.name","context.location"]}`, `"plan":"pro"`, h.HMAC} {
		if !strings.Contains(raw, want) {
			t.Errorf("stored record lacks %s: %s", want, raw)
		}
	}
	// The change is recorded in the organization's log.
	e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.privacy_policy.updated", 1)

	// Without the policy, values are stored as sent again.
	if res := e.do("DELETE", base, e.admin, ""); res.Code != http.StatusNoContent {
		t.Fatalf("DELETE policy: %d %s", res.Code, res.Body)
	}
	if res := e.do("POST", "/audit_logs/events", e.admin, body); res.Code != http.StatusCreated {
		t.Fatalf("POST event: %d %s", res.Code, res.Body)
	}
	e.search(reader, "/v1/events?organization_id="+org+"&actor_id="+url.QueryEscape("alice@example.com"), 1)
}

func TestErasureRequestIsIdempotent(t *testing.T) {
	e := newEnv(t, withPrivacy(t))
	org := e.org("Acme")
	path := "/v1/organizations/" + org + "/erasures"
	for _, tt := range []struct{ name, body, field string }{
		{"no subject", `{"reason":"r"}`, "actor_id"},
		{"two subjects", `{"actor_id":"a","target_id":"b","target_type":"t","reason":"r"}`, "actor_id"},
		{"target without type", `{"target_id":"b","reason":"r"}`, "target_type"},
		{"no reason", `{"actor_id":"a"}`, "reason"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := expectError(t, e.do("POST", path, e.admin, tt.body), http.StatusUnprocessableEntity, "invalid_request_parameters")
			if len(body.Errors) == 0 || body.Errors[0].Field != tt.field {
				t.Errorf("errors %+v, want field %q", body.Errors, tt.field)
			}
		})
	}
	first := e.do("POST", path, e.admin, `{"actor_id":"alice@example.com","reason":"GDPR Art. 17 request 42","request_id":"req-42"}`)
	var job erasureJSON
	decode(t, first, &job)
	if first.Code != http.StatusAccepted || job.State != store.ErasurePlanning || strings.Contains(first.Body.String(), "alice@example.com") {
		t.Fatalf("first request: %d %s", first.Code, first.Body)
	}
	again := e.do("POST", path, e.admin, `{"actor_id":"alice@example.com","reason":"again","request_id":"req-42"}`)
	var job2 erasureJSON
	decode(t, again, &job2)
	if again.Code != http.StatusOK || job2.ID != job.ID {
		t.Errorf("same request id: %d %s, want 200 with %s", again.Code, again.Body, job.ID)
	}
	expectError(t, e.do("POST", path, e.admin, `{"actor_id":"bob@example.com","reason":"r","request_id":"req-42"}`), http.StatusConflict, "request_id_reused")
	if res := e.do("GET", path+"/"+job.ID, e.admin, ""); res.Code != http.StatusOK {
		t.Errorf("GET erasure: %d %s", res.Code, res.Body)
	}
	expectError(t, e.do("GET", path+"/ers_none", e.admin, ""), http.StatusNotFound, "entity_not_found")
	e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.erasure.requested", 1)
}

// TestNoPolicyAllocatesNothing: with no organization holding a policy,
// applying policies to a submission costs no allocation.
func TestNoPolicyAllocatesNothing(t *testing.T) {
	e := newEnv(t, withPrivacy(t))
	org := e.org("Acme")
	d := newTestDraft(t, e.eventBody(org, "user.signed_in"))
	sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: org, Tail: d.Tail}}}
	drafts := []*event.Draft{d}
	if n := testing.AllocsPerRun(100, func() { e.srv.applyPolicies(&sub, drafts) }); n != 0 {
		t.Errorf("applying no policy allocates %v times per submission", n)
	}
}

func newTestDraft(t *testing.T, body string) *event.Draft {
	t.Helper()
	_, d, err := event.ParseCreate([]byte(body), time.Now(), event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
