// Package exports_test drives exports end to end on real `trail serve`
// processes: a server killed mid-export whose export still ends ready,
// complete and verifiable after the restart; and `trail export` and
// `trail verify` run as a user runs them.
package exports_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

func newClient(t *testing.T, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seed stores n events in a new organization (actions a.0, a.1, a.2 in
// turn) and waits for a checkpoint that covers them.
func seed(t *testing.T, c *client.Client, n int) string {
	t.Helper()
	ctx := trailtest.Context(t)
	org, err := c.CreateOrganization(ctx, "exports", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Add(-time.Hour)
	for done := 0; done < n; done += 1000 {
		var events []client.OrgEvent
		for i := done; i < min(n, done+1000); i++ {
			events = append(events, client.OrgEvent{OrganizationID: org.ID, Event: client.Event{
				Action: fmt.Sprintf("a.%d", i%3), OccurredAt: now.Add(time.Duration(i) * time.Millisecond),
				Actor:   client.Entity{ID: fmt.Sprintf("user_%d", i%7), Type: "user", Name: "User"},
				Targets: []client.Entity{{ID: "t", Type: "team"}},
				Context: client.EventContext{Location: "203.0.113.7", UserAgent: "exports-test"},
			}})
		}
		if _, err := c.CreateEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cp, err := c.GetCheckpoint(ctx, org.ID, 0, "")
		if err == nil && cp.Size >= int64(n)+1 { // the events and the organization's creation
			return org.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers the %d events after 2 minutes (%v)", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func verifierKey(t *testing.T, c *client.Client) string {
	t.Helper()
	key, err := c.LogKey(trailtest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestExportSurvivesKill kills the server (SIGKILL) while an NDJSON export
// is being written, restarts it on the same data directory, and checks
// that the export ends ready with a complete file that verifies.
func TestExportSurvivesKill(t *testing.T) {
	data := t.TempDir()
	// The first server reads at most 20,000 events a second, so that the
	// kill lands while the job runs (progress is recorded every second).
	first := trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--export-max-rate", "20000"}})
	ctx := trailtest.Context(t)
	c := newClient(t, first)
	const n = 60_000
	org := seed(t, c, n)
	now := time.Now()
	x, err := c.CreateExport(ctx, client.ExportRequest{OrganizationID: org, Format: "ndjson",
		RangeStart: now.AddDate(-1, 0, 0), RangeEnd: now.AddDate(1, 0, 0), Actions: []string{"a.1"}})
	if err != nil {
		t.Fatal(err)
	}
	id := x.ID
	deadline := time.Now().Add(time.Minute)
	for {
		e, err := c.GetExport(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.State != client.ExportPending {
			t.Fatalf("the export ended %v before the kill: %+v", e.State, e)
		}
		if e.Progress.EventsRead > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export made no progress in a minute: %v\n%s", e, first.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.Kill()

	second := trailtest.Start(t, trailtest.Options{Data: data})
	c = newClient(t, second)
	var e *client.Export
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if e, err = c.GetExport(ctx, id); err != nil {
			t.Fatal(err)
		}
		if e.State != client.ExportPending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export is still pending 2 minutes after the restart: %v\n%s", e, second.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e.State != client.ExportReady {
		t.Fatalf("after the restart the export ended %v: %+v\n%s", e.State, e, second.Logs())
	}
	d, err := c.OpenExport(ctx, id)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer d.Body.Close()
	rep, err := client.VerifyBundle(d.Body, verifierKey(t, c), nil)
	if err != nil {
		t.Fatalf("the export does not verify: %v\n%s", err, rep.Summary)
	}
	if rep.Records != n/3 || !rep.Subset {
		t.Fatalf("the export verified %d records, want %d (every a.1 event): %s", rep.Records, n/3, rep.Summary)
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
	c := newClient(t, srv)
	org := seed(t, c, 3000)
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
	out = run("verify", "events.ndjson", "--key", verifierKey(t, c))
	if !strings.Contains(out, "1,000 events of "+org+" are in its log") || !strings.Contains(out, "not that the selection is complete") ||
		!strings.Contains(out, "The export says it selected (signed with the log key for this checkpoint): export ") {
		t.Errorf("trail verify said:\n%s", out)
	}
}
