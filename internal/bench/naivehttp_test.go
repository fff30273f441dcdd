package bench

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// The naive app stores what it acknowledges, one row per 201, and refuses
// a body it cannot store with a 400.
func TestNaiveAppOverHTTP(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "naive.db")
	app, err := NewNaiveApp(ctx, path, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	cases := []struct {
		name, body string
		want       int
	}{
		{"event", `{"organization_id":"org_a","event":{"action":"user.signed_in","actor":{"type":"user","id":"u1"}}}`, http.StatusCreated},
		{"no action", `{"organization_id":"org_a","event":{"actor":{"type":"user","id":"u1"}}}`, http.StatusBadRequest},
		{"no organization", `{"event":{"action":"user.signed_in"}}`, http.StatusBadRequest},
		{"not JSON", `{"organization_id":`, http.StatusBadRequest},
	}
	stored := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			app.ServeHTTP(w, httptest.NewRequest("POST", "/audit_logs/events", strings.NewReader(c.body)))
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
			if w.Code == http.StatusCreated {
				stored++
			}
		})
	}
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != stored {
		t.Errorf("%d rows stored for %d events acknowledged", n, stored)
	}
}
