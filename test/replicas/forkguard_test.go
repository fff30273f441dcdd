package replicas_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestForkGuardFromAFreshDataDirectory: the newest checkpoint signed per
// log is recorded in the database, not in one replica's data directory. A
// replica signs a log past 100 records and goes away with its data
// directory (an ephemeral pod); the log's tables are then rolled back to its
// first checkpoint, as a partial restore from an older copy would leave them, and
// other events arrive. A new replica with an empty data directory takes the
// integrator lease: it refuses the log, saying what is missing, instead of
// signing a tree that contradicts the published checkpoint.
func TestForkGuardFromAFreshDataDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve replicas on PostgreSQL")
	}
	c := newCluster(t, 1)
	r := c.replica(0)
	org := c.newOrg(r, "Acme")
	post := func(from, n int) {
		t.Helper()
		var evs []string
		for k := from; k < from+n; k++ {
			evs = append(evs, eventJSON(org, k))
		}
		c.must(c.replica(0), "POST", "/v1/events/batch", `{"events":[`+strings.Join(evs, ",")+`]}`)
	}
	waitSigned := func(size int64) int64 {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if ck, _, ok := c.checkpoint(c.replica(0), org); ok && ck.Size >= size {
				return ck.Size
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size %d after 2 minutes\n%s", size, c.replica(0).Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	post(0, 40)
	back := waitSigned(40) // where the log is rolled back to
	post(40, 60)
	waitSigned(100)
	if err := r.Stop(t); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var head int64
	if err := conn.QueryRow(ctx, `SELECT size FROM signed_heads WHERE origin = $1`, "trail.test/log/"+org).Scan(&head); err != nil || head < 100 {
		t.Fatalf("the database records a head of size %d (%v), want at least 100", head, err)
	}
	for _, q := range []string{
		`DELETE FROM events WHERE organization_id = $1 AND seq >= $2`,
		`DELETE FROM ledger_checkpoints WHERE organization_id = $1 AND size > $2`,
		`UPDATE organizations SET integrated_size = $2, next_seq = $2 WHERE id = $1`,
	} {
		if _, err := conn.Exec(ctx, q, org, back); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// The new pod: an empty data directory.
	fresh := c.start(t.TempDir())
	c.mu.Lock()
	c.replicas[0] = fresh
	c.mu.Unlock()
	want := fmt.Sprintf("but this deployment signed a checkpoint of size %d", head)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(fresh.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the new replica never refused the rolled-back log (%q):\n%s", want, fresh.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := c.do(fresh, "POST", "/audit_logs/events", eventJSON(org, 100))
	if a.code != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "log_refused") {
		t.Errorf("an event for the refused log: %d %s, want 503 log_refused", a.code, a.body)
	}
	var newest int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM ledger_checkpoints WHERE organization_id = $1`, org).Scan(&newest); err != nil {
		t.Fatal(err)
	}
	if newest != back {
		t.Errorf("newest checkpoint stored %d, want %d: nothing signed over the rolled-back log", newest, back)
	}
}
