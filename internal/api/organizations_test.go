package api

import (
	"regexp"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/access"
)

func TestCreateOrganization(t *testing.T) {
	e := newEnv(t)
	res := e.do("POST", "/organizations", e.admin, `{"name":"Acme","external_id":"acme-1"}`)
	if res.Code != 201 {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	shape := regexp.MustCompile(`^\{"object":"organization","id":"org_[0-9A-Z]{26}","name":"Acme","allow_profiles_outside_organization":false,"domains":\[\],"external_id":"acme-1","metadata":\{\},"created_at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","updated_at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"\}$`)
	if !shape.MatchString(res.Body.String()) {
		t.Fatalf("organization body %s", res.Body)
	}
	var o struct{ ID string }
	decode(t, res, &o)
	get := e.do("GET", "/organizations/"+o.ID, e.admin, "")
	if get.Code != 200 || get.Body.String() != res.Body.String() {
		t.Errorf("GET: %d %s\nwant %s", get.Code, get.Body, res.Body)
	}
	// Without external_id it is null; the bodies the WorkOS SDKs send are accepted.
	for _, body := range []string{
		`{"name":"Globex"}`,
		`{"name":"Go SDK","allow_profiles_outside_organization":false,"domains":null,"domain_data":null,"external_id":"","metadata":null}`,
		`{"name":"Node SDK","domains":[],"domain_data":[],"metadata":{},"idempotency_key":"x"}`,
	} {
		res := e.do("POST", "/organizations", e.admin, body)
		if res.Code != 201 || !strings.Contains(res.Body.String(), `"external_id":null`) {
			t.Errorf("%s: %d %s", body, res.Code, res.Body)
		}
	}
	expect(t, e.do("POST", "/organizations", e.admin, `{"name":"Acme again","external_id":"acme-1"}`), 409,
		`{"message":"An organization with external_id 'acme-1' already exists.","code":"conflict"}`)
}

func TestCreateOrganizationInvalid(t *testing.T) {
	e := newEnv(t)
	restrictedAdmin, _ := e.key("acme admin", []string{access.ScopeAdmin}, e.org("Acme"))
	tests := []struct {
		name, secret, body string
		status             int
		code               string
		field              string
	}{
		{"no name", e.admin, `{}`, 422, "invalid_request_parameters", "name"},
		{"empty name", e.admin, `{"name":""}`, 422, "invalid_request_parameters", "name"},
		{"long name", e.admin, `{"name":"` + strings.Repeat("n", 201) + `"}`, 422, "invalid_request_parameters", "name"},
		{"long external id", e.admin, `{"name":"a","external_id":"` + strings.Repeat("e", 201) + `"}`, 422, "invalid_request_parameters", "external_id"},
		{"NUL in name", e.admin, `{"name":"a\u0000b"}`, 422, "invalid_request_parameters", "name"},
		{"NUL in external id", e.admin, `{"name":"a","external_id":"x\u0000"}`, 422, "invalid_request_parameters", "external_id"},
		{"name not a string", e.admin, `{"name":7}`, 422, "invalid_request_parameters", "name"},
		{"unknown field", e.admin, `{"name":"a","colour":"red"}`, 422, "invalid_request_parameters", "colour"},
		{"metadata", e.admin, `{"name":"a","metadata":{"tier":"gold"}}`, 422, "invalid_request_parameters", "metadata"},
		{"domains", e.admin, `{"name":"a","domains":["acme.com"]}`, 422, "invalid_request_parameters", "domains"},
		{"malformed", e.admin, `{"name":`, 400, "invalid_json", ""},
		{"array", e.admin, `[]`, 400, "invalid_json", ""},
		{"empty body", e.admin, ``, 400, "invalid_json", ""},
		{"restricted admin", restrictedAdmin, `{"name":"a"}`, 403, "forbidden", ""},
		{"id not an organization id", e.admin, `{"id":"acme","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id without its prefix", e.admin, `{"id":"01EHZNVPK3SFK441A1RGBFSHRT","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id of another kind", e.admin, `{"id":"user_01EHZNVPK3SFK441A1RGBFSHRT","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id too short", e.admin, `{"id":"org_01EHZNVPK3SFK441A1RGBFSHR","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id too long", e.admin, `{"id":"org_01EHZNVPK3SFK441A1RGBFSHRTX","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id in lower case", e.admin, `{"id":"org_01ehznvpk3sfk441a1rgbfshrt","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id with a letter outside Crockford's", e.admin, `{"id":"org_01EHZNVPK3SFK441A1RGBFSHRU","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id past the ULID range", e.admin, `{"id":"org_81EHZNVPK3SFK441A1RGBFSHRT","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"the system organization's id", e.admin, `{"id":"org_system","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"empty id", e.admin, `{"id":"","name":"a"}`, 422, "invalid_request_parameters", "id"},
		{"id not a string", e.admin, `{"id":7,"name":"a"}`, 422, "invalid_request_parameters", "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := expectError(t, e.do("POST", "/organizations", tt.secret, tt.body), tt.status, tt.code)
			if tt.field != "" && (len(b.Errors) != 1 || b.Errors[0].Field != tt.field || !strings.Contains(b.Message, tt.field)) {
				t.Errorf("errors %+v, message %q: want one naming %s", b.Errors, b.Message, tt.field)
			}
		})
	}
}

func TestGetOrganization(t *testing.T) {
	e := newEnv(t)
	acme, globex := e.org("Acme"), e.org("Globex")
	acmeWriter, _ := e.key("acme writer", []string{access.ScopeEventsWrite}, acme)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	tests := []struct {
		name, secret, id string
		status           int
	}{
		{"admin", e.admin, acme, 200},
		{"restricted key, own organization", acmeWriter, acme, 200},
		{"restricted key, other organization", acmeWriter, globex, 404},
		{"restricted key, unknown organization", acmeWriter, "org_nope", 404},
		{"unrestricted key without admin", writer, acme, 403},
		{"unknown", e.admin, "org_nope", 404},
	}
	for _, tt := range tests {
		res := e.do("GET", "/organizations/"+tt.id, tt.secret, "")
		if res.Code != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, res.Code, res.Body, tt.status)
		}
		if tt.status == 404 {
			expect(t, res, 404, `{"message":"Organization '`+tt.id+`' not found.","code":"entity_not_found"}`)
		}
	}
}

func TestGetOrganizationByExternalID(t *testing.T) {
	e := newEnv(t)
	res := e.do("POST", "/organizations", e.admin, `{"name":"Acme","external_id":"acme-1"}`)
	var o struct{ ID string }
	decode(t, res, &o)
	globex := e.org("Globex")
	acmeReader, _ := e.key("acme reader", []string{access.ScopeEventsRead}, o.ID)
	globexAdmin, _ := e.key("globex admin", []string{access.ScopeAdmin}, globex)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	got := e.do("GET", "/organizations/external_id/acme-1", e.admin, "")
	if got.Code != 200 || got.Body.String() != res.Body.String() {
		t.Fatalf("by external id: %d %s", got.Code, got.Body)
	}
	if r := e.do("GET", "/organizations/external_id/acme-1", acmeReader, ""); r.Code != 200 {
		t.Errorf("own organization: %d %s", r.Code, r.Body)
	}
	const notFound = `{"message":"Organization with external_id 'acme-1' not found.","code":"entity_not_found"}`
	expect(t, e.do("GET", "/organizations/external_id/acme-1", globexAdmin, ""), 404, notFound)
	expect(t, e.do("GET", "/organizations/external_id/nope", e.admin, ""), 404,
		`{"message":"Organization with external_id 'nope' not found.","code":"entity_not_found"}`)
	expectError(t, e.do("GET", "/organizations/external_id/acme-1", writer, ""), 403, "forbidden")
}

func TestListOrganizations(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		ids = append(ids, e.org(n))
	}
	type page struct {
		Object string
		Data   []struct{ ID string }
		Meta   struct{ Before, After *string } `json:"list_metadata"`
	}
	list := func(secret, query string) page {
		t.Helper()
		res := e.do("GET", "/organizations"+query, secret, "")
		if res.Code != 200 {
			t.Fatalf("GET /organizations%s: %d %s", query, res.Code, res.Body)
		}
		var p page
		decode(t, res, &p)
		return p
	}
	idsOf := func(p page) string {
		var s []string
		for _, d := range p.Data {
			s = append(s, d.ID)
		}
		return strings.Join(s, ",")
	}
	// Default: newest first, 10 per page, the system organization hidden.
	p := list(e.admin, "")
	if p.Object != "list" || idsOf(p) != strings.Join([]string{ids[4], ids[3], ids[2], ids[1], ids[0]}, ",") || p.Meta.After != nil || p.Meta.Before != nil {
		t.Fatalf("default list %+v", p)
	}
	p1 := list(e.admin, "?limit=2")
	if idsOf(p1) != ids[4]+","+ids[3] || p1.Meta.After == nil || *p1.Meta.After != ids[3] || p1.Meta.Before != nil {
		t.Fatalf("page 1 %+v", p1)
	}
	p2 := list(e.admin, "?limit=2&after="+*p1.Meta.After)
	if idsOf(p2) != ids[2]+","+ids[1] || p2.Meta.Before == nil {
		t.Fatalf("page 2 %+v", p2)
	}
	back := list(e.admin, "?limit=2&before="+*p2.Meta.Before)
	if idsOf(back) != idsOf(p1) {
		t.Fatalf("back from page 2: %+v", back)
	}
	if asc := list(e.admin, "?order=asc&limit=1"); idsOf(asc) != ids[0] {
		t.Fatalf("asc %+v", asc)
	}
	// A restricted key lists its own organization alone.
	restricted, _ := e.key("c admin", []string{access.ScopeAdmin}, ids[2])
	if r := list(restricted, ""); idsOf(r) != ids[2] {
		t.Fatalf("restricted list %+v", r)
	}
	// WorkOS's domains filter matches nothing here.
	if d := list(e.admin, "?domains[]=acme.com"); len(d.Data) != 0 {
		t.Fatalf("domain filter %+v", d)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=ten", "?order=up", "?before=a&after=b", "?limit=1&limit=2"} {
		b := expectError(t, e.do("GET", "/organizations"+q, e.admin, ""), 422, "invalid_request_parameters")
		if len(b.Errors) == 0 {
			t.Errorf("%s: no field errors in %+v", q, b)
		}
	}
}

// TestCreateOrganizationWithID: a WorkOS customer creates its organizations
// under the ids its database holds; a taken id is 409, and audited nothing.
func TestCreateOrganizationWithID(t *testing.T) {
	e := newEnv(t)
	const id = "org_01EHZNVPK3SFK441A1RGBFSHRT"
	res := e.do("POST", "/organizations", e.admin, `{"id":"`+id+`","name":"Acme","external_id":"acme-1"}`)
	if res.Code != 201 || !strings.Contains(res.Body.String(), `"id":"`+id+`"`) {
		t.Fatalf("create with an id: %d %s", res.Code, res.Body)
	}
	if get := e.do("GET", "/organizations/"+id, e.admin, ""); get.Code != 200 || get.Body.String() != res.Body.String() {
		t.Errorf("GET: %d %s\nwant %s", get.Code, get.Body, res.Body)
	}
	// Events for it are accepted under that id.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(id, "user.signed_in")), 201, `{"success":true}`)
	created := e.search(e.admin, "/v1/events?organization_id="+id+"&action=trail.organization.created", 1).records(t)[0]
	if created.Targets[0].ID != id {
		t.Errorf("audit event targets %+v", created.Targets)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"taken id", `{"id":"` + id + `","name":"Other"}`, `{"message":"An organization with id '` + id + `' already exists.","code":"conflict"}`},
		{"taken id and external id", `{"id":"` + id + `","name":"Acme","external_id":"acme-1"}`, `{"message":"An organization with id '` + id + `' already exists.","code":"conflict"}`},
		{"new id, taken external id", `{"id":"org_01EHZNVPK3SFK441A1RGBFSHRV","name":"Acme","external_id":"acme-1"}`, `{"message":"An organization with external_id 'acme-1' already exists.","code":"conflict"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, e.do("POST", "/organizations", e.admin, tt.body), 409, tt.want)
		})
	}
	e.search(e.admin, "/v1/events?organization_id="+id+"&action=trail.organization.created", 1)
	if res := e.do("GET", "/organizations/org_01EHZNVPK3SFK441A1RGBFSHRV", e.admin, ""); res.Code != 404 {
		t.Errorf("the organization refused for its external id exists: %d", res.Code)
	}
}
