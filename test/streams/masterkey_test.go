package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// trailCLI runs a trail command and returns its exit code and output.
func trailCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, trailtest.Binary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return cmd.ProcessState.ExitCode(), out.String()
}

func trailOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out := trailCLI(t, args...)
	if code != 0 {
		t.Fatalf("trail %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// switchable is a receiver that refuses every delivery (401) while off.
type switchable struct {
	rc  *receiver
	off atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.off.Load() {
		http.Error(w, "credentials revoked", http.StatusUnauthorized)
		return
	}
	s.rc.ServeHTTP(w, r)
}

type streamView struct {
	Cursor    int64  `json:"cursor"`
	LagEvents int64  `json:"lag_events"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

// waitStream waits until the stream's view satisfies ok.
func waitStream(t *testing.T, srv *trailtest.Server, org, id string, ok func(streamView) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v streamView
		json.Unmarshal(mustCall(t, srv, "GET", "/v1/organizations/"+org+"/log_streams/"+id, "", 200), &v)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: %+v after 2 minutes\n%s", id, v, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMasterKeyRotation, on both backends: a stream's secret (the webhook's
// HMAC key) and the signing key are sealed under the first master key;
// the new key is promoted and every secret re-encrypted; a server with
// the new key alone still signs checkpoints and delivers with valid
// signatures, and one with the old key alone is refused. Then a stream
// the destination refused (invalid) comes back with trail streams resume
// --all.
func TestMasterKeyRotation(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			storage := []string{"--data", data}
			var serveArgs []string
			if backend == "postgres" {
				dsn := pgtest.New(t)
				storage = []string{"--database", dsn}
				serveArgs = []string{"--database", dsn, "--log-origin", "trail.test/masterkey"}
			}
			oldKey, _ := keyring.Generate()
			newKey, err := keyring.Parse(trailOK(t, "master-key", "generate"))
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]string{"old.key": oldKey.String(), "new.key": newKey.String(), "both.key": newKey.String() + "\n" + oldKey.String()}
			for name, text := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			start := func(keyFile string) *trailtest.Server {
				return trailtest.Start(t, trailtest.Options{Data: data, Args: append([]string{"--master-key-file", filepath.Join(dir, keyFile), "--streams-allow-private"}, serveArgs...)})
			}
			sink := &switchable{rc: &receiver{}}
			hs := httptest.NewServer(sink)
			defer hs.Close()

			srv := start("old.key")
			var org struct{ ID string }
			json.Unmarshal(mustCall(t, srv, "POST", "/organizations", `{"name":"Rotation"}`, 201), &org)
			var st struct{ ID string }
			json.Unmarshal(mustCall(t, srv, "POST", "/v1/organizations/"+org.ID+"/log_streams",
				`{"type":"webhook","start":"beginning","config":{"url":"`+hs.URL+`","secret":"`+hmacSecret+`"}}`, 201), &st)
			mustCall(t, srv, "POST", "/v1/events/batch", string(batchBody(org.ID, 5, 0)), 201)
			waitStream(t, srv, org.ID, st.ID, func(v streamView) bool { return v.Cursor >= 6 && v.LagEvents == 0 })
			if err := srv.Stop(t); err != nil {
				t.Fatal(err)
			}

			both := filepath.Join(dir, "both.key")
			trailOK(t, append([]string{"master-key", "promote", "--master-key-file", both}, storage...)...)
			out := trailOK(t, append([]string{"master-key", "re-encrypt", "--master-key-file", both}, storage...)...)
			if !strings.Contains(out, "Re-encrypted 1 stream secrets and 1 signing keys") {
				t.Errorf("re-encrypt says:\n%s", out)
			}
			// Resumable: a second run has nothing left to do.
			if out := trailOK(t, append([]string{"master-key", "re-encrypt", "--master-key-file", both}, storage...)...); !strings.Contains(out, "Re-encrypted 0 stream secrets and 0 signing keys") {
				t.Errorf("a second re-encrypt says:\n%s", out)
			}
			list := trailOK(t, append([]string{"master-key", "list", "--master-key-file", both}, storage...)...)
			if !strings.Contains(list, "deployment: "+newKey.CheckValues()[0]+" ") {
				t.Errorf("the deployment does not record the new key alone:\n%s", list)
			}

			// The old key alone is refused; the new key alone works.
			code, out := trailCLI(t, append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--metrics-listen", "",
				"--master-key-file", filepath.Join(dir, "old.key")}, serveArgs...)...)
			if code != 2 || !strings.Contains(out, "--master-key-file") {
				t.Fatalf("trail serve with the old master key alone: exit %d, want 2 naming --master-key-file:\n%s", code, out)
			}
			srv = start("new.key")
			mustCall(t, srv, "POST", "/v1/events/batch", string(batchBody(org.ID, 5, 5)), 201)
			waitStream(t, srv, org.ID, st.ID, func(v streamView) bool { return v.Cursor >= 11 && v.LagEvents == 0 })

			// A destination that refuses the credentials makes the
			// stream invalid; once it accepts again, a bulk resume
			// restarts delivery.
			sink.off.Store(true)
			mustCall(t, srv, "POST", "/v1/events/batch", string(batchBody(org.ID, 5, 10)), 201)
			waitStream(t, srv, org.ID, st.ID, func(v streamView) bool { return v.State == "invalid" })
			sink.off.Store(false)
			if out := trailOK(t, append([]string{"streams", "resume", "--all", "--org", org.ID}, storage...)...); !strings.Contains(out, "Resumed 1 log streams") {
				t.Errorf("trail streams resume says:\n%s", out)
			}
			waitStream(t, srv, org.ID, st.ID, func(v streamView) bool { return v.State == "active" && v.Cursor >= 16 && v.LagEvents == 0 })
			sink.rc.mu.Lock()
			defer sink.rc.mu.Unlock()
			if len(sink.rc.bad) > 0 {
				t.Errorf("%d deliveries with a bad signature: the secret did not survive the rotation", len(sink.rc.bad))
			}
		})
	}
}

// mustCall sends one API request with the server's admin key and fails the
// test unless it is answered with want.
func mustCall(t *testing.T, srv *trailtest.Server, method, path string, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, b, want)
	}
	return b
}

// batchBody is a POST /v1/events/batch body of n events of org, numbered
// from from in their metadata.
func batchBody(org string, n, from int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"organization_id":%q,"event":{"action":"crash.tested","occurred_at":%q,"actor":{"type":"user","id":"user_1"},"targets":[],"context":{"location":"203.0.113.7"},"metadata":{"n":%d}}}`,
			org, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), from+i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
