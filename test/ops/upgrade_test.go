package ops_test

import (
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// A rolling upgrade as docs/OPERATIONS.md describes it, under load: two
// replicas of the current build serve one PostgreSQL; the next build (this
// one plus an additive migration, built only with the trail_upgrade_test
// tag) runs `trail migrate` while both keep serving; the current build then
// refuses the newer schema at start, naming both versions; one replica is
// restarted on the next build while the other serves every request it
// gets. Every acknowledged event is stored once, at the seq it was
// answered with, and every organization's seqs are contiguous.
func TestRollingUpgradeWithMigrationUnderLoad(t *testing.T) {
	oldBin, newBin := trailtest.Binary(t), trailtest.BinaryWithTags(t, "trail_upgrade_test")
	f := newFleet(t)
	data := []string{t.TempDir(), t.TempDir()}
	var replicas [2]slot
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() { defer wg.Done(); replicas[i].set(f.start(t, oldBin, data[i])) }()
	}
	wg.Wait()
	dumpOnFailure(t, func() []*trailtest.Server { return []*trailtest.Server{replicas[0].get(), replicas[1].get()} })
	orgs := createOrgs(t, replicas[0].get(), 3)

	// Load: two clients per replica send batches until told to stop.
	// Replica 0 is never restarted: every request it gets must succeed.
	tr := newTracker()
	var perReplica [2]atomic.Int64
	var failed0 atomic.Int64
	var firstFailure0 atomic.Value
	stop := make(chan struct{})
	var load sync.WaitGroup
	for w := range 4 {
		i := w % 2
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				srv := replicas[i].get()
				a, ok := tr.batch(srv.URL, srv.Key, orgs, 5)
				switch {
				case ok:
					perReplica[i].Add(1)
				case i == 0:
					failed0.Add(1)
					firstFailure0.CompareAndSwap(nil, a)
				default:
					// Replica 1 restarting: try again shortly rather
					// than spin on refused connections.
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()
	progress := func(what string, i int) {
		t.Helper()
		from := perReplica[i].Load()
		waitFor(t, what, func() bool { return perReplica[i].Load() >= from+20 })
	}
	progress("replica 0 acknowledging under load", 0)
	progress("replica 1 acknowledging under load", 1)

	// The next release's `trail migrate`, beside the running fleet.
	out, err := exec.Command(newBin, "migrate", "--database", f.dsn, "--data", t.TempDir()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Applied 99001_upgrade_probe.sql") {
		t.Fatalf("trail migrate of the next build: %v\n%s", err, out)
	}
	progress("replica 0 acknowledging after the migration", 0)
	progress("replica 1 acknowledging after the migration", 1)

	// The current build no longer starts on this schema, and says why.
	out, err = exec.Command(oldBin, "key", "list", "--database", f.dsn, "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "at version 99001 and this binary knows versions up to") {
		t.Errorf("the current build's trail key list on the migrated schema: %v\n%s; want a refusal naming both versions", err, out)
	}
	out, _ = exec.Command(oldBin, "migrate", "status", "--database", f.dsn, "--data", t.TempDir()).CombinedOutput()
	if !strings.Contains(string(out), "NEWER than this binary") {
		t.Errorf("the current build's trail migrate status on the migrated schema:\n%s", out)
	}

	// Replica 1 moves to the next build; replica 0 serves meanwhile.
	if err := replicas[1].get().Stop(t); err != nil {
		t.Fatalf("stopping replica 1: %v", err)
	}
	replicas[1].set(f.start(t, newBin, data[1]))
	progress("replica 1 acknowledging on the next build", 1)
	progress("replica 0 acknowledging beside it", 0)
	if code, body := readyz(replicas[1].get().URL); code != 200 {
		t.Errorf("/readyz of the upgraded replica: %d %s", code, body)
	}
	stopLoad()

	if n := failed0.Load(); n > 0 {
		a, _ := firstFailure0.Load().(answer)
		t.Errorf("replica 0, never restarted, failed %d requests during the upgrade; the first: %d %v %s", n, a.code, a.err, a.body)
	}
	checkLogs(t, replicas[1].get(), orgs, tr)
}
