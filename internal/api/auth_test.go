package api

import (
	"context"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

const unauthorized = `{"message":"Could not authorize the request: send Authorization: Bearer sk_… with an active API key.","code":"unauthorized"}`

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")
	revoked, revokedID := e.key("old", []string{access.ScopeAdmin}, "")
	if err := e.st.RevokeAPIKey(context.Background(), revokedID, time.Now()); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := access.Generate()
	tests := []struct {
		name, header string
	}{
		{"missing", ""},
		{"not bearer", "Basic " + e.admin},
		{"bearer without token", "Bearer "},
		{"malformed secret", "Bearer sk_short"},
		{"unknown key", "Bearer " + unknown},
		{"revoked key", "Bearer " + revoked},
	}
	for _, tt := range tests {
		for _, path := range []string{"/v1/events?organization_id=org_x", "/organizations", "/v1/api_keys"} {
			res := e.do("GET", path, "", "", "Authorization", tt.header)
			expect(t, res, 401, unauthorized)
		}
		res := e.do("POST", "/audit_logs/events", "", "{}", "Authorization", tt.header)
		expect(t, res, 401, unauthorized)
	}
	// "bearer" is case-insensitive.
	if res := e.do("GET", "/organizations", "", "", "Authorization", "bearer "+e.admin); res.Code != 200 {
		t.Errorf("lower-case bearer: %d %s", res.Code, res.Body)
	}
	// A key without the scope.
	expect(t, e.do("POST", "/audit_logs/events", reader, "{}"), 403,
		`{"message":"This API key lacks the events:write scope.","code":"forbidden"}`)
	expect(t, e.do("GET", "/v1/api_keys", reader, ""), 403,
		`{"message":"This API key lacks the admin scope.","code":"forbidden"}`)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	expect(t, e.do("GET", "/v1/events?organization_id=org_x", writer, ""), 403,
		`{"message":"This API key lacks the events:read scope.","code":"forbidden"}`)
}

func TestRevokedKeyStopsAtOnce(t *testing.T) {
	e := newEnv(t)
	secret, id := e.key("soon revoked", []string{access.ScopeAdmin}, "")
	// Use it, so it is in the key cache.
	if res := e.do("GET", "/organizations", secret, ""); res.Code != 200 {
		t.Fatalf("before revocation: %d %s", res.Code, res.Body)
	}
	if res := e.do("DELETE", "/v1/api_keys/"+id, e.admin, ""); res.Code != 200 {
		t.Fatalf("revoke: %d %s", res.Code, res.Body)
	}
	expect(t, e.do("GET", "/organizations", secret, ""), 401, unauthorized)
}

func TestKeyCache(t *testing.T) {
	c := newKeyCache(time.Second, 4)
	now := time.Now()
	var h [32]byte
	if _, _, ok := c.get(h, now); ok {
		t.Fatal("empty cache hit")
	}
	c.put(h, store.APIKey{ID: "key_1"}, true, now)
	if k, found, ok := c.get(h, now.Add(500*time.Millisecond)); !ok || !found || k.ID != "key_1" {
		t.Fatalf("get = %v %v %v", k, found, ok)
	}
	if _, _, ok := c.get(h, now.Add(2*time.Second)); ok {
		t.Fatal("expired entry served")
	}
	c.forget("key_1")
	if _, _, ok := c.get(h, now); ok {
		t.Fatal("forgotten entry served")
	}
	for i := range 100 {
		c.put([32]byte{byte(i)}, store.APIKey{}, false, now)
		if len(c.m) > 4 {
			t.Fatalf("cache holds %d entries, bound is 4", len(c.m))
		}
	}
}
