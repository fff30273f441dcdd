package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// exportEnv is an env with exports, on a clock the test moves.
type exportEnv struct {
	*env
	clock *atomic.Int64 // unix nanoseconds
}

func newExportEnv(t *testing.T) *exportEnv {
	clock := &atomic.Int64{}
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	e := newEnv(t, func(cfg *Config, e *env) {
		ctx := context.Background()
		xs, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(e.st.Path()))
		if err != nil {
			t.Fatal(err)
		}
		svc, err := export.NewSQLite(ctx, xs.DB(), export.Config{Exports: xs, Log: e.st, Dir: t.TempDir(), Now: now})
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
		cfg.Now = now
		cfg.Exports = ExportConfig{Service: svc, Links: export.NewLinks([]byte("0123456789abcdef0123456789abcdef"))}
	})
	return &exportEnv{env: e, clock: clock}
}

type exportBodyJSON struct {
	Object    string  `json:"object"`
	ID        string  `json:"id"`
	State     string  `json:"state"`
	URL       *string `json:"url"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	Format    string  `json:"format"`
	Error     string  `json:"error"`
	Progress  struct {
		EventsRead     int64 `json:"events_read"`
		EventsTotal    int64 `json:"events_total"`
		EventsExported int64 `json:"events_exported"`
	} `json:"progress"`
}

const wideRange = `"range_start":"2000-01-01T00:00:00Z","range_end":"2100-01-01T00:00:00Z"`

// waitReady polls GET /audit_logs/exports/{id} until the export leaves pending.
func (e *exportEnv) waitReady(secret, id string) exportBodyJSON {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := e.do("GET", "/audit_logs/exports/"+id, secret, "")
		if res.Code != http.StatusOK {
			e.t.Fatalf("GET export: %d %s", res.Code, res.Body)
		}
		var b exportBodyJSON
		decode(e.t, res, &b)
		if b.State != "pending" {
			return b
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("export %s still pending: %s", id, res.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *exportEnv) createExport(secret, body string) exportBodyJSON {
	e.t.Helper()
	res := e.do("POST", "/audit_logs/exports", secret, body)
	if res.Code != http.StatusCreated {
		e.t.Fatalf("POST /audit_logs/exports: %d %s", res.Code, res.Body)
	}
	var b exportBodyJSON
	decode(e.t, res, &b)
	return b
}

func TestExportLifecycle(t *testing.T) {
	e := newExportEnv(t)
	org := e.org("Acme")
	for _, action := range []string{"user.signed_in", "user.signed_out", "=cmd|' /C calc'!A0"} {
		res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, action))
		if res.Code != http.StatusCreated && res.Code != http.StatusOK {
			t.Fatalf("event: %d %s", res.Code, res.Body)
		}
	}
	exporter, _ := e.key("exporter", []string{access.ScopeExports}, "")
	b := e.createExport(exporter, `{"organization_id":`+quote(org)+`,`+wideRange+`,"actions":["user.signed_in","=cmd|' /C calc'!A0"]}`)
	if b.Object != "audit_log_export" || !strings.HasPrefix(b.ID, "audit_log_export_") || b.State != "pending" || b.URL != nil ||
		b.Format != "csv" || len(b.CreatedAt) != len("2026-11-25T18:43:09.709Z") {
		t.Fatalf("created export %+v", b)
	}
	b = e.waitReady(exporter, b.ID)
	if b.State != "ready" || b.URL == nil || b.Progress.EventsExported != 2 || b.Progress.EventsRead != b.Progress.EventsTotal {
		t.Fatalf("ready export %+v", b)
	}

	// The url downloads the file with no API key.
	u, err := url.Parse(*b.URL)
	if err != nil {
		t.Fatal(err)
	}
	res := e.do("GET", u.RequestURI(), "", "")
	if res.Code != http.StatusOK || !strings.HasPrefix(res.Header().Get("Content-Type"), "text/csv") ||
		!strings.Contains(res.Header().Get("Content-Disposition"), b.ID+".csv") {
		t.Fatalf("download: %d %v %s", res.Code, res.Header(), res.Body)
	}
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" {
		t.Fatalf("downloaded CSV: %v %q", err, rows)
	}
	if got := rows[2][2]; got != "'=cmd|' /C calc'!A0" {
		t.Errorf("the formula action reads %q in the CSV, want it neutralised with an apostrophe", got)
	}

	// Each GET signs a fresh link; an old one works until it expires.
	e.clock.Add(int64(time.Minute))
	again := e.waitReady(exporter, b.ID)
	if *again.URL == *b.URL {
		t.Errorf("a later GET answered the same url")
	}
	if res := e.do("GET", u.RequestURI(), "", ""); res.Code != http.StatusOK {
		t.Errorf("the first link after a minute: %d %s", res.Code, res.Body)
	}
	e.clock.Add(int64(10 * time.Minute))
	expectError(t, e.do("GET", u.RequestURI(), "", ""), http.StatusForbidden, "download_link_expired")
	q := u.Query()
	q.Set("signature", strings.Repeat("A", 43))
	expectError(t, e.do("GET", u.Path+"?"+q.Encode(), "", ""), http.StatusForbidden, "invalid_download_link")
	expectError(t, e.do("GET", u.Path, "", ""), http.StatusForbidden, "invalid_download_link")

	// Requesting an export is audited in the organization's log.
	l := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.export.requested", 1)
	if r := l.records(t)[0]; r.Targets[0].ID != b.ID || r.Targets[0].Type != "audit_log_export" {
		t.Errorf("audit event targets %+v, want the export", r.Targets)
	}
}

func TestExportBadRequests(t *testing.T) {
	e := newExportEnv(t)
	org := e.org("Acme")
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"range end before start", `{"organization_id":"` + org + `","range_start":"2026-02-01T00:00:00Z","range_end":"2026-01-01T00:00:00Z"}`, 400, "invalid_audit_log_export_range_date"},
		{"empty range", `{"organization_id":"` + org + `","range_start":"2026-02-01T00:00:00Z","range_end":"2026-02-01T00:00:00Z"}`, 400, "invalid_audit_log_export_range_date"},
		{"range not a date", `{"organization_id":"` + org + `","range_start":"yesterday","range_end":"2026-01-01T00:00:00Z"}`, 400, "invalid_audit_log_export_range_date"},
		{"range end not a date", `{"organization_id":"` + org + `","range_start":"2026-01-01T00:00:00Z","range_end":"2026-13-01"}`, 400, "invalid_audit_log_export_range_date"},
		{"no range", `{"organization_id":"` + org + `"}`, 400, "invalid_audit_log_export_range_date"},
		{"no organization", `{` + wideRange + `}`, 422, "invalid_request_parameters"},
		{"unknown organization", `{"organization_id":"org_nope",` + wideRange + `}`, 404, "entity_not_found"},
		{"bad format", `{"organization_id":"` + org + `",` + wideRange + `,"format":"xlsx"}`, 422, "invalid_request_parameters"},
		{"unknown field", `{"organization_id":"` + org + `",` + wideRange + `,"actor":"x"}`, 422, "invalid_request_parameters"},
		{"wrong type", `{"organization_id":"` + org + `",` + wideRange + `,"actions":"user.signed_in"}`, 422, "invalid_request_parameters"},
		{"empty value", `{"organization_id":"` + org + `",` + wideRange + `,"targets":[""]}`, 422, "invalid_request_parameters"},
		{"empty actor", `{"organization_id":"` + org + `",` + wideRange + `,"actors":[""]}`, 422, "invalid_request_parameters"},
		{"actors not a list", `{"organization_id":"` + org + `",` + wideRange + `,"actors":"Jon Smith"}`, 422, "invalid_request_parameters"},
		{"too many actor names together", `{"organization_id":"` + org + `",` + wideRange + `,"actors":` + manyNames("a", 60) + `,"actor_names":` + manyNames("b", 60) + `}`, 422, "invalid_request_parameters"},
		{"not JSON", `{"organization_id":`, 400, "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, e.do("POST", "/audit_logs/exports", e.admin, tc.body), tc.status, tc.code)
		})
	}
	expectError(t, e.do("GET", "/audit_logs/exports/audit_log_export_nope", e.admin, ""), http.StatusNotFound, "entity_not_found")

	// WorkOS's documented answer, to the byte, without "errors": the SDKs
	// raise the exception they raise against WorkOS.
	for _, rng := range []string{
		`"range_start":"2026-02-01T00:00:00Z","range_end":"2026-01-01T00:00:00Z"`,
		`"range_start":"2026-02-01T00:00:00Z","range_end":"2026-02-01T00:00:00Z"`,
	} {
		expect(t, e.do("POST", "/audit_logs/exports", e.admin, `{"organization_id":"`+org+`",`+rng+`}`), http.StatusBadRequest,
			`{"message":"Invalid date range","code":"invalid_audit_log_export_range_date"}`)
	}
	if b := expectError(t, e.do("POST", "/audit_logs/exports", e.admin, `{"organization_id":"`+org+`","range_start":"yesterday","range_end":"2026-01-01T00:00:00Z"}`),
		http.StatusBadRequest, "invalid_audit_log_export_range_date"); len(b.Errors) != 0 || !strings.Contains(b.Message, "range_start") {
		t.Errorf("an unparsable range_start: %+v, want a message naming it and no errors", b)
	}
}

func TestExportAccess(t *testing.T) {
	e := newExportEnv(t)
	a, b := e.org("A"), e.org("B")
	onlyB, _ := e.key("only B", []string{access.ScopeExports}, b)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")
	body := `{"organization_id":"` + a + `",` + wideRange + `}`
	expectError(t, e.do("POST", "/audit_logs/exports", reader, body), http.StatusForbidden, "forbidden")
	expectError(t, e.do("POST", "/audit_logs/exports", onlyB, body), http.StatusNotFound, "entity_not_found")
	x := e.createExport(e.admin, body)
	// Another organization's export is not found, whatever its state.
	expectError(t, e.do("GET", "/audit_logs/exports/"+x.ID, onlyB, ""), http.StatusNotFound, "entity_not_found")
	expectError(t, e.do("GET", "/audit_logs/exports/"+x.ID, reader, ""), http.StatusForbidden, "forbidden")
	expectError(t, e.do("GET", "/audit_logs/exports/"+x.ID, "", ""), http.StatusUnauthorized, "unauthorized")
	own := e.createExport(onlyB, `{"organization_id":"`+b+`",`+wideRange+`,"format":"csv"}`)
	if got := e.waitReady(onlyB, own.ID); got.State != "ready" {
		t.Fatalf("own export: %+v", got)
	}
}

// FuzzExportRequest sends arbitrary bodies to POST /audit_logs/exports:
// every answer is 201 or a 4xx with a JSON message, never a 5xx.
func FuzzExportRequest(f *testing.F) {
	f.Add(`{"organization_id":"org_x",` + wideRange + `}`)
	f.Add(`{"organization_id":"org_x","range_start":"2026-01-01T00:00:00Z","range_end":"2025-01-01T00:00:00Z"}`)
	f.Add(`{"organization_id":"org_x",` + wideRange + `,"actions":["a"],"actor_ids":["u"],"actor_names":["n"],"targets":["t"],"format":"ndjson"}`)
	f.Add(`{"range_start":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		// A server per input: inputs must not see each other's state.
		e := newExportEnv(t)
		org := e.org("Fuzz")
		res := e.do("POST", "/audit_logs/exports", e.admin, strings.ReplaceAll(body, "org_x", org))
		if res.Code >= 500 || res.Code != http.StatusCreated && !strings.Contains(res.Body.String(), `"message":`) {
			t.Fatalf("body %q: %d %s", body, res.Code, res.Body)
		}
	})
}

// manyNames is a JSON list of n distinct names.
func manyNames(prefix string, n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%q", fmt.Sprintf("%s%d", prefix, i))
	}
	return "[" + strings.Join(names, ",") + "]"
}

// TestExportActors: WorkOS's deprecated "actors" is the actor-name filter,
// alone or together with actor_names (either name matches).
func TestExportActors(t *testing.T) {
	e := newExportEnv(t)
	org := e.org("Acme")
	for _, name := range []string{"Jon Smith", "Ada Lovelace", "Grace Hopper"} {
		body := e.eventBody(org, "user.signed_in", func(ev map[string]any) {
			ev["actor"] = map[string]any{"id": "user_" + strings.Fields(name)[0], "type": "user", "name": name}
		})
		if res := e.do("POST", "/audit_logs/events", e.admin, body); res.Code != http.StatusCreated && res.Code != http.StatusOK {
			t.Fatalf("event: %d %s", res.Code, res.Body)
		}
	}
	for _, tc := range []struct {
		name, filter string
		want         int64
		wantNames    string
	}{
		{"actors alone", `"actors":["Jon Smith"]`, 1, `["Jon Smith"]`},
		{"actors and actor_names", `"actors":["Jon Smith","Ada Lovelace"],"actor_names":["Ada Lovelace","Grace Hopper"]`, 3, `["Ada Lovelace","Grace Hopper","Jon Smith"]`},
		{"an actor nobody is", `"actors":["Nobody"]`, 0, `["Nobody"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do("POST", "/audit_logs/exports", e.admin, `{"organization_id":"`+org+`",`+wideRange+`,`+tc.filter+`}`)
			if res.Code != http.StatusCreated {
				t.Fatalf("POST /audit_logs/exports: %d %s", res.Code, res.Body)
			}
			if !strings.Contains(res.Body.String(), `"actor_names":`+tc.wantNames) {
				t.Errorf("the export's filter: %s, want actor_names %s", res.Body, tc.wantNames)
			}
			var b exportBodyJSON
			decode(t, res, &b)
			if b = e.waitReady(e.admin, b.ID); b.State != "ready" || b.Progress.EventsExported != tc.want {
				t.Errorf("export %+v, want %d events", b, tc.want)
			}
		})
	}
}
