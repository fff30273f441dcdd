package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A server that refuses batches for now (503 or 429, nothing stored) gets
// them again after its Retry-After; one that rejects a batch ends the
// seeding with what it said.
func TestSeedWaitsOutRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(n int, w http.ResponseWriter) // n counts requests, from 1
		wantErr string
		stored  int64
	}{
		{"stored at once", func(int, http.ResponseWriter) {}, "", 1200},
		{"refused while the index catches up", func(n int, w http.ResponseWriter) {
			if n%2 == 1 { // every batch is refused once
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, "", 1200},
		{"rate limited", func(n int, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(http.StatusTooManyRequests) // no Retry-After: a second
			}
		}, "", 1200},
		{"rejected", func(n int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"events[0].action is required"}`)
		}, "HTTP 400: {\"message\":\"events[0].action is required\"}", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var requests int
			var stored int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				requests++
				rec := httptest.NewRecorder()
				tc.answer(requests, rec)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				if rec.Code/100 != 2 {
					w.WriteHeader(rec.Code)
					w.Write(rec.Body.Bytes())
					return
				}
				stored += int64(strings.Count(string(body), `"action"`))
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `{"data":[]}`)
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL, "sk_test", 4, "seed-test")
			if err != nil {
				t.Fatal(err)
			}
			_, err = seed(context.Background(), c, "run", []string{"org_a", "org_b"}, 1200, nil)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("seed: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("seed error %v, want one with %q", err, tc.wantErr)
			}
			if stored != tc.stored {
				t.Errorf("%d events stored, want %d", stored, tc.stored)
			}
		})
	}
}
