package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConsoleRouterAnswersAsTheMux: every request gets from consoleRouter
// the answer the console's mux alone gives it (the same handler, or the
// same redirect), whether it took the shortcut to the API or not.
func TestConsoleRouterAnswersAsTheMux(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(name + " " + r.URL.Path))
		})
	}
	newMux := func(next http.Handler) *http.ServeMux {
		mux := http.NewServeMux()
		mux.Handle("/console/", named("console"))
		mux.Handle("/console", http.RedirectHandler("/console/", http.StatusSeeOther))
		mux.Handle("/", next)
		return mux
	}
	api := named("api")
	router := consoleRouter{mux: newMux(api), next: api}
	plain := newMux(api)
	tests := []struct{ method, target string }{
		{"POST", "/audit_logs/events"},
		{"GET", "/"},
		{"GET", "//"},
		{"GET", "///audit_logs"},
		{"GET", "/organizations/org_1/"},
		{"GET", "/organizations//org_1"},
		{"GET", "/a/./b"},
		{"GET", "/a/../b"},
		{"GET", "/a/.."},
		{"GET", "/a/."},
		{"GET", "/a/%2e%2e/b"},
		{"GET", "/a/..%2f..%2fconsole/"},
		{"GET", "/a/../console/x"},
		{"GET", "/x/..//console"},
		{"GET", "/console"},
		{"GET", "/console/"},
		{"GET", "/console/x"},
		{"GET", "/console/../audit_logs/events"},
		{"GET", "/consolex"},
		{"GET", "/Console/"},
		{"GET", "/a%20b/%22c%22"},
		{"GET", "/%2F"},
		{"GET", "/a?x=1"},
		{"GET", "/a/../b?x=1"},
		{"OPTIONS", "*"},
		{"CONNECT", "/a/../b"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			got, want := httptest.NewRecorder(), httptest.NewRecorder()
			router.ServeHTTP(got, httptest.NewRequest(tt.method, tt.target, nil))
			plain.ServeHTTP(want, httptest.NewRequest(tt.method, tt.target, nil))
			if got.Code != want.Code || got.Header().Get("Location") != want.Header().Get("Location") || got.Body.String() != want.Body.String() {
				t.Errorf("router: %d %q %q; mux: %d %q %q", got.Code, got.Header().Get("Location"), got.Body.String(),
					want.Code, want.Header().Get("Location"), want.Body.String())
			}
		})
	}
}

// TestCleanPath: the paths the API is sent, plain, take the shortcut.
func TestCleanPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/audit_logs/events", true},
		{"/organizations/org_1/", true},
		{"/", true},
		{"", false},
		{"a", false},
		{"//", false},
		{"/a//b", false},
		{"/a/./b", false},
		{"/a/../b", false},
		{"/a/..", false},
		{"/a/.", false},
		{"/a/b//", false},
	}
	for _, tt := range tests {
		if got := cleanPath(tt.path); got != tt.want {
			t.Errorf("cleanPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
