package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

func TestHealth(t *testing.T) {
	e := newEnv(t)
	expect(t, e.do("GET", "/healthz", "", ""), 200, `{"status":"ok"}`)
	expect(t, e.do("GET", "/readyz", "", ""), 200, `{"status":"ok"}`)
	e.srv.SetReady(false)
	res := e.do("GET", "/readyz", "", "")
	expectError(t, res, 503, "not_ready")
	e.srv.SetReady(true)
	expect(t, e.do("GET", "/readyz", "", ""), 200, `{"status":"ok"}`)
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	e.do("GET", "/v1/events/evt_01JDXYZ", e.admin, "")
	e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in"))
	e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, ""))
	e.do("GET", "/no/such/route/12345", "", "")
	res := e.operator("/metrics", false)
	if res.Code != 200 {
		t.Fatalf("GET /metrics: %d", res.Code)
	}
	body := res.Body.String()
	for _, want := range []string{
		`trail_http_requests_total{code="404",route="GET /v1/events/{id}"} 1`,
		`trail_http_requests_total{code="201",route="POST /organizations"} 1`,
		`trail_http_requests_total{code="404",route="unmatched"} 1`,
		`trail_http_request_duration_seconds_count{route="POST /audit_logs/events"} 2`,
		`trail_events_accepted_total 1`,
		`trail_events_rejected_total{reason="invalid"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "evt_01JDXYZ") || strings.Contains(body, "12345") {
		t.Errorf("/metrics has a raw path as a label value")
	}
	// Metrics name every organization and stream: they are served on the
	// operator listener only.
	if res := e.do("GET", "/metrics", "", ""); res.Code != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener: %d, want 404", res.Code)
	}
}

// The profiler is on the operator listener only, and only when asked for.
func TestOperatorPprof(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		public bool
		pprof  bool
		want   int
	}{
		{"public listener", true, false, http.StatusNotFound},
		{"operator listener, off", false, false, http.StatusNotFound},
		{"operator listener, on", false, true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			if tt.public {
				code = e.do("GET", "/debug/pprof/", "", "").Code
			} else {
				code = e.operator("/debug/pprof/", tt.pprof).Code
			}
			if code != tt.want {
				t.Errorf("GET /debug/pprof/: %d, want %d", code, tt.want)
			}
		})
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"GET", "/nope", 404, "not_found", ""},
		{"GET", "/audit_logs/events", 405, "method_not_allowed", "POST"},
		{"PUT", "/v1/api_keys/key_1", 405, "method_not_allowed", "DELETE, GET, HEAD"},
		{"POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
	}
	for _, tt := range tests {
		res := e.do(tt.method, tt.path, e.admin, "")
		expectError(t, res, tt.status, tt.code)
		if got := res.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	res := e.do("GET", "/healthz", "", "", "X-Request-ID", "abc-123")
	if got := res.Header().Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("echoed request id %q, want abc-123", got)
	}
	for _, given := range []string{"", "has spaces", strings.Repeat("x", 200), "new\nline"} {
		res := e.do("GET", "/healthz", "", "", "X-Request-ID", given)
		if got := res.Header().Get("X-Request-ID"); len(got) != 32 || got == given {
			t.Errorf("given %q: request id %q, want a new 32-character one", given, got)
		}
	}
}

func TestRequestLog(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in"), "X-Request-ID", "req-42")
	logs := e.logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"request_id":"req-42"`) {
			line = l
		}
	}
	for _, want := range []string{`"msg":"request"`, `"route":"POST /audit_logs/events"`, `"status":201`, `"organization_id":"` + org + `"`, `"key_id":"key_`} {
		if !strings.Contains(line, want) {
			t.Errorf("request log %s lacks %s", line, want)
		}
	}
}

// panicStore panics where a handler reads an organization.
type panicStore struct{ store.Store }

func (panicStore) Organization(context.Context, string) (store.Organization, error) {
	panic("boom")
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, func(_ *Config, e *env) { e.store = panicStore{e.st} })
	res := e.do("GET", "/organizations/org_x", e.admin, "", "X-Request-ID", "req-panic")
	b := expectError(t, res, 500, "internal_error")
	if !strings.Contains(b.Message, "req-panic") {
		t.Errorf("500 message %q should name the request id", b.Message)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "panic while serving a request") || !strings.Contains(logs, "boom") {
		t.Errorf("the panic was not logged: %s", logs)
	}
	// The server still serves.
	expect(t, e.do("GET", "/healthz", "", ""), 200, `{"status":"ok"}`)
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *env) { c.RateLimit, c.RateBurst = 0.5, 2 })
	other, _ := e.key("other", []string{access.ScopeAdmin}, "")
	for i := range 2 {
		if res := e.do("GET", "/organizations", e.admin, ""); res.Code != 200 {
			t.Fatalf("request %d: %d %s", i, res.Code, res.Body)
		}
	}
	res := e.do("GET", "/organizations", e.admin, "")
	expect(t, res, 429, `{"message":"Too many requests.","code":"rate_limit_exceeded"}`)
	if ra := res.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (one token every 2 s)", ra)
	}
	// Limits are per key.
	if res := e.do("GET", "/organizations", other, ""); res.Code != 200 {
		t.Errorf("another key: %d %s", res.Code, res.Body)
	}
	// Health checks are not limited.
	expect(t, e.do("GET", "/healthz", "", ""), http.StatusOK, `{"status":"ok"}`)
}

// /readyz answers 503 while Config.Unready names a problem, saying which
// and why only on the operator listener, and from Drain on, while the
// other routes go on serving.
func TestReadinessProblemsAndDrain(t *testing.T) {
	var problems map[string]string
	e := newEnv(t, func(c *Config, _ *env) {
		c.Unready = func(context.Context) map[string]string { return problems }
	})
	org := e.org("Acme")
	for _, tc := range []struct {
		name     string
		problems map[string]string
		drain    bool
		code     int
		public   string // in the public body
		detail   string // in the operator listener's body only
	}{
		{"healthy", nil, false, 200, `"ok"`, ""},
		{"database down", map[string]string{"database": "connection refused"}, false, 503, `"unavailable"`, "connection refused"},
		{"lease failing", map[string]string{"lease integrator": "couldn't renew"}, false, 503, `"unavailable"`, "couldn't renew"},
		{"draining", nil, true, 503, "shutting_down", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems = tc.problems
			if tc.drain {
				e.srv.Drain()
			}
			pub := e.do("GET", "/readyz", "", "")
			ops := e.operator("/readyz", false)
			if pub.Code != tc.code || ops.Code != tc.code {
				t.Fatalf("/readyz: public %d, operator %d; want %d", pub.Code, ops.Code, tc.code)
			}
			if !strings.Contains(pub.Body.String(), tc.public) || !strings.Contains(ops.Body.String(), tc.public) {
				t.Errorf("/readyz: public %s, operator %s; want both to say %s", pub.Body, ops.Body, tc.public)
			}
			if tc.detail != "" && (strings.Contains(pub.Body.String(), tc.detail) || !strings.Contains(ops.Body.String(), tc.detail)) {
				t.Errorf("/readyz: public %s, operator %s; want %q on the operator listener only", pub.Body, ops.Body, tc.detail)
			}
			// Ingest is not refused by readiness: load balancers decide.
			if res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")); res.Code != 201 {
				t.Errorf("ingest while /readyz is %d: %d %s", tc.code, res.Code, res.Body)
			}
		})
	}
}
