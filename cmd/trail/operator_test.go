package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/trailtest"
)

// Metrics name every organization and stream, and the profiler shows the
// process's insides: both are on the operator listener (--metrics-listen),
// never on the public one, and the profiler only with --pprof. A real
// trail serve per case.
func TestOperatorListener(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	tests := []struct {
		name      string
		args      []string
		operator  bool // an operator listener is up
		wantPprof int
	}{
		{"default", nil, true, http.StatusNotFound},
		{"pprof", []string{"--pprof"}, true, http.StatusOK},
		{"disabled", []string{"--metrics-listen", ""}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := trailtest.Start(t, trailtest.Options{Args: tt.args})
			req, _ := http.NewRequest("POST", srv.URL+"/organizations", strings.NewReader(`{"name":"Acme"}`))
			req.Header.Set("Authorization", "Bearer "+srv.Key)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var org struct{ ID string }
			json.NewDecoder(res.Body).Decode(&org)
			res.Body.Close()

			for _, path := range []string{"/metrics", "/debug/pprof/"} {
				if code, body := get(t, srv.URL+path); code != http.StatusNotFound {
					t.Errorf("public GET %s: %d %.200s", path, code, body)
				}
			}
			if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body != `{"status":"ok"}` {
				t.Errorf("public /readyz: %d %s", code, body)
			}
			if (srv.MetricsURL != "") != tt.operator {
				t.Fatalf("operator listener %q, want one: %v", srv.MetricsURL, tt.operator)
			}
			if !tt.operator {
				return
			}
			if !strings.HasPrefix(srv.MetricsURL, "http://127.0.0.1:") {
				t.Errorf("operator listener on %s, want loopback", srv.MetricsURL)
			}
			if code, body := get(t, srv.MetricsURL+"/metrics"); code != http.StatusOK || !strings.Contains(body, "trail_events_accepted_total") {
				t.Errorf("operator GET /metrics: %d %.300s", code, body)
			}
			if code, body := get(t, srv.MetricsURL+"/readyz"); code != http.StatusOK {
				t.Errorf("operator GET /readyz: %d %s", code, body)
			}
			if code, _ := get(t, srv.MetricsURL+"/debug/pprof/"); code != tt.wantPprof {
				t.Errorf("operator GET /debug/pprof/: %d, want %d", code, tt.wantPprof)
			}
		})
	}
}
