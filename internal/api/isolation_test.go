package api

import (
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/access"
)

// TestOrganizationIsolation: a key restricted to Acme gets, for anything of
// Globex, the same 404 as for something that does not exist, on every route.
func TestOrganizationIsolation(t *testing.T) {
	e := newEnv(t)
	acme, globex := e.org("Acme"), e.org("Globex")
	acmeKey, _ := e.key("acme all", []string{access.ScopeAdmin}, acme)
	_, globexKeyID := e.key("globex writer", []string{access.ScopeEventsWrite}, globex)
	if res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(globex, "secret.thing")); res.Code != 201 {
		t.Fatal(res.Body)
	}
	l := e.search(e.admin, "/v1/events?organization_id="+globex+"&action=secret.thing", 1)
	globexEvent := l.records(t)[0].ID
	orgNotFound := `{"message":"Organization '` + globex + `' not found.","code":"entity_not_found"}`
	tests := []struct {
		method, path, body, want string
	}{
		{"POST", "/audit_logs/events", e.eventBody(globex, "a.b"), orgNotFound},
		{"POST", "/v1/events/batch", batchBody(`{"organization_id":"` + globex + `","event":` + string(innerEvent(e.eventBody(globex, "a.b"))) + `}`), orgNotFound},
		{"GET", "/v1/events?organization_id=" + globex, "", orgNotFound},
		{"GET", "/v1/events/" + globexEvent, "", `{"message":"Event '` + globexEvent + `' not found.","code":"entity_not_found"}`},
		{"GET", "/organizations/" + globex, "", orgNotFound},
		{"POST", "/v1/api_keys", `{"name":"x","scopes":["admin"],"organization_id":"` + globex + `"}`, orgNotFound},
		{"GET", "/v1/api_keys?organization_id=" + globex, "", orgNotFound},
		{"GET", "/v1/api_keys/" + globexKeyID, "", `{"message":"API key '` + globexKeyID + `' not found.","code":"entity_not_found"}`},
		{"DELETE", "/v1/api_keys/" + globexKeyID, "", `{"message":"API key '` + globexKeyID + `' not found.","code":"entity_not_found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			expect(t, e.do(tt.method, tt.path, acmeKey, tt.body), 404, tt.want)
		})
	}
	// Listings show nothing of Globex.
	for _, path := range []string{"/organizations", "/v1/api_keys", "/v1/events"} {
		res := e.do("GET", path, acmeKey, "")
		if res.Code != 200 || strings.Contains(res.Body.String(), globex) {
			t.Errorf("GET %s: %d %s", path, res.Code, res.Body)
		}
	}
	// And the system log is not Acme's to read.
	expectError(t, e.do("GET", "/v1/events?organization_id=org_system", acmeKey, ""), 404, "entity_not_found")
}
