package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// mountSmallDisk mounts a tmpfs of size bytes at a new directory and
// unmounts it at cleanup (after the servers started later have stopped). It
// skips the test, saying why, where that is impossible (not root, no mount).
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount a small tmpfs as the data directory's disk")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipped: couldn't mount a %s tmpfs at %s (%v: %s); this machine cannot run the disk-full test", size, dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillerMiB is the space held back and then returned: the server's disk
// reserve (8 MiB) plus its resume margin (8 MiB), so that it resumes once
// the filler is gone. Before the disk reserve, freed space was eaten again
// by the WAL checkpoints before the integrator could sign
// (docs/FAULTS.md).
const fillerMiB = 16

// TestDiskFull runs a server on a 40 MiB filesystem (400 MiB for the long
// variant) holding a 16 MiB filler file and ingests until the disk is full.
// Ingest must then answer 503 with Retry-After (never 500, never hang), the
// log must say the disk is full, nothing acknowledged may be lost, and once
// the filler is deleted ingest must resume by itself with every acknowledged
// event in place and the logs verifying.
func TestDiskFull(t *testing.T) {
	disk := mountSmallDisk(t, pick("40m", "400m"))
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, fillerMiB<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(disk, "data")
	// Registered before the server starts, so that it runs after the
	// server has stopped: what filled the disk, file by file.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("sh", "-c", "df -k "+disk+"; ls -la "+data).CombinedOutput()
			t.Logf("%s", out)
		}
	})
	tg := newTarget(trailtest.Start(t, trailtest.Options{Data: data}))
	dumpOnFailure(t, tg)
	srv := tg.get()
	c := newClient(32)
	orgs := createOrgs(t, c, srv, 2, "Disk")
	tr := newTracker()
	pad := strings.Repeat("x", 400)

	type outcome struct {
		acked, full, other int
		refusals           []time.Duration
		bad                []string
	}
	// ingest runs clients until stopWhen says so or the deadline passes.
	ingest := func(clients int, deadline time.Duration, stopWhen func(o *outcome) bool) *outcome {
		var mu sync.Mutex
		o := &outcome{}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		var wg sync.WaitGroup
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					evOrgs, toks := tr.tokens(fmt.Sprintf("d%d", w), orgs, 50)
					body := strings.ReplaceAll(string(batchJSON(evOrgs, toks)), `"token":`, `"pad":"`+pad+`","token":`)
					a := do(context.Background(), c, srv, "POST", "/v1/events/batch", []byte(body))
					mu.Lock()
					switch {
					case a.code == http.StatusCreated:
						o.acked += len(toks)
						tr.ack(toks, nil)
					case a.code == http.StatusServiceUnavailable && a.retryAfter != "":
						o.full++
						o.refusals = append(o.refusals, a.took)
					default:
						o.other++
						if len(o.bad) < 10 {
							o.bad = append(o.bad, fmt.Sprintf("%d (Retry-After %q, %v, after %v): %.300s", a.code, a.retryAfter, a.err, a.took.Round(time.Millisecond), a.body))
						}
					}
					done := stopWhen(o)
					mu.Unlock()
					if done {
						cancel()
					}
					if a.code != http.StatusCreated {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		return o
	}

	start := time.Now()
	filled := ingest(8, pick(60*time.Second, 5*time.Minute), func(o *outcome) bool { return o.full >= 200 })
	fillTook := time.Since(start)
	for _, b := range filled.bad {
		t.Errorf("while filling the disk: answer %s", b)
	}
	if filled.full < 200 {
		t.Fatalf("the disk did not fill within the deadline: %d events acknowledged, %d refusals", filled.acked, filled.full)
	}
	// The disk guard refuses ingest before SQLite runs out of space; a
	// commit that still hits the end of the disk says so too.
	if logs := srv.Logs(); !strings.Contains(logs, "disk nearly full") && !strings.Contains(logs, "database or disk is full") {
		t.Errorf("the server's log does not say the disk is full; its errors:\n%s", strings.Join(errorLines(srv, 10), "\n"))
	}
	// Reads still work on a full disk, and nothing acknowledged is lost.
	full := checkLogs(t, c, srv, orgs, tr)
	requireLogs(t, full)
	// And every acknowledged event is covered by a signed checkpoint
	// while the disk is still full: the disk reserve gave the integrator
	// the room to sign.
	for org, size := range full.sizes {
		waitCheckpoint(t, c, srv, org, size)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var resumedAfter time.Duration
	resumed := ingest(4, 30*time.Second, func(o *outcome) bool {
		if o.acked > 0 && resumedAfter == 0 {
			resumedAfter = time.Since(freed)
		}
		return o.acked >= 200
	})
	for _, b := range resumed.bad {
		t.Errorf("after space returned: answer %s", b)
	}
	if resumed.acked == 0 {
		t.Fatalf("ingest did not resume within 30s of freeing %d MiB: %d refusals", fillerMiB, resumed.full)
	}
	lc := checkLogs(t, c, srv, orgs, tr)
	requireLogs(t, lc)
	settleAndVerify(t, c, srv, lc)
	_, acked := tr.counts()
	t.Logf("disk full after %v and %d acknowledged events; %d refusals (503 with Retry-After), p99 %v, none other",
		fillTook.Round(time.Millisecond), filled.acked, filled.full, percentile(filled.refusals, 99).Round(time.Microsecond))
	t.Logf("after freeing %d MiB ingest resumed in %v; %d acknowledged events checked, %d stored without an acknowledgement",
		fillerMiB, resumedAfter.Round(time.Millisecond), acked, lc.unacked)
}
