package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// env is a Server on a real SQLite store behind the real group committer
// and search indexer.
type env struct {
	t     *testing.T
	st    *sqlite.Store
	store store.Store // what the server uses (st, or a wrapper)
	com   *ingest.Committer
	srv   *Server
	reg   *prometheus.Registry
	logs  *syncBuffer
	now   func() time.Time // the server's clock; every time a test sends comes from it

	admin string // secret of an unrestricted admin key

	subOverride Submitter // set by options that inject faults
}

type envOption func(*Config, *env)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e := &env{t: t, st: st, store: st, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	ix := ingest.NewIndexer(st, ingest.IndexerOptions{Interval: 10 * time.Millisecond}, nil, nil)
	e.com = ingest.New(st, ingest.Options{OnCommit: ix.Wake}, nil, nil)
	e.com.Start()
	ix.Start(ctx)
	t.Cleanup(func() {
		e.com.Stop()
		ix.Stop()
		st.Close()
	})
	cfg := Config{
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
		Gatherer:   e.reg,
		AccessLog:  true,
	}
	for _, o := range opts {
		o(&cfg, e)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e.now = cfg.Now
	var sub Submitter = e.com
	if e.subOverride != nil {
		sub = e.subOverride
	}
	e.srv = New(e.store, sub, cfg)
	e.srv.SetReady(true)
	e.admin, _ = e.key("bootstrap admin", []string{access.ScopeAdmin}, "")
	return e
}

// key creates an API key directly in the store and returns its secret and id.
func (e *env) key(name string, scopes []string, org string) (secret, id string) {
	e.t.Helper()
	secret, hash, prefix := access.Generate()
	id = access.NewKeyID(time.Now())
	err := e.st.CreateAPIKey(context.Background(), store.APIKey{
		ID: id, Name: name, Hash: hash, Prefix: prefix, Scopes: scopes, OrganizationID: org, CreatedAt: time.Now(),
	})
	if err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	return secret, id
}

// org creates an organization through the API and returns its id.
func (e *env) org(name string) string {
	e.t.Helper()
	res := e.do("POST", "/organizations", e.admin, `{"name":`+quote(name)+`}`)
	if res.Code != http.StatusCreated {
		e.t.Fatalf("create organization: %d %s", res.Code, res.Body)
	}
	var o struct{ ID string }
	decode(e.t, res, &o)
	return o.ID
}

// do sends one request through the server. headers are name, value pairs.
// operator answers a GET on the operator listener (OperatorHandler).
func (e *env) operator(path string, pprof bool) *httptest.ResponseRecorder {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.srv.OperatorHandler(pprof).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func (e *env) do(method, path, secret, body string, headers ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

// nextSeq is the log size of org.
func (e *env) nextSeq(org string) int64 {
	e.t.Helper()
	n, err := e.st.NextSeq(context.Background(), org)
	if err != nil {
		e.t.Fatalf("NextSeq(%s): %v", org, err)
	}
	return n
}

// search polls GET path until it lists want events (the search index lags
// acceptance by design), and returns the last list.
func (e *env) search(secret, path string, want int) eventListBody {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := e.do("GET", path, secret, "")
		if res.Code != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", path, res.Code, res.Body)
		}
		var l eventListBody
		decode(e.t, res, &l)
		if len(l.Data) == want {
			return l
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("GET %s: %d events after a minute, want %d: %s", path, len(l.Data), want, res.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type eventListBody struct {
	Object       string            `json:"object"`
	Data         []json.RawMessage `json:"data"`
	ListMetadata struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	} `json:"list_metadata"`
}

// record is the part of a stored record the tests look at.
type record struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Seq            int64  `json:"seq"`
	Action         string `json:"action"`
	OccurredAt     string `json:"occurred_at"`
	Actor          struct {
		ID, Type, Name string
	} `json:"actor"`
	Targets []struct {
		ID, Type, Name string
	} `json:"targets"`
	Context struct {
		Location  string `json:"location"`
		UserAgent string `json:"user_agent"`
	} `json:"context"`
	Metadata map[string]any `json:"metadata"`
}

func (l eventListBody) records(t *testing.T) []record {
	t.Helper()
	out := make([]record, len(l.Data))
	for i, d := range l.Data {
		if err := json.Unmarshal(d, &out[i]); err != nil {
			t.Fatalf("record %s: %v", d, err)
		}
	}
	return out
}

func (l eventListBody) actions(t *testing.T) []string {
	var out []string
	for _, r := range l.records(t) {
		out = append(out, r.Action)
	}
	return out
}

func decode(t *testing.T, res *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(res.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", res.Body, err)
	}
}

// expect checks an answer's status and exact body.
func expect(t *testing.T, res *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if res.Code != status || res.Body.String() != body {
		t.Fatalf("got %d %s\nwant %d %s", res.Code, res.Body, status, body)
	}
	if ct := res.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// expectPrefix checks an answer's status and the start of its body.
func expectPrefix(t *testing.T, res *httptest.ResponseRecorder, status int, prefix string) {
	t.Helper()
	if res.Code != status || !strings.HasPrefix(res.Body.String(), prefix) {
		t.Fatalf("got %d %s\nwant %d %s…", res.Code, res.Body, status, prefix)
	}
}

// expectError checks status and error code of a JSON error answer and
// returns it.
func expectError(t *testing.T, res *httptest.ResponseRecorder, status int, code string) errorBody {
	t.Helper()
	var b errorBody
	if res.Code != status {
		t.Fatalf("got %d %s, want %d %s", res.Code, res.Body, status, code)
	}
	decode(t, res, &b)
	if b.Code != code || b.Message == "" {
		t.Fatalf("got %s, want code %q and a message", res.Body, code)
	}
	return b
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eventBody is a valid WorkOS event for org, which occurred a minute before
// the server's clock reads.
func (e *env) eventBody(org, action string, opts ...func(map[string]any)) string {
	return eventBodyAt(e.now(), org, action, opts...)
}

// eventBodyAt is eventBody for a server whose clock reads now, for tests
// that build bodies before their env exists.
func eventBodyAt(now time.Time, org, action string, opts ...func(map[string]any)) string {
	ev := map[string]any{
		"action":      action,
		"occurred_at": now.UTC().Add(-time.Minute).Format(time.RFC3339Nano),
		"actor":       map[string]any{"id": "user_1", "type": "user", "name": "Jon Smith"},
		"targets":     []any{map[string]any{"id": "team_1", "type": "team", "name": "Blue"}},
		"context":     map[string]any{"location": "203.0.113.7", "user_agent": "test"},
		"metadata":    map[string]any{"plan": "pro"},
	}
	for _, o := range opts {
		o(ev)
	}
	b, _ := json.Marshal(map[string]any{"organization_id": org, "event": ev})
	return string(b)
}

func innerEvent(body string) json.RawMessage {
	var m struct{ Event json.RawMessage }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Event
}

func batchBody(items ...string) string {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	b.WriteString(strings.Join(items, ","))
	b.WriteString(`]}`)
	return b.String()
}

// syncBuffer is a log sink the server writes from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func defaultLimits() event.Limits { return event.DefaultLimits() }
