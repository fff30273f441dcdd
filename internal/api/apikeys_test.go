package api

import (
	"regexp"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/access"
)

type keyBody struct {
	Object         string   `json:"object"`
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Scopes         []string `json:"scopes"`
	OrganizationID *string  `json:"organization_id"`
	Prefix         string   `json:"prefix"`
	CreatedAt      string   `json:"created_at"`
	RevokedAt      *string  `json:"revoked_at"`
	Secret         string   `json:"secret"`
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t)
	acme := e.org("Acme")
	res := e.do("POST", "/v1/api_keys", e.admin, `{"name":"backend","scopes":["events:write","events:read","events:write"],"organization_id":"`+acme+`"}`)
	if res.Code != 201 {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	shape := regexp.MustCompile(`^\{"object":"api_key","id":"key_[0-9A-Z]{26}","name":"backend","scopes":\["events:write","events:read"\],"organization_id":"org_[0-9A-Z]{26}","prefix":"sk_[0-9A-Za-z]{7}","created_at":"[^"]+","revoked_at":null,"secret":"sk_[0-9A-Za-z]{40}"\}$`)
	if !shape.MatchString(res.Body.String()) {
		t.Fatalf("key body %s", res.Body)
	}
	var k keyBody
	decode(t, res, &k)
	if !strings.HasPrefix(k.Secret, k.Prefix) || *k.OrganizationID != acme {
		t.Fatalf("key %+v", k)
	}
	// The new secret works, within its scopes and organization.
	if r := e.do("POST", "/audit_logs/events", k.Secret, e.eventBody(acme, "user.signed_in")); r.Code != 201 {
		t.Fatalf("new key writes: %d %s", r.Code, r.Body)
	}
	// GET shows it without the secret.
	get := e.do("GET", "/v1/api_keys/"+k.ID, e.admin, "")
	if get.Code != 200 || strings.Contains(get.Body.String(), "secret") || strings.Contains(get.Body.String(), k.Secret) {
		t.Fatalf("GET key: %d %s", get.Code, get.Body)
	}
	// Unrestricted key: organization_id null.
	res = e.do("POST", "/v1/api_keys", e.admin, `{"name":"ops","scopes":["admin"]}`)
	if res.Code != 201 || !strings.Contains(res.Body.String(), `"organization_id":null`) {
		t.Fatalf("unrestricted: %d %s", res.Code, res.Body)
	}
	// List, newest first.
	list := e.do("GET", "/v1/api_keys?limit=2", e.admin, "")
	var l struct {
		Object string    `json:"object"`
		Data   []keyBody `json:"data"`
		Meta   struct {
			Before, After *string
		} `json:"list_metadata"`
	}
	decode(t, list, &l)
	if l.Object != "list" || len(l.Data) != 2 || l.Data[1].ID != k.ID || l.Meta.After == nil || strings.Contains(list.Body.String(), `"secret"`) {
		t.Fatalf("list %s", list.Body)
	}
	filtered := e.do("GET", "/v1/api_keys?organization_id="+acme, e.admin, "")
	decode(t, filtered, &l)
	if len(l.Data) != 1 || l.Data[0].ID != k.ID {
		t.Fatalf("filtered list %s", filtered.Body)
	}
	// Revoke: 200 with revoked_at; twice is the same answer; the key stops working.
	rev := e.do("DELETE", "/v1/api_keys/"+k.ID, e.admin, "")
	var rk keyBody
	decode(t, rev, &rk)
	if rev.Code != 200 || rk.RevokedAt == nil || rk.ID != k.ID {
		t.Fatalf("revoke: %d %s", rev.Code, rev.Body)
	}
	again := e.do("DELETE", "/v1/api_keys/"+k.ID, e.admin, "")
	if again.Code != 200 || again.Body.String() != rev.Body.String() {
		t.Fatalf("revoke again: %d %s", again.Code, again.Body)
	}
	expect(t, e.do("POST", "/audit_logs/events", k.Secret, e.eventBody(acme, "user.signed_in")), 401, unauthorized)
	expect(t, e.do("GET", "/v1/api_keys/key_nope", e.admin, ""), 404, `{"message":"API key 'key_nope' not found.","code":"entity_not_found"}`)
	expect(t, e.do("DELETE", "/v1/api_keys/key_nope", e.admin, ""), 404, `{"message":"API key 'key_nope' not found.","code":"entity_not_found"}`)
}

func TestCreateAPIKeyInvalid(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, body string
		status     int
		code       string
		fields     string
	}{
		{"no name", `{"scopes":["admin"]}`, 422, "invalid_request_parameters", "name"},
		{"no scopes", `{"name":"x"}`, 422, "invalid_request_parameters", "scopes"},
		{"unknown scope", `{"name":"x","scopes":["events:delete"]}`, 422, "invalid_request_parameters", "scopes"},
		{"both", `{"scopes":[]}`, 422, "invalid_request_parameters", "name,scopes"},
		{"unknown field", `{"name":"x","scopes":["admin"],"expires":1}`, 422, "invalid_request_parameters", "expires"},
		{"scopes not strings", `{"name":"x","scopes":[1]}`, 422, "invalid_request_parameters", "scopes"},
		{"malformed", `{"name"`, 400, "invalid_json", ""},
		{"unknown organization", `{"name":"x","scopes":["admin"],"organization_id":"org_nope"}`, 404, "entity_not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := expectError(t, e.do("POST", "/v1/api_keys", e.admin, tt.body), tt.status, tt.code)
			var fields []string
			for _, fe := range b.Errors {
				fields = append(fields, strings.TrimSuffix(fe.Field, "[0]"))
			}
			if got := strings.Join(fields, ","); got != tt.fields {
				t.Errorf("fields %q, want %q (%+v)", got, tt.fields, b)
			}
		})
	}
	n, _ := e.st.CountAPIKeys(t.Context())
	if n != 1 {
		t.Errorf("%d keys exist after failed creations, want 1", n)
	}
}

func TestRestrictedAdminKeys(t *testing.T) {
	e := newEnv(t)
	acme, globex := e.org("Acme"), e.org("Globex")
	acmeAdmin, _ := e.key("acme admin", []string{access.ScopeAdmin}, acme)
	_, globexKey := e.key("globex writer", []string{access.ScopeEventsWrite}, globex)
	_, globalKey := e.key("global writer", []string{access.ScopeEventsWrite}, "")

	// Without organization_id it creates a key of its own organization.
	res := e.do("POST", "/v1/api_keys", acmeAdmin, `{"name":"acme backend","scopes":["events:write"]}`)
	var k keyBody
	decode(t, res, &k)
	if res.Code != 201 || k.OrganizationID == nil || *k.OrganizationID != acme {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	expect(t, e.do("POST", "/v1/api_keys", acmeAdmin, `{"name":"x","scopes":["admin"],"organization_id":"`+globex+`"}`), 404,
		`{"message":"Organization '`+globex+`' not found.","code":"entity_not_found"}`)
	// It sees only its organization's keys.
	list := e.do("GET", "/v1/api_keys", acmeAdmin, "")
	if list.Code != 200 || strings.Contains(list.Body.String(), globexKey) || strings.Contains(list.Body.String(), globalKey) || !strings.Contains(list.Body.String(), k.ID) {
		t.Fatalf("list: %d %s", list.Code, list.Body)
	}
	for _, id := range []string{globexKey, globalKey} {
		for _, m := range []string{"GET", "DELETE"} {
			expect(t, e.do(m, "/v1/api_keys/"+id, acmeAdmin, ""), 404, `{"message":"API key '`+id+`' not found.","code":"entity_not_found"}`)
		}
	}
	expectError(t, e.do("GET", "/v1/api_keys?organization_id="+globex, acmeAdmin, ""), 404, "entity_not_found")
	// Nothing was revoked.
	g, _ := e.st.APIKey(t.Context(), globexKey)
	if !g.RevokedAt.IsZero() {
		t.Fatal("a restricted admin revoked another organization's key")
	}
	if r := e.do("DELETE", "/v1/api_keys/"+k.ID, acmeAdmin, ""); r.Code != 200 {
		t.Fatalf("revoke own key: %d %s", r.Code, r.Body)
	}
	// Unknown query parameters are refused on Trail's own lists.
	b := expectError(t, e.do("GET", "/v1/api_keys?colour=red", e.admin, ""), 422, "invalid_request_parameters")
	if b.Errors[0].Field != "colour" {
		t.Errorf("errors %+v", b.Errors)
	}
}
