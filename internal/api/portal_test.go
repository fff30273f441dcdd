package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/selfaudit"
)

// fakeLinks records the links the API asks for.
type fakeLinks struct {
	intents []string
	calls   []string
}

func (f *fakeLinks) Intents() []string { return f.intents }
func (f *fakeLinks) GenerateLink(_ context.Context, org, intent string, admins []string, user, returnURL string) (string, time.Time, error) {
	call := org + " " + intent + " " + strings.Join(admins, ",") + " " + returnURL
	if user != "" {
		call += " user=" + user
	}
	f.calls = append(f.calls, call)
	return "http://trail.test/portal/launch?secret=ptl_x", time.Date(2026, 11, 25, 19, 5, 0, 0, time.UTC), nil
}

func (f *fakeLinks) EndSessions(_ context.Context, org string) (int64, error) {
	f.calls = append(f.calls, "end "+org)
	return 3, nil
}

func (f *fakeLinks) RevokeLinks(_ context.Context, org, user string) (int64, error) {
	f.calls = append(f.calls, "revoke "+org+" "+user)
	return 2, nil
}

func withPortal(links *fakeLinks, pages http.Handler) envOption {
	return func(c *Config, _ *env) { c.Portal = PortalConfig{Handler: pages, Links: links} }
}

func TestGeneratePortalLink(t *testing.T) {
	links := &fakeLinks{intents: []string{"audit_logs"}}
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	e := newEnv(t, withPortal(links, pages))
	org := e.org("Acme")
	other := e.org("Beta")
	restricted, _ := e.key("restricted admin", []string{access.ScopeAdmin}, org)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")

	res := e.do("POST", "/portal/generate_link", e.admin, `{"organization":"`+org+`","intent":"audit_logs","return_url":"https://app.example.com/x?y=1","admin_emails":["alice@example.com"]}`)
	expect(t, res, http.StatusCreated, `{"link":"http://trail.test/portal/launch?secret=ptl_x"}`)
	if len(links.calls) != 1 || links.calls[0] != org+" audit_logs alice@example.com https://app.example.com/x?y=1" {
		t.Errorf("GenerateLink calls %q", links.calls)
	}
	list := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.portal_link.generated", 1)
	if got := string(list.Data[0]); !strings.Contains(got, `"intent":"audit_logs"`) || !strings.Contains(got, `"admin_emails":"alice@example.com"`) {
		t.Errorf("audit event %s", got)
	}

	tests := []struct {
		name, secret, body string
		status             int
		code, field        string
	}{
		{"no organization", e.admin, `{"intent":"audit_logs"}`, 422, "invalid_request_parameters", "organization"},
		{"WorkOS SSO intent", e.admin, `{"organization":"` + org + `","intent":"sso"}`, 422, "intent_not_available", ""},
		{"WorkOS directory sync intent", e.admin, `{"organization":"` + org + `","intent":"dsync"}`, 422, "intent_not_available", ""},
		{"WorkOS domain verification intent", e.admin, `{"organization":"` + org + `","intent":"domain_verification"}`, 422, "intent_not_available", ""},
		{"WorkOS certificate renewal intent", e.admin, `{"organization":"` + org + `","intent":"certificate_renewal"}`, 422, "intent_not_available", ""},
		{"WorkOS BYOK intent", e.admin, `{"organization":"` + org + `","intent":"bring_your_own_key"}`, 422, "intent_not_available", ""},
		{"unknown intent", e.admin, `{"organization":"` + org + `","intent":"everything"}`, 422, "invalid_request_parameters", "intent"},
		{"bad IT contact email", e.admin, `{"organization":"` + org + `","it_contact_emails":["it@example.com","nope"]}`, 422, "invalid_request_parameters", "it_contact_emails[1]"},
		{"too many IT contacts", e.admin, `{"organization":"` + org + `","it_contact_emails":[` + strings.Repeat(`"it@example.com",`, 20) + `"it@example.com"]}`, 422, "invalid_request_parameters", "it_contact_emails"},
		{"empty external user", e.admin, `{"organization":"` + org + `","external_user_id":""}`, 422, "invalid_request_parameters", "external_user_id"},
		{"control character in external user", e.admin, `{"organization":"` + org + `","external_user_id":"a\nb"}`, 422, "invalid_request_parameters", "external_user_id"},
		{"long external user", e.admin, `{"organization":"` + org + `","external_user_id":"` + strings.Repeat("u", 256) + `"}`, 422, "invalid_request_parameters", "external_user_id"},
		{"external user not a string", e.admin, `{"organization":"` + org + `","external_user_id":7}`, 422, "invalid_request_parameters", "external_user_id"},
		{"log streams not offered", e.admin, `{"organization":"` + org + `","intent":"log_streams"}`, 422, "invalid_request_parameters", "intent"},
		{"javascript return URL", e.admin, `{"organization":"` + org + `","intent":"audit_logs","return_url":"javascript:alert(1)"}`, 422, "invalid_request_parameters", "return_url"},
		{"relative return URL", e.admin, `{"organization":"` + org + `","intent":"audit_logs","return_url":"//evil.example/x"}`, 422, "invalid_request_parameters", "return_url"},
		{"credentials in URL", e.admin, `{"organization":"` + org + `","intent":"audit_logs","success_url":"https://u:p@evil.example/"}`, 422, "invalid_request_parameters", "success_url"},
		{"bad email", e.admin, `{"organization":"` + org + `","intent":"audit_logs","admin_emails":["Alice <a@b.c>"]}`, 422, "invalid_request_parameters", "admin_emails[0]"},
		{"unknown field", e.admin, `{"organization":"` + org + `","intent":"audit_logs","x":1}`, 422, "invalid_request_parameters", "x"},
		{"unknown organization", e.admin, `{"organization":"org_nope","intent":"audit_logs"}`, 404, "entity_not_found", ""},
		{"system organization", e.admin, `{"organization":"org_system","intent":"audit_logs"}`, 404, "entity_not_found", ""},
		{"key restricted to another org", restricted, `{"organization":"` + other + `","intent":"audit_logs"}`, 404, "entity_not_found", ""},
		{"read-only key", reader, `{"organization":"` + org + `","intent":"audit_logs"}`, 403, "forbidden", ""},
		{"no key", "", `{"organization":"` + org + `","intent":"audit_logs"}`, 401, "unauthorized", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(links.calls)
			res := e.do("POST", "/portal/generate_link", tt.secret, tt.body)
			if res.Code != tt.status {
				t.Fatalf("%d %s, want %d", res.Code, res.Body, tt.status)
			}
			if tt.code != "" {
				b := expectError(t, res, tt.status, tt.code)
				if tt.field != "" && (len(b.Errors) == 0 || b.Errors[0].Field != tt.field) {
					t.Errorf("errors %+v, want field %s", b.Errors, tt.field)
				}
			}
			if len(links.calls) != n {
				t.Errorf("a link was generated")
			}
		})
	}
	// What WorkOS's SDKs 11 and 12 send: no intent (audit_logs), IT
	// contacts (more admins, after admin_emails, without repeats), the
	// admin's external_user_id, and intent_options (accepted, unused).
	links.calls = nil
	res = e.do("POST", "/portal/generate_link", e.admin, `{"organization":"`+org+`","admin_emails":["alice@example.com"],"it_contact_emails":["it@example.com","alice@example.com"],"external_user_id":"user_42","intent_options":{"sso":{"bookmark_slug":"x"}}}`)
	expect(t, res, http.StatusCreated, `{"link":"http://trail.test/portal/launch?secret=ptl_x"}`)
	if want := org + " audit_logs alice@example.com,it@example.com  user=user_42"; len(links.calls) != 1 || links.calls[0] != want {
		t.Errorf("GenerateLink calls %q, want %q", links.calls, want)
	}
	list = e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.portal_link.generated&order=desc", 2)
	if got := string(list.Data[0]); !strings.Contains(got, `"external_user_id":"user_42"`) || !strings.Contains(got, `"admin_emails":"alice@example.com,it@example.com"`) {
		t.Errorf("audit event %s", got)
	}
	// The message for a WorkOS product Trail lacks names the product.
	if b := expectError(t, e.do("POST", "/portal/generate_link", e.admin, `{"organization":"`+org+`","intent":"dsync"}`), 422, "intent_not_available"); !strings.Contains(b.Message, "Directory Sync") || !strings.Contains(b.Message, "audit_logs") || len(b.Errors) != 0 {
		t.Errorf("message for the dsync intent: %q", b.Message)
	}
	// A key restricted to the organization may generate its links.
	if res := e.do("POST", "/portal/generate_link", restricted, `{"organization":"`+org+`","intent":"audit_logs"}`); res.Code != 201 {
		t.Errorf("restricted admin key for its own org: %d %s", res.Code, res.Body)
	}
	// Everything else under /portal/ is the portal's, with no API key.
	for _, p := range []string{"/portal/", "/portal/events", "/portal/launch?secret=x"} {
		if res := e.do("GET", p, "", ""); res.Code != 299 {
			t.Errorf("GET %s: %d, want the portal handler's", p, res.Code)
		}
	}
}

func TestRevokePortalSessions(t *testing.T) {
	links := &fakeLinks{intents: []string{"audit_logs"}}
	e := newEnv(t, withPortal(links, http.NotFoundHandler()))
	org := e.org("Acme")
	other := e.org("Beta")
	restricted, _ := e.key("restricted admin", []string{access.ScopeAdmin}, org)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")

	res := e.do("DELETE", "/v1/organizations/"+org+"/portal_sessions", restricted, "")
	expect(t, res, http.StatusOK, `{"organization_id":"`+org+`","ended":3}`)
	if len(links.calls) != 1 || links.calls[0] != "end "+org {
		t.Errorf("EndSessions calls %q", links.calls)
	}
	list := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.portal_sessions.revoked", 1)
	if got := string(list.Data[0]); !strings.Contains(got, `"ended":"3"`) || !strings.Contains(got, `"id":"`+org+`"`) {
		t.Errorf("audit event %s", got)
	}

	for _, tt := range []struct {
		name, secret, org string
		status            int
		code              string
	}{
		{"unknown organization", e.admin, "org_nope", 404, "entity_not_found"},
		{"system organization", e.admin, "org_system", 404, "entity_not_found"},
		{"key restricted to another org", restricted, other, 404, "entity_not_found"},
		{"read-only key", reader, org, 403, "forbidden"},
		{"no key", "", org, 401, "unauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(links.calls)
			expectError(t, e.do("DELETE", "/v1/organizations/"+tt.org+"/portal_sessions", tt.secret, ""), tt.status, tt.code)
			if len(links.calls) != n {
				t.Errorf("EndSessions called: %q", links.calls[n:])
			}
		})
	}
}

func TestRevokePortalLink(t *testing.T) {
	links := &fakeLinks{intents: []string{"audit_logs"}}
	e := newEnv(t, withPortal(links, http.NotFoundHandler()))
	org := e.org("Acme")
	other := e.org("Beta")
	restricted, _ := e.key("restricted admin", []string{access.ScopeAdmin}, org)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")

	// As the WorkOS Node SDK 12 sends it; WorkOS answers 200 with no body.
	res := e.do("POST", "/portal/revoke_link", restricted, `{"organization":"`+org+`","external_user_id":"user_42"}`)
	if res.Code != http.StatusOK || res.Body.Len() != 0 {
		t.Fatalf("revoke_link: %d %q, want 200 with no body", res.Code, res.Body)
	}
	if len(links.calls) != 1 || links.calls[0] != "revoke "+org+" user_42" {
		t.Errorf("RevokeLinks calls %q", links.calls)
	}
	list := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.portal_link.revoked", 1)
	if got := string(list.Data[0]); !strings.Contains(got, `"ended":"2"`) || !strings.Contains(got, `{"id":"user_42","type":"portal_admin","name":"user_42"}`) {
		t.Errorf("audit event %s", got)
	}

	for _, tt := range []struct {
		name, secret, body string
		status             int
		code, field        string
	}{
		{"no organization", e.admin, `{"external_user_id":"user_42"}`, 422, "invalid_request_parameters", "organization"},
		{"no external user", e.admin, `{"organization":"` + org + `"}`, 422, "invalid_request_parameters", "external_user_id"},
		{"empty external user", e.admin, `{"organization":"` + org + `","external_user_id":""}`, 422, "invalid_request_parameters", "external_user_id"},
		{"external user not a string", e.admin, `{"organization":"` + org + `","external_user_id":["a"]}`, 422, "invalid_request_parameters", "external_user_id"},
		{"unknown field", e.admin, `{"organization":"` + org + `","external_user_id":"u","x":1}`, 422, "invalid_request_parameters", "x"},
		{"not JSON", e.admin, `{`, 400, "invalid_json", ""},
		{"unknown organization", e.admin, `{"organization":"org_nope","external_user_id":"u"}`, 404, "entity_not_found", ""},
		{"system organization", e.admin, `{"organization":"org_system","external_user_id":"u"}`, 404, "entity_not_found", ""},
		{"key restricted to another org", restricted, `{"organization":"` + other + `","external_user_id":"u"}`, 404, "entity_not_found", ""},
		{"read-only key", reader, `{"organization":"` + org + `","external_user_id":"u"}`, 403, "forbidden", ""},
		{"no key", "", `{"organization":"` + org + `","external_user_id":"u"}`, 401, "unauthorized", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(links.calls)
			b := expectError(t, e.do("POST", "/portal/revoke_link", tt.secret, tt.body), tt.status, tt.code)
			if tt.field != "" && (len(b.Errors) == 0 || b.Errors[0].Field != tt.field) {
				t.Errorf("errors %+v, want field %s", b.Errors, tt.field)
			}
			if len(links.calls) != n {
				t.Errorf("RevokeLinks called: %q", links.calls[n:])
			}
		})
	}
}

func TestPortalRoutesNeedConfig(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	expectError(t, e.do("POST", "/portal/generate_link", e.admin, `{"organization":"`+org+`","intent":"audit_logs"}`), 404, "not_found")
	expectError(t, e.do("GET", "/portal/events", "", ""), 404, "not_found")
	expectError(t, e.do("DELETE", "/v1/organizations/"+org+"/portal_sessions", e.admin, ""), 404, "not_found")
	expectError(t, e.do("POST", "/portal/revoke_link", e.admin, `{"organization":"`+org+`","external_user_id":"u"}`), 404, "not_found")
}

func TestAuditPortal(t *testing.T) {
	var rec *selfaudit.Recorder
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin, user := r.URL.Query().Get("admin"), r.URL.Query().Get("user")
		rec.RecordPortal(r, selfaudit.PortalAction{OrganizationID: r.URL.Query().Get("org"), Action: "trail.portal_session.started", Admin: admin, AdminID: user,
			TargetType: "organization", TargetID: "x", Metadata: map[string]string{"intent": "audit_logs"}})
	})
	e := newEnv(t, withPortal(&fakeLinks{intents: []string{"audit_logs"}}, pages))
	rec = e.srv.auditor
	org := e.org("Acme")
	for _, q := range []string{"admin=alice@example.com", "", "admin=alice@example.com&user=user_42", "user=user_42"} {
		req := httptest.NewRequest("GET", "/portal/x?org="+org+"&"+q, nil)
		req.Header.Set("User-Agent", "Browser/1.0")
		e.srv.ServeHTTP(httptest.NewRecorder(), req)
	}
	list := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.portal_session.started&order=asc", 4)
	for i, want := range []string{`"actor":{"id":"alice@example.com","type":"portal_admin","name":"alice@example.com"}`,
		`"actor":{"id":"portal admin","type":"portal_admin","name":"portal admin"}`,
		`"actor":{"id":"user_42","type":"portal_admin","name":"alice@example.com"}`,
		`"actor":{"id":"user_42","type":"portal_admin","name":"user_42"}`} {
		if got := string(list.Data[i]); !strings.Contains(got, want) || !strings.Contains(got, `"user_agent":"Browser/1.0"`) {
			t.Errorf("event %d: %s, want %s", i, got, want)
		}
	}
}

// TestJSONErrorsUnderEveryPrefix: an unknown path or method under any API
// prefix answers JSON an SDK can parse, never HTML; only the portal's own
// pages (no API key, no JSON body) reach the portal.
func TestJSONErrorsUnderEveryPrefix(t *testing.T) {
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(299)
	})
	e := newEnv(t, withPortal(&fakeLinks{intents: []string{"audit_logs"}}, pages))
	tests := []struct {
		name, method, path, secret, contentType string
		status                                  int
		code                                    string
	}{
		{"root", "GET", "/", e.admin, "", 404, "not_found"},
		{"under /audit_logs/", "POST", "/audit_logs/nope", e.admin, "application/json", 404, "not_found"},
		{"deep under /audit_logs/", "GET", "/audit_logs/exports/x/y/z", e.admin, "", 404, "not_found"},
		{"under /organizations", "GET", "/organizations/org_x/nope/deeper", e.admin, "", 404, "not_found"},
		{"under /v1/", "GET", "/v1/nope", e.admin, "", 404, "not_found"},
		{"under /v1/ without a key", "GET", "/v1/nope", "", "", 404, "not_found"},
		{"under /portal/ with a key", "POST", "/portal/nope", e.admin, "application/json", 404, "not_found"},
		{"under /portal/ with a JSON body", "POST", "/portal/generate_links", "", "application/json", 404, "not_found"},
		{"a portal endpoint with GET", "GET", "/portal/revoke_link", e.admin, "", 405, "method_not_allowed"},
		{"a portal endpoint with GET, no key", "GET", "/portal/generate_link", "", "", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res *httptest.ResponseRecorder
			if tt.contentType != "" {
				res = e.do(tt.method, tt.path, tt.secret, "{}", "Content-Type", tt.contentType)
			} else {
				res = e.do(tt.method, tt.path, tt.secret, "")
			}
			if ct := res.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json: %s", ct, res.Body)
			}
			expectError(t, res, tt.status, tt.code)
		})
	}
	// The portal's pages are the portal's.
	for _, p := range []string{"/portal/events", "/portal/nope"} {
		if res := e.do("GET", p, "", ""); res.Code != 299 {
			t.Errorf("GET %s from a browser: %d, want the portal's answer", p, res.Code)
		}
	}
}
