// Package exports_test drives exports end to end on real `trail serve`
// processes: a server killed mid-export whose export still ends ready,
// complete and verifiable after the restart; and `trail export` and
// `trail verify` run as a user runs them.
package exports_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/trailtest"
)

type client struct {
	t   *testing.T
	srv *trailtest.Server
}

func (c client) call(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+c.srv.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out
}

// seed stores n events in a new organization (actions a.0, a.1, a.2 in
// turn) and waits for a checkpoint that covers them.
func seed(t *testing.T, c client, n int) string {
	t.Helper()
	org := c.call("POST", "/organizations", map[string]any{"name": "exports"}, http.StatusCreated)["id"].(string)
	now := time.Now().UTC().Add(-time.Hour)
	for done := 0; done < n; done += 1000 {
		var events []any
		for i := done; i < min(n, done+1000); i++ {
			events = append(events, map[string]any{"organization_id": org, "event": map[string]any{
				"action": fmt.Sprintf("a.%d", i%3), "occurred_at": now.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
				"actor":   map[string]any{"id": fmt.Sprintf("user_%d", i%7), "type": "user", "name": "User"},
				"targets": []any{map[string]any{"id": "t", "type": "team"}},
				"context": map[string]any{"location": "203.0.113.7", "user_agent": "exports-test"},
			}})
		}
		c.call("POST", "/v1/events/batch", map[string]any{"events": events}, http.StatusCreated)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest("GET", c.srv.URL+"/v1/organizations/"+org+"/log/checkpoint", nil)
		req.Header.Set("Authorization", "Bearer "+c.srv.Key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var size int
			if lines := strings.Split(string(raw), "\n"); len(lines) > 1 {
				fmt.Sscan(lines[1], &size)
			}
			if size >= n+1 { // the events and the organization's creation
				return org
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers the %d events after 2 minutes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func verifierKey(t *testing.T, srv *trailtest.Server) string {
	resp, err := http.Get(srv.URL + "/v1/log/key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(raw))
}

// TestExportSurvivesKill kills the server (SIGKILL) while an NDJSON export
// is being written, restarts it on the same data directory, and checks
// that the export ends ready with a complete file that verifies.
func TestExportSurvivesKill(t *testing.T) {
	data := t.TempDir()
	// The first server reads at most 20,000 events a second, so that the
	// kill lands while the job runs (progress is recorded every second).
	first := trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--export-max-rate", "20000"}})
	c := client{t, first}
	const n = 60_000
	org := seed(t, c, n)
	x := c.call("POST", "/audit_logs/exports", map[string]any{"organization_id": org, "format": "ndjson",
		"range_start": "2000-01-01T00:00:00Z", "range_end": "2100-01-01T00:00:00Z", "actions": []string{"a.1"}}, http.StatusCreated)
	id := x["id"].(string)
	deadline := time.Now().Add(time.Minute)
	for {
		e := c.call("GET", "/audit_logs/exports/"+id, nil, http.StatusOK)
		read := e["progress"].(map[string]any)["events_read"].(float64)
		if e["state"] != "pending" {
			t.Fatalf("the export ended %v before the kill: %v", e["state"], e)
		}
		if read > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export made no progress in a minute: %v\n%s", e, first.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.Kill()

	second := trailtest.Start(t, trailtest.Options{Data: data})
	c = client{t, second}
	var e map[string]any
	for deadline := time.Now().Add(2 * time.Minute); ; {
		e = c.call("GET", "/audit_logs/exports/"+id, nil, http.StatusOK)
		if e["state"] != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export is still pending 2 minutes after the restart: %v\n%s", e, second.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e["state"] != "ready" {
		t.Fatalf("after the restart the export ended %v: %v\n%s", e["state"], e, second.Logs())
	}
	resp, err := http.Get(e["url"].(string))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %v %v", err, resp)
	}
	defer resp.Body.Close()
	rep, err := ledger.Verify(resp.Body, verifierKey(t, second), ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("the export does not verify: %v\n%s", err, rep.String())
	}
	if rep.Records != n/3 || !rep.Subset {
		t.Fatalf("the export verified %d records, want %d (every a.1 event): %s", rep.Records, n/3, rep.String())
	}
	// Nothing is left of the interrupted run but what the sweep removes.
	if files, _ := filepath.Glob(filepath.Join(data, "exports", id+".ndjson")); len(files) != 1 {
		t.Errorf("export file: %v", files)
	}
}

// TestExportCommand runs `trail export` and `trail verify` against a real
// server as a user would.
func TestExportCommand(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	org := seed(t, client{t, srv}, 3000)
	bin := trailtest.Binary(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("trail %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	out := run("export", "--server", srv.URL, "--api-key", srv.Key, "--org", org, "--action", "a.0,a.2",
		"--actor-id", "user_1", "--format", "csv", "--out", "events.csv")
	if !strings.Contains(out, "Exported 286 of 3,001 events of "+org+" to events.csv") {
		t.Errorf("trail export said:\n%s", out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "events.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(raw), "\r\n"); got != 287 {
		t.Errorf("events.csv has %d lines, want a header and 286 events", got)
	}

	out = run("export", "--server", srv.URL, "--api-key", srv.Key, "--org", org, "--action", "a.2", "--format", "ndjson", "--out", "events.ndjson")
	if !strings.Contains(out, "trail verify events.ndjson") {
		t.Errorf("trail export (ndjson) said:\n%s", out)
	}
	out = run("verify", "events.ndjson", "--key", verifierKey(t, srv))
	if !strings.Contains(out, "1,000 events of "+org+" are in its log") || !strings.Contains(out, "not that the selection is complete") ||
		!strings.Contains(out, "The export says it selected (signed with the log key for this checkpoint): export ") {
		t.Errorf("trail verify said:\n%s", out)
	}
}
