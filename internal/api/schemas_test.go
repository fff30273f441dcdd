package api

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

var updateGolden = flag.Bool("update-schemas", false, "rewrite testdata/schemas/*.golden from the current answers")

// schemaNow is the fixed clock of the schema tests, so answers are golden:
// goldens hold it as {{now}}, so it can move (testclock).
func schemaNow(t testing.TB) time.Time { return testclock.Now(t).Add(123 * time.Millisecond) }

// withSchemas serves schemas from the env's store, at schemaNow.
func withSchemas(t testing.TB, require bool) envOption {
	now := schemaNow(t)
	return func(cfg *Config, e *env) {
		cfg.Now = func() time.Time { return now }
		cfg.Schemas = schema.NewRegistry(e.st, schema.Options{RequireSchemas: require, Registerer: e.reg})
	}
}

// golden compares an answer with testdata/schemas/NAME.golden: the status
// line, then the body.
func golden(t *testing.T, name string, res interface {
	Result() *http.Response
}, body string) {
	t.Helper()
	got := fmt.Sprintf("%d\n%s\n", res.Result().StatusCode, body)
	got = strings.ReplaceAll(got, testclock.Format(schemaNow(t)), "{{now}}")
	path := filepath.Join("testdata", "schemas", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
	}
}

const invoiceSchemaBody = `{"actor":{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}},` +
	`"targets":[{"type":"invoice","metadata":{"type":"object","properties":{"cost":{"type":"number"}}}},{"type":"user"}],` +
	`"metadata":{"type":"object","properties":{"transactionId":{"type":"string"}}}}`

// invoiceEvent is an event of invoice.paid; version 0 sends none.
func (e *env) invoiceEvent(org string, version int, targetType string, meta map[string]any) string {
	return e.eventBody(org, "invoice.paid", func(ev map[string]any) {
		ev["occurred_at"] = e.now().Add(-time.Hour).Format(time.RFC3339Nano)
		ev["actor"] = map[string]any{"id": "user_1", "type": "user", "metadata": map[string]any{"role": "admin"}}
		ev["targets"] = []any{map[string]any{"id": "inv_1", "type": targetType, "metadata": map[string]any{"cost": 12.5}}}
		ev["metadata"] = meta
		if version > 0 {
			ev["version"] = version
		}
	})
}

func TestActionSchemaEndpoints(t *testing.T) {
	e := newEnv(t, withSchemas(t, false))
	res := e.do("POST", "/audit_logs/actions/invoice.paid/schemas", e.admin, invoiceSchemaBody)
	golden(t, "create", res, res.Body.String())
	res = e.do("POST", "/audit_logs/actions/invoice.paid/schemas", e.admin, `{"targets":[{"type":"invoice"}]}`)
	if res.Code != http.StatusCreated || !strings.Contains(res.Body.String(), `"version":2`) {
		t.Fatalf("second version: %d %s", res.Code, res.Body)
	}
	for _, a := range []string{"user.signed_in", "team.created"} {
		if res := e.do("POST", "/audit_logs/actions/"+a+"/schemas", e.admin, `{"targets":[]}`); res.Code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", a, res.Code, res.Body)
		}
	}

	res = e.do("GET", "/audit_logs/actions?order=asc", e.admin, "")
	golden(t, "list-actions", res, res.Body.String())
	res = e.do("GET", "/audit_logs/actions/invoice.paid/schemas", e.admin, "")
	golden(t, "list-schemas", res, res.Body.String())

	// Cursor pagination, newest first by default.
	res = e.do("GET", "/audit_logs/actions/invoice.paid/schemas?limit=1", e.admin, "")
	var page struct {
		Data         []struct{ Version int }
		ListMetadata struct{ Before, After *string } `json:"list_metadata"`
	}
	decode(t, res, &page)
	if len(page.Data) != 1 || page.Data[0].Version != 2 || page.ListMetadata.After == nil || page.ListMetadata.Before != nil {
		t.Fatalf("first page: %s", res.Body)
	}
	res = e.do("GET", "/audit_logs/actions/invoice.paid/schemas?limit=1&after="+*page.ListMetadata.After, e.admin, "")
	decode(t, res, &page)
	if len(page.Data) != 1 || page.Data[0].Version != 1 || page.ListMetadata.After != nil || page.ListMetadata.Before == nil {
		t.Fatalf("second page: %s", res.Body)
	}
	res = e.do("GET", "/audit_logs/actions?limit=2&order=asc&after=invoice.paid", e.admin, "")
	if !strings.Contains(res.Body.String(), `"name":"team.created"`) || strings.Contains(res.Body.String(), `"name":"invoice.paid"`) {
		t.Fatalf("actions after invoice.paid: %s", res.Body)
	}

	// A reader may list; a writer may not; creating needs an unrestricted admin.
	org := e.org("Acme")
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, org)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	restrictedAdmin, _ := e.key("org admin", []string{access.ScopeAdmin}, org)
	if res := e.do("GET", "/audit_logs/actions", reader, ""); res.Code != http.StatusOK {
		t.Errorf("reader lists actions: %d %s", res.Code, res.Body)
	}
	expectError(t, e.do("GET", "/audit_logs/actions", writer, ""), http.StatusForbidden, "forbidden")
	expectError(t, e.do("POST", "/audit_logs/actions/x/schemas", writer, `{"targets":[]}`), http.StatusForbidden, "forbidden")
	expectError(t, e.do("POST", "/audit_logs/actions/x/schemas", restrictedAdmin, `{"targets":[]}`), http.StatusForbidden, "forbidden")
	expectError(t, e.do("POST", "/audit_logs/actions/x/schemas", "", `{"targets":[]}`), http.StatusUnauthorized, "unauthorized")

	// Bad input: 4xx saying what to fix.
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"not JSON", "/audit_logs/actions/x/schemas", `{"targets":`, 400, "invalid_json"},
		{"not an object", "/audit_logs/actions/x/schemas", `[]`, 400, "invalid_json"},
		{"no targets", "/audit_logs/actions/x/schemas", `{}`, 422, "invalid_request_parameters"},
		{"bad type", "/audit_logs/actions/x/schemas", `{"targets":[],"metadata":{"properties":{"k":{"type":"date"}}}}`, 422, "invalid_request_parameters"},
		{"action too long", "/audit_logs/actions/" + strings.Repeat("a", 101) + "/schemas", `{"targets":[]}`, 422, "invalid_request_parameters"},
		{"control character", "/audit_logs/actions/a%07b/schemas", `{"targets":[]}`, 422, "invalid_request_parameters"},
		{"bad cursor", "/audit_logs/actions/invoice.paid/schemas?after=v1", "", 422, "invalid_cursor"},
		{"bad limit", "/audit_logs/actions?limit=0", "", 422, "invalid_request_parameters"},
		{"unknown action", "/audit_logs/actions/nothing.here/schemas", "", 404, "entity_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.body == "" {
				method = "GET"
			}
			expectError(t, e.do(method, tc.path, e.admin, tc.body), tc.status, tc.code)
		})
	}
	res = e.do("POST", "/audit_logs/actions/x/schemas", e.admin, `{"targets":[{"type":""}],"metadata":{"properties":{"k":{"type":"date"}}},"extra":1}`)
	golden(t, "create-invalid", res, res.Body.String())

	// Each creation is an audit event in the system log.
	sys := e.search(e.admin, "/v1/events?organization_id="+store.SystemOrganizationID+"&action=trail.schema.created&order=asc", 4).records(t)
	if sys[0].Targets[0].Type != "audit_log_schema" || sys[0].Targets[0].ID != "invoice.paid" || sys[0].Metadata["version"] != "1" ||
		sys[1].Metadata["version"] != "2" {
		t.Errorf("audit events: %+v", sys)
	}
}

func TestActorSchemaEndpoints(t *testing.T) {
	e := newEnv(t, withSchemas(t, false))
	expectError(t, e.do("GET", "/v1/actor_schema", e.admin, ""), http.StatusNotFound, "entity_not_found")
	expectError(t, e.do("GET", "/v1/actor_schema/versions", e.admin, ""), http.StatusNotFound, "entity_not_found")
	res := e.do("POST", "/v1/actor_schema", e.admin, `{"metadata":{"type":"object","properties":{"email":{"type":"string"},"role":{"type":"string"}}}}`)
	golden(t, "actor-create", res, res.Body.String())
	e.do("POST", "/v1/actor_schema", e.admin, `{"metadata":{"type":"object","properties":{"email":{"type":"string"}}}}`)
	res = e.do("GET", "/v1/actor_schema", e.admin, "")
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `"version":2`) {
		t.Fatalf("latest actor schema: %d %s", res.Code, res.Body)
	}
	res = e.do("GET", "/v1/actor_schema/versions?order=asc", e.admin, "")
	golden(t, "actor-versions", res, res.Body.String())
	expectError(t, e.do("POST", "/v1/actor_schema", e.admin, `{"targets":[]}`), http.StatusUnprocessableEntity, "invalid_request_parameters")
}

func TestSchemaRoutesOnlyWhenConfigured(t *testing.T) {
	e := newEnv(t)
	expectError(t, e.do("GET", "/audit_logs/actions", e.admin, ""), http.StatusNotFound, "not_found")
	// Versions are not checked without schemas.
	org := e.org("Acme")
	if res := e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 3, "team", nil)); res.Code != http.StatusCreated {
		t.Errorf("event with a version, schemas off: %d %s", res.Code, res.Body)
	}
}

func TestSchemaIngest(t *testing.T) {
	e := newEnv(t, withSchemas(t, false))
	org := e.org("Acme")
	if res := e.do("POST", "/audit_logs/actions/invoice.paid/schemas", e.admin, invoiceSchemaBody); res.Code != http.StatusCreated {
		t.Fatalf("create schema: %d %s", res.Code, res.Body)
	}
	ok := map[string]any{"transactionId": "tx_1"}

	// An event naming its version is validated against it.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 1, "invoice", ok)), http.StatusCreated, `{"success":true}`)
	res := e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 1, "team", map[string]any{"transactionId": 7}))
	golden(t, "event-invalid", res, res.Body.String())
	res = e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 9, "invoice", ok))
	golden(t, "event-unknown-version", res, res.Body.String())
	if n := e.nextSeq(org); n != 2 { // organization created + one event
		t.Fatalf("log size %d after refusals, want 2", n)
	}

	// Without a version: accepted, and recorded as a mismatch when it does
	// not match the latest version.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 0, "invoice", ok)), http.StatusCreated, `{"success":true}`)
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 0, "team", ok)), http.StatusCreated, `{"success":true}`)

	all := e.search(e.admin, "/v1/events?organization_id="+org+"&action=invoice.paid&order=asc", 3)
	for i, raw := range all.Data {
		has := strings.HasSuffix(string(raw), `,"schema_mismatch":true}`)
		if has != (i == 2) {
			t.Errorf("event %d: %s; only the last should carry schema_mismatch", i, raw)
		}
	}
	mm := e.search(e.admin, "/v1/events?organization_id="+org+"&schema_mismatch=true", 1)
	recs := mm.records(t)
	if recs[0].Targets[0].Type != "team" {
		t.Errorf("schema_mismatch=true found %s", mm.Data[0])
	}
	res = e.do("GET", "/v1/events/"+recs[0].ID, e.admin, "")
	if res.Code != http.StatusOK || res.Body.String() != string(mm.Data[0]) {
		t.Errorf("GET /v1/events/%s = %s, want %s", recs[0].ID, res.Body, mm.Data[0])
	}
	// The stored record itself does not carry the flag: it is the Merkle leaf.
	ev, err := e.st.Event(t.Context(), recs[0].ID)
	if err != nil || strings.Contains(string(ev.Record), "schema_mismatch") || !ev.SchemaMismatch {
		t.Errorf("stored record %s (mismatch %v, %v)", ev.Record, ev.SchemaMismatch, err)
	}
	expectError(t, e.do("GET", "/v1/events?organization_id="+org+"&schema_mismatch=yes", e.admin, ""), http.StatusUnprocessableEntity, "invalid_request_parameters")

	metrics := e.operator("/metrics", false).Body.String()
	if !strings.Contains(metrics, `trail_schema_mismatch_total{action="invoice.paid"} 1`) {
		t.Errorf("metrics lack the mismatch:\n%s", metrics)
	}
	if !strings.Contains(metrics, `trail_events_rejected_total{reason="schema"} 2`) {
		t.Errorf("metrics lack the schema rejections")
	}

	// Batches: the same checks, errors by index, nothing stored on a refusal.
	before := e.nextSeq(org)
	res = e.do("POST", "/v1/events/batch", e.admin, batchBody(e.invoiceEvent(org, 1, "invoice", ok), e.invoiceEvent(org, 1, "team", ok), e.invoiceEvent(org, 0, "team", ok)))
	golden(t, "batch-invalid", res, res.Body.String())
	if n := e.nextSeq(org); n != before {
		t.Fatalf("a refused batch stored %d events", n-before)
	}
	res = e.do("POST", "/v1/events/batch", e.admin, batchBody(e.invoiceEvent(org, 1, "invoice", ok), e.invoiceEvent(org, 0, "team", ok)))
	if res.Code != http.StatusCreated {
		t.Fatalf("batch: %d %s", res.Code, res.Body)
	}
	e.search(e.admin, "/v1/events?organization_id="+org+"&schema_mismatch=true", 2)
}

func TestActorSchemaIngest(t *testing.T) {
	e := newEnv(t, withSchemas(t, false))
	org := e.org("Acme")
	e.do("POST", "/audit_logs/actions/invoice.paid/schemas", e.admin, invoiceSchemaBody)
	e.do("POST", "/v1/actor_schema", e.admin, `{"metadata":{"properties":{"email":{"type":"string"}}}}`)
	ok := map[string]any{"transactionId": "tx_1"}
	// The actor has a role (the action's schema) but no email (the deployment's).
	res := e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 1, "invoice", ok))
	b := expectError(t, res, http.StatusBadRequest, "invalid_audit_log_event")
	if len(b.Errors) != 1 || b.Errors[0].Field != "event.actor.metadata.email" || b.Errors[0].Code != "required" {
		t.Errorf("errors %+v", b.Errors)
	}
	// An action without schema: only the actor schema, a mismatch recorded.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")), http.StatusCreated, `{"success":true}`)
	mm := e.search(e.admin, "/v1/events?organization_id="+org+"&schema_mismatch=true", 1)
	if got := mm.actions(t); got[0] != "user.signed_in" {
		t.Errorf("mismatches %v", got)
	}
	if !strings.Contains(e.operator("/metrics", false).Body.String(), `trail_schema_mismatch_total{action="(none)"} 1`) {
		t.Errorf("metrics lack the mismatch of an action without schema")
	}
}

func TestRequireSchemas(t *testing.T) {
	e := newEnv(t, withSchemas(t, true))
	org := e.org("Acme")
	res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in", func(ev map[string]any) {
		ev["occurred_at"] = e.now().Add(-time.Hour).Format(time.RFC3339Nano)
	}))
	golden(t, "event-schema-required", res, res.Body.String())
	e.do("POST", "/audit_logs/actions/invoice.paid/schemas", e.admin, invoiceSchemaBody)
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.invoiceEvent(org, 0, "invoice", map[string]any{"transactionId": "t"})), http.StatusCreated, `{"success":true}`)
	// Trail's own audit events are not subject to it.
	e.search(e.admin, "/v1/events?organization_id="+store.SystemOrganizationID+"&action=trail.schema.created", 1)
}

func TestAppendMismatch(t *testing.T) {
	for _, tc := range []struct {
		rec      string
		mismatch bool
		want     string
	}{
		{`{"id":"evt_1"}`, false, `{"id":"evt_1"}`},
		{`{"id":"evt_1","metadata":{"a":"}"}}`, true, `{"id":"evt_1","metadata":{"a":"}"},"schema_mismatch":true}`},
		{``, true, ``}, // never stored; must not panic
	} {
		got := string(appendMismatch([]byte("prefix:"), store.StoredEvent{Record: []byte(tc.rec), SchemaMismatch: tc.mismatch}))
		if got != "prefix:"+tc.want {
			t.Errorf("appendMismatch(%s, %v) = %s, want prefix:%s", tc.rec, tc.mismatch, got, tc.want)
		}
		if tc.want != "" && !json.Valid([]byte(strings.TrimPrefix(got, "prefix:"))) {
			t.Errorf("appendMismatch(%s) is not JSON: %s", tc.rec, got)
		}
	}
}
