package replicas_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// A replica that holds the integrator lease and then stalls (SIGSTOP: a
// paused VM, a frozen container) keeps its database connection open; the
// lease must still pass to another replica, which signs what is
// acknowledged meanwhile. Once resumed, the stalled replica finds the lease
// gone and works on as a plain replica.
func TestStalledLeaseHolderIsReplaced(t *testing.T) {
	c := newCluster(t, 2)
	org := c.newOrg(c.replica(0), "Stall")
	holder := func() int {
		for i := range 2 {
			for _, line := range strings.Split(c.replica(i).Logs(), "\n") {
				if strings.Contains(line, `"lease":"integrator"`) && strings.Contains(line, "lease taken") {
					return i
				}
			}
		}
		return -1
	}
	signedUpTo := func(r *trailtest.Server, size int64) bool {
		ck, _, ok := c.checkpoint(r, org)
		return ok && ck.Size >= size
	}
	waitUntil := func(what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("%s did not happen within two minutes\nreplica 0:\n%s\nreplica 1:\n%s", what, c.replica(0).Logs(), c.replica(1).Logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	for n := range 5 {
		c.must(c.replica(n), "POST", "/audit_logs/events", eventJSON(org, n))
	}
	// The organization's creation is seq 0: 6 records.
	waitUntil("the first events signed", func() bool { return holder() >= 0 && signedUpTo(c.replica(0), 6) })

	h := holder()
	stalled, other := c.replica(h), c.replica(1-h)
	if err := stalled.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			stalled.Signal(syscall.SIGCONT)
		}
	})
	for n := 5; n < 10; n++ {
		c.must(other, "POST", "/audit_logs/events", eventJSON(org, n))
	}
	took := waitUntil("the other replica signing while the holder is stalled", func() bool { return signedUpTo(other, 11) })
	t.Logf("events acknowledged by the other replica signed %v after the lease holder stalled", took.Round(time.Millisecond))
	if !strings.Contains(other.Logs(), "lease taken") {
		t.Errorf("the other replica signed without taking the lease:\n%s", other.Logs())
	}

	if err := stalled.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// Just resumed, the stalled replica may answer 503 with Retry-After
	// until it has seen that another replica holds the lease: a client
	// retries, as it should.
	for n := 10; n < 15; n++ {
		waitUntil("an event accepted after the resume", func() bool {
			a := c.do(c.replica(n), "POST", "/audit_logs/events", eventJSON(org, n))
			if a.code == 503 && a.retryAfter == "" {
				t.Fatalf("503 without Retry-After: %s", a.body)
			}
			return a.code == 201
		})
	}
	waitUntil("every event signed after the stalled replica resumed", func() bool {
		return signedUpTo(c.replica(0), 16) && signedUpTo(c.replica(1), 16)
	})
	recs := c.records(other, org)
	if len(recs) != 16 {
		t.Fatalf("%d records, want 16", len(recs))
	}
	for i, r := range recs {
		if r.Seq != int64(i) {
			t.Fatalf("record %d has seq %d: the log is not contiguous", i, r.Seq)
		}
	}
}
