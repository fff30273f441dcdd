package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/store"
)

// withLifecycle serves organization update and deletion; the deletion
// worker runs in the test (deleter.Pass).
func withLifecycle(deleter **orgdelete.Service) envOption {
	return func(c *Config, e *env) {
		*deleter = orgdelete.New(orgdelete.Config{Store: e.st})
		c.Lifecycle = LifecycleConfig{Store: e.st, Archive: e.st, Deleter: *deleter}
	}
}

// withIntegrator serves the verifiable log, with an integrator signing
// checkpoints over the store.
func withIntegrator() envOption {
	return func(c *Config, e *env) {
		t := e.t
		signer, err := ledger.LoadOrCreateSigner(t.TempDir(), "test.example")
		if err != nil {
			t.Fatal(err)
		}
		in, err := ledger.NewIntegrator(e.st, signer, "test.example/trail", ledger.Options{DataDir: t.TempDir(), Interval: 5 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.Stop)
		c.Log = LogConfig{Storage: e.st, VerifierKey: signer.VerifierKey(), Keys: plainKeys(t, signer.VerifierKey())}
	}
}

func createOrg(t *testing.T, e *env, body string) string {
	t.Helper()
	var org struct{ ID string }
	decode(t, e.do("POST", "/organizations", e.admin, body), &org)
	return org.ID
}

func TestUpdateOrganization(t *testing.T) {
	var deleter *orgdelete.Service
	e := newEnv(t, withLifecycle(&deleter))
	id := createOrg(t, e, `{"name":"Acme","external_id":"acme-1"}`)
	createOrg(t, e, `{"name":"Other","external_id":"taken"}`)
	restricted, _ := e.key("tenant admin", []string{access.ScopeAdmin}, id)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")
	cases := []struct {
		name, method, key, body string
		status                  int
		code                    string
		wantName                string
		wantExt                 *string // nil: null
	}{
		{"rename (WorkOS PUT)", "PUT", e.admin, `{"name":"Acme Corp"}`, 200, "", "Acme Corp", ptr("acme-1")},
		{"new external id, SDK fields empty", "PUT", e.admin, `{"external_id":"acme-2","metadata":{},"domain_data":[],"stripe_customer_id":null}`, 200, "", "Acme Corp", ptr("acme-2")},
		{"PATCH removes external id", "PATCH", e.admin, `{"external_id":null}`, 200, "", "Acme Corp", nil},
		{"restricted admin key of the organization", "PATCH", restricted, `{"name":"Acme 3"}`, 200, "", "Acme 3", nil},
		{"taken external id", "PUT", e.admin, `{"external_id":"taken"}`, 409, "conflict", "", nil},
		{"empty name", "PUT", e.admin, `{"name":""}`, 422, "", "", nil},
		{"control character", "PUT", e.admin, `{"name":"a\u0007b"}`, 422, "", "", nil},
		{"external id not a string", "PUT", e.admin, `{"external_id":5}`, 422, "", "", nil},
		{"metadata", "PUT", e.admin, `{"metadata":{"k":"v"}}`, 422, "", "", nil},
		{"unknown field", "PUT", e.admin, `{"nmae":"x"}`, 422, "", "", nil},
		{"not JSON", "PUT", e.admin, `{`, 400, "", "", nil},
		{"no admin scope", "PUT", reader, `{"name":"x"}`, 403, "", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := e.do(c.method, "/organizations/"+id, c.key, c.body)
			if c.status != 200 {
				if res.Code != c.status {
					t.Fatalf("%s = %d %s, want %d", c.name, res.Code, res.Body, c.status)
				}
				return
			}
			var got organizationJSON
			decode(t, res, &got)
			if got.Name != c.wantName || (got.ExternalID == nil) != (c.wantExt == nil) || got.ExternalID != nil && *got.ExternalID != *c.wantExt {
				t.Errorf("answer %s", res.Body)
			}
			var again organizationJSON
			decode(t, e.do("GET", "/organizations/"+id, e.admin, ""), &again)
			if again.Name != got.Name {
				t.Errorf("GET after update: name %q, want %q", again.Name, got.Name)
			}
		})
	}
	for _, path := range []string{"/organizations/org_01EHZNVPK3SFK441A1RGBFSHRT", "/organizations/" + store.SystemOrganizationID} {
		expectError(t, e.do("PUT", path, e.admin, `{"name":"x"}`), http.StatusNotFound, "entity_not_found")
	}
}

func ptr(s string) *string { return &s }

func TestDeleteOrganization(t *testing.T) {
	var deleter *orgdelete.Service
	e := newEnv(t, withLifecycle(&deleter), withStreams(), withIntegrator())
	id := createOrg(t, e, `{"name":"Leaving","external_id":"leaving"}`)
	restricted, restrictedID := e.key("tenant admin", []string{access.ScopeAdmin}, id)
	res := e.do("POST", "/v1/events/batch", e.admin, batchBody(e.eventBody(id, "user.signed_in")))
	if res.Code != http.StatusOK && res.Code != http.StatusCreated {
		t.Fatalf("ingest: %d %s", res.Code, res.Body)
	}
	var stream struct{ ID string }
	decode(t, e.do("POST", "/v1/organizations/"+id+"/log_streams", e.admin,
		`{"type":"webhook","name":"SIEM","config":{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef0123456789abcdef"}}`), &stream)

	steps := []struct {
		name, path, key, body string
		status                int
		contains              string
	}{
		{"restricted key", "/organizations/" + id, restricted, "", 403, "unrestricted"},
		{"system organization", "/organizations/" + store.SystemOrganizationID, e.admin, "", 409, "org_system"},
		{"bad force", "/organizations/" + id + "?force=yes", e.admin, "", 422, "force"},
		{"final bundle without an archive", "/organizations/" + id, e.admin, `{"final_bundle":true,"force":true}`, 422, "final_bundle"},
		{"a stream runs", "/organizations/" + id, e.admin, "", 409, stream.ID},
		{"forced", "/organizations/" + id + "?force=true", e.admin, `{"reason":"contract ended"}`, 202, `"forced":true`},
		{"again: gone", "/organizations/" + id, e.admin, "", 404, ""},
	}
	for _, s := range steps {
		res := e.do("DELETE", s.path, s.key, s.body)
		if res.Code != s.status || !strings.Contains(res.Body.String(), s.contains) {
			t.Fatalf("%s: %d %s, want %d containing %q", s.name, res.Code, res.Body, s.status, s.contains)
		}
	}
	// Gone for the API, but its deletion and its log answer.
	expectError(t, e.do("GET", "/organizations/"+id, e.admin, ""), http.StatusNotFound, "entity_not_found")
	expectError(t, e.do("GET", "/organizations/external_id/leaving", e.admin, ""), http.StatusNotFound, "entity_not_found")
	// The restricted key is revoked once the worker has run.
	deadline := time.Now().Add(time.Minute)
	for {
		if err := deleter.Pass(t.Context()); err != nil {
			t.Fatal(err)
		}
		var d deletionJSON
		decode(t, e.do("GET", "/v1/organizations/"+id+"/deletion", e.admin, ""), &d)
		if d.State == "completed" {
			if !d.Forced || d.Reason != "contract ended" || d.CompletedAt == nil {
				t.Errorf("deletion %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletion not completed after a minute: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if k, err := e.st.APIKey(t.Context(), restrictedID); err != nil || k.RevokedAt.IsZero() {
		t.Errorf("the deleted organization's key: %+v, %v; want it revoked", k, err)
	}
	if _, err := e.st.Stream(t.Context(), stream.ID); err == nil {
		t.Errorf("the deleted organization's stream is still stored")
	}
	// Its last checkpoint stays, covering every record it had.
	if res := e.do("GET", "/v1/organizations/"+id+"/log/checkpoint", e.admin, ""); res.Code != http.StatusOK {
		t.Errorf("checkpoint of a deleted organization: %d %s", res.Code, res.Body)
	}
	if res := e.do("GET", "/v1/organizations/"+id+"/log/records?from=0&to=1", e.admin, ""); res.Code != http.StatusOK || strings.Contains(res.Body.String(), "user.signed_in") {
		t.Errorf("records of a deleted organization: %d %s; want none left", res.Code, res.Body)
	}
	expectError(t, e.do("GET", "/v1/organizations/org_01EHZNVPK3SFK441A1RGBFSHRT/deletion", e.admin, ""), http.StatusNotFound, "entity_not_found")
}
