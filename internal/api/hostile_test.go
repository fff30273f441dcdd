package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The hostile input test: every string (and number) field of every JSON
// endpoint, query parameter, path parameter and portal form, taken from the
// route tables (the Server's patterns, the portal's registrations), is sent
// NUL, a lone surrogate, an over-long string, control characters and
// invisible characters, on SQLite and on PostgreSQL. The answer must be a
// 4xx or a success, never a 5xx. A route without an entry in hostileRoutes
// or hostilePortalRoutes fails the test: new routes must say what they take.

// badString is one hostile value: as a JSON string token, and as the text
// sent in a query, path or form (already decoded; invalid UTF-8 where JSON
// has a lone surrogate).
type badString struct {
	name string
	json string
	text string
}

var badStrings = []badString{
	{"NUL", `"a\u0000b"`, "a\x00b"},
	{"lone surrogate", `"a\ud800b"`, "a\xed\xa0\x80b"},
	{"invalid UTF-8", "\"a\xffb\"", "a\xffb"},
	{"over-long", `"` + strings.Repeat("x", 70_000) + `"`, strings.Repeat("x", 70_000)},
	{"controls", `"a\u001b[2J\r\n\u0007\u007f\u0085b"`, "a\x1b[2J\r\n\a\x7f\u0085b"},
	{"invisible", `"a\u202e\u200b\ufeffb"`, "a\u202e\u200b\ufeffb"},
	// Numbers where text is expected (limits, sequence numbers, sizes).
	{"1e999", `"1e999"`, "1e999"},
	{"huge number", `"99999999999999999999999"`, "99999999999999999999999"},
	{"negative", `"-1"`, "-1"},
}

// badNumbers replace number fields of JSON bodies.
var badNumbers = []badString{
	{"1e999", `1e999`, ""},
	{"-1e999", `-1e999`, ""},
	{"huge integer", `123456789012345678901234567890`, ""},
}

// routeSpec is what one route takes. Path, query and body may hold the
// fixture placeholders {org}, {stream}, {export}, {key}, {action}.
type routeSpec struct {
	path  string     // the request path; path parameters are the {…} segments of the pattern
	query url.Values // valid query parameters, each mutated in turn
	body  string     // a valid JSON body (API) whose string and number fields are mutated
	form  url.Values // a valid form (portal), each field mutated in turn
	// okStatus is the highest status the valid request may get (default
	// 399): a spec must reach the code behind validation.
	okStatus int
}

const hostileEventBody = `{"organization_id":"{org}","event":{"action":"user.signed_in","occurred_at":"{now}",` +
	`"actor":{"id":"user_1","type":"user","name":"Jon","metadata":{"role":"admin","n":1}},` +
	`"targets":[{"id":"team_1","type":"team","name":"Blue","metadata":{"k":"v","m":2.5}}],` +
	`"context":{"location":"203.0.113.7","user_agent":"ua"},"metadata":{"plan":"pro","seats":3},"version":1}}`

const hostileStreamConfig = `{"url":"{receiver}/hook","secret":"0123456789abcdef0123","headers":{"X-Env":"test"}}`

// hostileRoutes covers every route of the API (Server.patterns).
var hostileRoutes = map[string]routeSpec{
	"GET /healthz":      {path: "/healthz"},
	"GET /readyz":       {path: "/readyz"},
	"GET /openapi.json": {path: "/openapi.json"},
	"GET /v1/organizations/{id}/log/tiles/checkpoint":     {path: "/v1/organizations/{org}/log/tiles/checkpoint", okStatus: 404},
	"GET /v1/organizations/{id}/log/tiles/tile/{path...}": {path: "/v1/organizations/{org}/log/tiles/tile/0/000", okStatus: 404},
	"GET /v1/log/key":  {path: "/v1/log/key"},
	"GET /v1/log/keys": {path: "/v1/log/keys"},

	"POST /audit_logs/events": {path: "/audit_logs/events", body: hostileEventBody},
	"POST /v1/events/batch":   {path: "/v1/events/batch", body: `{"events":[` + hostileEventBody + `]}`},
	"GET /v1/events": {path: "/v1/events", query: url.Values{"organization_id": {"{org}"}, "range_start": {"2000-01-01T00:00:00Z"},
		"range_end": {"2100-01-01T00:00:00Z"}, "action": {"user.signed_in"}, "actor_id": {"user_1"}, "actor_name": {"Jon"},
		"target_type": {"team"}, "target_id": {"team_1"}, "q": {"blue"}, "limit": {"5"}, "order": {"asc"}, "schema_mismatch": {"true"}}},
	"GET /v1/events/{id}": {path: "/v1/events/evt_01JDGOLDEN0000000000000000", okStatus: 404},
	"GET /v1/events/stream": {path: "/v1/events/stream", query: url.Values{"organization_id": {"{org}"}, "action": {"user.signed_in"},
		"actor_id": {"user_1"}, "actor_name": {"Jon"}, "target_type": {"team"}, "target_id": {"team_1"}, "q": {"blue"}, "since_seq": {"0"}}},

	"POST /organizations":     {path: "/organizations", body: `{"name":"Org","external_id":"ext_1","domains":[],"metadata":{},"allow_profiles_outside_organization":false}`},
	"GET /organizations":      {path: "/organizations", query: url.Values{"limit": {"5"}, "order": {"asc"}, "after": {"{org}"}, "domains": {"example.com"}}},
	"GET /organizations/{id}": {path: "/organizations/{org}"},
	// The fixture organization has a stream and an export running: its
	// deletion is refused (409), so the other cases keep it.
	"DELETE /organizations/{id}":                              {path: "/organizations/{org}", query: url.Values{"force": {"false"}, "final_bundle": {"false"}}, okStatus: 409},
	"PUT /organizations/{id}":                                 {path: "/organizations/{org}", body: `{"name":"Acme","external_id":"ext_fixture","metadata":{},"domain_data":[]}`},
	"PATCH /organizations/{id}":                               {path: "/organizations/{org}", body: `{"name":"Acme","external_id":"ext_fixture"}`},
	"GET /v1/organizations/{id}/deletion":                     {path: "/v1/organizations/{org}/deletion", okStatus: 404},
	"GET /v1/organizations/{id}/archive":                      {path: "/v1/organizations/{org}/archive"},
	"PUT /v1/organizations/{id}/archive":                      {path: "/v1/organizations/{org}/archive", body: `{"enabled":true}`},
	"GET /organizations/external_id/{external_id}":            {path: "/organizations/external_id/ext_fixture"},
	"GET /organizations/{id}/{resource}":                      {path: "/organizations/{org}/audit_logs_retention"},
	"PUT /organizations/{id}/audit_logs_retention":            {path: "/organizations/{org}/audit_logs_retention", body: `{"retention_period_in_days":30}`},
	"POST /v1/api_keys":                                       {path: "/v1/api_keys", body: `{"name":"k","scopes":["events:read"],"organization_id":"{org}"}`},
	"GET /v1/api_keys":                                        {path: "/v1/api_keys", query: url.Values{"organization_id": {"{org}"}, "limit": {"5"}, "order": {"asc"}}},
	"GET /v1/api_keys/{id}":                                   {path: "/v1/api_keys/{key}"},
	"DELETE /v1/api_keys/{id}":                                {path: "/v1/api_keys/{key}"},
	"GET /v1/organizations/{id}/log/checkpoint":               {path: "/v1/organizations/{org}/log/checkpoint", query: url.Values{"size": {"1"}}, okStatus: 404},
	"GET /v1/organizations/{id}/log/proof/inclusion":          {path: "/v1/organizations/{org}/log/proof/inclusion", query: url.Values{"seq": {"0"}, "size": {"1"}}, okStatus: 404},
	"GET /v1/organizations/{id}/log/proof/consistency":        {path: "/v1/organizations/{org}/log/proof/consistency", query: url.Values{"from": {"1"}, "to": {"1"}}, okStatus: 404},
	"GET /v1/organizations/{id}/log/records":                  {path: "/v1/organizations/{org}/log/records", query: url.Values{"from": {"0"}, "to": {"1"}}},
	"GET /v1/organizations/{id}/log/bundle":                   {path: "/v1/organizations/{org}/log/bundle", query: url.Values{"from": {"0"}, "to": {"1"}}, okStatus: 404},
	"POST /v1/organizations/{id}/log_streams":                 {path: "/v1/organizations/{org}/log_streams", body: `{"type":"webhook","name":"S","start":"now","config":` + hostileStreamConfig + `}`},
	"GET /v1/organizations/{id}/log_streams":                  {path: "/v1/organizations/{org}/log_streams", query: url.Values{"limit": {"5"}, "order": {"asc"}}},
	"GET /v1/organizations/{id}/log_streams/{stream}":         {path: "/v1/organizations/{org}/log_streams/{stream}"},
	"PATCH /v1/organizations/{id}/log_streams/{stream}":       {path: "/v1/organizations/{org}/log_streams/{stream}", body: `{"name":"S2","config":` + hostileStreamConfig + `}`},
	"DELETE /v1/organizations/{id}/log_streams/{stream}":      {path: "/v1/organizations/{org}/log_streams/{stream}"},
	"POST /v1/organizations/{id}/log_streams/{stream}/pause":  {path: "/v1/organizations/{org}/log_streams/{stream}/pause"},
	"POST /v1/organizations/{id}/log_streams/{stream}/resume": {path: "/v1/organizations/{org}/log_streams/{stream}/resume"},
	"POST /v1/organizations/{id}/log_streams/{stream}/test":   {path: "/v1/organizations/{org}/log_streams/{stream}/test"},
	"POST /audit_logs/exports": {path: "/audit_logs/exports", body: `{"organization_id":"{org}","range_start":"2000-01-01T00:00:00Z","range_end":"2100-01-01T00:00:00Z",` +
		`"actions":["user.signed_in"],"actor_names":["Jon"],"actor_ids":["user_1"],"targets":["team"],"format":"csv"}`},
	"GET /audit_logs/exports/{id}":          {path: "/audit_logs/exports/{export}"},
	"GET /audit_logs/exports/{id}/download": {path: "/audit_logs/exports/{export}/download", query: url.Values{"expires": {"1"}, "signature": {"abc"}}, okStatus: 403},
	"POST /audit_logs/actions/{action}/schemas": {path: "/audit_logs/actions/{action}/schemas",
		body: `{"actor":{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}},"targets":[{"type":"team"}],"metadata":{"type":"object"}}`},
	"GET /audit_logs/actions":                  {path: "/audit_logs/actions", query: url.Values{"limit": {"5"}, "order": {"asc"}}},
	"GET /audit_logs/actions/{action}/schemas": {path: "/audit_logs/actions/{action}/schemas", query: url.Values{"limit": {"5"}}},
	"POST /v1/actor_schema":                    {path: "/v1/actor_schema", body: `{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}}`},
	"GET /v1/actor_schema":                     {path: "/v1/actor_schema"},
	"GET /v1/actor_schema/versions":            {path: "/v1/actor_schema/versions", query: url.Values{"limit": {"5"}}},
	"POST /portal/generate_link": {path: "/portal/generate_link",
		body: `{"organization":"{org}","intent":"audit_logs","return_url":"https://app.example.com/x","admin_emails":["alice@example.com"]}`},
	"POST /portal/revoke_link":                      {path: "/portal/revoke_link", body: `{"organization":"{org}","external_user_id":"user_1"}`},
	"DELETE /v1/organizations/{id}/portal_sessions": {path: "/v1/organizations/{org}/portal_sessions"},
	"GET /v1/organizations/{id}/portal_settings":    {path: "/v1/organizations/{org}/portal_settings"},
	"PUT /v1/organizations/{id}/portal_settings": {path: "/v1/organizations/{org}/portal_settings",
		body: `{"product_name":"Acme Audit","accent":"#0a7e3b","logo":"PHN2Zy8+","logo_type":"image/svg+xml","frame_origins":["https://app.example.com"]}`},
	"GET /v1/organizations/{id}/privacy_policy": {path: "/v1/organizations/{org}/privacy_policy"},
	"PUT /v1/organizations/{id}/privacy_policy": {path: "/v1/organizations/{org}/privacy_policy",
		body: `{"fields":{"actor.id":"hmac","metadata.email":"redact"},"actions":{"user.*":{"actor.name":"redact"}}}`},
	"DELETE /v1/organizations/{id}/privacy_policy":  {path: "/v1/organizations/{org}/privacy_policy"},
	"POST /v1/organizations/{id}/hmac":              {path: "/v1/organizations/{org}/hmac", body: `{"value":"alice@example.com"}`},
	"POST /v1/organizations/{id}/erasures":          {path: "/v1/organizations/{org}/erasures", body: `{"actor_id":"user_1","reason":"GDPR","request_id":"r1"}`},
	"GET /v1/organizations/{id}/erasures/{erasure}": {path: "/v1/organizations/{org}/erasures/{erasure}"},
	// Everything else under /portal/ is the portal's: hostilePortalRoutes.
	"/portal/": {path: "/portal/", okStatus: 499},
}

// hostilePortalRoutes covers every route of the Admin Portal (its
// mux.Handle registrations in internal/portal).
var hostilePortalRoutes = map[string]routeSpec{
	"GET /portal/assets/{name}": {path: "/portal/assets/portal.css", okStatus: 404},
	"GET /portal/launch":        {path: "/portal/launch", query: url.Values{"secret": {"ptl_x"}}, okStatus: 499},
	"POST /portal/launch":       {path: "/portal/launch", form: url.Values{"secret": {"ptl_x"}, "csrf": {"x"}}, okStatus: 499},
	"GET /portal/{$}":           {path: "/portal/"},
	"GET /portal/events": {path: "/portal/events", query: url.Values{"from": {"2000-01-01"}, "to": {"2100-01-01"}, "action": {"user.signed_in"},
		"actor_id": {"user_1"}, "actor_name": {"Jon"}, "target_type": {"team"}, "target_id": {"team_1"}, "q": {"blue"}, "trail": {"hide"}}},
	"GET /portal/events/histogram.svg": {path: "/portal/events/histogram.svg", query: url.Values{"from": {"2000-01-01"}, "to": {"2100-01-01"},
		"action": {"user.signed_in"}, "actor_id": {"user_1"}, "q": {"blue"}, "trail": {"hide"}, "size": {"phone"}, "theme": {"dark"}}},
	"GET /portal/events/{id}": {path: "/portal/events/evt_01JDGOLDEN0000000000000000", okStatus: 404},
	"GET /portal/live":        {path: "/portal/live", query: url.Values{"action": {"user.signed_in"}, "actor_id": {"user_1"}, "q": {"blue"}}},
	"GET /portal/live/stream": {path: "/portal/live/stream", query: url.Values{"action": {"user.signed_in"}, "actor_id": {"user_1"},
		"actor_name": {"Jon"}, "target_type": {"team"}, "target_id": {"team_1"}, "q": {"blue"}}},
	"GET /portal/integrity":        {path: "/portal/integrity"},
	"GET /portal/integrity/{file}": {path: "/portal/integrity/checkpoint.txt", okStatus: 404},
	"POST /portal/logout":          {path: "/portal/logout", form: url.Values{}},
	"POST /portal/exports": {path: "/portal/exports", form: url.Values{"from": {"2000-01-01"}, "to": {"2100-01-01"}, "action": {"user.signed_in"},
		"actor_id": {"user_1"}, "actor_name": {"Jon"}, "target_type": {"team"}}},
	"GET /portal/exports/{id}":          {path: "/portal/exports/{export}"},
	"GET /portal/exports/{id}/status":   {path: "/portal/exports/{export}/status"},
	"GET /portal/exports/{id}/download": {path: "/portal/exports/{export}/download", okStatus: 499},
	"GET /portal/streams":               {path: "/portal/streams", query: url.Values{"done": {"created"}}},
	"GET /portal/streams/new":           {path: "/portal/streams/new", query: url.Values{"type": {"webhook"}}},
	"POST /portal/streams": {path: "/portal/streams", form: url.Values{"type": {"webhook"}, "name": {"S"}, "start": {"now"},
		"url": {"{receiver}/hook"}, "secret": {"0123456789abcdef0123"}, "headers": {"X-Env: test"}}},
	"GET /portal/streams/{id}":      {path: "/portal/streams/{stream}", query: url.Values{"done": {"created"}}},
	"GET /portal/streams/{id}/edit": {path: "/portal/streams/{stream}/edit"},
	"POST /portal/streams/{id}/edit": {path: "/portal/streams/{stream}/edit", form: url.Values{"name": {"S2"},
		"url": {"{receiver}/hook"}, "secret": {""}, "headers": {"X-Env: test"}}},
	"POST /portal/streams/{id}/test":   {path: "/portal/streams/{stream}/test", form: url.Values{}},
	"POST /portal/streams/{id}/pause":  {path: "/portal/streams/{stream}/pause", form: url.Values{}},
	"POST /portal/streams/{id}/resume": {path: "/portal/streams/{stream}/resume", form: url.Values{}},
	"GET /portal/streams/{id}/delete":  {path: "/portal/streams/{stream}/delete"},
	"POST /portal/streams/{id}/delete": {path: "/portal/streams/{stream}/delete", form: url.Values{}},
	// The viewer's brand files and the host page's embed script.
	"GET /portal/brand/{file}": {path: "/portal/brand/accent-1d4ed8.css"},
	"GET /portal/embed.js":     {path: "/portal/embed.js"},
}

// hostileStore is what the whole server runs on; both backends are one.
type hostileStore interface {
	store.Store
	store.StreamStore
	store.RetentionStore
	store.SchemaStore
	store.PrivacyStore
	portal.Store
	ledger.Storage
	store.OrganizationLifecycle
	store.ArchiveStore
}

// hostileEnv is the whole server (every feature, the real portal) on one
// backend, behind a real HTTP listener.
type hostileEnv struct {
	t         *testing.T
	api       *Server
	oldStream string // the stream fixture the portal's cases deleted
	srv       *httptest.Server
	admin     string
	fixtures  map[string]string
	// Admin Portal sessions, for the audit_logs and log_streams intents,
	// with their CSRF tokens.
	portalLogs, portalStreams *http.Client
	csrfLogs, csrfStreams     string
}

func newHostileEnv(t *testing.T, backend string) *hostileEnv {
	ctx := context.Background()
	var st hostileStore
	var svc *export.Service
	var exports store.ExportStore
	var onCommit func()
	dir := t.TempDir()
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, filepath.Join(dir, "trail.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ix := ingest.NewIndexer(s, ingest.IndexerOptions{Interval: 10 * time.Millisecond}, nil, nil)
		ix.Start(ctx)
		t.Cleanup(ix.Stop)
		onCommit = ix.Wake
		xs, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(s.Path()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { xs.Close() })
		if svc, err = export.NewSQLite(ctx, xs.DB(), export.Config{Exports: xs, Log: s, Dir: filepath.Join(dir, "exports")}); err != nil {
			t.Fatal(err)
		}
		st, exports = s, xs
	case "postgres":
		s, err := postgres.Open(ctx, pgtest.New(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if svc, err = export.NewPostgres(ctx, s.Pool(), export.Config{Exports: s, Log: s, Dir: filepath.Join(dir, "exports")}); err != nil {
			t.Fatal(err)
		}
		st, exports = s, s
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	com := ingest.New(st, ingest.Options{OnCommit: onCommit}, nil, nil)
	com.Start()
	t.Cleanup(com.Stop)
	signer, err := ledger.LoadOrCreateSigner(dir, "test.example")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &hostileEnv{t: t, fixtures: map[string]string{"{action}": "user.signed_in"}}
	tail := livetail.NewHub(st, livetail.Options{})
	t.Cleanup(tail.Close)
	streams := streamadmin.New(streamadmin.Config{Store: st, Log: st, Records: st,
		Codec: stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))})
	audit := selfaudit.New(com, selfaudit.Config{})
	p, err := portal.New(portal.Config{Store: st, Ledger: st, VerifierKey: signer.VerifierKey(), BaseURL: "http://trail.test",
		Tail: tail, TailStream: livetail.StreamOptions{MaxDuration: time.Millisecond}, // a stream answers until it ends: here, at once
		SessionKey: keys.Key("trail portal sessions v1"), Exports: svc, Streams: streams, Audit: audit.RecordPortal})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(st, com, Config{
		Audit:     audit,
		Log:       LogConfig{Storage: st, VerifierKey: signer.VerifierKey(), Keys: plainKeys(t, signer.VerifierKey())},
		Retention: RetentionConfig{Store: st},
		Streams:   StreamsConfig{Manager: streams},
		Exports:   ExportConfig{Service: svc, Links: export.NewLinks(keys.Key("trail export links v1"))},
		Schemas:   schema.NewRegistry(st, schema.Options{}),
		Portal:    PortalConfig{Handler: p, Links: p, Settings: st},
		// A live tail answers until it is ended: here, at once.
		Tail:    TailConfig{Hub: tail, MaxDuration: time.Millisecond},
		Privacy: privacyFor(t, st),
		Lifecycle: LifecycleConfig{Store: st, Archive: st,
			Deleter: orgdelete.New(orgdelete.Config{Store: st, Exports: exports, ExportPath: svc.Path, Audit: audit})},
	})
	srv.SetReady(true)
	e.api = srv
	e.srv = httptest.NewServer(srv)
	t.Cleanup(e.srv.Close)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(receiver.Close)
	e.fixtures["{receiver}"] = receiver.URL

	secret, hash, prefix := access.Generate()
	if err := st.CreateAPIKey(ctx, store.APIKey{ID: access.NewKeyID(time.Now()), Name: "admin", Hash: hash, Prefix: prefix,
		Scopes: []string{access.ScopeAdmin}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.admin = secret
	e.fixtures["{org}"] = e.create("POST", "/organizations", `{"name":"Acme","external_id":"ext_fixture"}`, "id")
	e.fixtures["{stream}"] = e.create("POST", "/v1/organizations/{org}/log_streams", `{"type":"webhook","config":`+hostileStreamConfig+`}`, "id")
	e.fixtures["{export}"] = e.create("POST", "/audit_logs/exports", `{"organization_id":"{org}",`+wideRange+`}`, "id")
	e.create("POST", "/audit_logs/actions/user.signed_in/schemas", `{"targets":[{"type":"team"}],"metadata":{"type":"object"}}`, "")
	e.create("POST", "/v1/actor_schema", `{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}}`, "")
	e.create("POST", "/audit_logs/events", hostileEventBody, "")
	e.fixtures["{key}"] = e.create("POST", "/v1/api_keys", `{"name":"k","scopes":["events:read"]}`, "id")
	e.fixtures["{erasure}"] = e.create("POST", "/v1/organizations/{org}/erasures", `{"actor_id":"user_1","reason":"GDPR"}`, "id")
	e.portalLogs, e.csrfLogs = e.openPortal("audit_logs", "/portal/events")
	e.portalStreams, e.csrfStreams = e.openPortal("log_streams", "/portal/streams")
	return e
}

// fill replaces the fixture placeholders in s.
func (e *hostileEnv) fill(s string) string {
	for k, v := range e.fixtures {
		s = strings.ReplaceAll(s, k, v)
	}
	return strings.ReplaceAll(s, "{now}", time.Now().UTC().Add(-time.Minute).Format(time.RFC3339))
}

func (e *hostileEnv) do(c *http.Client, method, target, contentType string, body []byte, admin bool) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+e.admin)
	} else {
		// As a browser on the portal's own pages says of its requests
		// (the link page's form is accepted only same-origin).
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, truncate(target, 200), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b)
}

// create sends a valid request and returns the named field of its answer.
func (e *hostileEnv) create(method, path, body, field string) string {
	e.t.Helper()
	code, res := e.do(http.DefaultClient, method, e.fill(path), "application/json", []byte(e.fill(body)), true)
	if code >= 300 {
		e.t.Fatalf("fixture %s %s: %d %s", method, path, code, res)
	}
	if field == "" {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(res), &m); err != nil {
		e.t.Fatalf("fixture %s: %v", path, err)
	}
	return fmt.Sprint(m[field])
}

var (
	csrfInput  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	formTag    = regexp.MustCompile(`(?s)<form[^>]*method="post"[^>]*action="([^"]+)"(.*?)</form>`)
	hiddenPair = regexp.MustCompile(`name="([^"]+)" value="([^"]*)"`)
)

// openPortal starts an Admin Portal session for both intents, by a link
// generated through the API, opened as a browser would (following a
// confirmation form when the link page has one).
func (e *hostileEnv) openPortal(intent, page string) (*http.Client, string) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	link := e.create("POST", "/portal/generate_link", `{"organization":"{org}","intent":"`+intent+`"}`, "link")
	target := strings.TrimPrefix(link, "http://trail.test")
	code, body := e.do(c, "GET", target, "", nil, false)
	if code == http.StatusOK {
		if m := formTag.FindStringSubmatch(body); m != nil {
			form := url.Values{}
			for _, p := range hiddenPair.FindAllStringSubmatch(m[2], -1) {
				form.Set(p[1], p[2])
			}
			code, body = e.do(c, "POST", m[1], "application/x-www-form-urlencoded", []byte(form.Encode()), false)
		}
	}
	if code != http.StatusSeeOther {
		e.t.Fatalf("opening the portal link: %d %s", code, truncate(body, 300))
	}
	_, body = e.do(c, "GET", page, "", nil, false)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no CSRF token on %s: %s", page, truncate(body, 300))
	}
	return c, m[1]
}

// portalClient is the session a portal path needs, and its CSRF token.
func (e *hostileEnv) portalClient(path string) (*http.Client, string) {
	if strings.HasPrefix(path, "/portal/streams") {
		return e.portalStreams, e.csrfStreams
	}
	return e.portalLogs, e.csrfLogs
}

// portalPatterns reads the portal's route table: the patterns of its
// mux.Handle and mux.HandleFunc calls.
func portalPatterns(t *testing.T) []string {
	files, err := filepath.Glob("../portal/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("portal sources: %v", err)
	}
	re := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+ /portal[^"]*)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

func TestHostileInput(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testHostileInput(t, backend) })
	}
}

func testHostileInput(t *testing.T, backend string) {
	e := newHostileEnv(t, backend)
	// The route tables and the specs must match: a new route needs a spec.
	var apiRoutes []string
	for p := range e.api.patterns {
		apiRoutes = append(apiRoutes, p)
	}
	checkCovered(t, "API route", apiRoutes, hostileRoutes)
	checkCovered(t, "portal route", portalPatterns(t), hostilePortalRoutes)

	var cases []hostileCase
	for _, p := range sortedRoutes(hostilePortalRoutes) {
		cases = append(cases, e.cases(p, hostilePortalRoutes[p], true)...)
	}
	portalCases := len(cases)
	for _, p := range sortedRoutes(hostileRoutes) {
		cases = append(cases, e.cases(p, hostileRoutes[p], false)...)
	}
	failures, bad := 0, 0
	for i, c := range cases {
		if i == portalCases {
			// The portal's cases deleted the stream: a new one for the API's.
			e.oldStream = e.fixtures["{stream}"]
			e.fixtures["{stream}"] = e.create("POST", "/v1/organizations/{org}/log_streams", `{"type":"webhook","config":`+hostileStreamConfig+`}`, "id")
			for j := i; j < len(cases); j++ {
				cases[j] = e.refill(cases[j])
			}
			c = cases[i]
		}
		client := http.DefaultClient
		if c.portal {
			client, _ = e.portalClient(c.target)
		}
		code, body := e.do(client, c.method, c.target, c.contentType, c.body, !c.portal)
		switch {
		case code >= 500:
			failures++
			t.Errorf("%s, %s = %s: %d %s", c.route, c.field, c.value, code, truncate(body, 300))
		case c.valid && code > c.okStatus:
			failures++
			t.Errorf("%s, the valid request: %d %s (the spec must reach past validation)", c.route, code, truncate(body, 300))
		}
		if !c.valid {
			bad++
		}
	}
	t.Logf("%s: %d API and %d portal routes, %d hostile requests (and %d valid ones), %d failures",
		backend, len(hostileRoutes), len(hostilePortalRoutes), bad, len(cases)-bad, failures)
}

// refill re-generates c's target after a fixture changed.
func (e *hostileEnv) refill(c hostileCase) hostileCase {
	if old := e.oldStream; old != "" {
		c.target = strings.ReplaceAll(c.target, old, e.fixtures["{stream}"])
	}
	return c
}

func checkCovered(t *testing.T, what string, routes []string, specs map[string]routeSpec) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r] = true
		if _, ok := specs[r]; !ok {
			t.Errorf("%s %q has no entry in the hostile input test: add what it takes", what, r)
		}
	}
	for r := range specs {
		if !seen[r] {
			t.Errorf("the hostile input test has an entry for %q, which is no %s any more", r, what)
		}
	}
}

// sortedRoutes orders routes so that those changing what later ones need
// (a deletion, the portal's logout, a schema) come last.
func sortedRoutes(specs map[string]routeSpec) []string {
	rank := func(p string) int {
		switch {
		case strings.HasSuffix(p, "/logout"):
			return 3
		case strings.HasPrefix(p, "DELETE ") && strings.Contains(p, "portal_sessions"):
			return 3
		case strings.HasPrefix(p, "DELETE ") || strings.HasSuffix(p, "/delete") && strings.HasPrefix(p, "POST "):
			return 2
		case strings.HasPrefix(p, "POST ") && strings.Contains(p, "schema"):
			return 2 // new schema versions (hostile property names) would refuse the events of later cases
		}
		return 1
	}
	var out []string
	for p := range specs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// hostileCase is one request of the hostile input test.
type hostileCase struct {
	route, field, value string
	method, target      string
	contentType         string
	body                []byte
	portal              bool
	valid               bool // the spec's valid request
	okStatus            int
}

// cases generates the requests of one route.
func (e *hostileEnv) cases(pattern string, spec routeSpec, portal bool) []hostileCase {
	method, _, ok := strings.Cut(pattern, " ")
	if !ok { // a pattern for every method
		method = "GET"
	}
	okStatus := spec.okStatus
	if okStatus == 0 {
		okStatus = 399
	}
	base := hostileCase{route: pattern, method: method, portal: portal, okStatus: okStatus}
	query := func(q url.Values) string {
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	}
	fillValues := func(v url.Values) url.Values {
		out := url.Values{}
		for k, vs := range v {
			for _, s := range vs {
				out.Add(k, e.fill(s))
			}
		}
		return out
	}
	q := fillValues(spec.query)
	form := fillValues(spec.form)
	if portal && spec.form != nil {
		_, csrf := e.portalClient(spec.path)
		form.Set("csrf", csrf)
	}
	var body []byte
	switch {
	case spec.body != "":
		body = []byte(e.fill(spec.body))
		base.contentType = "application/json"
	case spec.form != nil:
		body = []byte(form.Encode())
		base.contentType = "application/x-www-form-urlencoded"
	}
	var out []hostileCase
	valid := base
	valid.field, valid.value, valid.valid = "(none)", "valid", true
	valid.target, valid.body = e.fill(spec.path)+query(q), body
	out = append(out, valid)

	// Path parameters: the segments of the path that are {…} in the pattern.
	pat := pattern[strings.IndexByte(pattern, '/'):]
	patSegs, pathSegs := strings.Split(pat, "/"), strings.Split(e.fill(spec.path), "/")
	for i, seg := range patSegs {
		if !strings.HasPrefix(seg, "{") || seg == "{$}" || i >= len(pathSegs) {
			continue
		}
		for _, bad := range badStrings {
			segs := slices.Clone(pathSegs)
			segs[i] = url.PathEscape(bad.text)
			c := base
			c.field, c.value = "path "+seg, bad.name
			c.target, c.body = strings.Join(segs, "/")+query(q), body
			out = append(out, c)
		}
	}
	// Query parameters.
	for k := range q {
		for _, bad := range badStrings {
			q2 := fillValues(q)
			q2.Set(k, bad.text)
			c := base
			c.field, c.value = "query "+k, bad.name
			c.target, c.body = e.fill(spec.path)+query(q2), body
			out = append(out, c)
		}
	}
	// Form fields.
	for k := range form {
		if k == "csrf" {
			continue
		}
		for _, bad := range badStrings {
			f2 := fillValues(form)
			f2.Set(k, bad.text)
			c := base
			c.field, c.value = "form "+k, bad.name
			c.target, c.body = e.fill(spec.path)+query(q), []byte(f2.Encode())
			out = append(out, c)
		}
	}
	// JSON fields: every string and number leaf.
	if spec.body != "" {
		for _, leaf := range jsonLeaves(e.t, body) {
			values := badStrings
			if leaf.number {
				values = badNumbers
			}
			for _, bad := range values {
				c := base
				c.field, c.value = "body "+leaf.path, bad.name
				if leaf.key {
					c.field = "body key of " + leaf.path
				}
				c.target, c.body = e.fill(spec.path)+query(q), replaceLeaf(e.t, body, leaf, bad.json)
				out = append(out, c)
			}
		}
	}
	return out
}

type jsonLeaf struct {
	path   string
	number bool
	key    bool // the key of the member at path, not its value
}

// jsonLeaves lists the string and number leaves of body by path.
func jsonLeaves(t *testing.T, body []byte) []jsonLeaf {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("spec body %s: %v", body, err)
	}
	var out []jsonLeaf
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				out = append(out, jsonLeaf{path: path + "." + k, key: true})
				walk(c, path+"."+k)
			}
		case []any:
			for i, c := range x {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case string:
			out = append(out, jsonLeaf{path: path})
		case json.Number:
			out = append(out, jsonLeaf{path: path, number: true})
		}
	}
	walk(v, "")
	sort.Slice(out, func(i, j int) bool {
		if out[i].path != out[j].path {
			return out[i].path < out[j].path
		}
		return !out[i].key
	})
	return out
}

const sentinel = "\x01hostile\x01"

// replaceLeaf returns body with the leaf at path (or its key) replaced by
// the raw JSON token bad.
func replaceLeaf(t *testing.T, body []byte, leaf jsonLeaf, bad string) []byte {
	path := leaf.path
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var set func(v any, path string) any
	set = func(v any, p string) any {
		if p == path && !leaf.key {
			return sentinel
		}
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if leaf.key && p+"."+k == path {
					delete(x, k)
					x[sentinel] = c
					continue
				}
				x[k] = set(c, p+"."+k)
			}
		case []any:
			for i, c := range x {
				x[i] = set(c, fmt.Sprintf("%s[%d]", p, i))
			}
		}
		return v
	}
	v = set(v, "")
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(sentinel)
	if !bytes.Contains(b, quoted) {
		t.Fatalf("leaf %s not found in %s", path, body)
	}
	return bytes.Replace(b, quoted, []byte(bad), 1)
}
