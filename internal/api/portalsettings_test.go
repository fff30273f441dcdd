package api

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPortalSettings(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testPortalSettings(t, backend) })
	}
}

// testPortalSettings: GET and PUT /v1/organizations/{id}/portal_settings
// on the whole server, what they validate, who may use them, what the
// portal then shows, and the self-audit event.
func testPortalSettings(t *testing.T, backend string) {
	e := newHostileEnv(t, backend)
	org := e.fixtures["{org}"]
	other := e.create("POST", "/organizations", `{"name":"Beta"}`, "id")
	restricted := e.create("POST", "/v1/api_keys", `{"name":"acme admin","scopes":["admin"],"organization_id":"`+org+`"}`, "secret")
	reader := e.create("POST", "/v1/api_keys", `{"name":"reader","scopes":["events:read"]}`, "secret")
	send := func(method, path, secret, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %s", method, path, res.StatusCode, b)
		}
		return res.StatusCode, m
	}
	path := "/v1/organizations/" + org + "/portal_settings"

	// None set yet: every field empty.
	if code, m := send("GET", path, e.admin, ""); code != 200 || m["product_name"] != nil || m["accent"] != nil ||
		len(m["frame_origins"].([]any)) != 0 || m["organization_id"] != org {
		t.Fatalf("GET before any PUT: %d %v", code, m)
	}

	svg := base64.StdEncoding.EncodeToString([]byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`))
	valid := `{"product_name":" Acme Audit ","accent":"#0a7e3b","logo":"` + svg + `","logo_type":"image/svg+xml",` +
		`"frame_origins":["https://App.Example.com","https://app.example.com/","http://localhost:3000"]}`
	code, m := send("PUT", path, e.admin, valid)
	if code != 200 || m["product_name"] != "Acme Audit" || m["accent"] != "#0a7e3b" || m["logo"] != svg || m["logo_type"] != "image/svg+xml" {
		t.Fatalf("PUT: %d %v", code, m)
	}
	if got, _ := json.Marshal(m["frame_origins"]); string(got) != `["https://app.example.com","http://localhost:3000"]` {
		t.Errorf("frame_origins %s", got)
	}
	if code, g := send("GET", path, restricted, ""); code != 200 || g["product_name"] != "Acme Audit" || g["updated_at"] == nil {
		t.Errorf("GET after PUT, by the organization's admin key: %d %v", code, g)
	}
	// The portal frames itself for the organization's origins.
	if code, body := e.do(e.portalLogs, "GET", "/portal/events", "", nil, false); code != 200 || !strings.Contains(body, "Acme Audit") {
		t.Errorf("the portal after PUT: %d, no product name", code)
	}
	// Recorded in the organization's log (searchable once indexed).
	for deadline := time.Now().Add(30 * time.Second); ; {
		list := e.create("GET", "/v1/events?organization_id="+org+"&action=trail.portal_settings.updated", "", "data")
		if strings.Contains(list, "trail.portal_settings.updated") && strings.Contains(list, "#0a7e3b") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trail.portal_settings.updated event: %s", list)
		}
		time.Sleep(20 * time.Millisecond)
	}

	long := strings.Repeat("x", 61)
	big := base64.StdEncoding.EncodeToString(make([]byte, 256<<10+1))
	for _, tt := range []struct {
		name, path, secret, body string
		status                   int
		field                    string
	}{
		{"long product name", path, e.admin, `{"product_name":"` + long + `"}`, 422, "product_name"},
		{"control character in product name", path, e.admin, `{"product_name":"a\u0085b"}`, 422, "product_name"},
		{"named colour", path, e.admin, `{"accent":"green"}`, 422, "accent"},
		{"short colour", path, e.admin, `{"accent":"#0a7"}`, 422, "accent"},
		{"accent not a string", path, e.admin, `{"accent":7}`, 422, "accent"},
		{"logo without type", path, e.admin, `{"logo":"` + svg + `"}`, 422, "logo_type"},
		{"type without logo", path, e.admin, `{"logo_type":"image/png"}`, 422, "logo"},
		{"logo not base64", path, e.admin, `{"logo":"not base64!","logo_type":"image/png"}`, 422, "logo"},
		{"logo of another type", path, e.admin, `{"logo":"` + svg + `","logo_type":"image/gif"}`, 422, "logo_type"},
		{"logo too big", path, e.admin, `{"logo":"` + big + `","logo_type":"image/png"}`, 422, "logo"},
		{"http origin", path, e.admin, `{"frame_origins":["https://a.example.com","http://app.example.com"]}`, 422, "frame_origins[1]"},
		{"origin with a path", path, e.admin, `{"frame_origins":["https://app.example.com/x"]}`, 422, "frame_origins[0]"},
		{"wildcard origin", path, e.admin, `{"frame_origins":["https://*.example.com"]}`, 422, "frame_origins[0]"},
		{"two origins in one", path, e.admin, `{"frame_origins":["https://a.example.com https://b.example.com"]}`, 422, "frame_origins[0]"},
		{"CSP injection", path, e.admin, `{"frame_origins":["https://a.example.com; script-src *"]}`, 422, "frame_origins[0]"},
		{"too many origins", path, e.admin, `{"frame_origins":[` + strings.Repeat(`"https://a.example.com",`, 20) + `"https://b.example.com"]}`, 422, "frame_origins"},
		{"unknown field", path, e.admin, `{"colour":"#000000"}`, 422, "colour"},
		{"not JSON", path, e.admin, `{`, 400, ""},
		{"unknown organization", "/v1/organizations/org_nope/portal_settings", e.admin, `{}`, 404, ""},
		{"Trail's own organization", "/v1/organizations/org_system/portal_settings", e.admin, `{}`, 404, ""},
		{"key restricted to another organization", "/v1/organizations/" + other + "/portal_settings", restricted, `{}`, 404, ""},
		{"read-only key", path, reader, `{}`, 403, ""},
		{"no key", path, "", `{}`, 401, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, m := send("PUT", tt.path, tt.secret, tt.body)
			if code != tt.status {
				t.Fatalf("PUT: %d %v, want %d", code, m, tt.status)
			}
			if tt.field != "" {
				errs, _ := m["errors"].([]any)
				if len(errs) == 0 || errs[0].(map[string]any)["field"] != tt.field {
					t.Errorf("errors %v, want field %s", m["errors"], tt.field)
				}
			}
			if tt.body == `{}` && tt.status != 200 {
				if code, _ := send("GET", tt.path, tt.secret, ""); code != tt.status {
					t.Errorf("GET: %d, want %d", code, tt.status)
				}
			}
		})
	}
	// Refused requests changed nothing; an empty PUT clears everything.
	if _, g := send("GET", path, e.admin, ""); g["accent"] != "#0a7e3b" {
		t.Errorf("after refused PUTs: %v", g)
	}
	if code, g := send("PUT", path, e.admin, `{}`); code != 200 || g["accent"] != nil || g["logo"] != nil || len(g["frame_origins"].([]any)) != 0 {
		t.Errorf("PUT {}: %d %v", code, g)
	}
}
