package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// loadOpenAPI parses and validates the served document.
func loadOpenAPI(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// withEverything configures every optional part of the API, so that every
// route is registered.
func withEverything(t *testing.T) envOption {
	return func(c *Config, e *env) {
		ctx := context.Background()
		signer, err := ledger.LoadOrCreateSigner(t.TempDir(), "test.example")
		if err != nil {
			t.Fatal(err)
		}
		c.Log = LogConfig{Storage: e.st, VerifierKey: signer.VerifierKey(), Keys: plainKeys(t, signer.VerifierKey())}
		c.Retention = RetentionConfig{Store: e.st}
		withStreams()(c, e)
		c.Schemas = schema.NewRegistry(e.st, schema.Options{Registerer: e.reg})
		c.Portal = PortalConfig{Links: &fakeLinks{intents: []string{"audit_logs"}}, Settings: e.st,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte("<p>portal</p>"))
			})}
		xs, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(e.st.Path()))
		if err != nil {
			t.Fatal(err)
		}
		svc, err := export.NewSQLite(ctx, xs.DB(), export.Config{Exports: xs, Log: e.st, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			svc.Stop(context.Background())
			xs.Close()
		})
		c.Exports = ExportConfig{Service: svc, Links: export.NewLinks([]byte("0123456789abcdef0123456789abcdef"))}
		// A live tail answers until it is ended: here, at once.
		c.Tail = TailConfig{Hub: livetail.NewHub(e.st, livetail.Options{}), MaxDuration: time.Millisecond}
		c.Privacy = privacyFor(t, e.st)
		c.Lifecycle = LifecycleConfig{Store: e.st, Archive: e.st,
			Deleter: orgdelete.New(orgdelete.Config{Store: e.st, Exports: xs, ExportPath: svc.Path})}
	}
}

// validBodies are requests that succeed, so that the success answers are
// checked against their schemas too (ORG is the fixture organization).
var validBodies = map[string]string{
	"POST /audit_logs/events":                           `{"organization_id":"ORG","event":{"action":"user.signed_in","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `","actor":{"type":"user","id":"u1"},"targets":[],"context":{"location":"192.0.2.1"}}}`,
	"POST /v1/events/batch":                             `{"events":[{"organization_id":"ORG","event":{"action":"user.signed_in","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `","actor":{"type":"user","id":"u1"},"targets":[],"context":{"location":"192.0.2.1"}}}]}`,
	"POST /organizations":                               `{"name":"Beta"}`,
	"POST /v1/api_keys":                                 `{"name":"reader","scopes":["events:read"],"organization_id":"ORG"}`,
	"POST /audit_logs/exports":                          `{"organization_id":"ORG","range_start":"2000-01-01T00:00:00Z","range_end":"2100-01-01T00:00:00Z"}`,
	"POST /audit_logs/actions/{action}/schemas":         `{"targets":[]}`,
	"POST /v1/actor_schema":                             `{"metadata":{"type":"object","properties":{"email":{"type":"string"}}}}`,
	"POST /v1/organizations/{id}/log_streams":           `{"type":"webhook","name":"Other","config":{"url":"http://127.0.0.1:9/other","secret":"0123456789abcdef0123456789abcdef"}}`,
	"PATCH /v1/organizations/{id}/log_streams/{stream}": `{"name":"SIEM 2"}`,
	"PUT /organizations/{id}/audit_logs_retention":      `{"retention_period_in_days":30}`,
	"PUT /organizations/{id}":                           `{"name":"Acme","external_id":"acme-ext"}`,
	"PATCH /organizations/{id}":                         `{"name":"Acme"}`,
	"PUT /v1/organizations/{id}/archive":                `{"enabled":null}`,
	"POST /portal/generate_link":                        `{"organization":"ORG","intent":"audit_logs"}`,
	"PUT /v1/organizations/{id}/portal_settings":        `{"product_name":"Acme Audit","accent":"#0a7e3b","frame_origins":["https://app.example.com"]}`,
	"PUT /v1/organizations/{id}/privacy_policy":         `{"fields":{"metadata.email":"hmac"}}`,
	"POST /v1/organizations/{id}/hmac":                  `{"value":"alice@example.com"}`,
	"POST /v1/organizations/{id}/erasures":              `{"actor_id":"user_9","reason":"GDPR"}`,
}

// checkBody validates a JSON answer against the documented schema.
func checkBody(t *testing.T, what string, resp *openapi3.Response, ctype string, body []byte) {
	t.Helper()
	mt := strings.TrimSpace(strings.Split(ctype, ";")[0])
	if len(body) == 0 {
		if len(resp.Content) != 0 {
			t.Errorf("%s: empty body, documented %v", what, resp.Content)
		}
		return
	}
	media := resp.Content.Get(mt)
	if media == nil {
		t.Errorf("%s: answered %s, which is not documented", what, mt)
		return
	}
	if mt != "application/json" || media.Schema == nil {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: not JSON: %v", what, err)
		return
	}
	if err := media.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s: the answer does not match its schema: %v\n%s", what, err, truncate(string(body), 500))
	}
}

// docRoute is the OpenAPI path and method of a registered pattern.
func docRoute(pattern string) (method, path string) {
	if pattern == "/portal/" { // the Admin Portal's pages, every method
		return "GET", "/portal/{page}"
	}
	method, path, _ = strings.Cut(pattern, " ")
	// A wildcard of the rest of the path ({path...}) is one parameter.
	return method, strings.ReplaceAll(path, "...}", "}")
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// TestOpenAPIDocumentsEveryRoute checks openapi.json against the server: it
// validates as OpenAPI 3.1; every route the server registers is documented
// with its path parameters, and nothing else is; every documented query
// parameter is one the route accepts; and every status the routes answer
// to a set of probes (no key, missing entities, bad bodies and parameters,
// valid requests) is documented for its operation.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	e := newEnv(t, withEverything(t))
	res := e.do("GET", "/openapi.json", "", "")
	if res.Code != http.StatusOK || res.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json = %d %s", res.Code, res.Header().Get("Content-Type"))
	}
	doc := loadOpenAPI(t, res.Body.Bytes())

	// The schemas do check: an error body of the wrong shape fails.
	errSchema := doc.Components.Schemas["Error"].Value
	if err := errSchema.VisitJSON(map[string]any{"message": 1.0, "extra": true}, openapi3.EnableJSONSchema2020()); err == nil {
		t.Fatal("the Error schema accepts {\"message\":1,\"extra\":true}")
	}

	// Every registered route is documented, with its path parameters.
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for pattern := range e.srv.patterns {
		method, path := docRoute(pattern)
		registered[method+" "+path] = true
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s is registered but not documented in openapi.json", pattern)
			continue
		}
		op := item.GetOperation(method)
		var want, got []string
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		for _, p := range append(item.Parameters, op.Parameters...) {
			if p.Value.In == "path" {
				got = append(got, p.Value.Name)
				if !p.Value.Required {
					t.Errorf("%s: path parameter %s is not required", pattern, p.Value.Name)
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: documented path parameters %v, want %v", pattern, got, want)
		}
		if op.Responses.Value("500") == nil {
			t.Errorf("%s: 500 is not documented", pattern)
		}
	}
	// The search's parameters are listed in eventQueryParams: exactly
	// those are documented.
	var searchParams []string
	for _, p := range doc.Paths.Value("/v1/events").Get.Parameters {
		searchParams = append(searchParams, p.Value.Name)
	}
	slices.Sort(searchParams)
	if want := slices.Sorted(maps.Keys(eventQueryParams)); !slices.Equal(searchParams, want) {
		t.Errorf("GET /v1/events documents parameters %v, the route accepts %v", searchParams, want)
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("openapi.json documents %s, which the server does not register", r)
		}
	}

	// Fixtures so that valid requests find what they name.
	ext := "acme-ext"
	orgRes := e.do("POST", "/organizations", e.admin, `{"name":"Acme","external_id":"`+ext+`"}`)
	var org struct{ ID string }
	decode(t, orgRes, &org)
	e.do("POST", "/v1/events/batch", e.admin, batchBody(e.eventBody(org.ID, "user.signed_in")))
	e.do("POST", "/audit_logs/actions/user.signed_in/schemas", e.admin, `{"targets":[]}`)
	streamRes := e.do("POST", "/v1/organizations/"+org.ID+"/log_streams", e.admin,
		`{"type":"webhook","name":"SIEM","config":{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef0123456789abcdef"}}`)
	var stream struct{ ID string }
	decode(t, streamRes, &stream)
	values := map[string]string{"id": org.ID, "external_id": ext, "stream": stream.ID, "action": "user.signed_in",
		"resource": "audit_logs_retention", "page": "events"}

	// Probe every operation and check each status is documented.
	var probes atomic.Int64
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			filled := pathParam.ReplaceAllStringFunc(path, func(m string) string { return values[m[1:len(m)-1]] })
			missing := pathParam.ReplaceAllString(path, "missing_0")
			var query []string
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.In == "query" {
					query = append(query, p.Value.Name)
				}
			}
			type probe struct {
				what, path, key, body string
			}
			ps := []probe{
				{"no key", filled, "", ""},
				{"admin", filled, e.admin, ""},
				{"missing entities", missing, e.admin, ""},
				{"empty object", filled, e.admin, "{}"},
				{"not JSON", filled, e.admin, "{"},
				{"unknown parameter", filled + "?zz_unknown=1", e.admin, ""},
			}
			for _, q := range query {
				ps = append(ps, probe{"bad " + q, filled + "?" + url.Values{q: {"-1"}}.Encode(), e.admin, ""})
			}
			if body, ok := validBodies[method+" "+path]; ok {
				ps = append(ps, probe{"valid", filled, e.admin, strings.ReplaceAll(body, "ORG", org.ID)})
			}
			for _, pr := range ps {
				if method == "DELETE" && pr.key != "" && pr.what != "missing entities" {
					continue // keep the fixtures for the other probes
				}
				res := e.do(method, pr.path, pr.key, pr.body)
				probes.Add(1)
				if pr.what == "valid" && res.Code >= 300 {
					t.Errorf("%s %s (valid) answered %d: %s", method, path, res.Code, truncate(res.Body.String(), 300))
				}
				code := strconv.Itoa(res.Code)
				resp := op.Responses.Value(code)
				if resp == nil {
					t.Errorf("%s %s (%s) answered %d, which openapi.json does not document: %s", method, path, pr.what, res.Code, truncate(res.Body.String(), 300))
					continue
				}
				checkBody(t, fmt.Sprintf("%s %s (%s) %d", method, path, pr.what, res.Code), resp.Value, res.Header().Get("Content-Type"), res.Body.Bytes())
				// A documented query parameter is never unknown to the route.
				if res.Code == http.StatusUnprocessableEntity && strings.HasPrefix(pr.what, "bad ") {
					var b errorBody
					json.Unmarshal(res.Body.Bytes(), &b)
					for _, fe := range b.Errors {
						if fe.Code == "unknown_parameter" {
							t.Errorf("%s %s: documented query parameter %s is unknown to the route", method, path, fe.Field)
						}
					}
				}
			}
		}
	}
	t.Logf("%d routes, %d probes", len(registered), probes.Load())
}
